"""Stage `report`: one table and the plots a lab meeting needs, from the metrics JSONs.

Every row and plot is per *session* (one mouse can have several sessions).
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.formats.costs import read_costs
from npdecode.formats.files import write_csv
from npdecode.params import Params
from npdecode.paths import Layout
from npdecode.report.plots import (
    plot_accuracy,
    plot_confusion,
    plot_fewshot,
    plot_multisession,
    plot_raster,
)
from npdecode.report.tables import best_models, fewshot_table, multisession_table, summary_table

PARAMS = ("sessions", "report", "bin.stimulus", "multisession.core")
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
    comparison = multisession_table(summary, fewshot, params.multisession.core)
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
    # what each stage's last run cost: read, not a dependency (costs change on every run)
    write_csv(read_costs(layout.costs_dir, params.sessions), layout.results_dir / "costs.csv")
    log.info(
        "report: %d sessions x %d models",
        summary["session_id"].nunique(),
        summary["model"].nunique(),
    )


if __name__ == "__main__":
    run_stage("report", main, per_session=False)
