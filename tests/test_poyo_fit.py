"""Training POYO on one and several sessions, and adapting it to a new one."""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from npdecode.decode.poyo import (
    POYOFit,
    SessionWindows,
    adapt_poyo,
    build_poyo,
    fit_poyo,
    predict_poyo,
    train_poyo,
)
from npdecode.models.poyo import EMBEDDINGS, POYODecoder

from .models.test_poyo import TINY

QUIET = TINY.__class__(
    **{**TINY.__dict__, "ffn_dropout": 0.0, "lin_dropout": 0.0, "atn_dropout": 0.0}
)
FIT = POYOFit(epochs=3, batch_size=4, lr=3e-3)


def class_session(session: str, n_units: int = 4, n: int = 12, seed: int = 0) -> SessionWindows:
    """Windows of 0.2 s, one every 0.3 s; in a class-c window unit c fires 4 extra spikes."""
    rng = np.random.default_rng(seed)
    starts = np.arange(n) * 0.3
    y = np.arange(n) % 3
    trains = [list(rng.uniform(0, n * 0.3, n // 2)) for _ in range(n_units)]  # background
    for p, c in enumerate(y):
        trains[c] += list(starts[p] + rng.uniform(0, 0.2, 4))
    units = [f"u{u}" for u in range(n_units)]  # the same ids in every session
    return SessionWindows.of(session, [np.array(t) for t in trains], starts, starts + 0.2, y, units)


def bins_session(session: str, n: int = 8, seed: int = 0) -> SessionWindows:
    """Windows of 0.4 s in 4 bins; in each bin units 0 and 1 fire v_x and v_y spikes, the target."""
    rng = np.random.default_rng(seed)
    starts = np.arange(n) * 0.5
    y = rng.integers(0, 3, (n, 4, 2)).astype(np.float32)  # (P, Q, D)
    trains: list[list[float]] = [[], [], list(rng.uniform(0, n * 0.5, n))]
    for p in range(n):
        for q in range(4):
            for d in range(2):
                trains[d] += list(starts[p] + 0.1 * q + rng.uniform(0, 0.1, int(y[p, q, d])))
    return SessionWindows.of(session, [np.array(t) for t in trains], starts, starts + 0.4, y)


def core_state(model: POYODecoder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(EMBEDDINGS)}


def test_single_session_trains_both_readouts() -> None:
    model, losses = train_poyo(TINY, [class_session("a")], FIT, "class", n_classes=3)
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert predict_poyo(model, class_session("a")).shape == (12, 3)
    model, losses = train_poyo(TINY, [bins_session("b")], FIT, "bins")
    assert (model.n_queries, model.n_out) == (4, 2)
    out = predict_poyo(model, bins_session("b"), batch_size=3)
    assert out.shape == (8, 4, 2) and np.isfinite(out).all()
    none = bins_session("b")
    none = SessionWindows(
        "b", none.spikes, none.starts[:0], none.stops[:0], none.y[:0], ("0", "1", "2")
    )
    assert predict_poyo(model, none).shape == (0, 4, 2)


def test_training_repeats_bitwise_and_seeds_differ() -> None:
    runs = [train_poyo(TINY, [class_session("a")], FIT, "class", 3) for _ in range(2)]
    (a, la), (b, lb) = runs
    assert la == lb
    for k, v in a.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b.state_dict()[k]), k
    c, lc = train_poyo(
        TINY, [class_session("a")], POYOFit(**{**FIT.__dict__, "seed": 1}), "class", 3
    )
    assert lc != la


class LazySessions(Sequence):
    """Sessions made when indexed, counting how many are alive at each load."""

    def __init__(self, make: list) -> None:
        self.make, self.refs, self.most = make, [], 0

    def __len__(self) -> int:
        return len(self.make)

    def __getitem__(self, i):  # type: ignore[override]
        self.most = max(self.most, sum(r() is not None for r in self.refs))
        d = self.make[i]()
        self.refs.append(weakref.ref(d))
        return d


def test_multisession_holds_one_session_at_a_time() -> None:
    makers = [
        lambda s=s, u=u, i=i: class_session(s, u, seed=i)
        for i, (s, u) in enumerate([("a", 4), ("b", 6), ("c", 5)])
    ]
    sessions = LazySessions(makers)
    model, losses = train_poyo(TINY, sessions, POYOFit(epochs=2, batch_size=4), "class", 3)
    assert sessions.most <= 1  # each load happens with at most the previous session alive
    assert list(model.units) == ["a", "b", "c"]
    assert len(model.unit_emb.vocab) == 1 + 4 + 6 + 5  # "NA" + every session's units
    assert np.isfinite(losses).all()
    for make in makers:
        assert predict_poyo(model, make()).shape == (12, 3)


def test_adapt_trains_only_the_new_embeddings() -> None:
    donor, _ = train_poyo(
        TINY, [class_session("a"), class_session("b", 6, seed=1)], FIT, "class", 3
    )
    before = {k: v.clone() for k, v in donor.state_dict().items() if isinstance(v, torch.Tensor)}
    new = class_session("z", 5, seed=2)
    model, losses = adapt_poyo(donor, new, POYOFit(epochs=4, batch_size=4, lr=1e-2))
    core = core_state(donor)
    for k, v in core_state(model).items():
        assert torch.equal(v, core[k]), f"{k} changed while adapting"  # bitwise
    assert list(model.unit_emb.vocab) == ["NA", "z/u0", "z/u1", "z/u2", "z/u3", "z/u4"]
    assert list(model.units) == ["z"]
    assert losses[-1] < losses[0]  # the embeddings did learn
    for k, v in donor.state_dict().items():  # the donor is untouched
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())
    assert predict_poyo(model, new).shape == (12, 3)


def test_weights_round_trip_as_plain_tensors(tmp_path) -> None:
    # what a checkpoint needs: a JSON-ready spec and tensors torch loads with weights_only
    donor, _ = train_poyo(
        TINY, [class_session("a"), class_session("b", 6, seed=1)], FIT, "class", 3
    )
    new = class_session("z", 5, seed=2)
    model, _ = adapt_poyo(donor, new, FIT)
    torch.save({"spec": model.spec(), "tensors": model.tensors()}, tmp_path / "poyo.pt")
    saved = torch.load(tmp_path / "poyo.pt", weights_only=True)
    twin = POYODecoder.from_spec(json.loads(json.dumps(saved["spec"])))
    twin.load_tensors(saved["tensors"])
    np.testing.assert_array_equal(predict_poyo(twin, new), predict_poyo(model, new))
    assert twin.units == model.units == {"z": new.unit_ids}


def test_adapt_then_everything_moves_the_core() -> None:
    donor, _ = train_poyo(TINY, [class_session("a")], FIT, "class", 3)
    model, losses = adapt_poyo(donor, class_session("z", seed=2), FIT, full_epochs=2)
    assert len(losses) == 5
    core = core_state(donor)
    assert any(not torch.equal(v, core[k]) for k, v in core_state(model).items())


def test_overfits_one_batch_of_classes() -> None:
    d = class_session("a")  # in a window of class c, unit c fires 4 extra spikes
    model, _ = train_poyo(QUIET, [d], POYOFit(epochs=40, batch_size=12, lr=1e-2), "class", 3)
    assert (predict_poyo(model, d).argmax(1) == d.y).all()


@pytest.mark.slow
def test_overfits_one_batch_of_bins() -> None:
    d = bins_session("b")  # the targets are the spike counts of units 0 and 1 in each bin
    model, losses = train_poyo(QUIET, [d], POYOFit(epochs=150, batch_size=8, lr=3e-3), "bins")
    assert losses[-1] < 0.25 * d.y.var()  # a quarter of what predicting the mean would leave


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y": np.zeros(3)}, "3 targets for 2 windows"),
        ({"unit_ids": ["a", "a"]}, "name each of the 2 units once"),
        ({"stops": np.array([1.0, 0.5])}, "session s: window 1"),
    ],
)
def test_bad_session_inputs_are_named(kwargs: dict, match: str) -> None:
    args = {
        "session": "s",
        "spike_times": [np.array([0.1]), np.array([0.2])],
        "starts": np.array([0.0, 0.5]),
        "stops": np.array([0.4, 0.9]),
        "y": np.array([0, 1]),
    }
    with pytest.raises(ValueError, match=match):
        SessionWindows.of(**{**args, **kwargs})


def test_build_needs_a_readout_it_can_size() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        build_poyo(TINY, [class_session("a")], "class")
    with pytest.raises(ValueError, match=r"\(P, Q, D\)"):
        build_poyo(TINY, [class_session("a")], "bins")
    with pytest.raises(ValueError, match="one shape per window"):
        build_poyo(TINY, [bins_session("a"), class_session("b")], "bins")


@pytest.mark.slow
def test_learns_images_of_a_synthetic_session() -> None:
    # the generator's session (30 units, 10 images + blank, 50 repeats): the first 35
    # repeats of each image train, the last 15 test; measured: 0.22 (logreg: 0.34, chance 0.09)
    from npdecode.params import SyntheticParams
    from npdecode.sources.synthetic import make_session

    s = make_session(SyntheticParams(n_units=30, n_images=10, n_repeats=50), 7)
    pres = s.presentations.sort_values("start_time")
    classes, y = np.unique(pres["frame"].to_numpy(), return_inverse=True)
    repeat = pres.groupby("frame").cumcount().to_numpy()
    starts, stops = pres["start_time"].to_numpy(), pres["stop_time"].to_numpy()
    train, test = (
        SessionWindows.of("7", s.spike_times, starts[m], stops[m], y[m])
        for m in (repeat < 35, repeat >= 35)
    )
    p = TINY.__class__(dim=32, depth=2, dim_head=32, self_heads=4, latents_per_step=8)
    model, _ = train_poyo(
        p, [train], POYOFit(epochs=40, batch_size=16, lr=3e-3), "class", len(classes)
    )
    accuracy = (predict_poyo(model, test).argmax(1) == test.y).mean()
    assert accuracy > 1.5 / len(classes)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_on_a_cpu_stand_in(amp: str) -> None:
    # CUDA's path (autocast; fp16 with a gradient scaler) on the CPU: only the device differs
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    model = build_poyo(TINY, [class_session("a")], "class", 3)
    seen: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    fit = POYOFit(**{**FIT.__dict__, "amp": amp, "device": "cpu"})
    losses = fit_poyo(model, [class_session("a")], fit)
    assert dtype in seen and np.isfinite(losses).all()
    assert predict_poyo(model, class_session("a")).dtype == np.float32
    plain, plain_losses = train_poyo(TINY, [class_session("a")], FIT, "class", 3)
    assert losses != plain_losses  # the autocast was no no-op ...
    donor, _ = train_poyo(TINY, [class_session("a")], FIT, "class", 3)
    adapted, ad_losses = adapt_poyo(donor, class_session("z", seed=2), fit)
    assert np.isfinite(ad_losses).all()  # ... and adapting takes it, the core still frozen
    core = core_state(donor)
    assert all(torch.equal(v, core[k]) for k, v in core_state(adapted).items())


def test_default_fit_stays_float32() -> None:
    model = build_poyo(TINY, [class_session("a")], "class", 3)
    seen: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    fit_poyo(model, [class_session("a")], FIT)
    assert seen and set(seen) == {torch.float32}
    assert next(model.parameters()).device == torch.device(FIT.device)
