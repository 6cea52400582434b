"""LSTM decoder: units are the features of each time bin, the LSTM runs over the T bins.

Unit dropout on the input (whole units silenced at random) regularises the first layer,
which holds most of the weights (U × hidden); the last hidden state feeds the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LSTMConfig:
    n_units: int
    n_bins: int
    n_classes: int
    hidden: int = 128  # input projection and LSTM width
    layers: int = 1  # stacked LSTM layers
    input_dropout: float = 0.4  # dropout on the normalised counts (B, T, U)
    dropout: float = 0.3  # dropout before the classifier (and between LSTM layers)


def lstm_fp32(lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """Run `lstm` on (B, T, D) in float32 with autocast off; return the last hidden state (B, H).

    cuDNN before 9.13 has no bfloat16 RNN (torch 2.4.1+cu121 ships cuDNN 9.1), so under
    bf16 AMP the recurrent part stays in full precision; it is a small share of the compute.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        _, (h, _) = lstm(x.float())
    return h[-1]  # (layers, B, H) -> (B, H)


class LSTMDecoder(nn.Module):
    """x (B, T, U) normalised counts -> logits (B, C)."""

    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        self.proj = nn.Linear(cfg.n_units, cfg.hidden)
        self.lstm = nn.LSTM(
            cfg.hidden,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.input_dropout(x))  # (B, T, U) -> (B, T, H)
        return self.head(self.dropout(lstm_fp32(self.lstm, h)))  # (B, H) -> (B, C)
