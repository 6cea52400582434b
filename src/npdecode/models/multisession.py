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

import dataclasses

import numpy as np
import torch
from torch import nn

from npdecode.models.lstm import LSTMDecoder
from npdecode.models.transformer import TransformerLSTM
from npdecode.params import LSTMParams, MultisessionParams, TransformerParams

CORES: dict[str, type[nn.Module]] = {"lstm": LSTMDecoder, "transformer": TransformerLSTM}


class MultiSessionDecoder(nn.Module):
    """x (B, T, U_max + 1) packed as in the module docstring -> logits (B, C)."""

    unit_mask: torch.Tensor  # buffer (S, U_max): 1 where session s has a unit

    def __init__(
        self,
        p: MultisessionParams,
        core: LSTMParams | TransformerParams,
        session_ids: tuple[int, ...],
        n_units: tuple[int, ...],
        n_bins: int,
        n_classes: int,
    ) -> None:
        super().__init__()
        if len(session_ids) != len(n_units) or not session_ids:
            raise ValueError("session_ids and n_units must be non-empty and of equal length")
        self.p, self.core_p = p, core  # params `multisession` and `train.<core>`
        self.session_ids = tuple(int(s) for s in session_ids)
        self.n_units = tuple(int(u) for u in n_units)
        self.dims = {
            "session_ids": list(self.session_ids),
            "n_units": list(self.n_units),
            "n_bins": n_bins,
            "n_classes": n_classes,
        }
        n_sessions, u_max = len(self.session_ids), max(self.n_units)
        weight = torch.zeros(n_sessions, u_max, p.latent)
        for s, n in enumerate(self.n_units):  # each read-in initialised like nn.Linear(n, latent)
            nn.init.uniform_(weight[s, :n], -(n**-0.5), n**-0.5)
        self.readin_weight = nn.Parameter(weight)  # (S, U_max, D); rows past n_units[s] stay 0
        self.readin_bias = nn.Parameter(torch.zeros(n_sessions, p.latent))
        self.register_buffer("unit_mask", _unit_mask(self.n_units, u_max))  # (S, U_max)
        self.input_dropout = nn.Dropout(p.input_dropout)
        # the core's architecture is train.<core>'s; dropout acts on units, above
        core_p = dataclasses.replace(core, input_dropout=0.0)
        self.core = CORES[p.core](core_p, n_units=p.latent, n_bins=n_bins, n_classes=n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = x[:, 0, -1].long()  # (B,)
        counts = self.input_dropout(x[:, :, :-1])  # (B, T, U_max)
        weight = self.readin_weight * self.unit_mask[:, :, None]  # padding rows never learn
        # one matmul per session in the batch: the backward of a batched gather `weight[session]`
        # accumulates with atomics on CPU, which made training differ from run to run
        if len(self.session_ids) == 1:  # one read-in (transfer): no data-dependent loop, so
            # several such models train as one batch under torch.func.vmap (npdecode.ensemble)
            # (contiguous, like the gathered rows below: the same kernel, the same numbers)
            return self.core(counts.contiguous() @ weight[0] + self.readin_bias[0])
        h = counts.new_empty(*counts.shape[:2], self.p.latent)  # (B, T, D)
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
