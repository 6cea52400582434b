"""Transformer→LSTM specifics: position codes and settings checks."""

from __future__ import annotations

import pytest
import torch

from npdecode.errors import ParamsError
from npdecode.models import build_model
from npdecode.models.transformer import sinusoidal

from .conftest import make_model


def test_sinusoidal_positions_are_fixed_buffers() -> None:
    model = make_model("transformer", positions="sinusoidal")
    assert "pos" in dict(model.named_buffers())
    assert "pos" not in dict(model.named_parameters())
    torch.testing.assert_close(model.pos, sinusoidal(5, 16))


def test_sinusoidal_codes_differ_per_bin() -> None:
    codes = sinusoidal(10, 16)
    assert codes.shape == (10, 16)
    assert torch.cdist(codes, codes).fill_diagonal_(1.0).min() > 0.1


def test_bin_order_matters() -> None:
    # positions make the encoder order-aware: reversing the bins changes the logits
    model = make_model("transformer").eval()
    x = torch.randn(2, 5, 7)
    assert not torch.allclose(model(x), model(x.flip(1)))


def test_settings_reject_heads_not_dividing_width() -> None:
    dims = {"n_units": 7, "n_bins": 5, "n_classes": 3}
    with pytest.raises(ParamsError, match="divisible"):
        build_model("transformer", dims, {"d_model": 10, "heads": 4})
    with pytest.raises(ParamsError, match="positions"):
        build_model("transformer", dims, {"positions": "rotary"})
