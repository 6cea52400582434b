"""Independent models trained as one batch equal the same models trained one by one."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from npdecode.decode.batched import fit_fixed_batched, vmappable
from npdecode.decode.shared import BoundSession
from npdecode.decode.training import FitOptions, fit_fixed, predict_logits
from npdecode.models.lstm import LoopLSTM
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import LSTMParams, MultisessionParams
from tests.models.conftest import make_model, separable


@pytest.mark.parametrize("layers", [1, 2])
def test_loop_lstm_is_nn_lstm(layers: int) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 8, num_layers=layers, batch_first=True)
    loop = LoopLSTM(lstm)
    x = torch.randn(3, 7, 5, requires_grad=True)
    out, (h, c) = lstm(x)
    out2, (h2, c2) = loop(x)
    for a, b in ((out, out2), (h, h2), (c, c2)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(out.sum() + c.sum(), [x, *lstm.parameters()])
    grads2 = torch.autograd.grad(out2.sum() + c2.sum(), [x, *loop.parameters()])
    for a, b in zip(grads, grads2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert [n for n, _ in lstm.named_parameters()] == [n for n, _ in loop.named_parameters()]


def test_vmappable_swaps_every_lstm_and_keeps_the_state_dict() -> None:
    model = make_model("transformer")
    twin = vmappable(model)
    assert not any(isinstance(m, nn.LSTM) for m in twin.modules())
    assert twin.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(2, 5, 7)
    torch.testing.assert_close(model.eval()(x), twin.eval()(x), rtol=1e-5, atol=1e-6)


OPTS = FitOptions(lr=1e-2, weight_decay=1e-2, max_epochs=4, batch_size=8, device="cpu")


def _members(name: str, seeds: list[int]) -> list[nn.Module]:
    # dropout off: then the batch's one dropout stream is the only thing batching changes
    return [make_model(name, n_classes=4, seed=s, input_dropout=0.0, dropout=0.0) for s in seeds]


@pytest.mark.parametrize("name", ["lstm", "transformer"])  # ST-GAT: `STGAT.batchable` is False
def test_batched_members_equal_models_trained_alone(name: str) -> None:
    seeds = [3, 4, 5]
    data = [separable(n_classes=4, per_class=5, seed=s) for s in seeds]  # 20 each
    alone = _members(name, seeds)
    for model, d, s in zip(alone, data, seeds, strict=True):
        fit_fixed(model, d, FitOptions(**{**vars(OPTS), "seed": s}))
    batched = _members(name, seeds)
    info = fit_fixed_batched(
        batched, data, [FitOptions(**{**vars(OPTS), "seed": s}) for s in seeds]
    )
    assert [i["batched_members"] for i in info] == [3, 3, 3]
    x = torch.from_numpy(separable(n_classes=4, per_class=3, seed=9)[0])
    for a, b in zip(alone, batched, strict=True):
        assert not b.training
        torch.testing.assert_close(predict_logits(a, x), predict_logits(b, x), rtol=1e-3, atol=1e-4)


def test_batched_training_repeats_bit_for_bit_with_dropout() -> None:
    data = [separable(n_classes=4, per_class=5, seed=s) for s in (1, 2)]
    opts = [FitOptions(**{**vars(OPTS), "seed": s}) for s in (1, 2)]
    runs = []
    for _ in range(2):
        models = [make_model("lstm", n_classes=4, seed=s) for s in (1, 2)]
        fit_fixed_batched(models, data, opts)
        runs.append([copy.deepcopy(m.state_dict()) for m in models])
    for a, b in zip(*runs, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_transfer_readins_batch_with_a_frozen_core() -> None:
    def readin(seed: int) -> BoundSession:
        torch.manual_seed(seed)
        m = MultiSessionDecoder(
            MultisessionParams(latent=6, input_dropout=0.0),
            LSTMParams(hidden=8, dropout=0.0),
            session_ids=(7,),
            n_units=(7,),
            n_bins=5,
            n_classes=4,
        )
        m.core.load_state_dict(core)  # the same frozen core in every member
        m.freeze_core()
        return BoundSession(m, 0)  # model(x): the few-shot learners' interface

    torch.manual_seed(0)
    core = MultiSessionDecoder(
        MultisessionParams(latent=6), LSTMParams(hidden=8), (7,), (7,), 5, 4
    ).core.state_dict()
    data = []
    for s in (1, 2):
        x, y = separable(n_classes=4, per_class=5, seed=s)
        data.append((x, y))
    opts = [FitOptions(**{**vars(OPTS), "seed": s}) for s in (1, 2)]
    alone = [readin(s) for s in (1, 2)]
    for m, d, o in zip(alone, data, opts, strict=True):
        fit_fixed(m, d, o)
    batched = [readin(s) for s in (1, 2)]
    fit_fixed_batched(batched, data, opts)
    for seed, a, b in zip((1, 2), alone, batched, strict=True):
        for k, v in core.items():  # the core stayed frozen
            assert torch.equal(b.model.core.state_dict()[k], v)
        wa, wb = a.model.readin(0).weight, b.model.readin(0).weight
        assert not torch.equal(wb, readin(seed).model.readin(0).weight)  # it learned
        torch.testing.assert_close(wa, wb, rtol=1e-3, atol=1e-4)


def test_members_must_match_in_size_and_options() -> None:
    models = _members("lstm", [1, 2])
    a, b = separable(per_class=5), separable(per_class=4)
    with pytest.raises(ValueError, match="equally many"):
        fit_fixed_batched(models, [a, b], [OPTS, OPTS])
    with pytest.raises(ValueError, match="seed only"):
        fit_fixed_batched(models, [a, a], [OPTS, FitOptions(**{**vars(OPTS), "lr": 1.0})])
