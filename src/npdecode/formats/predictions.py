"""Per-presentation test predictions, the input of paired comparisons between decoders.

Two CSV files, both with `presentation_id, actual, predicted` (Allen frames; -1 = blank):
- `predictions/<model>/<id>.csv`: one trained model's test split (the train and
  multisession stages; `dvc plots` draws confusion matrices from it);
- `predictions/fewshot/<model>/<id>.csv`: every few-shot draw's test split, with the draw's
  `k, repeat, seed` in front (the few-shot stage; transfer from the multisession stage).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.files import write_csv

COLUMNS = ("presentation_id", "actual", "predicted")
DRAW_COLUMNS = ("k", "repeat", "seed")


def fewshot_predictions_table(
    predicted: dict[int, np.ndarray],
    seeds: dict[int, list[int]],
    presentation_id: np.ndarray,
    actual: np.ndarray,
    frames: np.ndarray,
) -> pd.DataFrame:
    """One row per draw x test presentation.

    Args:
        predicted: {k: (repeats, P) predicted class index}.
        seeds: {k: each repeat's draw seed}.
        presentation_id, actual: (P,) the test split's ids and class indices.
        frames: (C,) the frame of each class index.
    """
    parts = []
    for k, pred in predicted.items():
        for r, row in enumerate(pred):
            parts.append(
                pd.DataFrame(
                    {
                        "k": k,
                        "repeat": r,
                        "seed": np.uint64(seeds[k][r]),
                        "presentation_id": presentation_id,
                        "actual": frames[actual],
                        "predicted": frames[row],
                    }
                )
            )
    columns = [*DRAW_COLUMNS, *COLUMNS]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def write_predictions(table: pd.DataFrame, path: str | Path) -> None:
    """Write a predictions table (either kind), atomically."""
    write_csv(table, path)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read either kind of predictions CSV, checking its columns."""
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: predictions file lacks columns {missing} (rerun its stage)")
    return table


def correct_matrix(table: pd.DataFrame, presentation_ids: np.ndarray) -> np.ndarray:
    """(R, P) boolean: was each draw (rows by k, repeat) right on each of `presentation_ids`?

    A single model's file gives one row. Raises DataError when a draw lacks one of the ids.
    """
    keys = [c for c in DRAW_COLUMNS[:2] if c in table.columns]
    groups = table.groupby(keys, sort=True) if keys else [((), table)]
    rows = []
    for _, part in groups:
        part = part.set_index("presentation_id")
        if not np.isin(presentation_ids, part.index).all():
            raise DataError("predictions do not cover the same test presentations")
        part = part.loc[presentation_ids]
        rows.append((part["actual"] == part["predicted"]).to_numpy())
    return np.stack(rows)
