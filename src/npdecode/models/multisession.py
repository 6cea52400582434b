"""One decoder for many sessions (many mice): per-session read-ins into a shared core.

Each session records different units, so nothing about a unit carries over. What can carry
over is how images are represented once the units are mapped into a common space: a
per-session linear read-in maps that session's U_s units to `latent` shared features in
every time bin, and one shared temporal core (the LSTM or Transformer→LSTM decoder) and
classifier read those. Training on many sessions pools their trials for the core; a new
session (a new mouse) then needs only its read-in fitted (`freeze_core`).

A batch holds one session: `model(x, s)` with x (B, T, U_s) that session's normalised
counts and s its index in `session_ids`. Nothing is padded to the widest session, and
each read-in is its own `nn.Linear(U_s, latent)`, so a step touches (and the optimiser
updates) only the read-in of the session in the batch.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import torch
from torch import nn

from npdecode.errors import DataError
from npdecode.models.dropout import Dropout
from npdecode.models.lstm import LSTMDecoder
from npdecode.models.transformer import TransformerLSTM
from npdecode.params import (
    LSTMParams,
    MultisessionParams,
    SessionId,
    TransformerParams,
    session_id_of,
)

CORES: dict[str, type[nn.Module]] = {"lstm": LSTMDecoder, "transformer": TransformerLSTM}
ADAPT_COMMAND = "python -m npdecode.decode.adapt"


class MultiSessionDecoder(nn.Module):
    """(x (B, T, U_s) normalised counts of session index s, s) -> logits (B, C)."""

    templates: torch.Tensor  # buffer (C, T, D)

    def __init__(
        self,
        p: MultisessionParams,
        core: LSTMParams | TransformerParams,
        session_ids: tuple[SessionId, ...],
        n_units: tuple[int, ...],
        n_bins: int,
        n_classes: int,
    ) -> None:
        super().__init__()
        if len(session_ids) != len(n_units) or not session_ids:
            raise ValueError("session_ids and n_units must be non-empty and of equal length")
        if len(set(session_ids)) != len(session_ids):
            raise ValueError(f"session_ids lists a session twice: {list(session_ids)}")
        self.p, self.core_p = p, core  # params `multisession` and `train.<core>`
        self.session_ids = tuple(session_id_of(s) for s in session_ids)
        self.n_units = tuple(int(u) for u in n_units)
        self.n_bins, self.n_classes = n_bins, n_classes
        self.dims = {
            "session_ids": list(self.session_ids),
            "n_units": list(self.n_units),
            "n_bins": n_bins,
            "n_classes": n_classes,
        }
        self.readins = nn.ModuleList(nn.Linear(n, p.latent) for n in self.n_units)
        self.input_dropout = Dropout(p.input_dropout)
        # the core's architecture is train.<core>'s; dropout acts on units, above
        core_p = dataclasses.replace(core, input_dropout=0.0)
        self.core = CORES[p.core](core_p, n_units=p.latent, n_bins=n_bins, n_classes=n_classes)
        # (C, T, D) the mean latent of each class in each bin over the training sessions
        # (`multisession.latent_templates`): what a new session's read-in is first fitted to
        self.register_buffer("templates", torch.zeros(n_classes, n_bins, p.latent))

    def forward(self, x: torch.Tensor, session: int) -> torch.Tensor:
        return self.core(self.latent(x, session))  # (B, T, U_s) -> (B, T, D) -> (B, C)

    def index(self, session_id: SessionId) -> int:
        """The read-in index of `session_id`; a clear error if the model has none for it."""
        if session_id_of(session_id) not in self.session_ids:
            raise DataError(
                f"the shared decoder has no read-in for session {session_id} (it has "
                f"{list(self.session_ids)}): fit one with `{ADAPT_COMMAND}`"
            )
        return self.session_ids.index(session_id_of(session_id))

    def freeze_core(self) -> None:
        """Train only the read-ins from now on (transfer to a new session or mouse)."""
        for p in self.core.parameters():
            p.requires_grad_(False)

    def core_state(self) -> dict[str, torch.Tensor]:
        return self.core.state_dict()

    def readin(self, session: int) -> nn.Linear:
        """The read-in of session index `session`."""
        return cast(nn.Linear, self.readins[session])

    def latent(self, x: torch.Tensor, session: int) -> torch.Tensor:
        """The read-in's output (B, T, D) for x (B, T, U_s), as the core sees it."""
        return self.readins[session](self.input_dropout(x))
