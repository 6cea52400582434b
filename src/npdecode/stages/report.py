"""Stage `report`: one table and the plots a lab meeting needs, from the metrics JSONs.

Every row and plot is per *session* (one mouse can have several sessions).
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from npdecode.cli import run_stage  # noqa: E402
from npdecode.io import atomic_path, read_json, write_csv  # noqa: E402
from npdecode.params import Params  # noqa: E402
from npdecode.paths import Layout  # noqa: E402

PARAMS = ("sessions",)
MODEL_ORDER = ("logreg", "lstm", "transformer", "stgat", "multisession")
NOT_MODELS = ("reference", "fewshot")
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """Write results/summary.csv and plots/accuracy.png for every session and model."""
    layout = Layout(root)
    summary = summary_table(layout, params.sessions)
    write_csv(summary, layout.results_dir / "summary.csv")
    plot_accuracy(summary, layout.plots_dir / "accuracy.png")
    log.info(
        "report: %d sessions x %d models",
        summary["session_id"].nunique(),
        summary["model"].nunique(),
    )


def model_names(layout: Layout) -> list[str]:
    """Models with a metrics folder, in a fixed display order."""
    found = [
        p.name
        for p in (layout.root / "metrics").iterdir()
        if p.is_dir() and p.name not in NOT_MODELS
    ]
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(found, key=lambda m: (order.get(m, len(order)), m))


def summary_table(layout: Layout, sessions: tuple[int, ...]) -> pd.DataFrame:
    """One row per session × model with test-split metrics (fractions)."""
    rows = []
    for model in model_names(layout):
        for sid in sessions:
            path = layout.metrics(model, sid)
            if not path.exists():
                continue
            m = read_json(path)
            rows.append(
                {
                    "session_id": sid,
                    "model": model,
                    "accuracy": m["test"]["accuracy"],
                    "top5": m["test"]["top5"],
                    "balanced_accuracy": m["test"]["balanced_accuracy"],
                    "chance": m["chance"],
                    "ideal_accuracy": m.get("ideal_accuracy", np.nan),
                    "ratio_to_ideal": m.get("ratio_to_ideal", np.nan),
                    "poisson_plugin_accuracy": m.get("poisson_plugin_accuracy", np.nan),
                    "n_units": m["n_units"],
                    "n_test": m["test"]["n"],
                }
            )
    columns = [
        "session_id",
        "model",
        "accuracy",
        "top5",
        "balanced_accuracy",
        "chance",
        "ideal_accuracy",
        "ratio_to_ideal",
        "poisson_plugin_accuracy",
        "n_units",
        "n_test",
    ]
    return pd.DataFrame(rows, columns=columns)


def plot_accuracy(summary: pd.DataFrame, path: Path) -> None:
    """Grouped bars: test accuracy per session per model, chance and ideal observer marked."""
    sessions = sorted(summary["session_id"].unique())
    models = list(dict.fromkeys(summary["model"]))
    fig, ax = plt.subplots(
        figsize=(max(4.0, 1.2 * len(sessions) * max(1, len(models)) ** 0.5 + 2), 4)
    )
    width = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        part = summary[summary["model"] == model].set_index("session_id").reindex(sessions)
        ax.bar(
            np.arange(len(sessions)) + (j - (len(models) - 1) / 2) * width,
            part["accuracy"],
            width,
            label=model,
        )
    per_session = summary.groupby("session_id").first().reindex(sessions)
    for i, s in enumerate(sessions):
        ax.hlines(
            per_session.loc[s, "chance"],
            i - 0.45,
            i + 0.45,
            colors="k",
            linestyles=":",
            label="chance" if i == 0 else None,
        )
        if np.isfinite(per_session.loc[s, "ideal_accuracy"]):
            ax.hlines(
                per_session.loc[s, "ideal_accuracy"],
                i - 0.45,
                i + 0.45,
                colors="crimson",
                linestyles="--",
                label="ideal observer" if i == 0 else None,
            )
    ax.set_xticks(np.arange(len(sessions)), [str(s) for s in sessions])
    ax.set_xlabel("session")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_ylim(0, 1)
    ax.set_title("Natural-scene decoding accuracy per session")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


if __name__ == "__main__":
    run_stage("report", main, per_session=False)
