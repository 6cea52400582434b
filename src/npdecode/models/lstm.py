"""LSTM decoder: units are the features of each time bin, the LSTM runs over the T bins.

Unit dropout on the input (whole units silenced at random) regularises the first layer,
which holds most of the weights (U × hidden); the last hidden state feeds the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from npdecode.params import LSTMParams


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

    def __init__(self, p: LSTMParams, n_units: int, n_bins: int, n_classes: int) -> None:
        super().__init__()
        self.p = p  # architecture from params `train.lstm` (its optimiser fields are unused here)
        self.dims = {"n_units": n_units, "n_bins": n_bins, "n_classes": n_classes}
        self.input_dropout = nn.Dropout(p.input_dropout)
        self.proj = nn.Linear(n_units, p.hidden)
        self.lstm = nn.LSTM(
            p.hidden,
            p.hidden,
            num_layers=p.layers,
            batch_first=True,
            dropout=p.dropout if p.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(p.dropout)
        self.head = nn.Linear(p.hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.input_dropout(x))  # (B, T, U) -> (B, T, H)
        return self.head(self.dropout(lstm_fp32(self.lstm, h)))  # (B, H) -> (B, C)
