"""`predict` refuses what it cannot align, and a checkpoint whose bytes changed is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npdecode.errors import CorruptError, DataError
from npdecode.formats.checkpoint import HASH_KEY, load_checkpoint, predict, save_checkpoint
from tests.models.conftest import make_model, ring_graph, tiny_session

N_PRES, N_BINS, N_UNITS = 6, 5, 7


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (N_PRES, N_BINS, N_UNITS)).astype(np.uint16)
    data = tiny_session(counts, np.arange(N_PRES) % 3, 3, ring_graph(N_UNITS))
    path = tmp_path_factory.mktemp("ckpt") / "models" / "lstm" / "1.pt"
    save_checkpoint(path, "lstm", make_model("lstm").eval(), data)
    return path, counts, data.unit_ids


def test_valid_input_gives_probabilities(checkpoint) -> None:
    path, counts, ids = checkpoint
    probs = predict(path, counts, ids, session_id=1)
    assert probs.shape == (N_PRES, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(
        predict(path, counts.astype(np.float64), ids, session_id=1), probs, rtol=1e-6
    )


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        # one column more than unit_ids
        (lambda c, i: (np.concatenate([c, c[:, :, :1]], 2), i), DataError, "unit_ids has shape"),
        (lambda c, i: (c, i.astype(np.float64)), TypeError, "unit_ids must be integers"),
        (lambda c, i: (c, np.where(i == i[0], np.nan, i)), TypeError, "unit_ids must be integers"),
        (lambda c, i: (c, np.r_[i[:-1], i[0]]), DataError, r"unit_ids repeats ids \[\d+\]"),
        (lambda c, i: (c, i + 1000), DataError, "counts lack units"),
        (lambda c, i: (c.astype(np.int64) - 3, i), DataError, "negative"),
        (lambda c, i: (np.where(c == 0, np.nan, c), i), DataError, "NaN"),
        (lambda c, i: (c[0], i), DataError, r"must be \(P, T, U\)"),
        (lambda c, i: (c.reshape(N_PRES, -1), i), DataError, r"must be \(P, T, U\)"),
        (lambda c, i: (torch.from_numpy(c.astype(np.float32)), i), TypeError, "not torch tensors"),
        (lambda c, i: (c.tolist(), i), TypeError, "must be a numpy array"),
        (
            lambda c, i: (c[:, :3], i),
            DataError,
            "3 bins per presentation, the model was trained on 5",
        ),
        (lambda c, i: (c[:, :, :-1], None), DataError, "pass unit_ids="),
        (lambda c, i: (c + 0.5, i), DataError, r"not whole numbers \(first: 2\.5\)"),
    ],
)
def test_bad_input_is_one_clear_error(checkpoint, make, error, message) -> None:
    path, counts, ids = checkpoint
    bad_counts, bad_ids = make(counts, ids)
    with pytest.raises(error, match=message) as info:
        predict(path, bad_counts, bad_ids, session_id=1)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, IndexError)


def test_checkpoint_holds_a_hash_of_its_content(checkpoint) -> None:
    path, *_ = checkpoint
    _, ckpt = load_checkpoint(path)
    assert isinstance(ckpt[HASH_KEY], str) and len(ckpt[HASH_KEY]) == 64


def test_changed_weights_are_refused(checkpoint, tmp_path) -> None:
    """A checkpoint edited through torch itself (a valid file, other weights) is refused."""
    path, counts, ids = checkpoint
    ckpt = torch.load(path, weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name] = ckpt["state_dict"][name] + 1e-3
    edited = tmp_path / "models" / "lstm" / "1.pt"
    edited.parent.mkdir(parents=True)
    torch.save(ckpt, edited)
    with pytest.raises(
        CorruptError, match=r"1\.pt is damaged .*dvc checkout --force .*dvc repro -f train_lstm@1"
    ):
        predict(edited, counts, ids, session_id=1)


def test_changed_normalisation_is_refused(checkpoint, tmp_path) -> None:
    path, counts, ids = checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt["sessions"]["1"]["mean"] = ckpt["sessions"]["1"]["mean"] * 2
    edited = tmp_path / "edited.pt"
    torch.save(ckpt, edited)
    with pytest.raises(CorruptError, match="sha256"):
        load_checkpoint(edited)


def test_every_flipped_byte_is_refused_or_harmless(checkpoint, tmp_path) -> None:
    """Flip bytes all through the file: loading either fails with CorruptError naming the
    file, or gives exactly the saved content (a flip in zip metadata torch never reads)."""
    path, *_ = checkpoint
    good = path.read_bytes()
    _, reference = load_checkpoint(path)
    target = tmp_path / "flip.pt"
    for pos in range(0, len(good), max(1, len(good) // 120)):
        flipped = bytearray(good)
        flipped[pos] ^= 0x10
        target.write_bytes(bytes(flipped))
        try:
            _, ckpt = load_checkpoint(target)
        except CorruptError as err:
            assert str(target) in str(err) and "dvc checkout --force" in str(err)
            continue
        assert ckpt[HASH_KEY] == reference[HASH_KEY], f"byte {pos}"
