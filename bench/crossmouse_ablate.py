"""What limits transfer to a new mouse: ablations of the shared core and the new read-in.

Run from the repository root on a scratch project whose twins went through the data stages
(`bench/crossmouse_real.py --data-only`, e.g. at `fetch.synthetic.unit_scale: 0.1`):

    OMP_NUM_THREADS=1 nice -n 10 python bench/crossmouse_ablate.py --project /tmp/cmsmall \
        --held 2 6 --variants base ridge0.1 ridge10 random epochs0 epochs100

One core is trained (`npdecode.decode.shared.train_shared`, params from the project's
params.yaml) on the project's twins other than `--held`, for each distinct core setting
the variants ask for, and kept in memory; every variant then fits new read-ins for the
held-out twins exactly as transfer does (`npdecode.decode.transfer.transfer_curve`: the
few-shot stage's draws, the strict protocol) with its own settings, and is scored on their
test splits. The denominator is each held-out twin's single-session LSTM on the full
training split (`train lstm`, run in the project when missing). Prints per variant and
twin: transfer accuracy at each k (mean over draws, Student-t 95 % interval) and its
fraction of the single LSTM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

from npdecode.decode.shared import train_shared  # noqa: E402
from npdecode.decode.transfer import make_folds, transfer_curve, transfer_units  # noqa: E402
from npdecode.formats.split import SessionData, load_session  # noqa: E402
from npdecode.params import params_from_dict  # noqa: E402
from npdecode.paths import Layout  # noqa: E402

VISUAL = ("VIS", "LGd", "LP")

# name -> (params settings, unit choice); core settings (multisession.latent,
# input_dropout, lr, ...) train their own core, read-in settings reuse it
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "ridge0.01": {"multisession.readin_ridge": 0.01},
    "ridge0.1": {"multisession.readin_ridge": 0.1},
    "ridge10": {"multisession.readin_ridge": 10.0},
    "random": {"multisession.readin_init": "random"},
    "epochs0": {"multisession.adapt_epochs": 0},
    "epochs100": {"multisession.adapt_epochs": 100},
    "lr0.01": {"multisession.adapt_lr": 0.01},
    "visual": {"units": "visual"},
    "latent16": {"multisession.latent": 16},
    "latent32": {"multisession.latent": 32},
    "latent512": {"multisession.latent": 512},
    "drop0": {"multisession.input_dropout": 0.0},
    "drop0.7": {"multisession.input_dropout": 0.7},
}
CORE_KEYS = ("multisession.latent", "multisession.input_dropout", "multisession.lr")


def apply(raw: dict, settings: dict[str, Any]) -> dict:
    """A copy of the params dict with `a.b=value` settings applied."""
    out = json.loads(json.dumps(raw))
    for key, value in settings.items():
        if key == "units":
            continue
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node[part]
        node[last] = value
    return out


def parse(assignments: list[str]) -> dict[str, Any]:
    return {a.partition("=")[0]: yaml.safe_load(a.partition("=")[2]) for a in assignments}


def units_of(data: SessionData, choice: str | None) -> SessionData:
    """The session through the units a variant lets its read-in see."""
    if choice is None:
        return data
    area = data.units["area"].astype(str)
    keep = np.flatnonzero(area.str.startswith(VISUAL).to_numpy())
    return data.select(keep)


def single_accuracy(layout: Layout, sid: int) -> float:
    """The single-session LSTM's test accuracy (nan while it is not trained)."""
    path = layout.metrics("lstm", sid)
    return json.loads(path.read_text())["test"]["accuracy"] if path.exists() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("/tmp/cmsmall"))
    parser.add_argument("--held", type=int, nargs="+", help="twins held out of the core")
    parser.add_argument("--fold", type=int, help="or: hold out fold F of transfer's folds")
    parser.add_argument("--no-single", action="store_true", help="never train single LSTMs")
    parser.add_argument("--variants", nargs="+", default=["base"])
    parser.add_argument("--shots", type=int, nargs="+", default=[5])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="params key=value, all runs")
    parser.add_argument("--custom", action="append", default=[], help="name:key=v,key=v")
    args = parser.parse_args()
    torch.set_num_threads(1)
    project = args.project.resolve()
    layout = Layout(project)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["fewshot"]["shots"] = args.shots
    raw["fewshot"]["repeats"] = args.repeats
    raw["train"]["device"] = "cpu"
    raw = apply(raw, parse(args.set))
    variants = dict(VARIANTS)
    for spec in args.custom:
        name, _, body = spec.partition(":")
        variants[name] = parse(body.split(","))
    sids = list(raw["sessions"])
    data = {sid: load_session(layout.split_dir(sid), sid, lazy=True) for sid in sids}
    if args.fold is not None:  # the stage's folds (`transfer_by_folds`)
        m = raw["multisession"]
        units = transfer_units(data, sids, m["group"])
        args.held = sorted(
            s
            for u in make_folds(list(units), m["folds"], m["fold_seed"])[args.fold]
            for s in units[u]
        )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for sid in args.held:
        if not layout.metrics("lstm", sid).exists() and not args.no_single:
            cmd = [sys.executable, "-m", "npdecode.stages.train", "lstm", str(sid)]
            subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    single = {sid: single_accuracy(layout, sid) for sid in args.held}
    core_sids = [s for s in sids if s not in args.held]
    print(f"core on {core_sids}; held out {args.held}; single LSTM {single}", flush=True)
    cores: dict[str, Any] = {}
    for name in args.variants:
        settings = variants[name]
        params = params_from_dict(apply(raw, settings))
        core_key = json.dumps({k: v for k, v in settings.items() if k in CORE_KEYS})
        if core_key not in cores:
            t0 = time.process_time()
            cores[core_key] = train_shared(data, core_sids, params)
            model, info = cores[core_key]
            print(
                f"core {core_key}: {info['epochs']} epochs, best val "
                f"{info['best_val_accuracy']:.3f}, {time.process_time() - t0:.0f} CPU s",
                flush=True,
            )
        donor = cores[core_key][0]
        t0 = time.process_time()
        cells = []
        for sid in args.held:
            target = units_of(data[sid], settings.get("units"))
            curve, _ = transfer_curve(donor, target, dataclasses.replace(params))
            for k in args.shots:
                s = curve[str(k)]
                single[sid] = single_accuracy(layout, sid)
                cells.append(
                    f"{sid} k={k}: {s['mean']:.3f} [{s['mean_lo']:.3f}, {s['mean_hi']:.3f}] "
                    f"= {s['mean'] / single[sid]:.2f} of single"
                )
        print(
            f"{name:12s} ({time.process_time() - t0:4.0f} CPU s) | " + " | ".join(cells),
            flush=True,
        )


if __name__ == "__main__":
    main()
