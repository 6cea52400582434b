"""What each stage run cost: `costs/<stage>.json` (`stage` as DVC names it, e.g. `bin@1`).

Written by `npdecode.cli.run_stage` after a stage succeeds; read by no stage.
`python -m npdecode.formats.costs` prints them as one table (`--out costs.csv` writes it).
Never a DVC dependency, output or metric, and git-ignored: wall times change on every run,
so keeping them out of every tracked file is what lets an unchanged rerun leave DVC and git
with nothing to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from npdecode.formats.files import read_json, write_json
from npdecode.params import SessionId, session_id_of

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("stage", "session_id", "wall_time_s", "cpu_time_s", "peak_rss_mb", "peak_gpu_mb")


def write_cost(path: str | Path, record: dict) -> None:
    """Write one stage run's cost record (see `npdecode.cli.run_stage`)."""
    write_json(path, record, checksum=False)


def read_costs(folder: str | Path, sessions: tuple[SessionId, ...] | None = None) -> pd.DataFrame:
    """One row per stage run recorded in `folder` (of these sessions, or not per session;
    every session when `sessions` is None).

    An unreadable record (a run killed while writing it cannot leave one, but a hand edit
    can) becomes a row with its stage and no figures rather than stopping the report.
    """
    import pandas as pd  # here: every stage imports this module (npdecode.cli), few read costs

    rows = []
    folder = Path(folder)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        stage, _, sid = path.stem.partition("@")
        if "-" in sid:  # a matrix stage (e.g. reach_train@lstm-indy_20160622_01): per model
            model, sid = sid.split("-", 1)
            stage = f"{stage}_{model}"
        if sid and sessions is not None and session_id_of(sid) not in sessions:
            continue
        try:
            record = read_json(path, checksum=False)
        except ValueError:  # CorruptError or a hand-written file
            record = {}
        rows.append(
            {
                **{c: record.get(c) for c in COLUMNS},
                "stage": stage,
                "session_id": session_id_of(sid) if sid else None,
            }
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if all(isinstance(r["session_id"], int | None) for r in rows):
        table["session_id"] = table["session_id"].astype("Int64")  # empty for whole-pipeline stages
    else:  # names (reaching sessions) beside integer ids: one type for sorting
        table["session_id"] = table["session_id"].map(lambda v: None if v is None else str(v))
    return table.sort_values(["stage", "session_id"], kind="stable", ignore_index=True)


def format_record(record: dict) -> str:
    """One line for the log."""
    return json.dumps({k: v for k, v in record.items() if k in COLUMNS[2:]})


def main(argv: list[str] | None = None) -> None:
    """Print every stage's cost in its last run (from `costs/`) as CSV, or write it."""
    parser = argparse.ArgumentParser(
        prog="python -m npdecode.formats.costs",
        description="What each stage's last run cost (wall, CPU, peak RAM), from costs/.",
    )
    parser.add_argument("--root", default=".", help="the project folder (default: .)")
    parser.add_argument("--out", help="write the table to this CSV file instead of stdout")
    args = parser.parse_args(argv)
    table = read_costs(Path(args.root) / "costs")
    if args.out:
        table.to_csv(args.out, index=False)
    else:
        table.to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main()
