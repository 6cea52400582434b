import subprocess
import sys

import pytest
import torch

from npdecode.errors import DataError
from npdecode.models import build_model
from npdecode.models.multisession import MultiSessionDecoder

DIMS = {"session_ids": (4, 9), "n_units": (3, 5), "n_bins": 4, "n_classes": 6}
PARAMS = {"multisession": {"latent": 8, "input_dropout": 0.0}, "core": {"hidden": 8}}


def _model() -> MultiSessionDecoder:
    model = build_model("multisession", DIMS, PARAMS)
    assert isinstance(model, MultiSessionDecoder)
    return model


def test_each_session_has_a_read_in_of_its_own_width():
    torch.manual_seed(0)
    model = _model().eval()
    assert [r.in_features for r in model.readins] == [3, 5]
    with torch.no_grad():
        for s, width in enumerate((3, 5)):
            logits = model(torch.randn(2, 4, width), s)
            assert logits.shape == (2, 6) and torch.isfinite(logits).all()
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 4, 5), 0)  # session 0 has 3 units, not 5


def test_batched_equals_per_sample():
    torch.manual_seed(0)
    model = _model().eval()
    x = torch.randn(5, 4, 5)
    with torch.no_grad():
        whole = model(x, 1)
        parts = torch.cat([model(x[i : i + 1], 1) for i in range(5)])
    torch.testing.assert_close(whole, parts)


def test_gradients_reach_only_the_batch_sessions_read_in_and_the_core():
    torch.manual_seed(0)
    model = _model()
    model(torch.randn(2, 4, 3), 0).sum().backward()
    assert model.readins[0].weight.grad.abs().sum() > 0
    assert model.readins[1].weight.grad is None  # session 1 saw no data: AdamW skips it
    assert all(p.grad is not None for p in model.core.parameters())


def test_freeze_core_leaves_only_read_ins_trainable():
    model = _model()
    model.freeze_core()
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"readins"}


def test_a_session_without_a_read_in_is_a_clear_error():
    model = _model()
    assert model.index(9) == 1
    with pytest.raises(DataError, match=r"no read-in for session 7 .*npdecode\.decode\.adapt"):
        model.index(7)


REPEATS_SCRIPT = """
import torch
from npdecode.models import build_model
torch.set_num_threads(2)
dims = {"session_ids": (1, 2, 3), "n_units": (150, 200, 120), "n_bins": 10, "n_classes": 30}
torch.manual_seed(0)
model = build_model("multisession", dims, {"multisession": {}, "core": {}}).eval()
gen = torch.Generator().manual_seed(0)
x = torch.randn(64, 10, 200, generator=gen)
y = torch.randint(0, 30, (64,), generator=gen)
grads = []
for _ in range(20):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x, 1), y).backward()
    grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
print(sum(not torch.equal(grads[0], g) for g in grads[1:]))
"""


def test_training_gradients_are_bitwise_repeatable():
    # Two threads need a fresh process: once a test process has run with one thread,
    # raising the count does not split the work again.
    done = subprocess.run(
        [sys.executable, "-c", REPEATS_SCRIPT], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "0", "gradients differ between identical steps"
