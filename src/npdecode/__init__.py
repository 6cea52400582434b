"""Decode natural scenes from Allen Brain Observatory Neuropixels spikes.

`npdecode.load_split`, `npdecode.load_model` and `npdecode.load_results` (`npdecode/api.py`)
are the notebook API. They are imported on first use, so that the pipeline's stages, which
import this package, neither load nor depend on them.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
_API = ("Model", "ReachModel", "load_model", "load_results", "load_split")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
