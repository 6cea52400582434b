"""Stage `reach_crossday`: per monkey across days on the macaque reaching sessions.

The sessions of params `reach_sessions` are grouped by monkey (`crossday.group_by_subject`).
Per monkey: one shared decoder (per-session read-ins, the `multisession` core) and each
session's own decoder of the same core, both scored on the session's test blocks with the
paired gain shared - single (`npdecode.decode.crossday`; with `reach.crossday.finetune`
also the shared decoder fine-tuned per session, its own arm; one shared decoder per
`reach.crossday.window_days` group of days); transfer to the monkey's latest
day (a core trained on the earlier days, frozen; a new read-in, started from the latest
earlier day's read-in on the units both days share, fitted on `reach.fewshot.minutes`
minutes of that day's training windows, strict protocol, `reach.fewshot.repeats` draws);
stability over days (`npdecode.decode.stability`: fixed, read-in recalibrated,
retrained). A monkey with one session has no transfer or stability (recorded as skipped).

Writes `metrics/reach/crossday/<name>.json` per session, `results/reach_crossday.csv`
(per session: single, shared, gain with its paired p, fine-tuned and its gain, transfer at each k and its ratio
to the full single-session R²), `results/reach_stability.csv`,
`plots/stability_<monkey>.png` and `scores/reach_crossday.json` (what `dvc exp show`
lists: the shared, single and fine-tuned R² per session).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from npdecode.cli import run_stage
from npdecode.decode import crossday, stability
from npdecode.formats.files import atomic_path, write_csv, write_json
from npdecode.formats.macaque_truth import read_macaque_truth
from npdecode.formats.reach_split import load_reach
from npdecode.formats.scores import model_scores, write_scores
from npdecode.params import Params
from npdecode.paths import Layout

# a reaching-only stage: what reach_crossday declares (tests/test_dvc_yaml.py)
REACH_PARAMS = (
    "reach_sessions",
    "multisession",
    "reach",
    "train.seed",
    "train.batch_size",
    "train.device",
    "train.amp",
    "train.lstm",
    "train.transformer",
)
NAME = "reach_crossday"
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """Shared vs single, transfer to a later day and stability, per monkey."""
    layout = Layout(root)
    names = list(params.reach_sessions)
    data = {n: load_reach(layout.reach_split_dir(n), n) for n in names}
    truths = {n: layout.reach_truth(n) for n in names}
    ids = {
        n: crossday.unit_ids(data[n], read_macaque_truth(t) if t.exists() else None)
        for n, t in truths.items()
    }
    metrics: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    minutes = tuple(params.reach.fewshot.minutes)
    for monkey, group in crossday.group_by_subject(names).items():
        sessions = [data[n] for n in group]
        per, singles = crossday.shared_vs_single(sessions, params)
        transfer: dict[str, Any] = {"skipped": f"{monkey} has one session: no earlier day"}
        if len(group) > 1:
            transfer = crossday.transfer_later_day(sessions, params, minutes, per, ids)
            stab = stability.stability(sessions, singles, ids, params)
            tables.append(stab)
        for n in group:
            metrics[n] = {**per[n], "group": monkey, "group_sessions": group}
            if transfer.get("session") == n:
                metrics[n]["transfer"] = transfer
            rows.append(_row(per[n], transfer if transfer.get("session") == n else None))
            log.info("%s: shared R² %.3f, single %.3f", n, per[n]["shared"]["r2"],
                     per[n]["single"]["r2"])  # fmt: skip
    columns = list(stability_columns()) if not tables else list(tables[0].columns)
    stab_all = pd.concat(tables) if tables else pd.DataFrame(columns=columns)
    # tables beside the per-session metrics; the report stage turns them into
    # results/reach_crossday.csv, results/reach_stability.csv and plots/stability/<monkey>.png
    folder = layout.root / "metrics" / "reach" / "crossday"
    with atomic_path(folder) as tmp:  # the folder whole, or not at all
        tmp.mkdir(parents=True)
        for n, m in metrics.items():
            write_json(tmp / f"{n}.json", m)
        write_csv(pd.DataFrame(rows), tmp / "sessions.csv")
        write_csv(stab_all, tmp / "stability.csv")
    write_scores(
        layout.scores(NAME),
        *(
            model_scores("reach_shared", n, {"test": crossday.r2_part(m["shared"])})
            for n, m in metrics.items()
        ),
        *(
            model_scores("reach_single", n, {"test": crossday.r2_part(m["single"])})
            for n, m in metrics.items()
        ),
        *(
            model_scores("reach_finetuned", n, {"test": crossday.r2_part(m["finetuned"])})
            for n, m in metrics.items()
            if "finetuned" in m
        ),
    )


def stability_columns() -> tuple[str, ...]:
    """The columns of `results/reach_stability.csv` (also when no monkey has two days)."""
    arms = [f"{a}_{s}" for a in ("fixed", "readin", "retrained") for s in ("r2", "lo", "hi")]
    return ("monkey", "day", "later", "days_apart", "units_kept", *arms, "recovered")


def _row(r: dict[str, Any], transfer: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"session": r["session"], "monkey": r["monkey"], "date": r["date"]}
    for arm in ("single", "shared"):
        row.update({arm: r[arm]["r2"], f"{arm}_lo": r[arm]["r2_lo"], f"{arm}_hi": r[arm]["r2_hi"]})
    g = r["gain"]
    row.update({"gain": g["diff"], "gain_lo": g["lo"], "gain_hi": g["hi"], "gain_p": g["p"]})
    if "finetuned" in r:  # reach.crossday.finetune, in a group of two sessions or more
        f, fg = r["finetuned"], r["finetune_gain"]
        row.update({"finetuned": f["r2"], "finetuned_lo": f["r2_lo"], "finetuned_hi": f["r2_hi"],
                    "finetune_gain": fg["diff"], "finetune_gain_lo": fg["lo"],
                    "finetune_gain_hi": fg["hi"], "finetune_gain_p": fg["p"]})  # fmt: skip
    for k, e in (transfer or {}).get("curve", {}).items():
        r2 = [d["r2"] for d in e["draws"]]
        row[f"transfer_{k}min"] = e["r2_mean"]
        row[f"transfer_{k}min_min"], row[f"transfer_{k}min_max"] = min(r2), max(r2)
        row[f"ratio_{k}min"] = e.get("ratio_to_single", np.nan)
        row[f"scratch_{k}min"] = e.get("scratch_r2_mean", np.nan)
    return row


if __name__ == "__main__":
    run_stage("crossday", main, per_session=False, dvc_stage=NAME)
