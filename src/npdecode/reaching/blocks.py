"""Contiguous block splits of a continuous recording (train / val / test), with no leakage.

The bins are cut into `n_blocks` equal blocks of time; each block gets a role
(`roles`, default time-ordered: eight train blocks, then val, then test). Still periods
(speed below `still_speed` for longer than `still_min_s`, as brainsets excludes them,
there with 10 s) are removed from every split. A model reads windows of `h` bins; a
window is used only when all its bins lie in one block and none is excluded, so no
window straddles a split edge or a still period (`valid_rows`). What was excluded is
returned as a report dict for the clean report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ROLES = ("train", "val", "test")
DEFAULT_ROLES = ("train",) * 8 + ("val", "test")
EXCLUDED = -1


def still_mask(
    speed: np.ndarray, width_s: float, still_speed: float, still_min_s: float
) -> np.ndarray:
    """(B,) True for bins inside a run of bins with `speed < still_speed` lasting more than
    `still_min_s` seconds."""
    slow = np.asarray(speed) < still_speed
    out = np.zeros(slow.size, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], slow.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):  # runs [a, b) of slow bins
        if (b - a) * width_s > still_min_s:
            out[a:b] = True
    return out


def block_labels(
    n_bins: int, roles: Sequence[str] = DEFAULT_ROLES
) -> tuple[np.ndarray, np.ndarray]:
    """(B,) role index (0 train, 1 val, 2 test) and (B,) block index of every bin.

    Block j spans bins `[floor(j B / n), floor((j + 1) B / n))`.
    """
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise ValueError(f"block roles must be among {ROLES}, got {list(roles)}")
    n = len(roles)
    if n_bins < n:
        raise ValueError(f"{n_bins} bins cannot make {n} blocks")
    block = (np.arange(n_bins) * n) // n_bins  # (B,) block of each bin
    role = np.array([ROLES.index(r) for r in roles])[block]
    return role, block


def valid_rows(label: np.ndarray, block: np.ndarray, h: int) -> np.ndarray:
    """(B,) True where the window of bins k-h+1..k lies in one block with no excluded bin.

    `label` is the role per bin with `EXCLUDED` (-1) for excluded bins.
    """
    ok = (label != EXCLUDED).astype(np.int64)
    # bins k-h+1..k all usable and in the block of bin k
    run = np.convolve(ok, np.ones(h, dtype=np.int64))[: ok.size]  # usable bins in window
    same = np.ones(ok.size, dtype=bool)
    same[: h - 1] = False  # a window reaching before bin 0 is incomplete
    same[h - 1 :] = block[h - 1 :] == block[: ok.size - h + 1]
    return (run == h) & same


def split(
    speed: np.ndarray,
    width_s: float,
    h: int,
    roles: Sequence[str] = DEFAULT_ROLES,
    still_speed: float = 10.0,
    still_min_s: float = 10.0,
    unobserved: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Row indices (windows ending at those bins) of each split, and a report.

    Args:
        speed: (B,) cursor speed per bin (mm/s).
        width_s: bin width, s.
        h: history window, bins.
        roles: the role of each equal block of time.
        still_speed, still_min_s: a still period is speed below `still_speed` for more
            than `still_min_s` s (brainsets: speed < 10 for > 10 s).

    Returns:
        ({"train": idx, "val": idx, "test": idx}, report) with report counts of bins and
        seconds excluded as still, windows dropped at block edges, rows per split.
    """
    role, block = block_labels(speed.size, roles)
    still = still_mask(speed, width_s, still_speed, still_min_s)
    gap = np.zeros(speed.size, dtype=bool) if unobserved is None else np.asarray(unobserved)
    label = np.where(still | gap, EXCLUDED, role)
    ok = valid_rows(label, block, h)
    rows = {r: np.flatnonzero(ok & (label == i)) for i, r in enumerate(ROLES)}
    n_runs = int(np.count_nonzero(np.diff(np.concatenate([[0], still.astype(np.int8)])) == 1))
    report = {
        "bins": int(speed.size),
        "bin_width_s": float(width_s),
        "history_bins": int(h),
        "blocks": list(roles),
        "still_periods": n_runs,
        "still_bins_excluded": int(still.sum()),
        "still_seconds_excluded": float(still.sum() * width_s),
        "windows_dropped_at_edges": int(np.count_nonzero(~ok & ~still & ~gap)),
        "rows": {r: int(v.size) for r, v in rows.items()},
    }
    if unobserved is not None:
        report["unobserved_bins_excluded"] = int(np.count_nonzero(gap & ~still))
    return rows, report
