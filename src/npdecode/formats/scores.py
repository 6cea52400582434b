"""`scores/<name>.json`: the few numbers DVC shows as metrics, one small file per stage run.

`dvc exp show`, `dvc metrics show` and `dvc metrics diff` list only these: per model and
session the test accuracy (and any interval of it), top-5 and balanced accuracy; the
few-shot means per k; the reference decoders. Keys nest as `<what>.<session>.<metric>`
(e.g. `lstm.1.test_accuracy`), unique across files, so DVC names each column by its key
alone. Everything else (train/val figures, every few-shot draw) stays in the detailed
`metrics/` JSONs, which stages and the report read; run costs are in `costs/`.
No stage reads a scores file, so it carries no content hash.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

from npdecode.formats.files import read_json, write_json


def write_scores(path: str | Path, scores: dict[str, dict[int, dict[str, Any]]]) -> None:
    """Write `{what: {session: {metric: value}}}` (see the module docstring)."""
    data = {what: {str(s): v for s, v in per.items()} for what, per in scores.items()}
    write_json(path, data, checksum=False)


def read_scores(path: str | Path) -> dict:
    return read_json(path, checksum=False)


def model_scores(metrics: dict) -> dict[str, Any]:
    """A model's test figures from its metrics JSON: every number of `test` but `n`,
    intervals ([low, high]) as `_low` / `_high`, each prefixed `test_`."""
    out: dict[str, Any] = {}
    for key, value in metrics["test"].items():
        if key == "n":
            continue
        if isinstance(value, Real) and not isinstance(value, bool):
            out[f"test_{key}"] = value
        elif isinstance(value, list | tuple) and len(value) == 2:
            out[f"test_{key}_low"], out[f"test_{key}_high"] = value
    return out


def fewshot_scores(result: dict) -> dict[str, Any]:
    """Mean test accuracy per k of a few-shot curve (`k1`, `k3`, ...)."""
    return {f"k{k}": r["mean"] for k, r in result.get("shots", {}).items()}


def reference_scores(result: dict) -> dict[str, Any]:
    """Chance, the plug-in Poisson decoder and (synthetic) the ideal observer."""
    out = {"chance": result["chance"], "poisson_plugin": result["poisson_plugin"]["accuracy"]}
    if result.get("ideal"):
        out["ideal"] = result["ideal"]["accuracy"]
    return out
