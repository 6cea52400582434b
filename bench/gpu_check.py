"""GPU check: train every deep decoder and the shared cross-mouse decoder at real size, with AMP.

Not part of the test suite. One short script (a few minutes on one GPU), run as:

    PYTHONPATH=src python bench/gpu_check.py --json gpu_check.json   # 2,000 units, bf16 + fp16
    PYTHONPATH=src python bench/gpu_check.py --units 500 --epochs 2 --amp bf16
    PYTHONPATH=src python bench/gpu_check.py --cpu-smoke            # tiny, on the CPU: does it run?

For each model (lstm, transformer, stgat, and `multisession`: the shared decoder of
`--ms-sessions` sessions of one mouse, 1x to 1.5x `--units` wide, padded to the widest)
and each precision, it trains `--epochs` epochs with the pipeline's own code (params.yaml
defaults otherwise) and prints seconds per epoch (the mean, warm-up included), peak GPU
memory, the val/test accuracy reached, and checks that (1) training ran on CUDA under the requested autocast
dtype, (2) the logits are finite, (3) a checkpoint saved from the GPU model predicts on the
CPU the same classes as the GPU model in float32. Data are class-tuned Poisson counts with
a timing code (no NWB, no pipeline stages), so the check depends only on the model and
training code. Exit status 1 if any check fails, 2 if there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from npdecode.decode.session import train_model
from npdecode.decode.shared import session_logits, train_shared
from npdecode.decode.training import predict_logits
from npdecode.formats.checkpoint import predict, save_checkpoint, save_shared
from npdecode.formats.split import SessionData, Split
from npdecode.params import Params, params_from_dict
from npdecode.preprocess import knn_edges


def fake_session(
    units: int, bins: int, classes: int, repeats: int, k: int, seed: int, session_id: int = 1
) -> SessionData:
    """Poisson counts whose rate depends on image and bin (latency code); 70/10/20 split."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.5, units)  # (U,) mean count per bin
    tuning = rng.normal(0, 0.6, (classes, units))  # (C, U) log-gain per image
    latency = rng.integers(0, bins, (classes, units))  # (C, U) peak bin per image
    t = np.arange(bins)
    shape = np.exp(-0.5 * ((t[None, None, :] - latency[..., None]) / 1.5) ** 2)  # (C, U, T)
    rates = base[None, :, None] * np.exp(tuning)[..., None] * (0.5 + shape)  # (C, U, T)
    y = np.repeat(np.arange(classes), repeats)
    counts = rng.poisson(rates[y].transpose(0, 2, 1)).astype(np.uint16)  # (P, T, U)
    order = np.argsort(np.tile(np.arange(repeats), classes), kind="stable")
    code = np.zeros(len(y), np.int8)
    rank = np.empty(len(y))
    rank[order] = np.arange(len(y)) / len(y)
    code[rank >= 0.7], code[rank >= 0.8] = 1, 2
    train = counts[code == 0]
    flat = train.reshape(-1, units).astype(np.float64)  # (P*T, U)
    mean, std = flat.mean(0), flat.std(0)
    std[std == 0] = 1.0
    corr = np.nan_to_num(np.corrcoef(flat[:20000], rowvar=False))
    edge_index, edge_weight = knn_edges(corr, k)

    def split(c: int) -> Split:
        m = code == c
        return Split(counts[m], y[m], np.flatnonzero(m))

    return SessionData(
        session_id=session_id,
        train=split(0),
        val=split(1),
        test=split(2),
        frames=np.arange(classes) - 1,
        unit_ids=np.arange(units, dtype=np.int64),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        units=pd.DataFrame({"unit_id": np.arange(units)}),
        n_bins=bins,
        bin_width_s=0.025,
        specimen_id="700000001",  # one mouse: the shared decoder groups by specimen
    )


def _params(device: str, amp: str, batch: int, epochs: int) -> Params:
    """Default params with this device, precision and batch; every model stops at `epochs`."""
    budget = {"max_epochs": epochs, "patience": epochs}
    return params_from_dict(
        {
            "train": {
                "device": device,
                "amp": amp,
                "batch_size": batch,
                **{m: budget for m in ("lstm", "transformer", "stgat")},
            },
            "multisession": budget,
        }
    )


def _timed(cuda: bool, train: Callable[[], tuple[Any, dict]]) -> tuple[Any, dict, float]:
    """Run `train` from a clean peak-memory count; (its results..., wall seconds)."""
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    model, info = train()
    if cuda:
        torch.cuda.synchronize()
    return model, info, time.perf_counter() - start


def _row(
    name: str,
    amp: str,
    cuda: bool,
    info: dict,
    seconds: float,
    logits: torch.Tensor,
    y_test: np.ndarray,
    cpu_probs: np.ndarray,
) -> dict:
    """One result row, with the three checks folded into `ok`."""
    agree = float((cpu_probs.argmax(1) == logits.argmax(1).cpu().numpy()).mean())
    want_amp = {"bf16": "bfloat16", "fp16": "float16", "off": "off"}[amp] if cuda else "off"
    ok = (
        info["device"].startswith("cuda") == cuda
        and info["amp"] == want_amp
        and bool(torch.isfinite(logits).all())
        and agree > 0.99
    )
    return {
        "model": name,
        "amp": info["amp"],
        "epochs": info["epochs"],
        "s_per_epoch": round(seconds / info["epochs"], 2),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "best_val_accuracy": round(info["best_val_accuracy"], 3),
        "test_accuracy": round(float((logits.argmax(1).cpu().numpy() == y_test).mean()), 3),
        "cpu_gpu_agreement": round(agree, 4),
        "ok": bool(ok),
    }


def check(model_name: str, amp: str, data: SessionData, args: argparse.Namespace) -> dict:
    """Train one single-session model under `amp` for `args.epochs`; timings and checks."""
    cuda = args.device.startswith("cuda")
    params = _params(args.device, amp, args.batch, args.epochs)
    model, info, seconds = _timed(cuda, lambda: train_model(model_name, data, params.train))
    logits = predict_logits(model, data.normalise(data.test.X), args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_checkpoint(path, model_name, model, data)
        cpu_probs = predict(
            path, data.test.X, data.unit_ids, batch_size=args.batch, session_id=data.session_id
        )
    return _row(model_name, amp, cuda, info, seconds, logits, data.test.y, cpu_probs)


def check_shared(amp: str, sessions: dict[int, SessionData], args: argparse.Namespace) -> dict:
    """Train the shared cross-mouse decoder on all `sessions`; timings and checks on the first."""
    cuda = args.device.startswith("cuda")
    params = _params(args.device, amp, args.batch, args.epochs)
    sids = sorted(sessions)
    model, info, seconds = _timed(cuda, lambda: train_shared(sessions, sids, params))
    first = sessions[sids[0]]
    logits = torch.from_numpy(session_logits(model, first, "test", args.batch))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shared.pt"
        save_shared(path, model, sessions)
        cpu_probs = predict(
            path, first.test.X, first.unit_ids, batch_size=args.batch, session_id=sids[0]
        )
    row = _row("multisession", amp, cuda, info, seconds, logits, first.test.y, cpu_probs)
    return {**row, "sessions": len(sids), "units": "/".join(str(sessions[s].n_units) for s in sids)}


def _warm_up(device: str) -> None:
    """Start CUDA, cuBLAS and cuDNN (and torch's lazy CPU setup) before anything is timed."""
    lstm = torch.nn.LSTM(8, 8, batch_first=True).to(device)
    x = torch.randn(4, 3, 8, device=device)
    lstm(x)[0].sum().backward()
    (x @ x.transpose(1, 2)).sum().item()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=2000)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--classes", type=int, default=119)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--amp", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16", "off"])
    ap.add_argument("--models", nargs="+", default=["lstm", "transformer", "stgat", "multisession"])
    ap.add_argument("--ms-sessions", type=int, default=4, help="sessions of the shared decoder")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu")
    ap.add_argument(
        "--cpu-smoke", action="store_true", help="tiny sizes on the CPU: checks that it runs"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.cpu_smoke:
        args.device, args.amp, args.epochs, args.ms_sessions = "cpu", ["off"], 1, 2
        args.units, args.classes, args.repeats, args.k = 40, 5, 12, 4
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    name = torch.cuda.get_device_name(torch.device(args.device)) if cuda else "cpu"
    print(f"torch {torch.__version__}, {name}, cudnn {torch.backends.cudnn.version()}")
    data = fake_session(args.units, args.bins, args.classes, args.repeats, args.k, seed=0)
    print(
        f"session: {args.units} units, {args.bins} bins, {args.classes} classes, "
        f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test, "
        f"{data.edge_index.shape[1]} edges",
        flush=True,
    )
    _warm_up(args.device)
    rows = []
    for model_name in args.models:
        if model_name == "multisession":
            # one mouse's sessions, 1x to 1.5x `--units` wide (real ones: 2,000-3,000 units)
            widths = np.linspace(args.units, 1.5 * args.units, args.ms_sessions).astype(int)
            sessions = {1: data} | {
                s: fake_session(int(w), args.bins, args.classes, args.repeats, args.k, s, s)
                for s, w in enumerate(widths[1:], start=2)
            }
        for amp in args.amp:
            try:
                if model_name == "multisession":
                    row = check_shared(amp, sessions, args)
                else:
                    row = check(model_name, amp, data, args)
            except Exception as err:  # report every combination, then fail below
                row = {"model": model_name, "amp": amp, "ok": False, "error": repr(err)[:300]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"gpu_check: {time.perf_counter() - t0:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
