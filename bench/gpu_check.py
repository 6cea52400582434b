"""GPU check: train every deep decoder for a few epochs at cluster scale, with AMP, on CUDA.

Not part of the test suite (this machine has no GPU). On a CUDA machine:

    PYTHONPATH=src python bench/gpu_check.py                  # 2,000 units, bf16 and fp16
    PYTHONPATH=src python bench/gpu_check.py --units 500 --epochs 2 --amp bf16 --json out.json
    PYTHONPATH=src python bench/gpu_check.py --device cpu --units 30 --classes 5 --epochs 1  # dry run

For each model × precision it prints seconds per epoch, peak GPU memory, the final val
accuracy, and checks that (1) training ran on CUDA under the requested autocast dtype,
(2) the loss is finite, (3) a checkpoint saved from the GPU model predicts on the CPU the
same classes as the GPU model in float32. Data are random class-tuned Poisson counts with a
timing code (no NWB, no pipeline stages), so the check depends only on the model and
training code. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from npdecode.decoders import build_model
from npdecode.formats.checkpoint import predict, save_checkpoint
from npdecode.formats.split import SessionData, Split
from npdecode.params import params_from_dict
from npdecode.preprocess import knn_edges
from npdecode.training import FitOptions, fit, predict_logits


def fake_session(
    units: int, bins: int, classes: int, repeats: int, k: int, seed: int
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
        session_id=1,
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
    )


def check(
    model_name: str, amp: str, data: SessionData, epochs: int, batch: int, device: str
) -> dict:
    """Train `model_name` under `amp` for `epochs` on `device`; return timings and checks."""
    cuda = device.startswith("cuda")
    params = params_from_dict({"train": {"device": device, "amp": amp, "batch_size": batch}})
    p = getattr(params.train, model_name)
    model = build_model(model_name, data, params.train)
    opts = FitOptions(
        lr=p.lr,
        weight_decay=p.weight_decay,
        max_epochs=epochs,
        patience=epochs,
        batch_size=batch,
        device=device,
        amp=amp,
    )
    train = (data.normalise(data.train.X), data.train.y)
    val = (data.normalise(data.val.X), data.val.y)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    model, info = fit(model, train, val, opts)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    logits = predict_logits(model, data.normalise(data.test.X), batch)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_checkpoint(path, model_name, model, data)
        cpu_probs = predict(path, data.test.X, batch_size=batch)
    agree = float((cpu_probs.argmax(1) == logits.argmax(1).cpu().numpy()).mean())
    test_acc = float((logits.argmax(1).cpu().numpy() == data.test.y).mean())
    want_amp = {"bf16": "bfloat16", "fp16": "float16", "off": "off"}[amp] if cuda else "off"
    ok = (
        info["device"] == str(torch.device(device)) or (cuda and info["device"].startswith("cuda"))
    ) and (info["amp"] == want_amp and torch.isfinite(logits).all().item() and agree > 0.99)
    return {
        "model": model_name,
        "amp": info["amp"],
        "epochs": info["epochs"],
        "s_per_epoch": round(seconds / info["epochs"], 2),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "best_val_accuracy": round(info["best_val_accuracy"], 3),
        "test_accuracy": round(test_acc, 3),
        "cpu_gpu_agreement": round(agree, 4),
        "ok": bool(ok),
    }


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
    ap.add_argument("--models", nargs="+", default=["lstm", "transformer", "stgat"])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(torch.device(args.device)) if cuda else "cpu"
    print(f"torch {torch.__version__}, {name}, cudnn {torch.backends.cudnn.version()}")
    data = fake_session(args.units, args.bins, args.classes, args.repeats, args.k, seed=0)
    print(
        f"session: {args.units} units, {args.bins} bins, {args.classes} classes, "
        f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test, "
        f"{data.edge_index.shape[1]} edges"
    )
    rows = []
    for model_name in args.models:
        for amp in args.amp:
            try:
                row = check(model_name, amp, data, args.epochs, args.batch, args.device)
            except Exception as err:  # report every combination, then fail below
                row = {"model": model_name, "amp": amp, "ok": False, "error": repr(err)[:300]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if cuda:
                torch.cuda.empty_cache()
    print(pd.DataFrame(rows).to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
