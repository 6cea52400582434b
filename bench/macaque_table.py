"""The macaque twin table: Wiener, Kalman, deep and ideal R² of cursor velocity per session,
through the pipeline's own stage functions, with each stage's CPU time.

    OMP_NUM_THREADS=1 nice python bench/macaque_table.py --sessions indy_20160622_01 loco_20170210_03 [--minutes 10 --models lstm transformer stgat --fewshot]
    ... --set reach.history=12 train.lstm.input_dropout=0.2   # params.yaml with these keys changed

For each session, in a temporary project root, the stages' `main`s run in this process
with the committed params but `reach_sessions = [session]`, `reach.twin_minutes =
--minutes` and `reach.models = --models`: fetch (the twin written as a real-layout `.mat`),
split (40 ms bins, 8-bin history, blocks 8 train / val / test, still periods excluded),
reference (Wiener, Kalman, ideal), train (each deep model), optionally fewshot, and the
report's reaching part. R² of 2-D velocity on the test block, overall with its 95 %
block-bootstrap interval (5 s blocks), the paired difference of each deep model and
Wiener, of every pair of deep models (the first listed minus the other), each deep model's
training CPU seconds and the CPU seconds of every stage (fetch -> report: the pipeline's cost for one
session without DVC's own overhead). Nothing here is tuned to the scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import yaml

from npdecode.formats.files import read_csv, read_json
from npdecode.formats.reach_split import load_reach
from npdecode.params import Params, params_from_dict, with_overrides
from npdecode.paths import Layout
from npdecode.reaching import decoders
from npdecode.report import reach as reach_report
from npdecode.stages import fetch, fewshot, reference, split, train
from npdecode.threads import configure_threads

PROJECT = Path(__file__).resolve().parents[1]


def committed_params(overrides: list[str]) -> Params:
    """params.yaml with each `dotted.key=value` (a YAML value) of `overrides` set."""
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    return params_from_dict(with_overrides(raw, overrides), source="params.yaml with --set")


def one(
    name: str, root: Path, minutes: float, models: tuple[str, ...], shots: bool, base: Params
) -> dict:
    params = dataclasses.replace(
        base,
        reach_sessions=(name,),
        reach=dataclasses.replace(base.reach, twin_minutes=minutes, models=models),  # type: ignore[arg-type]
    )
    layout = Layout(root)
    cpu: dict[str, float] = {}

    def timed(stage: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
        c = time.process_time()
        fn(*args)
        cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - c

    timed("fetch", fetch.main, params, name, root)
    timed("split", split.main, params, name, root)
    timed("reference", reference.main, params, name, root)
    cpu_of: dict[str, float] = {}
    for m in models:
        before = cpu.get("train", 0.0)
        timed("train", train.main, params, m, name, root)
        cpu_of[m] = cpu["train"] - before
        if shots:
            timed("fewshot", fewshot.main, params, m, name, root)
    c = time.process_time()
    summary = reach_report.summary_table(layout, (name,))
    if len(summary):
        reach_report.plot_traces(layout, name, root / "traces.png")
    cpu["report"] = time.process_time() - c
    ref = read_json(layout.reach_metrics("reference", name))
    out = {"session": name, "units": ref["n_units"], "cpu": cpu, "r2": {}}
    for _, row in summary.iterrows():
        out["r2"][row["decoder"]] = (row["r2"], row["r2_lo"], row["r2_hi"])
    for m in models:
        pairs = read_json(layout.reach_metrics(m, name))["paired"]
        out[f"{m}-wiener"] = next(p for p in pairs if p["b"] == "wiener")
        out[f"{m}-cpu"] = cpu_of[m]
    # every pair of deep models on the same resampled test blocks (the first listed minus the other)
    data = load_reach(layout.reach_split_dir(name), name)
    task, y = decoders.task_of(data), data.y("test").astype(float)
    pred = {
        m: read_csv(layout.reach_predictions(m, name))[[f"{m}_x", f"{m}_y"]].to_numpy()
        for m in models
    }
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            out[f"{a}-{b}"] = task.paired(pred[a], pred[b], y)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", nargs="+", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument(
        "--models", nargs="+", default=["lstm"], choices=["lstm", "transformer", "stgat"]
    )
    ap.add_argument("--fewshot", action="store_true", help="also run the few-shot stage")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="change params.yaml keys for this run (e.g. reach.history=12)")  # fmt: skip
    a = ap.parse_args()
    configure_threads(1)
    base = committed_params(a.set)
    if a.set:
        print("params.yaml with " + ", ".join(a.set))
    names = ["wiener", "kalman", *a.models, "ideal"]
    pairs = [(x, y) for i, x in enumerate(a.models) for y in a.models[i + 1 :]]
    print("| session | monkey | units | " + " | ".join(f"{d} R² [95 %]" for d in names)
          + " | " + " | ".join(f"{m} − Wiener (paired)" for m in a.models)
          + "".join(f" | {x} − {y} (paired)" for x, y in pairs)
          + " | train CPU s " + " / ".join(a.models)
          + " | CPU s fetch / split / ref / train / fewshot / report |")  # fmt: skip
    print("|---" * (5 + len(names) + len(a.models) + len(pairs)) + "|")
    for name in a.sessions:
        with tempfile.TemporaryDirectory() as tmp:
            o = one(name, Path(tmp), a.minutes, tuple(a.models), a.fewshot, base)
        cells = [
            f"{o['r2'][d][0]:.3f} [{o['r2'][d][1]:.3f}, {o['r2'][d][2]:.3f}]"
            if d in o["r2"]
            else "—"
            for d in names
        ]
        diffs = [
            f"{p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]"
            for p in [*(o[f"{m}-wiener"] for m in a.models), *(o[f"{x}-{y}"] for x, y in pairs)]
        ]
        per_model = " / ".join(f"{o[f'{m}-cpu']:.1f}" for m in a.models)
        c = o["cpu"]
        costs = " / ".join(f"{c.get(k, 0.0):.1f}" for k in
                           ("fetch", "split", "reference", "train", "fewshot", "report"))  # fmt: skip
        print(f"| {name} | {name.split('_')[0]} | {o['units']} | " + " | ".join(cells) + " | "
              + " | ".join(diffs) + f" | {per_model} | {costs} (total {sum(c.values()):.0f}) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
