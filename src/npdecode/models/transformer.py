"""Transformer→LSTM decoder (the lab's model): self-attention across time bins, an LSTM head.

Each bin's population vector (U units) is projected to `d_model`, a position code for the
bin is added (learned, or fixed sinusoidal), a pre-norm transformer encoder mixes the T
bins, and an LSTM reads the encoded sequence; its last hidden state feeds the classifier.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from npdecode.models.dropout import Dropout, replace_dropouts
from npdecode.models.lstm import lstm_fp32
from npdecode.params import TransformerParams


def sinusoidal(n: int, d: int) -> torch.Tensor:
    """(n, d) fixed sine/cosine position codes (Vaswani et al. 2017)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return out


class TransformerLSTM(nn.Module):
    """x (B, T, U) normalised counts -> logits (B, C)."""

    def __init__(self, p: TransformerParams, n_units: int, n_bins: int, n_classes: int) -> None:
        super().__init__()
        self.p = p  # architecture from params `train.transformer`
        self.dims = {"n_units": n_units, "n_bins": n_bins, "n_classes": n_classes}
        self.input_dropout = Dropout(p.input_dropout)
        self.proj = nn.Linear(n_units, p.d_model)
        if p.positions == "learned":
            self.pos = nn.Parameter(0.02 * torch.randn(n_bins, p.d_model))
        else:
            self.register_buffer("pos", sinusoidal(n_bins, p.d_model))
        layer = nn.TransformerEncoderLayer(
            p.d_model,
            p.heads,
            dim_feedforward=p.ff,
            dropout=p.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        replace_dropouts(self.encoder)  # its feed-forward and residual dropouts
        self.norm = nn.LayerNorm(p.d_model)
        self.lstm = nn.LSTM(p.d_model, p.lstm_hidden, batch_first=True)
        self.dropout = Dropout(p.dropout)
        self.head = nn.Linear(p.lstm_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.input_dropout(x)) + self.pos  # (B, T, U) -> (B, T, D)
        h = self.norm(self.encoder(h))  # (B, T, D)
        return self.head(self.dropout(lstm_fp32(self.lstm, h)))  # (B, H) -> (B, C)
