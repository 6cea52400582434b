"""Stage `report`: the tables and plots a lab meeting needs, from the metrics JSONs and the
per-presentation predictions (paired comparisons: `results/comparisons.csv`).

Every row and plot is per *session* (one mouse can have several sessions); every accuracy
carries its 95 % interval.

The macaque reaching sessions (params `reach_sessions`) get their own tables and figures
(`npdecode.report.reach`): `results/reach_summary.csv`, `results/reach_fewshot.csv`,
`plots/reach_traces.png`, `plots/reach_r2_by_date.png`, `plots/reach_fewshot.png`; their
paired R² differences join `results/comparisons.csv` (kind `reach_r2`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from npdecode.cli import run_stage
from npdecode.formats.files import read_csv, write_csv, write_json
from npdecode.params import Params
from npdecode.paths import Layout
from npdecode.report import reach
from npdecode.report.flags import (
    best_train_accuracy,
    flags_section,
    flags_table,
    medians_table,
    session_facts,
)
from npdecode.report.neurometric import (
    ALL,
    areas_table,
    load_results,
    neurometric_table,
    plot_areas,
    plot_time,
    plot_units,
)
from npdecode.report.plots import (
    plot_accuracy,
    plot_confusion,
    plot_fewshot,
    plot_multisession,
    plot_raster,
)
from npdecode.report.tables import (
    best_models,
    comparisons_table,
    fewshot_table,
    multisession_table,
    summary_table,
)
from npdecode.sources.macaque_sessions import BY_NAME

PARAMS = ("sessions", "reach_sessions", "report", "bin.stimulus", "multisession.core")
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """Write results/ tables and plots/ for every session and model."""
    layout = Layout(root)
    summary = summary_table(layout, params.sessions)
    write_csv(summary, layout.results_dir / "summary.csv")
    plot_accuracy(summary, layout.plots_dir / "accuracy.png")
    fewshot = fewshot_table(layout, params.sessions)
    for model, part in fewshot.groupby("model", sort=False):
        write_csv(part.drop(columns="model"), layout.results_dir / f"fewshot_{model}.csv")
    if len(fewshot):
        plot_fewshot(fewshot, layout.plots_dir / "fewshot.png")
    for sid, model in best_models(summary).items():
        plot_confusion(
            layout.predictions(model, sid),
            sid,
            model,
            layout.plots_dir / f"confusion_{sid}.png",
        )
    # "A beats B" as a tested statement: paired tests on shared test sets and draws
    comparisons = comparisons_table(layout, params.sessions, summary)
    reach_rows = reach.comparison_rows(layout, params.reach_sessions)
    if reach_rows:
        extra = pd.DataFrame(reach_rows, columns=comparisons.columns)
        comparisons = (
            pd.concat([comparisons, extra], ignore_index=True) if len(comparisons) else extra
        )
    write_csv(comparisons, layout.results_dir / "comparisons.csv")
    write_reach(layout, params)
    comparison = multisession_table(layout, summary, fewshot, params.multisession.core)
    if len(comparison):
        write_csv(comparison, layout.results_dir / "multisession.csv")
        plot_multisession(
            comparison, params.multisession.core, layout.plots_dir / "multisession.png"
        )
    first = params.sessions[0]
    plot_raster(
        layout.nwb(first),
        first,
        params.bin.stimulus,
        params.report.raster_presentations,
        layout.plots_dir / "raster.png",
    )
    neurometric = write_neurometric(layout, params)
    facts = {sid: session_facts(layout, sid) for sid in params.sessions}
    train_acc = best_train_accuracy(layout, summary)
    flags = flags_table(summary, facts, train_acc, params.report.flags)
    write_csv(flags, layout.results_dir / "flags.csv")
    write_csv(medians_table(summary, flags), layout.results_dir / "medians.csv")
    sections = {
        "near_chance": flags_section(flags, params.report.flags),
        "neurometric": neurometric,
    }
    write_json(layout.results_dir / "report.json", {"n_sessions": len(params.sessions), **sections})
    log.info(
        "report: %d sessions x %d models",
        summary["session_id"].nunique(),
        summary["model"].nunique(),
    )


def write_reach(layout: Layout, params: Params) -> None:
    """The reaching sessions' tables and figures (those run so far)."""
    names = params.reach_sessions
    summary = reach.summary_table(layout, names)
    write_csv(summary, layout.results_dir / "reach_summary.csv")
    if len(summary):
        reach.plot_r2_by_date(summary, layout.plots_dir / "reach_r2_by_date.png")
        reach.plot_traces(layout, names[0], layout.plots_dir / "reach_traces.png")
    fewshot = reach.fewshot_table(layout, names)
    write_csv(fewshot, layout.results_dir / "reach_fewshot.csv")
    if len(fewshot):
        reach.plot_fewshot(fewshot, layout.plots_dir / "reach_fewshot.png")
    crossday = layout.root / "metrics" / "reach" / "crossday"  # the reach_crossday stage's
    if (crossday / "sessions.csv").is_file():
        table = read_csv(crossday / "sessions.csv")
        poyo = crossday.parent / "crossday_poyo" / "sessions.csv"  # reach_crossday_poyo's
        if poyo.is_file():  # optional (`optional_shared: [poyo]`): POYO's columns beside ours
            theirs = read_csv(poyo).drop(columns=["monkey", "date"])
            table = table.merge(theirs, on="session", how="left")
        write_csv(table, layout.results_dir / "reach_crossday.csv")
        stab = read_csv(crossday / "stability.csv")
        write_csv(stab, layout.results_dir / "reach_stability.csv")
        for monkey in sorted({BY_NAME[n].monkey for n in names}):
            reach.plot_stability(stab, monkey, layout.plots_dir / "stability" / f"{monkey}.png")


def write_neurometric(layout: Layout, params: Params) -> dict:
    """Neurometric tables and figures over the sessions that have them; what was skipped."""
    results = load_results(layout, params.sessions)
    if not results:
        return {"n_sessions": 0}
    table = neurometric_table(results)
    areas = areas_table(results)
    write_csv(table, layout.results_dir / "neurometric.csv")
    write_csv(areas, layout.results_dir / "neurometric_areas.csv")
    if len(table):
        plot_units(table, layout.plots_dir / "neurometric_units.png")
        if (table["area"] != ALL).any():  # some area had enough units of its own
            plot_areas(table, layout.plots_dir / "neurometric_areas.png")
        plot_time(table, areas, layout.plots_dir / "neurometric_time.png")
    return {
        "n_sessions": len(results),
        "skipped_areas": {sid: r["skipped"] for sid, r in results.items()},
    }


if __name__ == "__main__":
    run_stage("report", main, per_session=False)
