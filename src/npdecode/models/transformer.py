"""Transformer→LSTM decoder (the lab's model): self-attention across time bins, an LSTM head.

Each bin's population vector (U units) is projected to `d_model`, a position code for the
bin is added (learned, or fixed sinusoidal), a pre-norm transformer encoder mixes the T
bins, and an LSTM reads the encoded sequence; its last hidden state feeds the classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from npdecode.models.lstm import lstm_fp32


@dataclass(frozen=True)
class TransformerConfig:
    n_units: int
    n_bins: int
    n_classes: int
    d_model: int = 128  # token width
    heads: int = 4  # attention heads (must divide d_model)
    layers: int = 1  # encoder layers
    ff: int = 256  # feed-forward width of each encoder layer
    lstm_hidden: int = 128  # LSTM head width
    positions: str = "learned"  # learned | sinusoidal
    input_dropout: float = 0.4  # dropout on the normalised counts (B, T, U)
    dropout: float = 0.2  # inside the encoder and before the classifier

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {self.positions!r}")


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

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        self.proj = nn.Linear(cfg.n_units, cfg.d_model)
        if cfg.positions == "learned":
            self.pos = nn.Parameter(0.02 * torch.randn(cfg.n_bins, cfg.d_model))
        else:
            self.register_buffer("pos", sinusoidal(cfg.n_bins, cfg.d_model))
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.heads,
            dim_feedforward=cfg.ff,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.lstm = nn.LSTM(cfg.d_model, cfg.lstm_hidden, batch_first=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.lstm_hidden, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.input_dropout(x)) + self.pos  # (B, T, U) -> (B, T, D)
        h = self.norm(self.encoder(h))  # (B, T, D)
        return self.head(self.dropout(lstm_fp32(self.lstm, h)))  # (B, H) -> (B, C)
