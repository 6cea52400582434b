"""Decoders: every model maps normalised counts x (B, T, U) to logits (B, C).

`build_model` rebuilds any of them from the plain config saved in its checkpoint.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from npdecode.models.logreg import LogReg, LogRegConfig
from npdecode.models.lstm import LSTMConfig, LSTMDecoder
from npdecode.models.multisession import MultiSessionConfig, MultiSessionDecoder
from npdecode.models.stgat import STGAT, STGATConfig
from npdecode.models.transformer import TransformerConfig, TransformerLSTM

CONFIGS: dict[str, tuple[type, type]] = {
    "logreg": (LogRegConfig, LogReg),
    "lstm": (LSTMConfig, LSTMDecoder),
    "transformer": (TransformerConfig, TransformerLSTM),
    "stgat": (STGATConfig, STGAT),
    "multisession": (MultiSessionConfig, MultiSessionDecoder),
}


def build_model(name: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate model `name` from its saved config dict."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(CONFIGS)}")
    cfg_cls, model_cls = CONFIGS[name]
    return model_cls(cfg_cls(**config))
