"""The shared decoder's memory and time against the number of sessions it trains on.

Run from the repository root:

    python bench/bench_multisession.py                       # N = 4 and 8, 2,000 units
    python bench/bench_multisession.py --sessions 4 8 16 32 --epochs 1
    python bench/bench_multisession.py --old-src /path/to/old/src --sessions 4 8   # before

Writes split folders of N synthetic sessions directly (no NWB: P = 119 images x 50
repeats, T = 10 bins, U units per session drawn around `--units` +-20 %, image-tuned
Poisson counts whose tuning shares hidden image features across sessions) into `--data`
(kept, so reruns reuse them), then runs the `train_multisession` stage
(`npdecode.stages.multisession.main`, group all, transfer off unless `--transfer`, a
fixed number of epochs) on the first N sessions, each run in a fresh process so its peak
RSS is its own. Prints per N: peak RSS, stage wall time, training time per epoch and per
training presentation, and the peak-RSS ratio of the largest N to the smallest (goal for
8 vs 4: <= 1.3). `--old-src` runs another checkout's stage on the same folders (e.g. the
zero-padding implementation) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_CLASSES, N_REPEATS, N_BINS, N_LATENT = 119, 50, 10, 8
HERE = Path(__file__).resolve().parent


def write_sessions(root: Path, n: int, units: int, seed: int = 0) -> None:
    """Split folders and reference metrics of sessions 1..n under `root` (missing ones)."""
    import pandas as pd

    from npdecode.formats.files import write_json
    from npdecode.formats.split import SessionData, Split, write_split
    from npdecode.paths import Layout

    layout = Layout(root)
    phi = np.random.default_rng([seed, 0]).normal(0, 1, (N_CLASSES, N_LATENT))  # shared images
    phi[0] = 0.0  # the blank
    for sid in range(1, n + 1):
        if (layout.split_dir(sid) / "meta.json").exists():
            continue
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, 1, sid])
        n_units = int(units * rng.uniform(0.8, 1.2))
        base = rng.gamma(2.0, 0.05, n_units)  # (U,) mean count per 25 ms bin
        drive = 0.6 * rng.normal(0, 1, (n_units, N_LATENT)) @ phi.T / np.sqrt(N_LATENT)  # (U, C)
        gain = np.exp(drive)  # (U, C)
        latency = rng.integers(1, 5, n_units)  # (U,) first responsive bin
        shape = 0.3 + (np.arange(N_BINS)[None, :] >= latency[:, None])  # (U, T)
        y = np.tile(np.arange(N_CLASSES), N_REPEATS)  # presentation order: repeat-major
        counts = np.empty((len(y), N_BINS, n_units), np.uint16)
        for i in range(0, len(y), 500):  # chunks: bounded int64 temporaries
            yc = y[i : i + 500]
            rate = base[None, None, :] * gain[:, yc].T[:, None, :] * shape.T[None]  # (p, T, U)
            counts[i : i + 500] = rng.poisson(rate)
        repeat = np.arange(len(y)) // N_CLASSES
        code = np.where(repeat < 35, 0, np.where(repeat < 40, 1, 2))  # 70/10/20, in time order
        flat = counts[code == 0].reshape(-1, n_units).astype(np.float64)
        mean, sd = flat.mean(0), flat.std(0)
        keep = sd > 0
        counts = np.ascontiguousarray(counts[:, :, keep])
        parts = {
            name: Split(counts[code == k], y[code == k], np.flatnonzero(code == k))
            for k, name in enumerate(("train", "val", "test"))
        }
        data = SessionData(
            session_id=sid,
            **parts,
            frames=np.arange(N_CLASSES) - 1,
            unit_ids=np.arange(int(keep.sum()), dtype=np.int64) + 100000 * sid,
            mean=mean[keep].astype(np.float32),
            std=sd[keep].astype(np.float32),
            edge_index=np.zeros((2, 0), np.int64),
            edge_weight=np.zeros(0, np.float32),
            units=pd.DataFrame({"unit_id": np.arange(int(keep.sum())) + 100000 * sid}),
            n_bins=N_BINS,
            bin_width_s=0.025,
            specimen_id=str(800000000 + sid),
        )
        write_split(layout.split_dir(sid), data, {"method": "bench"})
        write_json(layout.reference(sid), {"poisson_plugin": {"accuracy": 0.0}})
        del counts, flat, parts, data
        print(f"wrote session {sid}: {int(keep.sum())} units ({time.perf_counter() - t0:.1f} s)")


def child(root: Path, n: int, epochs: int, transfer: bool, threads: int) -> None:
    """One stage run (in this fresh process): print its facts as one JSON line."""
    import resource

    import torch

    torch.set_num_threads(threads)
    import npdecode.stages.multisession as stage
    from npdecode.params import params_from_dict

    spent: dict[str, float] = {}
    train_shared = stage.train_shared

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = train_shared(*args, **kwargs)
        spent["train_s"] = spent.get("train_s", 0.0) + time.perf_counter() - start
        spent["epochs"] = out[1]["epochs"]
        return out

    stage.train_shared = timed  # type: ignore[assignment]
    raw = {
        "sessions": list(range(1, n + 1)),
        "train": {"device": "cpu"},
        "multisession": {
            "group": "all",
            "transfer": transfer,
            "max_epochs": epochs,
            "patience": epochs,
        },
    }
    if transfer:
        raw["fewshot"] = {"shots": [5], "repeats": 1}
        raw["multisession"].update(folds=2, adapt_epochs=5)
    start = time.perf_counter()
    stage.main(params_from_dict(raw), root=root)
    wall = time.perf_counter() - start
    n_train = sum(
        json.loads((root / "data" / "split" / str(s) / "meta.json").read_text())["n"]["train"]
        for s in range(1, n + 1)
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # MiB on Linux
    print(json.dumps({"n": n, "wall_s": wall, "peak_rss_mb": peak, "n_train": n_train, **spent}))


def run(root: Path, n: int, args: argparse.Namespace, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--child", str(n), "--data", str(root)]
    cmd += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
    cmd += ["--transfer"] if args.transfer else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--units", type=int, default=2000, help="median units per session")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs per run (fixed)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per N (medians printed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--transfer", action="store_true", help="also transfer by 2 folds, k=5")
    ap.add_argument("--data", type=Path, default=Path("/tmp/npdecode-bench-multisession"))
    ap.add_argument("--old-src", type=Path, help="another checkout's src/ to run instead")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.data, args.child, args.epochs, args.transfer, args.threads)
        return
    sys.path.insert(0, str(HERE.parent / "src"))
    write_sessions(args.data, max(args.sessions), args.units)
    src = args.old_src or HERE.parent / "src"
    print(f"code: {src}; {args.epochs} epoch(s); {args.threads} thread(s); load {os.getloadavg()}")
    rows = []
    for n in args.sessions:
        runs = [run(args.data, n, args, src) for _ in range(args.repeats)]
        row = {k: float(np.median([r[k] for r in runs])) for k in runs[0] if k != "n"}
        row["n"] = n
        row["train_s_per_epoch"] = row.get("train_s", np.nan) / row.get("epochs", np.nan)
        row["train_us_per_presentation"] = 1e6 * row["train_s_per_epoch"] / row["n_train"]
        rows.append(row)
        print(
            f"N={n:3d}: {int(row['n_train']):7d} train presentations, peak RSS "
            f"{row['peak_rss_mb']:7.0f} MiB, stage {row['wall_s']:7.1f} s, training "
            f"{row['train_s_per_epoch']:7.1f} s/epoch = "
            f"{row['train_us_per_presentation']:6.0f} us per presentation",
            flush=True,
        )
    small, large = rows[0], rows[-1]
    print(
        f"peak RSS N={large['n']} / N={small['n']}: "
        f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x; training time per presentation "
        f"N={large['n']} / N={small['n']}: "
        f"{large['train_us_per_presentation'] / small['train_us_per_presentation']:.2f}x"
    )


if __name__ == "__main__":
    main()
