"""The CUDA-only code paths, run on a CPU stand-in: what a GPU run would take for the first time.

Mixed precision (autocast in bf16, fp16 with its gradient scaler) runs on the CPU when
`FitOptions.cpu_autocast` asks for it; a k's draws trained as one vmapped batch
(`fewshot.batch_draws: on`) run through the few-shot loop; the read-ahead thread of the
shared decoder's batches is in tests/stages/test_multisession.py (`prefetch=True`), POYO's
mixed precision in tests/test_poyo_fit.py, every model through bench/gpu_check.py at
CPU smoke size in tests/test_bench.py. None of these is marked gpu: only the device itself
is left untested on a CPU.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import npdecode
import npdecode.decode.fewshot as fewshot
from npdecode.decode.batched import fit_fixed_batched
from npdecode.decode.training import (
    FitOptions,
    autocast_dtype,
    fit,
    fit_fixed,
    grad_scaler,
    predict_logits,
)
from npdecode.params import FewshotParams, TrainParams
from tests.models.conftest import make_model, ring_graph, separable, tiny_session

CPU = torch.device("cpu")
OPTS = FitOptions(lr=1e-2, weight_decay=0.0, max_epochs=6, patience=6, batch_size=8, device="cpu")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _record_linear_dtypes(model: nn.Module) -> list[torch.dtype]:
    """Hook every nn.Linear of `model`; the returned list fills with their output dtypes."""
    seen: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_autocast_on_the_cpu_only_when_asked() -> None:
    assert autocast_dtype("bf16", CPU) is None  # the default CPU run stays float32
    assert autocast_dtype("bf16", CPU, on_cpu=True) is torch.bfloat16
    assert autocast_dtype("fp16", CPU, on_cpu=True) is torch.float16
    assert autocast_dtype("off", CPU, on_cpu=True) is None
    assert grad_scaler(torch.bfloat16, CPU) is None  # bf16 needs no scaler
    scaler = grad_scaler(torch.float16, CPU)
    assert scaler is not None and scaler.is_enabled()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("name", ["lstm", "transformer", "stgat"])
def test_training_under_cpu_autocast(name: str, amp: str) -> None:
    train = val = separable(seed=0)  # separable draws its class patterns from its seed
    model = make_model(name, n_classes=4)
    seen = _record_linear_dtypes(model)
    opts = FitOptions(**{**vars(OPTS), "amp": amp, "cpu_autocast": True})
    model, info = fit(model, train, val, opts)
    assert info["amp"] == str(DTYPES[amp]).removeprefix("torch.")
    assert DTYPES[amp] in seen  # the forward passes did run in half precision
    logits = predict_logits(model, val[0])
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert (
        info["best_val_accuracy"] > 0.5
    )  # chance 0.25: it learned in half precision (on its own data)


def test_default_cpu_run_stays_float32_and_byte_identical() -> None:
    train = val = separable(seed=0)  # separable draws its class patterns from its seed
    runs = {}
    for amp in ("bf16", "off"):  # train.amp's default asks for bf16 on CUDA only
        model = make_model("lstm", n_classes=4)
        seen = _record_linear_dtypes(model)
        runs[amp] = fit(model, train, val, FitOptions(**{**vars(OPTS), "amp": amp}))
        assert set(seen) == {torch.float32}
    assert runs["bf16"][1]["amp"] == "off"
    for (k, a), b in zip(
        runs["bf16"][0].state_dict().items(), runs["off"][0].state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_batched_draws_under_cpu_autocast(amp: str) -> None:
    seeds = [1, 2, 3]
    data = [separable(n_classes=4, per_class=5, seed=s) for s in seeds]
    opts = [
        FitOptions(**{**vars(OPTS), "seed": s, "amp": amp, "cpu_autocast": True}) for s in seeds
    ]
    models = [make_model("lstm", n_classes=4, seed=s) for s in seeds]
    before = [copy.deepcopy(m.state_dict()) for m in models]
    info = fit_fixed_batched(models, data, opts)
    x = torch.from_numpy(separable(n_classes=4, per_class=3, seed=9)[0])
    for m, i, old in zip(models, info, before, strict=True):
        assert np.isfinite(i["train_loss"]) and i["train_accuracy"] > 0.5
        assert not torch.equal(m.state_dict()["head.weight"], old["head.weight"])
        assert torch.isfinite(predict_logits(m, x)).all()
    # the same members in float32 train to other weights: autocast was not a no-op
    f32 = [make_model("lstm", n_classes=4, seed=s) for s in seeds]
    fit_fixed_batched(f32, data, [FitOptions(**{**vars(OPTS), "seed": s}) for s in seeds])
    assert not torch.equal(
        f32[0].state_dict()["head.weight"], models[0].state_dict()["head.weight"]
    )


def test_fit_fixed_under_cpu_autocast_keeps_the_last_weights() -> None:
    model = make_model("transformer", n_classes=4)
    opts = FitOptions(**{**vars(OPTS), "amp": "bf16", "cpu_autocast": True})
    _, info = fit_fixed(model, separable(seed=0), opts)
    assert info["epochs"] == OPTS.max_epochs and info["amp"] == "bfloat16"
    assert np.isfinite(info["train_loss"])


@pytest.mark.parametrize("batch_draws", ["on", "off"])
def test_few_shot_loop_trains_draws_as_one_batch_when_on(batch_draws, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 6)
    counts = rng.poisson(1.0 + 3.0 * (y[:, None, None] == np.arange(7) % 4), (24, 5, 7))
    data = tiny_session(counts.astype(np.uint16), y, 4, ring_graph(7))
    idx = [np.array([d, 6 + d, 12 + d, 18 + d]) for d in range(3)]  # one shot per image
    views = [fewshot.shot_view(data, i, "strict") for i in idx]
    calls = []

    def spy(models, trains, opts):
        calls.append(len(models))
        return fit_fixed_batched(models, trains, opts)

    monkeypatch.setattr(fewshot, "fit_fixed_batched", spy)
    fs = FewshotParams(batch_draws=batch_draws, steps=4)
    train = TrainParams(device="cpu", batch_size=4)
    models = fewshot.fit_on_shots("lstm", views, train, fs, [0, 1, 2])
    assert calls == ([3] if batch_draws == "on" else [])
    assert len(models) == 3 and not any(m.training for m in models)
    logits = [
        predict_logits(m, fewshot.normalised(v, "test")[0])
        for m, v in zip(models, views, strict=True)
    ]
    assert all(torch.isfinite(lg).all() for lg in logits)
    assert not torch.equal(logits[0], logits[1])  # each draw its own learner


def test_no_implicit_device_in_the_package() -> None:
    # every device comes from an argument (train.device, FitOptions, POYOFit): never .cuda()
    src = Path(npdecode.__file__).parent
    implicit = re.compile(r"\.cuda\(|torch\.cuda\.\w*Tensor|set_default_device")
    found = [
        f"{p.relative_to(src)}:{n}"
        for p in sorted(src.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if implicit.search(line)
    ]
    assert found == []
