"""The one model registry: every model maps normalised counts x (B, T, U) to outputs (B, C).

Each model is built from its architecture (the `.arch` of params `train.<model>`, declared
once in `npdecode.params`; the section's `.fit` goes to the training loop) and its
dimensions; `build_model` builds any of them from an architecture (or the plain dict a
checkpoint stores, `model_spec`). `SINGLE` are the models trained on
one session (`npdecode.decode.session`), `DEEP` those of them the training loop fits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn

from npdecode.models.logreg import LogReg
from npdecode.models.lstm import LSTMDecoder
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.models.stgat import STGAT
from npdecode.models.transformer import TransformerLSTM
from npdecode.params import (
    FitParams,
    LogregParams,
    LSTMParams,
    MultisessionParams,
    STGATParams,
    TransformerParams,
    section_from_dict,
)

# name -> (params section class, model class); multisession also has a core section
MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "logreg": (LogregParams, LogReg),
    "lstm": (LSTMParams, LSTMDecoder),
    "transformer": (TransformerParams, TransformerLSTM),
    "stgat": (STGATParams, STGAT),
    "multisession": (MultisessionParams, MultiSessionDecoder),
}
CORES = {"lstm": LSTMParams, "transformer": TransformerParams}
SINGLE = ("logreg", "lstm", "transformer", "stgat")
DEEP = {name: MODELS[name][1] for name in SINGLE if name != "logreg"}


def build_model(name: str, dims: Mapping[str, Any], params: Any) -> nn.Module:
    """Model `name` with dimensions `dims` and its params section, as the section itself
    or as a plain dict.

    For `multisession`, `params` is {"multisession": ..., "core": ...} (see `model_spec`).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    params_cls, model_cls = MODELS[name]
    if isinstance(params, params_cls):
        return model_cls(params, **dims)
    if name == "multisession":
        stored = _arch(params["core"])
        p: Any = section_from_dict(params_cls, params["multisession"], "multisession")
        core: Any = section_from_dict(CORES[p.core], stored, f"train.{p.core}")
        return model_cls(p, core, **dims)
    stored = _arch(params)
    return model_cls(section_from_dict(params_cls, stored, f"train.{name}"), **dims)


def _arch(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored architecture without fit settings: checkpoints written before the two were
    split (npdecode.params.FitParams) kept the optimiser's keys beside the model's."""
    fit = {f.name for f in dataclasses.fields(FitParams)}
    return {k: v for k, v in stored.items() if k not in fit}


def model_spec(model: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """(dims, params) of a built model, as plain JSON-ready dicts for `build_model`."""
    from npdecode.params import as_dict

    dims = dict(model.dims)  # type: ignore[arg-type]  # every decoder has .dims
    if isinstance(model, MultiSessionDecoder):
        return dims, {"multisession": as_dict(model.p), "core": as_dict(model.core_p)}
    return dims, as_dict(model.p)
