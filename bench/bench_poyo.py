"""POYO's cost beside our LSTM, and its memory against the number of sessions it trains on.

Run from the repository root (about 2 minutes on one idle core):

    nice python bench/bench_poyo.py
    nice python bench/bench_poyo.py --units 400 --windows 600 --epochs 2 --eager

Synthetic sessions (no NWB): `--units` units (+-20 % per session), `--windows` windows of
0.25 s every 0.3 s, each of one of 10 classes, Poisson spikes whose rate in a window
depends on its class. Each run is a fresh process (`--threads` torch threads) so its peak
RSS is its own:
- one session, POYO (`POYOParams()` defaults: torch_brain's 1.3M configuration) and the
  LSTM (`LSTMParams()` defaults, on the windows' counts in 10 bins from `bin_spikes`), each
  trained `--epochs` epochs by the same plain loop (AdamW, cross-entropy, batch 32):
  CPU-s per epoch (POYO's includes tokenizing its batches) and peak RSS;
- POYO on 4 and 8 sessions, 1 epoch (`fit_poyo`, one session per batch): sessions are
  read lazily from .npy files (memory-mapped, one session held at a time) or, with
  `--eager`, all loaded up front as a contrast; peak RSS of each and the 8 / 4 ratio
  (goal <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_CLASSES, N_BINS, WINDOW, PERIOD = 10, 10, 0.25, 0.3


def write_session(folder: Path, s: int, units: int, windows: int) -> None:
    """Session `s`'s spikes (times, units sorted by time), windows and classes as .npy files."""
    rng = np.random.default_rng([7, s])
    n_units = int(units * rng.uniform(0.8, 1.2))
    base = rng.gamma(2.0, 5.0, n_units)  # (U,) Hz outside windows
    gain = np.exp(0.8 * rng.normal(0, 1, (N_CLASSES, n_units)))  # (C, U) class tuning
    starts = np.arange(windows) * PERIOD
    y = rng.integers(0, N_CLASSES, windows)
    duration = windows * PERIOD
    background = rng.poisson(base * duration)  # (U,)
    extra = rng.poisson(base * gain[y] * WINDOW)  # (P, U) spikes a window adds
    times = np.concatenate(
        [rng.uniform(0, duration, background.sum()), np.repeat(starts, extra.sum(1))]
    )
    times[background.sum() :] += rng.uniform(0, WINDOW, extra.sum())
    unit = np.concatenate(
        [np.repeat(np.arange(n_units), background), np.nonzero(extra)[1].repeat(extra[extra > 0])]
    )
    order = np.argsort(times, kind="stable")
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{s}.times.npy", times[order])
    np.save(folder / f"{s}.units.npy", unit[order].astype(np.int32))
    np.save(folder / f"{s}.starts.npy", starts)
    np.save(folder / f"{s}.y.npy", y)


class NpySessions(Sequence):
    """Sessions 1..n of `folder` as `SessionWindows`, read when indexed (memory-mapped)."""

    def __init__(self, folder: Path, n: int) -> None:
        self.folder, self.n = folder, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        from npdecode.decode.poyo import SessionWindows
        from npdecode.models.poyo_tokens import SpikeTable

        if not 0 <= i < self.n:
            raise IndexError(i)
        s, f = i + 1, self.folder
        units = np.load(f / f"{s}.units.npy", mmap_mode="r")
        n_units = int(units.max()) + 1 if len(units) else 0
        table = SpikeTable(np.load(f / f"{s}.times.npy", mmap_mode="r"), units, n_units)
        starts = np.load(f / f"{s}.starts.npy")
        ids = tuple(str(u) for u in range(n_units))
        return SessionWindows(
            str(s), table, starts, starts + WINDOW, np.load(f / f"{s}.y.npy"), ids
        )


def epoch_loop(model, batches, loss_of) -> None:  # type: ignore[no-untyped-def]
    """One plain training epoch: AdamW state lives on the model (created once by the caller)."""
    for inputs, y in batches():
        loss = loss_of(model(*inputs), y)
        model.opt.zero_grad()
        loss.backward()
        model.opt.step()


def single(args: argparse.Namespace) -> dict:
    """Train POYO or the LSTM on session 1 for `args.epochs` epochs in this process."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = NpySessions(args.data, 1)[0]
    batch = 32
    order = np.random.default_rng(0).permutation(len(d.starts))
    chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
    ce = torch.nn.functional.cross_entropy
    if args.child == "poyo":
        from npdecode.decode.poyo import build_poyo, session_batch
        from npdecode.models.poyo import POYOParams

        model = build_poyo(POYOParams(), [d], "class", N_CLASSES)

        def batches():  # type: ignore[no-untyped-def]
            for idx in chunks:
                tokens, y = session_batch(model, d, idx, torch.device("cpu"))
                yield (tokens, d.session), y
    else:
        from npdecode.binning import bin_spikes
        from npdecode.models.lstm import LSTMDecoder
        from npdecode.params import LSTMParams

        trains = [np.asarray(d.spikes.times[d.spikes.units == u]) for u in range(d.spikes.n_units)]
        x = bin_spikes(trains, d.starts, d.stops, N_BINS).astype(np.float32)  # (P, T, U)
        x = (x - x.mean((0, 1))) / (x.std((0, 1)) + 1e-3)
        model = LSTMDecoder(LSTMParams(), x.shape[2], N_BINS, N_CLASSES)

        def batches():  # type: ignore[no-untyped-def]
            for idx in chunks:
                yield (torch.from_numpy(x[idx]),), torch.from_numpy(d.y[idx])

    model.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    epoch_loop(model, batches, ce)  # warm-up epoch: lazy imports and allocations, not counted
    start = time.process_time()
    for _ in range(args.epochs):
        epoch_loop(model, batches, ce)
    cpu = (time.process_time() - start) / args.epochs
    return {"cpu_s_per_epoch": cpu, "params": sum(p.numel() for p in model.parameters())}


def multi(args: argparse.Namespace) -> dict:
    """POYO on sessions 1..n for one epoch (`fit_poyo`); eager: all sessions loaded first."""
    import torch

    from npdecode.decode.poyo import POYOFit, build_poyo, fit_poyo
    from npdecode.models.poyo import POYOParams

    torch.set_num_threads(args.threads)
    n = int(args.child.split(":")[1])
    sessions: Sequence = NpySessions(args.data, n)
    if args.child.startswith("eager"):
        sessions = [_in_memory(d) for d in sessions]
    model = build_poyo(POYOParams(), sessions, "class", N_CLASSES)
    start = time.process_time()
    fit_poyo(model, sessions, POYOFit(epochs=1, batch_size=32))
    return {"cpu_s_per_epoch": time.process_time() - start}


def _in_memory(d):  # type: ignore[no-untyped-def]
    import dataclasses

    table = dataclasses.replace(
        d.spikes, times=np.array(d.spikes.times), units=np.array(d.spikes.units)
    )
    return dataclasses.replace(d, spikes=table)


def run(args: argparse.Namespace, what: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--child", what, "--data", str(args.data)]
    cmd += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100, help="median units per session")
    ap.add_argument("--windows", type=int, default=160, help="windows per session")
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs (after one warm-up)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eager", action="store_true", help="also POYO with all sessions in memory")
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        out = single(args) if args.child in ("poyo", "lstm") else multi(args)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.data = Path(tmp)
        for s in range(1, 9):
            write_session(args.data, s, args.units, args.windows)
        size = sum(f.stat().st_size for f in args.data.glob("*.npy")) / 8 / 2**20
        print(
            f"{args.units} units, {args.windows} windows per session ({size:.1f} MiB of spikes "
            f"each); {args.threads} thread(s); load {os.getloadavg()[0]:.1f}"
        )
        rows = {what: run(args, what) for what in ("lstm", "poyo")}
        for what, r in rows.items():
            print(
                f"{what:5s} 1 session: {r['cpu_s_per_epoch']:6.2f} CPU-s/epoch, peak RSS "
                f"{r['peak_rss_mb']:5.0f} MiB, {r['params']:,} parameters"
            )
        print(
            f"POYO / LSTM CPU-s per epoch: {rows['poyo']['cpu_s_per_epoch'] / rows['lstm']['cpu_s_per_epoch']:.1f}x"
        )
        for mode in ("lazy", "eager") if args.eager else ("lazy",):
            four, eight = run(args, f"{mode}:4"), run(args, f"{mode}:8")
            print(
                f"POYO {mode:5s} 4 vs 8 sessions: peak RSS {four['peak_rss_mb']:.0f} vs "
                f"{eight['peak_rss_mb']:.0f} MiB = {eight['peak_rss_mb'] / four['peak_rss_mb']:.2f}x "
                f"(epoch {four['cpu_s_per_epoch']:.1f} vs {eight['cpu_s_per_epoch']:.1f} CPU-s)"
            )


if __name__ == "__main__":
    main()
