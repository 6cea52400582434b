"""The report's tables: one row per session × model (× k), read from the metrics JSONs,
and paired comparisons of decoders that share a test set, read from their predictions.

Every row is per *session* (one mouse can have several sessions), with the mouse
(specimen) id as a column. Every accuracy comes with its 95 % interval (`_lo`, `_hi`).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from npdecode.evaluation import paired_difference, paired_draws, verdict
from npdecode.formats.files import read_json
from npdecode.formats.predictions import correct_matrix, read_predictions
from npdecode.params import SessionId
from npdecode.paths import Layout

MODEL_ORDER = ("logreg", "lstm", "transformer", "stgat", "multisession")
NOT_MODELS = ("reference", "fewshot", "neurometric")


def model_names(layout: Layout) -> list[str]:
    """Models with a metrics folder, in a fixed display order."""
    found = [
        p.name
        for p in (layout.root / "metrics").iterdir()
        if p.is_dir() and p.name not in NOT_MODELS
    ]
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(found, key=lambda m: (order.get(m, len(order)), m))


def summary_table(layout: Layout, sessions: tuple[SessionId, ...]) -> pd.DataFrame:
    """One row per session × model with test-split metrics (fractions)."""
    rows = []
    for model in model_names(layout):
        for sid in sessions:
            path = layout.metrics(model, sid)
            if not path.exists():
                continue
            m = read_json(path)
            test = m["test"]
            rows.append(
                {
                    "session_id": sid,
                    "specimen_id": m.get("specimen_id"),
                    "model": model,
                    **{
                        f"{name}{end}": test.get(f"{name}{end}", np.nan)
                        for name in ("accuracy", "top5", "balanced_accuracy")
                        for end in ("", "_lo", "_hi")
                    },
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
        "accuracy_lo",
        "accuracy_hi",
        "top5",
        "top5_lo",
        "top5_hi",
        "balanced_accuracy",
        "balanced_accuracy_lo",
        "balanced_accuracy_hi",
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


def fewshot_models(layout: Layout) -> list[str]:
    """Few-shot learners with a results folder (models and `transfer`), in display order."""
    root = layout.root / "metrics" / "fewshot"
    models = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    order = {m: i for i, m in enumerate((*MODEL_ORDER, "transfer"))}
    return sorted(models, key=lambda m: (order.get(m, len(order)), m))


def fewshot_table(layout: Layout, sessions: tuple[SessionId, ...]) -> pd.DataFrame:
    """One row per session × model × k: mean and sd of test accuracy over the draws, and
    the 95 % interval of the mean; `protocol` says what the learners saw."""
    rows = []
    for model in fewshot_models(layout):
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
                        "protocol": m.get("protocol", "transductive"),  # older files: the old way
                        "accuracy_mean": r["mean"],
                        "accuracy_sd": r["sd"],
                        # absent (older files) or null (a single draw): no interval
                        "accuracy_mean_lo": _number(r.get("mean_lo")),
                        "accuracy_mean_hi": _number(r.get("mean_hi")),
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
        "protocol",
        "accuracy_mean",
        "accuracy_sd",
        "accuracy_mean_lo",
        "accuracy_mean_hi",
        "top5_mean",
        "balanced_accuracy_mean",
        "n_repeats",
        "chance",
    ]
    return pd.DataFrame(rows, columns=columns)


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def multisession_table(
    layout: Layout, summary: pd.DataFrame, fewshot: pd.DataFrame, core: str
) -> pd.DataFrame:
    """Per session, on its own test split: the single-session core model (full training
    split), the shared decoder, and per k the core model trained from scratch on k
    presentations per image vs a new read-in on a frozen core trained on other mice
    (transfer), on the same draws; accuracies with their 95 % interval (`_lo`, `_hi`: of
    the test accuracy, or of the mean over draws).

    `shared_with` counts the other sessions that decoder was trained on (0: nothing was
    shared); `transfer_skipped` says why a session has no transfer results.
    """
    if "multisession" not in set(summary["model"]):
        return pd.DataFrame()
    acc = {
        end: summary.pivot(index="session_id", columns="model", values=f"accuracy{end}")
        for end in ("", "_lo", "_hi")
    }
    keep = acc[""]["multisession"].notna()
    acc = {end: a[keep] for end, a in acc.items()}
    sids = [int(s) for s in acc[""].index]
    shared = {s: read_json(layout.metrics("multisession", s)) for s in sids}
    transfer_path = {s: layout.fewshot("transfer", s) for s in sids}
    transfer = {s: read_json(p) for s, p in transfer_path.items() if p.exists()}
    out = pd.DataFrame(
        {
            "session_id": sids,
            "specimen_id": [shared[s].get("specimen_id") for s in sids],
            "group": [shared[s].get("group") for s in sids],
            "shared_with": [len(shared[s].get("group_sessions", [s])) - 1 for s in sids],
            **{
                f"{name}{end}": (a[model].to_numpy() if model in a else np.nan)
                for model, name in ((core, "single_session"), ("multisession", "shared"))
                for end, a in acc.items()
            },
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
            rows = rows.set_index("session_id")
            for end in ("", "_lo", "_hi"):
                out[f"{name}_k{k}{end}"] = out["session_id"].map(rows[f"accuracy_mean{end}"])
    if len(fewshot):
        out["protocol"] = out["session_id"].map(
            fewshot[fewshot["model"].isin([core, "transfer"])]
            .groupby("session_id")["protocol"]
            .first()
        )
    return out.reset_index(drop=True)


COMPARISON_COLUMNS = [
    "session_id",
    "specimen_id",
    "kind",
    "k",
    "protocol",
    "model_a",
    "model_b",
    "n_test",
    "n_draws",
    "accuracy_a",
    "accuracy_b",
    "difference",
    "difference_lo",
    "difference_hi",
    "p_value",
    "verdict",
    "method",
]


def comparisons_table(
    layout: Layout, sessions: tuple[SessionId, ...], summary: pd.DataFrame
) -> pd.DataFrame:
    """Paired comparisons of every two decoders that share a test set, per session.

    kind `model`: two trained models on the test split (exact McNemar, Bonett-Price interval
    of acc_A - acc_B). kind `fewshot`: two few-shot learners at one k under one protocol, on
    the same draws (same seeds, so the same shots) and test split (paired bootstrap over
    draws and presentations). `verdict` says which is better at 95 %, if either.
    """
    rows: list[dict] = []
    for sid in sessions:
        part = summary[summary["session_id"] == sid]
        specimen = part["specimen_id"].iloc[0] if len(part) else None
        singles = {
            m: read_predictions(layout.predictions(m, sid))
            for m in part["model"]
            if layout.predictions(m, sid).exists()
        }
        for a, b in combinations(singles, 2):
            ids = np.intersect1d(singles[a]["presentation_id"], singles[b]["presentation_id"])
            ca, cb = correct_matrix(singles[a], ids)[0], correct_matrix(singles[b], ids)[0]
            rows.append(
                _row(
                    sid, specimen, "model", None, None, a, b, len(ids), 1, paired_difference(ca, cb)
                )
            )
        rows += _fewshot_comparisons(layout, sid, specimen)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _fewshot_comparisons(layout: Layout, sid: SessionId, specimen: object) -> list[dict]:
    learners = {}
    for model in fewshot_models(layout):
        path, preds = layout.fewshot(model, sid), layout.fewshot_predictions(model, sid)
        if path.exists() and preds.exists():
            learners[model] = (read_json(path), read_predictions(preds))
    rows = []
    for a, b in combinations(learners, 2):
        (ja, pa), (jb, pb) = learners[a], learners[b]
        if ja.get("protocol") != jb.get("protocol"):
            continue  # learners that saw different data are not a paired comparison
        specimen = specimen if specimen is not None else ja.get("specimen_id")
        for k in sorted(set(pa["k"]) & set(pb["k"])):
            da, db = pa[pa["k"] == k], pb[pb["k"] == k]
            if list(da.groupby("repeat", sort=True)["seed"].first()) != list(
                db.groupby("repeat", sort=True)["seed"].first()
            ):
                continue  # other draws: not paired
            ids = np.intersect1d(da["presentation_id"], db["presentation_id"])
            ca, cb = correct_matrix(da, ids), correct_matrix(db, ids)
            rows.append(
                _row(
                    sid,
                    specimen,
                    "fewshot",
                    int(k),
                    ja.get("protocol"),
                    a,
                    b,
                    len(ids),
                    len(ca),
                    paired_draws(ca, cb),
                )
            )
    return rows


def _row(sid, specimen, kind, k, protocol, a, b, n, n_draws, result) -> dict:
    return {
        "session_id": sid,
        "specimen_id": specimen,
        "kind": kind,
        "k": k,
        "protocol": protocol,
        "model_a": a,
        "model_b": b,
        "n_test": n,
        "n_draws": n_draws,
        **result,
        "verdict": verdict(result["difference_lo"], result["difference_hi"], a, b),
    }
