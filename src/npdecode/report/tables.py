"""The report's tables: one row per session × model (× k), read from the metrics JSONs.

Every row is per *session* (one mouse can have several sessions), with the mouse
(specimen) id as a column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from npdecode.formats.files import read_json
from npdecode.paths import Layout

MODEL_ORDER = ("logreg", "lstm", "transformer", "stgat", "multisession")
NOT_MODELS = ("reference", "fewshot")


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
                    "specimen_id": m.get("specimen_id"),
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
        "specimen_id",
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


def best_models(summary: pd.DataFrame) -> dict[int, str]:
    """The model with the highest test accuracy, per session."""
    if summary.empty:
        return {}
    best = summary.loc[summary.groupby("session_id")["accuracy"].idxmax()]
    return dict(zip(best["session_id"], best["model"], strict=True))


def fewshot_table(layout: Layout, sessions: tuple[int, ...]) -> pd.DataFrame:
    """One row per session × model × k: mean and sd of test accuracy over the draws."""
    rows = []
    root = layout.root / "metrics" / "fewshot"
    models = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    for model in sorted(models, key=lambda m: (order.get(m, len(order)), m)):
        for sid in sessions:
            path = layout.fewshot(model, sid)
            if not path.exists():
                continue
            m = read_json(path)
            for k, r in m["shots"].items():
                rows.append(
                    {
                        "session_id": sid,
                        "specimen_id": m.get("specimen_id"),
                        "model": model,
                        "k": int(k),
                        "accuracy_mean": r["mean"],
                        "accuracy_sd": r["sd"],
                        "top5_mean": r["top5_mean"],
                        "balanced_accuracy_mean": r["balanced_accuracy_mean"],
                        "n_repeats": len(r["repeats"]),
                        "chance": m["chance"],
                    }
                )
    columns = [
        "session_id",
        "specimen_id",
        "model",
        "k",
        "accuracy_mean",
        "accuracy_sd",
        "top5_mean",
        "balanced_accuracy_mean",
        "n_repeats",
        "chance",
    ]
    return pd.DataFrame(rows, columns=columns)


def multisession_table(
    layout: Layout, summary: pd.DataFrame, fewshot: pd.DataFrame, core: str
) -> pd.DataFrame:
    """Per session, on its own test split: the single-session core model (full training
    split), the shared decoder, and per k the core model trained from scratch on k
    presentations per image vs a new read-in on a frozen core trained on other mice
    (transfer), on the same draws.

    `shared_with` counts the other sessions that decoder was trained on (0: nothing was
    shared); `transfer_skipped` says why a session has no transfer results.
    """
    if "multisession" not in set(summary["model"]):
        return pd.DataFrame()
    acc = summary.pivot(index="session_id", columns="model", values="accuracy")
    acc = acc[acc["multisession"].notna()]
    sids = [int(s) for s in acc.index]
    shared = {s: read_json(layout.metrics("multisession", s)) for s in sids}
    transfer_path = {s: layout.fewshot("transfer", s) for s in sids}
    transfer = {s: read_json(p) for s, p in transfer_path.items() if p.exists()}
    out = pd.DataFrame(
        {
            "session_id": sids,
            "specimen_id": [shared[s].get("specimen_id") for s in sids],
            "group": [shared[s].get("group") for s in sids],
            "shared_with": [len(shared[s].get("group_sessions", [s])) - 1 for s in sids],
            "single_session": acc[core].to_numpy() if core in acc else np.nan,
            "shared": acc["multisession"].to_numpy(),
            "transfer_fold": [transfer.get(s, {}).get("fold") for s in sids],
            "transfer_skipped": [
                transfer[s].get("skipped", "") if s in transfer else "no transfer results"
                for s in sids
            ],
        }
    )
    for source, name in ((core, "scratch"), ("transfer", "transfer")):
        part = fewshot[fewshot["model"] == source]
        for k, rows in part.groupby("k"):
            out[f"{name}_k{k}"] = out["session_id"].map(
                rows.set_index("session_id")["accuracy_mean"]
            )
    return out.reset_index(drop=True)
