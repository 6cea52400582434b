"""Stage `reach_crossday_poyo`: POYO per monkey across days, beside `reach_crossday`.

Optional: dvc.yaml runs it only when params `optional_shared` lists `poyo`. On the
sessions of params `reach_sessions`, per monkey (`crossday.group_by_subject`) and date
window (`reach.crossday.window_days`), one POYO over the window's sessions, scored on
each session's test rows; transfer to the monkey's latest day: a POYO trained on the
earlier days, adapted the authors' way on the same draws as reach_crossday's transfer
(npdecode.decode.poyo_crossday). POYO reads spikes: the sessions' `.mat` files under
`data/raw/reach`. A monkey with one session has no transfer (recorded as skipped).

Writes `metrics/reach/crossday_poyo/<name>.json` per session and `sessions.csv` (per
session: POYO shared R² [95 %], its window, transfer at each k: mean and the draws' range),
whose columns the report stage adds to `results/reach_crossday.csv` beside ours, and
`scores/reach_crossday_poyo.json` (shared R² with its interval per session, the mean
transfer R² per k). reach_crossday writes no predictions, so no row is paired with ours
here: bench/macaque_crossday.py --poyo pairs both on the same draws.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from npdecode.cli import run_stage
from npdecode.decode import crossday, poyo_crossday, poyo_reach
from npdecode.formats.files import atomic_path, write_csv, write_json
from npdecode.formats.reach_split import load_reach
from npdecode.formats.scores import model_scores, reach_fewshot_scores, write_scores
from npdecode.params import Params
from npdecode.paths import Layout

# a reaching-only stage: what reach_crossday_poyo declares (tests/test_dvc_yaml.py)
REACH_PARAMS = (
    "reach_sessions",
    "reach",
    "train.seed",
    "train.batch_size",
    "train.device",
    "train.amp",
    "train.poyo",
)
NAME, SHARED, TRANSFER = "reach_crossday_poyo", "reach_poyo_shared", "reach_poyo_transfer"
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """POYO shared per date window and its transfer to each monkey's latest day."""
    layout = Layout(root)
    names = list(params.reach_sessions)
    data = {n: load_reach(layout.reach_split_dir(n), n) for n in names}
    spikes = {n: poyo_reach.read_spikes(layout, d, params.reach.units) for n, d in data.items()}
    minutes = tuple(params.reach.fewshot.minutes)
    metrics: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for monkey, group in crossday.group_by_subject(names).items():
        sessions = [data[n] for n in group]
        per, _ = poyo_crossday.shared_by_window(sessions, spikes, params)
        transfer: dict[str, Any] = {"skipped": f"{monkey} has one session: no earlier day"}
        if len(group) > 1:
            transfer, _ = poyo_crossday.transfer_later_day(sessions, spikes, params, minutes)
        for n in group:
            metrics[n] = {**per[n], "group": monkey, "group_sessions": group}
            held = transfer.get("session") == n
            if held:
                metrics[n]["transfer"] = transfer
            rows.append(row(per[n], transfer if held else None))
            log.info("%s: POYO shared R² %.3f", n, per[n]["poyo_shared"]["r2"])
    folder = layout.root / "metrics" / "reach" / "crossday_poyo"
    with atomic_path(folder) as tmp:  # the folder whole, or not at all
        tmp.mkdir(parents=True)
        for n, m in metrics.items():
            write_json(tmp / f"{n}.json", m)
        write_csv(pd.DataFrame(rows), tmp / "sessions.csv")
    write_scores(
        layout.scores(NAME),
        *(
            model_scores(SHARED, n, {"test": crossday.r2_part(m["poyo_shared"])})
            for n, m in metrics.items()
        ),
        *(
            reach_fewshot_scores(
                TRANSFER, n, {k: {"mean": e["r2_mean"]} for k, e in m["transfer"]["curve"].items()}
            )  # fmt: skip
            for n, m in metrics.items()
            if "transfer" in m
        ),
    )


def row(r: dict[str, Any], transfer: dict[str, Any] | None) -> dict[str, Any]:
    """One session's line of `sessions.csv`."""
    m = r["poyo_shared"]
    out: dict[str, Any] = {"session": r["session"], "monkey": r["monkey"], "date": r["date"],
                           "window": " ".join(r["shared_group"]), "poyo_shared": m["r2"],
                           "poyo_shared_lo": m["r2_lo"], "poyo_shared_hi": m["r2_hi"],
                           "poyo_epochs": r["poyo_epochs"]}  # fmt: skip
    for k, e in (transfer or {}).get("curve", {}).items():
        r2 = [d["r2"] for d in e["draws"]]
        out[f"poyo_transfer_{k}min"] = e["r2_mean"]
        out[f"poyo_transfer_{k}min_min"], out[f"poyo_transfer_{k}min_max"] = min(r2), max(r2)
    return out


if __name__ == "__main__":
    run_stage("crossday_poyo", main, per_session=False, dvc_stage=NAME)
