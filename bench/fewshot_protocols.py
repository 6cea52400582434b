"""Strict vs transductive few-shot curves of every model on split sessions, side by side.

Runs the few-shot stage (`python -m npdecode.stages.fewshot <model> <id>`, as dvc.yaml
does) once per protocol, model and session, in copies of the project under `--out`
(`<out>/strict/`, `<out>/transductive/`; the project itself is not touched), records the
CPU-seconds of each stage run, then prints markdown tables for the README:
- per session and k: mean ± sd over draws [95 % interval of the mean], strict vs
  transductive, for every model;
- per session: each stage's CPU-seconds and wall time under both protocols;
- strict, per session: each deep model vs logreg at every k, from the paired comparisons
  (`results/comparisons.csv` logic: paired bootstrap over draws and test presentations),
  i.e. from which k on a deep model beats logreg.

    OMP_NUM_THREADS=1 python bench/fewshot_protocols.py --root . --sessions 1 --out /tmp/fs

`--root` is a project whose data/split/<id> exists for every session (e.g. after
`dvc repro split`), with the params.yaml to use (its `fewshot.protocol` is overridden).
Runs that already have a result under `--out` are reused (`--rerun` to redo them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from npdecode.paths import Layout
from npdecode.report.tables import COMPARISON_COLUMNS, comparisons_table, fewshot_table

PROTOCOLS = ("strict", "transductive")
SRC = Path(__file__).resolve().parents[1] / "src"


def prepare(root: Path, out: Path, protocol: str, sessions: list[int]) -> Path:
    """A copy of the project's splits and params.yaml with `fewshot.protocol` set."""
    dest = out / protocol
    for sid in sessions:
        split = Layout(dest).split_dir(sid)
        if not split.exists():
            shutil.copytree(Layout(root).split_dir(sid), split)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["fewshot"]["protocol"] = protocol
    params["sessions"] = sessions
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def run_stage(project: Path, model: str, sid: int) -> dict:
    """Run one few-shot stage; its CPU-seconds (all threads) and wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "npdecode.stages.fewshot", model, str(sid), "--root", "."]
    subprocess.run(cmd, cwd=project, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"cpu_s": round(cpu, 1), "wall_s": round(time.perf_counter() - start, 1)}


def cell(row: pd.Series) -> str:
    return (
        f"{row['accuracy_mean']:.3f} ± {row['accuracy_sd']:.3f} "
        f"[{row['accuracy_mean_lo']:.3f}, {row['accuracy_mean_hi']:.3f}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--sessions", type=int, nargs="+", default=[1])
    parser.add_argument("--models", nargs="+", default=["logreg", "lstm", "transformer", "stgat"])
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rerun", action="store_true")
    args = parser.parse_args()
    costs_path = args.out / "costs.json"
    costs = json.loads(costs_path.read_text()) if costs_path.exists() else {}
    tables = {}
    for protocol in args.protocols:
        project = prepare(args.root, args.out, protocol, args.sessions)
        for model in args.models:
            for sid in args.sessions:
                key = f"{protocol}/{model}/{sid}"
                if args.rerun or not Layout(project).fewshot(model, sid).exists():
                    costs[key] = run_stage(project, model, sid)
                    costs_path.write_text(json.dumps(costs, indent=1))
        tables[protocol] = fewshot_table(Layout(project), tuple(args.sessions))
    for sid in args.sessions:
        print(f"\n### session {sid}: few-shot accuracy, mean ± sd [95 % interval of the mean]\n")
        print("| model | k | " + " | ".join(args.protocols) + " |")
        print("|---|---|" + "---|" * len(args.protocols))
        for model in args.models:
            parts = {p: t[(t.session_id == sid) & (t.model == model)] for p, t in tables.items()}
            for k in sorted(next(iter(parts.values()))["k"]):
                cells = [cell(parts[p][parts[p].k == k].iloc[0]) for p in args.protocols]
                print(f"| {model} | {k} | " + " | ".join(cells) + " |")
        print(f"\n### session {sid}: stage cost, CPU-s (wall s)\n")
        print("| model | " + " | ".join(args.protocols) + " |")
        print("|---|" + "---|" * len(args.protocols))
        for model in args.models:
            cells = []
            for p in args.protocols:
                c = costs.get(f"{p}/{model}/{sid}")
                cells.append(f"{c['cpu_s']:.0f} ({c['wall_s']:.0f})" if c else "reused, not timed")
            print(f"| {model} | " + " | ".join(cells) + " |")
    if "strict" in args.protocols:
        empty = pd.DataFrame(columns=["session_id", "model", "specimen_id"])
        comp = comparisons_table(Layout(args.out / "strict"), tuple(args.sessions), empty)
        comp = comp[(comp["kind"] == "fewshot") & (comp["model_a"] == "logreg")]
        print("\n### strict: deep model minus logreg, paired over draws and test presentations\n")
        print("| session | model | k | difference [95 % interval] | verdict |")
        print("|---|---|---|---|---|")
        for _, r in comp[list(COMPARISON_COLUMNS)].iterrows():
            print(
                f"| {r.session_id} | {r.model_b} | {r.k} | {-r.difference:+.3f} "
                f"[{-r.difference_hi:+.3f}, {-r.difference_lo:+.3f}] | {r.verdict} |"
            )


if __name__ == "__main__":
    main()
