"""What one training epoch of each deep decoder costs: CPU-seconds and peak RSS, as ratios.

Run from the repository root:

    python bench/bench_models.py --units 2000                  # lstm, transformer, stgat
    python bench/bench_models.py --split data/split/1          # a session the pipeline split
    python bench/bench_models.py --units 2000 --models stgat -S train.stgat.hidden=2
    python bench/bench_models.py --units 2000 --src /tmp/old/src  # another checkout's code

Each (model, repeat) runs in a fresh process with `--threads` torch/OpenMP threads, in an
interleaved order (lstm, transformer, stgat, lstm, ...) so that a change in the machine's
load hits every model alike. A process loads the session, imports what training imports,
builds the model from params (train.<model>, with `-S` overrides), and trains it
for `--epochs` epochs with the pipeline's training loop (`npdecode.decode.training.fit`, one
validation pass per epoch included); it reports the CPU-s of that loop per epoch and the
process's peak RSS (the whole session is loaded, even with `--fraction`). Printed: the
median of the repeats per model, every repeat, and each
median's ratio to the LSTM's. Without `--split`, the session is `gpu_check.fake_session`
(class-tuned Poisson counts, a kNN correlation graph with `--k` in-edges per unit).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    """Train one model for `args.epochs` epochs; print {cpu_s_per_epoch, ...} as JSON."""
    import torch
    import torch._dynamo  # noqa: F401  # imported by the optimiser on first use: not an epoch's cost

    from npdecode.decode.session import build_for_session
    from npdecode.decode.training import FitOptions, fit
    from npdecode.formats.split import load_session
    from npdecode.params import params_from_dict

    torch.set_num_threads(args.threads)
    data = load_session(args.split, int(args.session))
    params = params_from_dict(_overrides(args.sets))
    p = getattr(params.train, args.child).fit
    model = build_for_session(args.child, data, params.train)
    opts = FitOptions(
        lr=p.lr,
        weight_decay=p.weight_decay,
        max_epochs=args.epochs,
        patience=args.epochs,
        batch_size=params.train.batch_size,
        seed=params.train.seed,
        device="cpu",
        schedule=p.schedule,
    )
    n_train, n_val = (max(1, round(args.fraction * len(s))) for s in (data.train, data.val))
    train = (data.normalise(data.train.X[:n_train]), data.train.y[:n_train])
    val = (data.normalise(data.val.X[:n_val]), data.val.y[:n_val])
    t0, w0 = time.process_time(), time.perf_counter()
    _, info = fit(model, train, val, opts)
    # per full epoch: the cost of a pass grows linearly with the presentations in it
    cpu, wall = (
        (time.process_time() - t0) / args.fraction,
        (time.perf_counter() - w0) / args.fraction,
    )
    print(
        json.dumps(
            {
                "cpu_s_per_epoch": round(cpu / info["epochs"], 2),
                "wall_s_per_epoch": round(wall / info["epochs"], 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "val_accuracy": round(info["best_val_accuracy"], 3),
                "n_units": data.n_units,
                "n_train": len(data.train),
                "n_parameters": info["n_parameters"],
            }
        )
    )


def _overrides(sets: list[str]) -> dict:
    """-S a.b.c=value -> {"a": {"b": {"c": value}}} (values parsed as YAML)."""
    from npdecode.params import with_overrides

    return with_overrides({}, sets)


def write_fake_split(folder: Path, units: int, k: int) -> None:
    """gpu_check's synthetic session (119 images x 50 repeats) as a split folder."""
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_check import fake_session

    from npdecode.formats.split import write_split

    write_split(folder, fake_session(units, 10, 119, 50, k, seed=0), {})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=2000, help="units of the generated session")
    ap.add_argument("--k", type=int, default=8, help="in-edges per unit of its graph")
    ap.add_argument("--split", type=Path, help="use this split folder instead")
    ap.add_argument("--session", default="1", help="its session id")
    ap.add_argument("--models", nargs="+", default=["lstm", "transformer", "stgat"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="train on this share of the train and val presentations; report per full epoch",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-S", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--src", type=Path, default=REPO / "src", help="npdecode source to run")
    ap.add_argument("--json", type=Path, help="also write every run here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    env = {
        **os.environ,
        "PYTHONPATH": str(args.src.resolve()),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "TQDM_DISABLE": "1",
    }
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        split = args.split
        if split is None:
            split = Path(tmp) / "split"
            write_fake_split(split, args.units, args.k)
        runs: dict[str, list[dict]] = {m: [] for m in args.models}
        print(f"load average before: {_load()}; {args.threads} thread(s); code: {args.src}")
        for r in range(args.repeats):
            for model in args.models:
                cmd = [sys.executable, __file__, "--child", model, "--split", str(split)]
                cmd += ["--session", args.session, "--epochs", str(args.epochs)]
                cmd += ["--fraction", str(args.fraction)]
                cmd += ["--threads", str(args.threads)] + [f"-S{s}" for s in args.sets]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{model} failed:\n{out.stderr[-3000:]}")
                runs[model].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"repeat {r + 1} {model}: {runs[model][-1]}", flush=True)
        print(f"load average after: {_load()}")
        base = (
            statistics.median(x["cpu_s_per_epoch"] for x in runs.get("lstm", []))
            if "lstm" in runs
            else None
        )
        first = next(iter(runs.values()))[0]
        print(
            f"\n{first['n_units']} units, {first['n_train']} training presentations, "
            f"{args.epochs} epoch(s) per run on {args.fraction:.0%} of them; per full epoch:"
        )
        print(f"{'model':12} {'CPU-s/epoch':>12} {'x lstm':>7} {'peak RSS MiB':>13}  repeats")
        for model, rs in runs.items():
            cpu = statistics.median(x["cpu_s_per_epoch"] for x in rs)
            rss = statistics.median(x["peak_rss_mb"] for x in rs)
            ratio = f"{cpu / base:7.1f}" if base else "      -"
            print(
                f"{model:12} {cpu:12.2f} {ratio} {rss:13.0f}  {[x['cpu_s_per_epoch'] for x in rs]}"
            )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=2
                )
            )
    return 0


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
