"""Contract of every deep decoder: (B, T, U) -> (B, C), trainable, seeded, batch-independent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from npdecode.decode.training import FitOptions, fit, predict_logits
from npdecode.formats.checkpoint import load_checkpoint, predict, save_checkpoint
from npdecode.models import MODELS, build_model, model_spec

from .conftest import DEEP, make_model, ring_graph, separable, tiny_session


def test_every_deep_model_is_registered() -> None:
    assert set(DEEP) <= set(MODELS)


def test_output_shape_and_finite(name: str) -> None:
    model = make_model(name)
    out = model(torch.randn(2, 5, 7))
    assert out.shape == (2, 3)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_gradients_reach_every_parameter(name: str) -> None:
    model = make_model(name).train()
    torch.manual_seed(1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 5, 7)), torch.tensor([0, 2]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has an all-zero gradient"


def test_seed_repeats_and_differs(name: str) -> None:
    x = torch.randn(2, 5, 7)
    a, b, c = make_model(name, seed=3), make_model(name, seed=3), make_model(name, seed=4)
    assert torch.equal(a.eval()(x), b.eval()(x))
    assert not torch.allclose(a(x), c.eval()(x))


def test_batched_equals_per_sample(name: str) -> None:
    model = make_model(name).eval()
    x = torch.randn(4, 5, 7)
    with torch.no_grad():
        whole = model(x)
        one_by_one = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(whole, one_by_one, rtol=1e-5, atol=1e-5)


def test_spec_is_plain_json_and_rebuilds(name: str) -> None:
    model = make_model(name)
    dims, params = json.loads(json.dumps(model_spec(model)))
    twin = build_model(name, dims, params)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(2, 5, 7)
    torch.testing.assert_close(model.eval()(x), twin.eval()(x))


def test_runs_under_bf16_autocast(name: str) -> None:
    # the CUDA path trains under autocast; CPU autocast catches dtype mix-ups in the model
    model = make_model(name).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 5, 7))
    assert out.shape == (2, 3)
    assert torch.isfinite(out.float()).all()


def test_overfits_a_small_separable_problem(name: str) -> None:
    x, y = separable(n_classes=4, per_class=6)
    model = make_model(name, n_classes=4, input_dropout=0.0, dropout=0.0)
    opts = FitOptions(lr=1e-2, weight_decay=0.0, max_epochs=60, patience=60, batch_size=8)
    model, info = fit(model, (x, y), (x, y), opts)
    with torch.no_grad():
        acc = (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    assert acc == 1.0, f"{name} reached train accuracy {acc} ({info})"


def test_checkpoint_predict_matches_model(name: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (6, 5, 7)).astype(np.uint16)
    y = np.arange(6) % 3
    graph = ring_graph(7)
    data = tiny_session(counts, y, 3, graph)
    model = make_model(name, graph=graph).eval()
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, name, model, data)
    rebuilt, ckpt = load_checkpoint(path)
    assert type(rebuilt) is type(model)
    expected = torch.softmax(model(torch.from_numpy(data.normalise(counts))), 1).detach().numpy()
    np.testing.assert_allclose(
        predict(path, counts, data.unit_ids, session_id=data.session_id),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
    # columns in another order are put back in the checkpoint's unit order
    perm = rng.permutation(7)
    shuffled = predict(
        path, counts[:, :, perm], unit_ids=data.unit_ids[perm], session_id=data.session_id
    )
    np.testing.assert_allclose(shuffled, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_training_under_amp(name: str, amp: str) -> None:
    x, y = separable(n_classes=4, per_class=6)
    model = make_model(name, n_classes=4)
    opts = FitOptions(max_epochs=3, patience=3, batch_size=8, device="cuda", amp=amp)
    model, info = fit(model, (x, y), (x, y), opts)
    assert next(model.parameters()).device.type == "cuda"
    assert info["amp"] == {"bf16": "bfloat16", "fp16": "float16"}[amp]
    assert torch.isfinite(predict_logits(model, x)).all()
