"""POYO's input tokens: every spike of a window becomes one token (unit, time in the window).

A session's spikes are kept as one time-sorted table (`SpikeTable`), so the spikes of a
window are one contiguous slice found by binary search, whatever the number of units.
As in torch_brain's `POYO.tokenize`, each unit also gets a start token (time 0) and an
end token (the window's length): every unit appears in every window, a silent one too,
and no window is empty (an attention row with every key masked would give NaN).
Windows are half-open, [start, stop), like the bins of `npdecode.binning`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPIKE, START, END = 0, 1, 2  # token types: torch_brain's TokenType DEFAULT, START/END_OF_SEQUENCE


@dataclass(frozen=True)
class SpikeTable:
    """One session's spikes in time order: times (N,) float64 in s, units (N,) int32 local
    unit index in [0, n_units)."""

    times: np.ndarray
    units: np.ndarray
    n_units: int

    @classmethod
    def from_trains(cls, spike_times: Sequence[np.ndarray]) -> SpikeTable:
        """The table of per-unit spike times (any order within a unit), ties kept in unit order."""
        times = np.concatenate(
            [np.asarray(t, np.float64).ravel() for t in spike_times] or [np.zeros(0)]
        )
        units = np.repeat(
            np.arange(len(spike_times), dtype=np.int32), [np.size(t) for t in spike_times]
        )
        order = np.argsort(times, kind="stable")
        return cls(times[order], units[order], len(spike_times))


@dataclass(frozen=True)
class Tokens:
    """A batch of tokenized windows, padded to the longest (N tokens), as numpy arrays.

    unit (B, N) int64 local unit index, time (B, N) float32 s from the window's start,
    kind (B, N) int64 token type (SPIKE, START, END), mask (B, N) bool (False on padding,
    whose unit, time and kind are 0), length (B,) float32 the windows' lengths in s.
    """

    unit: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    mask: np.ndarray
    length: np.ndarray


def check_windows(starts: np.ndarray, stops: np.ndarray, where: str) -> None:
    """Raise ValueError naming `where` unless starts/stops are equal-length, finite, stop > start."""
    starts, stops = np.asarray(starts), np.asarray(stops)
    if starts.shape != stops.shape or starts.ndim != 1:
        raise ValueError(
            f"{where}: starts {starts.shape} and stops {stops.shape} must be 1-D, same length"
        )
    bad = ~(np.isfinite(starts) & np.isfinite(stops) & (stops > starts))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}: window {i} is [{starts[i]}, {stops[i]}); every window needs finite "
            f"times with stop > start ({int(bad.sum())} bad windows)"
        )


def tokenize(table: SpikeTable, starts: np.ndarray, stops: np.ndarray) -> Tokens:
    """The tokens of windows [starts[b], stops[b]) of one session's `table`.

    Window b holds, in order, the start and end token of every unit (unit 0's start, its
    end, unit 1's start, ...) then its spikes in time order; times are relative to
    starts[b]. Every spike with start <= t < stop is one token of that window.
    """
    starts, stops = np.asarray(starts, np.float64), np.asarray(stops, np.float64)
    lo = np.searchsorted(table.times, starts, side="left")  # (B,)
    hi = np.searchsorted(table.times, stops, side="left")  # (B,) half-open: t == stop is out
    n_edge = 2 * table.n_units
    n = n_edge + (hi - lo)  # (B,) tokens per window
    shape = (len(starts), int(n.max(initial=0)))
    unit, kind = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    time, mask = np.zeros(shape, np.float32), np.zeros(shape, bool)
    length = (stops - starts).astype(np.float32)
    edge_unit = np.repeat(np.arange(table.n_units), 2)  # (2U,) 0, 0, 1, 1, ...
    edge_kind = np.tile([START, END], table.n_units)  # (2U,)
    for b, (a, z) in enumerate(zip(lo, hi, strict=True)):
        unit[b, :n_edge], kind[b, :n_edge] = edge_unit, edge_kind
        time[b, 1:n_edge:2] = length[b]  # end tokens sit at the window's length
        unit[b, n_edge : n[b]] = table.units[a:z]
        time[b, n_edge : n[b]] = table.times[a:z] - starts[b]  # float64 difference, then float32
        mask[b, : n[b]] = True
    return Tokens(unit, time, kind, mask, length)


def query_times(lengths: np.ndarray, n_queries: int) -> np.ndarray:
    """(B, n_queries) float32 output query times: the centres of n_queries equal bins of each
    window (one query: the window's middle), in s from the window's start."""
    centres = (np.arange(n_queries) + 0.5) / n_queries  # (Q,) fractions of the window
    return (np.asarray(lengths, np.float64)[:, None] * centres).astype(np.float32)
