"""One decoder for several sessions: per-session read-ins into a shared latent population.

Each session records different units, so nothing about a unit carries over. What can carry
over is how images are represented once the units are mapped into a common space: a
per-session linear read-in maps that session's U_s units to `latent` shared features in
every time bin, and one shared temporal core (the LSTM or Transformer→LSTM decoder) and
classifier read those. Training on several sessions of a mouse pools their trials for
the core; a new session then needs only its read-in fitted (`freeze_core`), which is what
few-shot transfer does.

Inputs are packed so that the shared training loop works unchanged: a batch mixes
sessions, each sample's units are zero-padded to the widest session, and the session's
index rides along in one extra feature: x (B, T, U_max + 1), x[:, :, -1] = session index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from npdecode.models.lstm import LSTMConfig, LSTMDecoder
from npdecode.models.transformer import TransformerConfig, TransformerLSTM

CORES: dict[str, tuple[type, type]] = {
    "lstm": (LSTMConfig, LSTMDecoder),
    "transformer": (TransformerConfig, TransformerLSTM),
}


@dataclass(frozen=True)
class MultiSessionConfig:
    session_ids: tuple[int, ...]
    n_units: tuple[int, ...]  # units of each session, in the order of session_ids
    n_bins: int
    n_classes: int
    core: str = "lstm"  # lstm | transformer
    latent: int = 128  # shared features each read-in produces per time bin
    input_dropout: float = 0.4  # unit dropout on each session's normalised counts
    core_config: dict[str, Any] = field(default_factory=dict)  # the core's architecture

    def __post_init__(self) -> None:
        if len(self.session_ids) != len(self.n_units) or not self.session_ids:
            raise ValueError("session_ids and n_units must be non-empty and of equal length")
        if self.core not in CORES:
            raise ValueError(f"core must be one of {sorted(CORES)}, got {self.core!r}")
        # JSON round trips give lists: keep the config hashable and comparable
        object.__setattr__(self, "session_ids", tuple(int(s) for s in self.session_ids))
        object.__setattr__(self, "n_units", tuple(int(u) for u in self.n_units))


class MultiSessionDecoder(nn.Module):
    """x (B, T, U_max + 1) packed as in the module docstring -> logits (B, C)."""

    unit_mask: torch.Tensor  # buffer (S, U_max): 1 where session s has a unit

    def __init__(self, cfg: MultiSessionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_sessions, u_max = len(cfg.session_ids), max(cfg.n_units)
        weight = torch.zeros(n_sessions, u_max, cfg.latent)
        for s, n in enumerate(cfg.n_units):  # each read-in initialised like nn.Linear(n, latent)
            nn.init.uniform_(weight[s, :n], -(n**-0.5), n**-0.5)
        self.readin_weight = nn.Parameter(weight)  # (S, U_max, D); rows past n_units[s] stay 0
        self.readin_bias = nn.Parameter(torch.zeros(n_sessions, cfg.latent))
        self.register_buffer("unit_mask", _unit_mask(cfg.n_units, u_max))  # (S, U_max)
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        core_cls, core_model = CORES[cfg.core]
        core_cfg = {**cfg.core_config, "input_dropout": 0.0}  # dropout acts on units, above
        self.core = core_model(
            core_cls(n_units=cfg.latent, n_bins=cfg.n_bins, n_classes=cfg.n_classes, **core_cfg)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = x[:, 0, -1].long()  # (B,)
        counts = self.input_dropout(x[:, :, :-1])  # (B, T, U_max)
        weight = self.readin_weight * self.unit_mask[:, :, None]  # padding rows never learn
        # one matmul per session in the batch: the backward of a batched gather `weight[session]`
        # accumulates with atomics on CPU, which made training differ from run to run
        h = counts.new_empty(*counts.shape[:2], self.cfg.latent)  # (B, T, D)
        for s in torch.unique(session).tolist():
            rows = torch.nonzero(session == s).squeeze(1)
            h[rows] = counts[rows] @ weight[s] + self.readin_bias[s]  # (b, T, U_max) -> (b, T, D)
        return self.core(h)

    def freeze_core(self) -> None:
        """Train only the read-ins from now on (few-shot transfer to a new session)."""
        for p in self.core.parameters():
            p.requires_grad_(False)

    def core_state(self) -> dict[str, torch.Tensor]:
        return self.core.state_dict()


def _unit_mask(n_units: tuple[int, ...], u_max: int) -> torch.Tensor:
    return (torch.arange(u_max)[None, :] < torch.tensor(n_units)[:, None]).float()


def pack(x: np.ndarray, session_index: int, u_max: int) -> np.ndarray:
    """(P, T, U_s) normalised counts of one session -> (P, T, U_max + 1) packed float32."""
    n_pres, n_bins, n_units = x.shape
    out = np.zeros((n_pres, n_bins, u_max + 1), dtype=np.float32)
    out[:, :, :n_units] = x
    out[:, :, -1] = session_index
    return out
