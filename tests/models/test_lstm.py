"""LSTM specifics: the recurrent part stays in float32 under autocast."""

from __future__ import annotations

import torch

from npdecode.models.lstm import lstm_fp32

from .conftest import make_model


def test_lstm_runs_in_float32_under_autocast() -> None:
    lstm = torch.nn.LSTM(4, 6, batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lstm_fp32(lstm, torch.randn(2, 5, 4).bfloat16())
    assert h.dtype == torch.float32
    assert h.shape == (2, 6)


def test_stacked_layers_use_the_top_layer_state() -> None:
    model = make_model("lstm", layers=2).eval()
    assert model.lstm.num_layers == 2
    x = torch.randn(2, 5, 7)
    _, (h, _) = model.lstm(model.proj(x))
    torch.testing.assert_close(model(x), model.head(h[1]))
