"""LSTM decoder: units are the features of each time bin, the LSTM runs over the T bins.

Unit dropout on the input (whole units silenced at random) regularises the first layer,
which holds most of the weights (U × hidden); the last hidden state feeds the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from npdecode.models.dropout import Dropout
from npdecode.params import LSTMParams


def lstm_fp32(lstm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run `lstm` on (B, T, D) in float32 with autocast off; return the last hidden state (B, H).

    cuDNN before 9.13 has no bfloat16 RNN (torch 2.4.1+cu121 ships cuDNN 9.1), so under
    bf16 AMP the recurrent part stays in full precision; it is a small share of the compute.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        _, (h, _) = lstm(x.float())
    return h[-1]  # (layers, B, H) -> (B, H)


class LoopLSTM(nn.Module):
    """nn.LSTM (batch_first, unidirectional, no projection) written as a loop over time bins.

    The same parameters under the same names, so it loads an nn.LSTM's state dict and
    computes the same function; unlike nn.LSTM it runs under `torch.func.vmap`, which
    trains several independent models as one batch (`npdecode.decode.batched`). Returns
    (outputs (B, T, H), (h (layers, B, H), c (layers, B, H))) like nn.LSTM.
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        if not lstm.batch_first or lstm.bidirectional or lstm.proj_size or not lstm.bias:
            raise ValueError("LoopLSTM covers batch_first, unidirectional LSTMs with biases only")
        self.hidden_size, self.num_layers, self.dropout = (
            lstm.hidden_size,
            lstm.num_layers,
            lstm.dropout,
        )
        for name, p in lstm.named_parameters():
            self.register_parameter(name, nn.Parameter(p.detach().clone(), p.requires_grad))
        self.train(lstm.training)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        hs, cs, seq = [], [], x
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            bias = getattr(self, f"bias_ih_l{layer}") + getattr(self, f"bias_hh_l{layer}")
            if layer > 0:  # nn.LSTM's dropout sits between layers
                seq = nn.functional.dropout(seq, self.dropout, self.training)
            gates_in = seq @ w_ih.T + bias  # (B, T, D) -> (B, T, 4H): every bin at once
            h = c = seq.new_zeros(seq.shape[0], self.hidden_size)  # (B, H)
            out = []
            for t in range(seq.shape[1]):
                gates = gates_in[:, t] + h @ w_hh.T  # (B, 4H), in nn.LSTM's order i, f, g, o
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out.append(h)
            seq = torch.stack(out, dim=1)  # (B, T, H)
            hs.append(h)
            cs.append(c)
        return seq, (torch.stack(hs), torch.stack(cs))


class LSTMDecoder(nn.Module):
    """x (B, T, U) normalised counts -> logits (B, C)."""

    def __init__(self, p: LSTMParams, n_units: int, n_bins: int, n_classes: int) -> None:
        super().__init__()
        self.p = p  # architecture from params `train.lstm` (its fit settings go to the loop)
        self.dims = {"n_units": n_units, "n_bins": n_bins, "n_classes": n_classes}
        self.input_dropout = Dropout(p.input_dropout)
        self.proj = nn.Linear(n_units, p.hidden)
        self.lstm = nn.LSTM(
            p.hidden,
            p.hidden,
            num_layers=p.layers,
            batch_first=True,
            dropout=p.dropout if p.layers > 1 else 0.0,
        )
        self.dropout = Dropout(p.dropout)
        self.head = nn.Linear(p.hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.input_dropout(x))  # (B, T, U) -> (B, T, H)
        return self.head(self.dropout(lstm_fp32(self.lstm, h)))  # (B, H) -> (B, C)
