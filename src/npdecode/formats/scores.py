r"""`scores/<name>.json`: the few numbers DVC shows as metrics, one small file per stage run.

`dvc exp show`, `dvc metrics show` and `dvc metrics diff` list only these: per model and
session the test accuracy, top-5 and balanced accuracy; the few-shot means per k; the
reference decoders. Keys nest as `<metric>.<model>.<session>` (e.g. `acc.lstm.1`), unique
across files, so DVC names each column by its key alone, and DVC's sorted columns start
with every model's test accuracy (`acc.*`). The 95 % intervals sit apart, under
`interval.<metric>_lo|_hi.<model>.<session>` (e.g. `interval.acc_lo.lstm.1`): the README's
`dvc exp show` recipe drops them with one pattern (`^interval\.`), so its first screen
holds the changed params and every model's accuracy; `--csv` still has them. Everything else
(train/val figures, every few-shot draw) stays in the detailed `metrics/` JSONs, which
stages and the report read; run costs are in `costs/`. No stage reads a scores file, so
it carries no content hash.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

from npdecode.formats.files import read_json, write_json
from npdecode.params import SessionId

# short column names for the test figures of a metrics JSON (others keep theirs)
SHORT = {"accuracy": "acc", "balanced_accuracy": "bal_acc"}


def write_scores(path: str | Path, *trees: dict[str, Any]) -> None:
    """Write the scores trees (from the functions below), merged, to `path`."""
    merged: dict[str, Any] = {}
    for tree in trees:
        _merge(merged, tree)
    write_json(path, merged, checksum=False)


def read_scores(path: str | Path) -> dict:
    return read_json(path, checksum=False)


def _merge(into: dict, tree: dict) -> None:
    for key, value in tree.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _short(key: str) -> str:
    for long, short in SHORT.items():
        if key == long or key.startswith(long + "_"):
            return short + key[len(long) :]
    return key


def model_scores(model: str, session_id: SessionId, metrics: dict) -> dict[str, Any]:
    """A model's test figures: `{metric: {model: {session: value}}}` for every number of
    the metrics JSON's `test` but `n`; the bounds of an interval (`<metric>_lo`/`_hi`, or a
    [low, high] pair) as `{"interval": {"<metric>_lo": ..., "<metric>_hi": ...}}`."""
    out: dict[str, Any] = {}
    bounds: dict[str, Any] = {}
    for key, value in metrics["test"].items():
        if key == "n" or isinstance(value, bool):
            continue
        if isinstance(value, Real):
            bound = key.endswith(("_lo", "_hi"))
            (bounds if bound else out)[_short(key)] = value
        elif isinstance(value, list | tuple) and len(value) == 2:
            bounds[f"{_short(key)}_lo"], bounds[f"{_short(key)}_hi"] = value
    sid = str(session_id)
    tree: dict[str, Any] = {name: {model: {sid: v}} for name, v in out.items()}
    if bounds:
        tree["interval"] = {name: {model: {sid: v}} for name, v in bounds.items()}
    return tree


def fewshot_scores(model: str, session_id: SessionId, result: dict) -> dict[str, Any]:
    """Mean test accuracy per k of a few-shot curve: `fewshot.<model>.<session>.k<k>`."""
    means = {f"k{k}": r["mean"] for k, r in result.get("shots", {}).items()}
    return {"fewshot": {model: {str(session_id): means}}} if means else {}


def reference_scores(session_id: SessionId, result: dict) -> dict[str, Any]:
    """Chance, the plug-in Poisson decoder and (synthetic) the ideal observer."""
    out = {"chance": result["chance"], "poisson_plugin": result["poisson_plugin"]["accuracy"]}
    if result.get("ideal"):
        out["ideal"] = result["ideal"]["accuracy"]
    return {"reference": {str(session_id): out}}


def neurometric_scores(session_id: SessionId, result: dict) -> dict[str, Any]:
    """Test accuracy from all of each area's units: `neurometric.<area>.<session>`."""
    acc = {area: {str(session_id): r["accuracy"]} for area, r in result["areas"].items()}
    return {"neurometric": acc} if acc else {}


def reach_scores(session_id: str, decoders: dict[str, dict]) -> dict[str, Any]:
    """Test R² of reaching decoders: `r2.<decoder>.<session>`, its interval under
    `interval.r2_lo|_hi.<decoder>.<session>` (as Allen's `acc.<model>.<session>`)."""
    tree: dict[str, Any] = {"r2": {}, "interval": {"r2_lo": {}, "r2_hi": {}}}
    for name, m in decoders.items():
        tree["r2"][name] = {session_id: m["r2"]}
        tree["interval"]["r2_lo"][name] = {session_id: m["r2_lo"]}
        tree["interval"]["r2_hi"][name] = {session_id: m["r2_hi"]}
    return tree


def reach_fewshot_scores(model: str, session_id: str, shots: dict[str, dict]) -> dict[str, Any]:
    """Mean test R² per k minutes: `fewshot_r2.<model>.<session>.min<k>`."""
    means = {f"min{k}": r["mean"] for k, r in shots.items()}
    return {"fewshot_r2": {model: {session_id: means}}} if means else {}
