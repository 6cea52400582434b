"""POYO through the train and few-shot stages: Allen (optional_models: [poyo]) and macaque
(reach.models: [poyo]), on tiny twins of both data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch_brain")

from npdecode.decode import poyo_allen  # noqa: E402
from npdecode.decode.fewshot import draw_seed, session_curve  # noqa: E402
from npdecode.decode.poyo import predict_poyo  # noqa: E402
from npdecode.formats.binned import read_meta  # noqa: E402
from npdecode.formats.files import read_csv, read_json  # noqa: E402
from npdecode.formats.split import SPLITS, load_session  # noqa: E402
from npdecode.models.poyo_tokens import SPIKE, tokenize  # noqa: E402
from npdecode.params import Params, params_from_dict  # noqa: E402
from npdecode.paths import Layout  # noqa: E402
from npdecode.stages import clean, split  # noqa: E402
from npdecode.stages import fewshot as fewshot_stage  # noqa: E402
from npdecode.stages import train as train_stage  # noqa: E402
from tests.helpers import SPLIT_SESSION, copy_split_session  # noqa: E402

TINY_POYO = {
    "dim": 16,
    "depth": 1,
    "dim_head": 8,
    "cross_heads": 1,
    "self_heads": 2,
    "latents_per_step": 4,
    "max_epochs": 3,
    "patience": 2,
}


def tiny_params(**extra: Any) -> Params:
    d: dict[str, Any] = {**SPLIT_SESSION, "train": {"poyo": TINY_POYO, "batch_size": 16}}
    return params_from_dict({**d, **extra})


def binned(tokens_unit, tokens_time, tokens_kind, mask, length, n_bins, n_units) -> np.ndarray:
    """The spike tokens of one window counted in n_bins equal bins: (n_bins, n_units)."""
    keep = mask & (tokens_kind == SPIKE)
    bins = np.floor(tokens_time[keep] / length * n_bins).astype(int)
    out = np.zeros((n_bins, n_units), np.int64)
    np.add.at(out, (bins, tokens_unit[keep]), 1)
    return out


def test_tokens_carry_every_spike_of_each_presentation_once(split_session: Path, tmp_path: Path):
    # keep the presentations that overlap invalid_times: their invalid spikes must go too
    root = copy_split_session(split_session, tmp_path / "p")
    params = params_from_dict({**SPLIT_SESSION, "clean": {"drop_invalid_presentations": False}})
    clean.main(params, 1, root)
    split.main(params, 1, root)
    data = load_session(Layout(root).split_dir(1), 1)
    windows = poyo_allen.session_windows(Layout(root), data)
    for name in SPLITS:
        w, part = windows[name], getattr(data, name)
        t = tokenize(w.spikes, w.starts, w.stops)
        for b in range(len(w.starts)):
            got = binned(t.unit[b], t.time[b], t.kind[b], t.mask[b], t.length[b],
                         data.n_bins, data.n_units)  # fmt: skip
            assert np.array_equal(got, part.X[b]), (name, b)
    # the check covered presentations whose invalid spikes the bin stage removed
    table = read_meta(Layout(root).binned_presentations(1)).set_index("presentation_id")
    ids = np.concatenate([getattr(data, s).presentation_id for s in SPLITS])
    assert table.loc[ids, "overlaps_invalid"].any()


def test_train_stage_writes_poyo_metrics_predictions_and_a_checkpoint_that_predicts(
    split_session: Path, tmp_path: Path
):
    root = copy_split_session(split_session, tmp_path / "p")
    params = tiny_params()
    train_stage.main(params, "poyo", 1, root)
    layout = Layout(root)
    m = read_json(layout.metrics("poyo", 1))
    assert m["model"] == "poyo" and 1 <= m["best_epoch"] <= m["epochs"] <= 3
    assert m["test"]["accuracy_lo"] <= m["test"]["accuracy"] <= m["test"]["accuracy_hi"]
    assert len(m["val_accuracy"]) == m["epochs"]
    assert m["best_val_accuracy"] == pytest.approx(max(m["val_accuracy"]), abs=1e-5)
    data = load_session(layout.split_dir(1), 1)
    model, ckpt = poyo_allen.load_poyo(layout.model("poyo", 1))
    assert np.array_equal(ckpt["frames"].numpy(), data.frames)
    test = poyo_allen.session_windows(layout, data)["test"]
    logits = predict_poyo(model, test)
    table = read_csv(layout.predictions("poyo", 1))
    assert len(table) == len(data.test)
    predicted = data.frames[np.argmax(logits, axis=1)]
    assert np.array_equal(table["predicted"].to_numpy(), predicted)
    assert (layout.live_dir("poyo", 1) / "metrics.json").exists()


def test_fewshot_stage_poyo_uses_the_same_draws_as_our_models(split_session: Path, tmp_path: Path):
    root = copy_split_session(split_session, tmp_path / "p")
    params = tiny_params(fewshot={"shots": [1, 2], "repeats": 2, "steps": 4})
    fewshot_stage.main(params, "poyo", 1, root)
    layout = Layout(root)
    poyo = read_json(layout.fewshot("poyo", 1))
    data = load_session(layout.split_dir(1), 1)
    ours, _, _ = session_curve("logreg", data, params.train, params.fewshot)
    for k in ("1", "2"):
        a, b = poyo["shots"][k]["repeats"], ours["shots"][k]["repeats"]
        assert [r["seed"] for r in a] == [r["seed"] for r in b]
        assert [r["seed"] for r in a] == [draw_seed(0, int(k), r) for r in range(2)]
        assert [r["n_train"] for r in a] == [int(k) * data.n_classes] * 2
    predicted = read_csv(layout.fewshot_predictions("poyo", 1))
    assert len(predicted) == 2 * 2 * len(data.test)  # every draw's test predictions


def test_strict_protocol_only(split_session: Path):
    from npdecode.decode.poyo_fewshot import session_curve as poyo_curve

    params = tiny_params(fewshot={"protocol": "transductive"})
    data = load_session(Layout(split_session).split_dir(1), 1)
    with pytest.raises(ValueError, match="strict protocol only"):
        poyo_curve(data, {}, params.train, params.fewshot)


# --- the macaque reaching twin: a velocity per bin ----------------------------------------

REACH = "indy_20160622_01"


@pytest.fixture(scope="module")
def reach_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with a 1-minute reaching twin fetched, split and its references scored."""
    from npdecode.stages import fetch, reference

    root = tmp_path_factory.mktemp("reach")
    params = reach_params()
    for stage in (fetch, split, reference):
        stage.main(params, REACH, root)
    return root


def reach_params(**fewshot: Any) -> Params:
    return params_from_dict(
        {
            "reach_sessions": [REACH],
            "train": {"poyo": TINY_POYO, "batch_size": 64},
            "reach": {
                "twin_minutes": 1.0,
                "max_epochs": 2,
                "fewshot": {"minutes": [0.1], "repeats": 2, "steps": 3, **fewshot},
            },
        }
    )


def test_reach_tokens_carry_every_spike_of_each_window_once(reach_root: Path):
    from npdecode.decode import poyo_reach
    from npdecode.formats.reach_split import load_reach

    layout = Layout(reach_root)
    data = load_reach(layout.reach_split_dir(REACH), REACH)
    spikes = poyo_reach.read_spikes(layout, data, "sorted")
    rows = data.rows["test"]
    w = poyo_reach.windows(data, spikes, rows, data.target_mean, data.target_sd)
    t = tokenize(w.spikes, w.starts, w.stops)
    h, offsets = data.history, np.arange(-data.history + 1, 1)
    for b in range(len(rows)):
        got = binned(t.unit[b], t.time[b], t.kind[b], t.mask[b], t.length[b], h, data.n_units)
        assert np.array_equal(got, data.counts[rows[b] + offsets]), b
    # the targets are every bin's, z-scored: the last bin's is the scored row's
    last = w.y[:, -1] * data.target_sd + data.target_mean
    assert np.allclose(last, data.y("test"), atol=1e-4)


def test_reach_train_and_fewshot_stages_score_poyo_beside_ours(reach_root: Path, tmp_path: Path):
    import shutil

    root = Path(shutil.copytree(reach_root, tmp_path / "p"))
    layout = Layout(root)
    params = reach_params()
    train_stage.main(params, "poyo", REACH, root)
    m = read_json(layout.reach_metrics("poyo", REACH))
    assert m["test"]["r2_lo"] <= m["test"]["r2"] <= m["test"]["r2_hi"]
    assert 1 <= m["fit"]["best_epoch"] <= m["fit"]["epochs"] <= 2
    assert {p["b"] for p in m["paired"]} == {"wiener", "kalman", "ideal"}
    # the report pairs POYO with our LSTM on the same test blocks
    from npdecode.report.reach import comparison_rows, summary_table

    train_stage.main(params, "lstm", REACH, root)
    rows = [
        r
        for r in comparison_rows(layout, (REACH,))
        if {r["model_a"], r["model_b"]} == {"lstm", "poyo"}
    ]
    assert (
        len(rows) == 1
        and rows[0]["difference_lo"] <= rows[0]["difference"] <= rows[0]["difference_hi"]
    )
    lstm = read_json(layout.reach_metrics("lstm", REACH))["test"]["r2"]
    assert rows[0]["difference"] == pytest.approx(lstm - m["test"]["r2"], abs=1e-6)
    assert "poyo" in set(summary_table(layout, (REACH,))["decoder"])
    for model in ("poyo", "lstm"):
        fewshot_stage.main(params, model, REACH, root)
    poyo, lstm = (read_json(layout.reach_fewshot(m, REACH)) for m in ("poyo", "lstm"))
    a, b = poyo["minutes"]["0.1"]["repeats"], lstm["minutes"]["0.1"]["repeats"]
    assert [r["seed"] for r in a] == [r["seed"] for r in b] and len(a) == 2
    assert [r["n_train"] for r in a] == [r["n_train"] for r in b]


def test_adapt_command_adapts_poyo_to_a_macaque_session(reach_root: Path, tmp_path: Path):
    from npdecode.decode import adapt, poyo_reach
    from npdecode.decode.poyo_adapt import save_reach
    from npdecode.formats.checkpoint import read_checkpoint
    from npdecode.formats.reach_split import load_reach

    layout = Layout(reach_root)
    params = reach_params()
    data = load_reach(layout.reach_split_dir(REACH), REACH)
    spikes = poyo_reach.read_spikes(layout, data, "sorted")
    donor, _ = poyo_reach.train_reach(data, spikes, params.train, 1)
    donor_ckpt = tmp_path / "donor.pt"
    save_reach(donor_ckpt, donor, data.target_mean, data.target_sd)
    out = tmp_path / "adapted.pt"
    adapt.main([str(donor_ckpt), str(layout.reach_split_dir(REACH)), "--session-id", REACH,
                "--out", str(out), "--root", str(reach_root), "--params", "/nonexistent"])  # fmt: skip
    ckpt = read_checkpoint(out)
    model, _ = poyo_allen.load_poyo(out)
    assert ckpt["provenance"]["test"]["r2_lo"] <= ckpt["provenance"]["test"]["r2_hi"]
    pred = poyo_reach.predict_split(model, data, spikes, "test")
    assert pred.shape == (len(data.rows["test"]), 2) and np.isfinite(pred).all()
