import torch
from torch import nn

from npdecode.models.dropout import Dropout, replace_dropouts
from npdecode.models.transformer import TransformerLSTM
from npdecode.params import params_from_dict


def test_dropout_keeps_one_minus_p_and_scales_the_kept():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    out = Dropout(0.3).train()(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # sd of the fraction is 0.001
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.7))
    assert torch.equal(Dropout(0.3).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert not Dropout(1.0).train()(x).any()


def test_dropout_is_repeatable_from_the_seed_and_passes_gradients_through_kept_units():
    x = torch.randn(64, 10, 188, requires_grad=True)
    torch.manual_seed(3)
    a = Dropout(0.4).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.4).train()(x)
    assert torch.equal(a, b)
    a.sum().backward()
    assert torch.equal(x.grad != 0, a != 0)


def test_the_transformer_has_no_torch_dropout_left_outside_attention():
    p = params_from_dict({}).train.transformer.arch
    model = TransformerLSTM(p, n_units=20, n_bins=10, n_classes=5)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == []
    assert sum(isinstance(m, Dropout) for m in model.modules()) == 5
    replace_dropouts(model)  # idempotent
    assert sum(isinstance(m, Dropout) for m in model.modules()) == 5
