import numpy as np
import torch

from npdecode.models.multisession import MultiSessionConfig, MultiSessionDecoder, pack

CFG = MultiSessionConfig(
    session_ids=(4, 9),
    n_units=(3, 5),
    n_bins=4,
    n_classes=6,
    latent=8,
    input_dropout=0.0,
    core_config={"hidden": 8},
)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    a = pack(rng.normal(size=(2, 4, 3)).astype(np.float32), 0, 5)
    b = pack(rng.normal(size=(3, 4, 5)).astype(np.float32), 1, 5)
    return torch.from_numpy(np.concatenate([a, b]))


def test_pack_pads_units_and_appends_session_index():
    x = pack(np.ones((2, 4, 3), np.float32), 1, 5)
    assert x.shape == (2, 4, 6)
    assert (x[:, :, 3:5] == 0).all() and (x[:, :, -1] == 1).all()


def test_mixed_batch_equals_per_session_batches():
    torch.manual_seed(0)
    model = MultiSessionDecoder(CFG).eval()
    x = _batch()
    with torch.no_grad():
        whole = model(x)
        parts = torch.cat([model(x[:2]), model(x[2:])])
    assert whole.shape == (5, 6) and torch.isfinite(whole).all()
    torch.testing.assert_close(whole, parts)


def test_gradients_reach_only_the_sessions_read_in_and_never_padding():
    torch.manual_seed(0)
    model = MultiSessionDecoder(CFG)
    x = _batch()[:2]  # session index 0 only (3 units)
    model(x).sum().backward()
    grad = model.readin_weight.grad
    assert grad[0, :3].abs().sum() > 0
    assert grad[0, 3:].abs().sum() == 0  # padding rows of session 0
    assert grad[1].abs().sum() == 0  # session 1 saw no data
    assert all(p.grad is not None for p in model.core.parameters() if p.requires_grad)


def test_freeze_core_leaves_only_read_ins_trainable():
    model = MultiSessionDecoder(CFG)
    model.freeze_core()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"readin_weight", "readin_bias"}
