"""reaching.blocks: contiguous splits with no window straddling an edge or a still period."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdecode.reaching.blocks import ROLES, block_labels, split, still_mask


@settings(max_examples=50, deadline=None)
@given(n=st.integers(40, 400), h=st.integers(1, 8), seed=st.integers(0, 1000))
def test_no_window_leaks_across_splits_or_still_periods(n: int, h: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0, 200, n)
    a = int(rng.integers(0, n - 20))
    speed[a : a + 20] = 1.0  # a 20-bin (1 s at 50 ms) still period
    rows, report = split(speed, 0.05, h, still_min_s=0.5)
    role, block = block_labels(n)
    still = still_mask(speed, 0.05, 10.0, 0.5)
    assert still[a : a + 20].all()
    seen: set[int] = set()
    for i, name in enumerate(ROLES):
        for k in rows[name]:
            window = np.arange(k - h + 1, k + 1)
            assert window[0] >= 0
            assert (role[window] == i).all() and (block[window] == block[k]).all()
            assert not still[window].any()
        assert seen.isdisjoint(rows[name])
        seen |= set(rows[name].tolist())
    assert report["rows"] == {r: int(rows[r].size) for r in ROLES}
    assert report["still_bins_excluded"] == int(still.sum())


def test_hand_written_split() -> None:
    speed = np.full(20, 50.0)
    rows, report = split(speed, 0.1, 2, roles=("train", "val", "test", "train"))
    # blocks of 5 bins; a 2-bin window needs its previous bin in the same block
    assert rows["train"].tolist() == [1, 2, 3, 4, 16, 17, 18, 19]
    assert rows["val"].tolist() == [6, 7, 8, 9]
    assert rows["test"].tolist() == [11, 12, 13, 14]
    assert report["windows_dropped_at_edges"] == 4 and report["still_periods"] == 0


def test_still_periods_only_when_longer_than_the_limit() -> None:
    speed = np.array([50, 1, 1, 1, 50, 1, 1, 50], dtype=float)
    np.testing.assert_array_equal(still_mask(speed, 1.0, 10.0, 2.5), [0, 1, 1, 1, 0, 0, 0, 0])


def test_bad_roles() -> None:
    with pytest.raises(ValueError, match="block roles"):
        block_labels(10, ("train", "dev"))


def test_unobserved_bins_are_excluded_and_counted() -> None:
    speed = np.full(40, 50.0)
    gap = np.zeros(40, dtype=bool)
    gap[10:13] = True  # bins 10-12 were not recorded
    rows, report = split(speed, 0.1, 3, roles=("train", "val"), unobserved=gap)
    # windows ending at 10..14 read a gap bin; 0, 1 are incomplete; 20, 21 cross the edge
    assert rows["train"].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19]
    assert rows["val"].tolist() == list(range(22, 40))
    assert report["unobserved_bins_excluded"] == 3
    assert report["windows_dropped_at_edges"] == 2 + 2 + 2  # 0, 1; 13, 14; 20, 21
    assert "unobserved_bins_excluded" not in split(speed, 0.1, 3, roles=("train", "val"))[1]
