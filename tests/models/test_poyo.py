"""POYO as our decoder: both readouts' shapes, gradients, seeds, padding, vocabularies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npdecode.errors import ParamsError
from npdecode.models.poyo import POYODecoder, POYOParams, TokenBatch
from npdecode.models.poyo_tokens import SpikeTable, tokenize
from npdecode.params import section_from_dict

# tiny but complete: every layer kind is there (depth 1), a few latents, two heads
TINY = POYOParams(
    dim=16, depth=1, dim_head=8, cross_heads=1, self_heads=2, latents_per_step=4, latent_step=0.1
)
UNITS = {"s1": ("a", "b", "c", "d", "e", "f", "g")}


def spikes(n_units: int = 7, seed: int = 0) -> SpikeTable:
    rng = np.random.default_rng(seed)
    return SpikeTable.from_trains([rng.uniform(0, 2, rng.integers(1, 12)) for _ in range(n_units)])


def batch(n_queries: int = 1, starts=(0.0, 1.0), length: float = 0.5) -> TokenBatch:
    starts = np.asarray(starts)
    return TokenBatch.of(tokenize(spikes(), starts, starts + length), n_queries)


def model(readout: str = "class", seed: int = 0, p: POYOParams = TINY) -> POYODecoder:
    torch.manual_seed(seed)
    if readout == "class":
        return POYODecoder(p, UNITS, window=0.5, n_out=3)
    return POYODecoder(p, UNITS, window=0.5, n_out=2, n_queries=4, readout="bins")


@pytest.fixture(params=["class", "bins"])
def readout(request: pytest.FixtureRequest) -> str:
    return request.param


def test_output_shapes_and_finite(readout: str) -> None:
    m = model(readout)
    out = m(batch(m.n_queries), "s1")
    assert out.shape == ((2, 3) if readout == "class" else (2, 4, 2))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_gradients_reach_every_parameter(readout: str) -> None:
    m = model(readout).train()
    out = m(batch(m.n_queries), "s1")
    loss = (
        torch.nn.functional.cross_entropy(out, torch.tensor([0, 2]))
        if readout == "class"
        else torch.nn.functional.mse_loss(out, torch.randn(2, 4, 2))
    )
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    # every unit of the session is in the batch (start/end tokens): each unit's row learns
    assert (m.poyo.unit_emb.weight.grad[1:].abs().sum(1) > 0).all()


def test_seed_repeats_and_differs(readout: str) -> None:
    b = batch(model(readout).n_queries)
    a, same, other = (model(readout, s).eval() for s in (3, 3, 4))
    assert torch.equal(a(b, "s1"), same(b, "s1"))
    assert not torch.allclose(a(b, "s1"), other(b, "s1"))


def test_padding_does_not_change_a_window(readout: str) -> None:
    # window 0 is short (few tokens), window 1 long: in one batch window 0 is padded
    m = model(readout).eval()
    q = m.n_queries
    table = spikes()
    starts, stops = np.array([1.9, 0.0]), np.array([2.0, 0.5])
    with torch.no_grad():
        whole = m(TokenBatch.of(tokenize(table, starts, stops), q), "s1")
        alone = torch.cat(
            [
                m(TokenBatch.of(tokenize(table, starts[i : i + 1], stops[i : i + 1]), q), "s1")
                for i in range(2)
            ]
        )
    assert not TokenBatch.of(tokenize(table, starts, stops), q).mask.all()  # there is padding
    torch.testing.assert_close(whole, alone, rtol=1e-5, atol=1e-5)


def test_unknown_session_is_refused() -> None:
    with pytest.raises(ValueError, match="no session 's2'"):
        model()(batch(), "s2")


def test_set_units_keeps_known_rows_and_drops_the_rest() -> None:
    m = POYODecoder(TINY, {"s1": ("a", "b"), "s2": ("a", "c")}, window=0.5, n_out=3)
    before = m.poyo.unit_emb.weight.detach().clone()
    known = m.poyo.unit_emb.tokenizer("s2/c")
    m.set_units({"s2": ("c", "d")})
    emb = m.poyo.unit_emb
    assert list(emb.vocab) == ["NA", "s2/c", "s2/d"]
    assert list(m.poyo.session_emb.vocab) == ["NA", "s2"]
    assert torch.equal(emb.weight[emb.tokenizer("s2/c")], before[known])
    assert m.units == {"s2": ("c", "d")}


def test_params_validate_like_params_yaml() -> None:
    p = section_from_dict(POYOParams, {"dim": 32, "depth": 2}, "train.poyo")
    assert (p.dim, p.depth, p.latent_step) == (32, 2, 0.125)
    with pytest.raises(ParamsError, match="train.poyo.atn_dropout"):
        section_from_dict(POYOParams, {"atn_dropout": 1.5}, "train.poyo")
    with pytest.raises(ParamsError, match="unknown key 'train.poyo.dims'"):
        section_from_dict(POYOParams, {"dims": 32}, "train.poyo")
    with pytest.raises(ValueError, match="multiple of 4"):
        POYOParams(dim_head=6)


def test_readout_and_queries_must_agree() -> None:
    with pytest.raises(ValueError, match="class"):
        POYODecoder(TINY, UNITS, window=0.5, n_out=3, n_queries=2, readout="class")


def test_without_torch_brain_the_import_says_which_extra() -> None:
    import subprocess
    import sys

    code = "import sys; sys.modules['torch_brain'] = None; import npdecode.models.poyo"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "pip install 'npdecode[poyo]'" in done.stderr.splitlines()[-1]
