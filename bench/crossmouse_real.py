"""Learning across mice at real size: single-session LSTM vs the shared decoder vs transfer.

Run from the repository root (it makes and keeps a scratch project, default /tmp/cmreal):

    OMP_NUM_THREADS=1 nice -n 10 python bench/crossmouse_real.py \
        --ids 1 5 9 13 17 21 25 29 --project /tmp/cmreal --prune \
        --set train.lstm.max_epochs=20 --set multisession.max_epochs=8 --set fewshot.repeats=3

Each twin goes through the pipeline's stages in the scratch project (params.yaml = this
repository's, with `fetch.synthetic.preset: allen`, `sessions` = the ids, `fewshot.shots`
= `--shots`, and every `--set key=value` applied): fetch, bin, clean, split, reference,
`train lstm`; then one `train_multisession` run (`npdecode.stages.multisession`: the shared
decoder on all the twins, and transfer by `multisession.folds` folds). A stage whose output
exists is not run again (`--redo-shared` reruns the last one, e.g. after changing `--set`).
`--prune` deletes a twin's NWB, binned and cleaned tables once its split exists.

Prints one row per twin: units, single-session LSTM and shared-decoder test accuracy with
95 % Wilson intervals, their paired difference (exact McNemar, Bonett-Price interval, on
the same test presentations), transfer at each k (mean over draws with its Student-t
interval, and as a fraction of the single LSTM), and the CPU seconds of each stage; then
the medians and the counts of twins where shared > single by the paired test.
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
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from npdecode.evaluation import paired_difference  # noqa: E402
from npdecode.params import with_overrides  # noqa: E402
from npdecode.paths import Layout  # noqa: E402

DATA_STAGES = (("fetch",), ("bin",), ("clean",), ("split",), ("reference",))


def stage(project: Path, args: tuple[str, ...], session_id: int | None = None) -> float:
    """Run one stage in `project` (this checkout's code); its wall time (s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", f"npdecode.stages.{args[0]}", *args[1:]]
    cmd += [] if session_id is None else [str(session_id)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def correct(layout: Layout, model: str, sid: int) -> pd.Series:
    """Per test presentation (indexed by id): did `model` predict it right."""
    table = pd.read_csv(layout.predictions(model, sid)).set_index("presentation_id")
    return table["predicted"] == table["actual"]


def cpu_s(layout: Layout, name: str) -> float:
    path = layout.cost(name)
    return json.loads(path.read_text())["cpu_time_s"] if path.exists() else float("nan")


def row(layout: Layout, sid: int, shots: list[int]) -> dict:
    single = json.loads(layout.metrics("lstm", sid).read_text())
    shared = json.loads(layout.metrics("multisession", sid).read_text())
    transfer = json.loads((layout.root / "metrics/fewshot/transfer" / f"{sid}.json").read_text())
    a, b = correct(layout, "multisession", sid), correct(layout, "lstm", sid)
    pair = paired_difference(a.to_numpy(), b.loc[a.index].to_numpy())
    out = {
        "twin": sid,
        "units": json.loads((layout.split_dir(sid) / "meta.json").read_text())["n_units"],
        "single": single["test"]["accuracy"],
        "single_lo": single["test"]["accuracy_lo"],
        "single_hi": single["test"]["accuracy_hi"],
        "single_epochs": single.get("epochs"),
        "shared": shared["test"]["accuracy"],
        "shared_lo": shared["test"]["accuracy_lo"],
        "shared_hi": shared["test"]["accuracy_hi"],
        "gain": pair["difference"],
        "gain_lo": pair["difference_lo"],
        "gain_hi": pair["difference_hi"],
        "gain_p": pair["p_value"],
        "fold": transfer.get("fold"),
    }
    for k in shots:
        s = transfer["shots"].get(str(k), {})
        out[f"k{k}"] = s.get("mean", float("nan"))
        out[f"k{k}_lo"], out[f"k{k}_hi"] = s.get("mean_lo", np.nan), s.get("mean_hi", np.nan)
        out[f"k{k}/single"] = out[f"k{k}"] / out["single"]
    out["lstm CPU s"] = cpu_s(layout, f"train_lstm@{sid}")
    return out


def markdown(table: pd.DataFrame, shots: list[int]) -> str:
    """The per-twin table: each score with its 95 % interval."""
    head = "| twin | units | single LSTM | shared | shared − single (paired) |"
    head += "".join(f" transfer k={k} (/ single) |" for k in shots)
    lines = [head, "|" + "---|" * (5 + len(shots))]
    for r in table.to_dict("records"):
        cells = [
            str(r["twin"]),
            str(r["units"]),
            f"{r['single']:.3f} [{r['single_lo']:.3f}, {r['single_hi']:.3f}]",
            f"{r['shared']:.3f} [{r['shared_lo']:.3f}, {r['shared_hi']:.3f}]",
            f"{r['gain']:+.3f} [{r['gain_lo']:+.3f}, {r['gain_hi']:+.3f}] p={r['gain_p']:.2g}",
        ]
        cells += [
            f"{r[f'k{k}']:.3f} [{r[f'k{k}_lo']:.3f}, {r[f'k{k}_hi']:.3f}] ({r[f'k{k}/single']:.2f})"
            for k in shots
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, nargs="+", default=[1, 5, 9, 13, 17, 21, 25, 29])
    parser.add_argument("--project", type=Path, default=Path("/tmp/cmreal"))
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--set", action="append", default=[], help="params key=value")
    parser.add_argument("--prune", action="store_true")
    parser.add_argument("--redo-shared", action="store_true")
    parser.add_argument("--data-only", action="store_true", help="stop after the splits")
    args = parser.parse_args()
    project = args.project.resolve()
    project.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sessions"] = args.ids
    params["fetch"]["synthetic"]["preset"] = "allen"
    params["fewshot"]["shots"] = args.shots
    params["threads"] = 1
    params = with_overrides(params, args.set)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    layout = Layout(project)
    print(f"{time.strftime('%H:%M:%S')} twins {args.ids}; settings {args.set}", flush=True)
    for sid in args.ids:
        if not (layout.split_dir(sid) / "meta.json").exists():
            for s in DATA_STAGES[:4]:
                print(f"twin {sid}: {s[0]} {stage(project, s, sid):.0f} s", flush=True)
        if not layout.reference(sid).exists():
            print(f"twin {sid}: reference {stage(project, ('reference',), sid):.0f} s", flush=True)
        if args.prune:
            for path in (layout.nwb(sid), layout.binned(sid), layout.clean(sid)):
                path.unlink(missing_ok=True)
    if args.data_only:
        return
    for sid in args.ids:
        if not layout.metrics("lstm", sid).exists():
            wall = stage(project, ("train", "lstm"), sid)
            print(f"twin {sid}: train lstm {wall:.0f} s", flush=True)
    if args.redo_shared or not layout.metrics("multisession", args.ids[0]).exists():
        wall = stage(project, ("multisession",))
        print(f"train_multisession {wall:.0f} s", flush=True)
    table = pd.DataFrame([row(layout, sid, args.shots) for sid in args.ids])
    summary(table, args.shots, layout)
    table.to_csv(project / "crossmouse_real.csv", index=False)


def summary(table: pd.DataFrame, shots: list[int], layout: Layout) -> None:
    """Print the per-twin tables, the medians and the paired-test counts."""
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(markdown(table, shots))
    wins, losses = int((table["gain_lo"] > 0).sum()), int((table["gain_hi"] < 0).sum())
    print(
        f"shared - single: median {table['gain'].median():+.3f} "
        f"(range {table['gain'].min():+.3f} to {table['gain'].max():+.3f}); paired test: "
        f"shared > single on {wins}/{len(table)}, single > shared on {losses}/{len(table)}"
    )
    for k in shots:
        print(f"transfer k={k}: median {table[f'k{k}/single'].median():.3f} of single")
    costs = {p.stem: cpu_s(layout, p.stem) for p in layout.costs_dir.glob("*multisession*")}
    print(f"CPU s: {json.dumps(costs)}")


if __name__ == "__main__":
    main()
