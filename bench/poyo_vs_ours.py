"""Ours vs POYO through the pipeline's own stages, at an equal budget of optimiser steps.

Run from the repository root, one thread, nice'd (docs/poyo.md has the figures):

    OMP_NUM_THREADS=1 nice -n 10 python bench/poyo_vs_ours.py allen --root /tmp/poyo_allen
    OMP_NUM_THREADS=1 nice -n 10 python bench/poyo_vs_ours.py reach --root /tmp/poyo_reach \\
        --twin-minutes 2

`allen`: synthetic session 1 of params.yaml (fetched, binned, cleaned, split and referenced
under --root), the train stage for the LSTM and POYO with the same `--epochs` cap (the
same optimiser steps at `train.batch_size`; each keeps its best validation epoch), then
the strict few-shot stage for both at k = `--shots` (`--repeats` draws, `--steps` steps
each: the same draws); prints the summary, few-shot table and paired comparisons the
report writes (`npdecode.report.tables`) and saves them under --root.
`reach`: the macaque twin session of params.yaml (`--twin-minutes` long), reach_train and
reach_fewshot for the LSTM and POYO (`reach.max_epochs` = `--epochs`); prints test R² with
intervals and the paired R² differences of every decoder on the same test blocks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from npdecode.params import as_dict, load_params, params_from_dict
from npdecode.paths import Layout
from npdecode.stages import bin as bin_stage
from npdecode.stages import clean, fetch, fewshot, reference, split, train

MODELS = ("lstm", "poyo")


def allen(root: Path, base: dict[str, Any], args: argparse.Namespace) -> None:
    from npdecode.report.tables import comparisons_table, fewshot_table, summary_table

    for model in MODELS:
        base["train"][model]["max_epochs"] = args.epochs
    base["fewshot"].update(shots=args.shots, repeats=args.repeats, steps=args.steps)
    p = params_from_dict(base)
    sid = p.sessions[0]
    if not Layout(root).reference(sid).exists():
        for stage in (fetch, bin_stage, clean, split, reference):
            stage.main(p, sid, root)
    train_and_fewshot(p, sid, root)
    layout = Layout(root)
    summary = summary_table(layout, (sid,))
    tables = {
        "summary": summary,
        "fewshot": fewshot_table(layout, (sid,)),
        "comparisons": comparisons_table(layout, (sid,), summary),
    }
    for name, table in tables.items():
        table.to_csv(root / f"{name}.csv", index=False)
        print(table.to_string())


def train_and_fewshot(p: Any, session: int | str, root: Path) -> None:
    """The train then the fewshot stage of every model on one session, with its CPU-s."""
    for run, stage in (("train", train), ("fewshot", fewshot)):
        for model in MODELS:
            t0 = time.process_time()
            stage.main(p, model, session, root)
            print(f"{model} {run}: {time.process_time() - t0:.0f} CPU-s", flush=True)


def reach(root: Path, base: dict[str, Any], args: argparse.Namespace) -> None:
    base["reach"].update(twin_minutes=args.twin_minutes, max_epochs=args.epochs)
    p = params_from_dict(base)
    name = p.reach_sessions[0]
    layout = Layout(root)
    if not layout.reach_metrics("reference", name).exists():
        for stage in (fetch, split, reference):
            stage.main(p, name, root)
    train_and_fewshot(p, name, root)
    for model in MODELS:
        m = json.loads(layout.reach_metrics(model, name).read_text())
        t = m["test"]
        print(f"{model}: test R² {t['r2']:.3f} [{t['r2_lo']:.3f}, {t['r2_hi']:.3f}]")
        for pair in m["paired"]:
            print("  ", {k: pair[k] for k in pair if k != "session"})
        f = json.loads(layout.reach_fewshot(model, name).read_text())
        for k, v in f["minutes"].items():
            print(f"  few-shot {k} min: {v['mean']:.3f} [{v['mean_lo']}, {v['mean_hi']}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", choices=("allen", "reach"))
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--shots", type=int, nargs="+", default=[5])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--twin-minutes", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.root.mkdir(parents=True, exist_ok=True)
    base = as_dict(load_params(args.params))
    (allen if args.data == "allen" else reach)(args.root, base, args)


if __name__ == "__main__":
    main()
