"""The twin table: real-size Allen twins through the pipeline's data stages and logreg.

Run from the repository root (it makes and keeps a scratch project, default ../twin-table):

    python bench/twin_table.py --ids 29 1 4 5 9 13 17 21 [--project ../twin-table] [--prune]

For each twin: `python -m npdecode.stages.<stage>` fetch, bin, clean, split, reference and
`train logreg` in the scratch project (params.yaml = this repository's, with
`fetch.synthetic.preset: allen` and `sessions` = the ids), then one row: unfiltered units,
units passing AllenSDK's default filters, the logreg test accuracy (summed counts, the
default time-ordered split), the plug-in Poisson and ideal-observer accuracies on the same
test split, fetch wall time, CPU time and peak RSS (`costs/fetch@<id>.json`). For twin 29
(791319847) the quick-start protocol runs on its NWB too. `--prune` deletes a twin's NWB and binned tables after its row (about
2 GB each). Stages already done (their metrics file exists) are not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from npdecode.analyses.protocols import default_qc  # noqa: E402
from npdecode.paths import Layout  # noqa: E402

STAGES = (("fetch",), ("bin",), ("clean",), ("split",), ("reference",), ("train", "logreg"))


def run(project: Path, args: tuple[str, ...], session_id: int) -> float:
    """Run one stage; its wall time (s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", f"npdecode.stages.{args[0]}", *args[1:], str(session_id)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=project, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def row(project: Path, session_id: int) -> dict:
    layout = Layout(project)
    fetch = json.loads(layout.fetch_report(session_id).read_text())
    cost = json.loads(layout.cost(f"fetch@{session_id}").read_text())  # run_stage writes it
    units = pd.read_csv(layout.raw_dir(session_id) / "units.csv")
    twin = json.loads(layout.twin_record(session_id).read_text())
    reference = json.loads(layout.reference(session_id).read_text())
    logreg = json.loads(layout.metrics("logreg", session_id).read_text())
    return {
        "twin": session_id,
        "real session": twin["twin_of"],
        "units": len(units),
        "default QC": int(default_qc(units).sum()),
        "logreg": logreg["test"]["accuracy"],
        "plug-in": reference["poisson_plugin"]["accuracy"],
        "ideal": reference["ideal"]["accuracy"],
        "logreg / ideal": logreg["test"]["accuracy"] / reference["ideal"]["accuracy"],
        "fetch s": cost["wall_time_s"],
        "fetch CPU s": cost["cpu_time_s"],
        "fetch GiB": cost["peak_rss_mb"] / 1024,
        "spikes M": fetch["n_spikes"] / 1e6,
        **{k: round(v, 3) for k, v in twin["mouse"].items() if k != "n_units"},
    }


def markdown(table: pd.DataFrame) -> str:
    """The table as markdown: integer columns as integers, the rest to 3 decimals."""
    ints = {"twin", "real session", "units", "default QC"}
    return table.to_markdown(
        index=False, floatfmt=tuple(".0f" if c in ints else ".3f" for c in table.columns)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, nargs="+", default=[29, 1, 4, 5, 9, 13, 17, 21])
    parser.add_argument("--project", type=Path, default=REPO.parent / "twin-table")
    parser.add_argument("--prune", action="store_true")
    args = parser.parse_args()
    project = args.project.resolve()
    project.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sessions"] = args.ids
    params["fetch"]["synthetic"]["preset"] = "allen"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    layout = Layout(project)
    rows = []
    for sid in args.ids:
        if not layout.metrics("logreg", sid).exists():
            for stage in STAGES:
                print(f"twin {sid}: {' '.join(stage)} {run(project, stage, sid):.0f} s", flush=True)
        if sid == 29 and layout.nwb(sid).exists():
            quick = [sys.executable, "-m", "npdecode.analyses.protocols", "quickstart"]
            quick += ["--nwb", str(layout.nwb(sid)), "--session-id", str(sid)]
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            print(subprocess.run(quick, env=env, check=True, capture_output=True, text=True).stdout)
        rows.append(row(project, sid))
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        if args.prune:
            layout.nwb(sid).unlink(missing_ok=True)
            for path in (layout.binned(sid), layout.clean(sid)):
                path.unlink(missing_ok=True)
    table = pd.DataFrame(rows)
    print(markdown(table))
    table.to_csv(project / "twin_table.csv", index=False)


if __name__ == "__main__":
    main()
