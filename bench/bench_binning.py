"""Benchmark `npdecode.binning.bin_spikes` on a realistic natural-scenes session.

Run from the repository root: ``python bench/bench_binning.py`` (with ``src`` importable).
Prints one table from one run: our kernel against (a) AllenSDK 2.16.2's
``presentationwise_spike_counts`` algorithm, (b) pynapple's ``TsGroup.count`` (a numba kernel),
(c) the old pipeline's per-neuron, per-presentation loop, plus throughput, memory and two
"floor" measurements (one read of every spike, one write of the output).

Every method here runs on one thread (numpy ufuncs, pynapple's non-parallel numba kernel); the
table prints CPU time / wall time per method so that claim is checked, not assumed.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from references import (  # bench/ is on sys.path when this file runs as a script
    allensdk_presentationwise_spike_counts,
    old_pipeline_bin_spikes,
)

from npdecode.binning import _check_spike_trains, bin_edges, bin_spikes


@dataclass(frozen=True)
class Session:
    spike_times: list[np.ndarray]
    starts: np.ndarray
    stops: np.ndarray
    n_bins: int
    duration: float


def make_session(seed: int, n_units: int, duration: float = 9000.0) -> Session:
    """Log-normal rates (mean 8 Hz) and 5,950 back-to-back ~0.25 s presentations in 3 blocks."""
    rng = np.random.default_rng(seed)
    sigma = 1.0
    rates = rng.lognormal(np.log(8.0) - sigma**2 / 2, sigma, n_units)  # mean 8 Hz
    spike_times = []
    for rate in rates:
        # Sorted uniform times of a Poisson process: normalised cumulative exponentials.
        gaps = rng.exponential(1.0, rng.poisson(rate * duration) + 1)
        cumulative = np.cumsum(gaps)
        spike_times.append(cumulative[:-1] * (duration / cumulative[-1]))
    starts, stops = [], []
    for block_start, n_pres in zip((1500.3, 4700.7, 7600.1), (1983, 1983, 1984), strict=True):
        durations = rng.uniform(0.2501, 0.2503, n_pres)  # frame-timing jitter, as in Allen tables
        edges = block_start + np.r_[0.0, np.cumsum(durations)]
        starts.append(edges[:-1])
        stops.append(edges[1:])  # back to back: stop_i == start_{i+1} exactly
    return Session(spike_times, np.concatenate(starts), np.concatenate(stops), 10, duration)


@dataclass(frozen=True)
class Timing:
    wall: float  # s
    cpu: float  # s of CPU time of this process (all threads)


def timed(fn: Callable[[], object]) -> tuple[Timing, object]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    return Timing(time.perf_counter() - t0, time.process_time() - cpu0), result


def exact_counts_sample(s: Session, units: np.ndarray) -> np.ndarray:
    """(P, n_bins, len(units)) exact counts by binary search on `bin_edges`, an independent path."""
    edges = bin_edges(s.starts, s.stops, s.n_bins)  # (P, n_bins + 1)
    left, right = edges[:, :-1].ravel(), edges[:, 1:].ravel()
    cols = [
        np.searchsorted(s.spike_times[u], right) - np.searchsorted(s.spike_times[u], left)
        for u in units
    ]
    return np.stack(cols, axis=1).reshape(s.starts.size, s.n_bins, units.size)


def compare(theirs: np.ndarray, ours: np.ndarray) -> str:
    """How counts differ from ours (ours are exact): bins, spikes missing and extra."""
    diff = theirs.astype(np.int64) - ours.astype(np.int64)
    if not diff.any():
        return "same"
    missing, extra = int(np.clip(-diff, 0, None).sum()), int(np.clip(diff, 0, None).sum())
    return f"{np.count_nonzero(diff):,} bins differ: {missing:,} spikes missing, {extra:,} extra"


def run_ours(s: Session, repeats: int) -> dict:
    timings = []
    for _ in range(repeats):
        timing, out = timed(lambda: bin_spikes(s.spike_times, s.starts, s.stops, s.n_bins))
        timings.append(timing)
        # Free it before the next call, as the bin stage does after saving each session: kept
        # outputs would make every call pay for fresh, never-touched memory (slow in a VM).
        del out
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    tracemalloc.start()
    out = bin_spikes(s.spike_times, s.starts, s.stops, s.n_bins)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sample = np.random.default_rng(1).choice(len(s.spike_times), 100, replace=False)
    checks, _ = timed(lambda: _check_spike_trains(s.spike_times))
    return dict(
        timings=timings,
        out=out,
        rss_after=rss_after,
        peak=peak,
        exact=np.array_equal(out[:, :, sample], exact_counts_sample(s, sample)),
        checks=checks,
    )


def run_allensdk(s: Session) -> tuple[Timing, np.ndarray]:
    rel_edges = np.linspace(0.0, float(np.median(s.stops - s.starts)), s.n_bins + 1)
    return timed(lambda: allensdk_presentationwise_spike_counts(s.spike_times, s.starts, rel_edges))


def run_pynapple(s: Session) -> dict:
    import pynapple as nap

    setup, group = timed(lambda: nap.TsGroup(dict(enumerate(nap.Ts(t) for t in s.spike_times))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        epochs = nap.IntervalSet(start=s.starts, end=s.stops)
    bin_size = float(np.median(s.stops - s.starts)) / s.n_bins
    group.count(bin_size=bin_size, ep=epochs, dtype=np.uint16)  # compile the numba kernel
    timing, counts = timed(lambda: group.count(bin_size=bin_size, ep=epochs, dtype=np.uint16))
    note = "; ".join(sorted({str(w.message) for w in caught}))
    return dict(
        timing=timing, setup=setup, values=counts.values, note=note, version=nap.__version__
    )


def run_old(s: Session, n_units: int) -> tuple[Timing, np.ndarray]:
    """Times the first ``n_units`` units; the caller scales to all units."""
    subset = s.spike_times[:n_units]
    return timed(lambda: old_pipeline_bin_spikes(subset, s.starts, s.stops, s.n_bins))


def floors(s: Session, shape: tuple[int, ...], repeats: int) -> tuple[Timing, Timing]:
    """Best of ``repeats``: one read of every spike; one allocation and write of the output."""
    reads = [timed(lambda: [t.sum() for t in s.spike_times])[0] for _ in range(repeats)]
    writes = [timed(lambda: np.empty(shape, dtype=np.uint16).fill(1))[0] for _ in range(repeats)]
    return min(reads, key=lambda t: t.wall), min(writes, key=lambda t: t.wall)


def print_header(s: Session, n_binned: int, pynapple_version: str, seed: int) -> None:
    n_units, n_spikes = len(s.spike_times), sum(t.size for t in s.spike_times)
    print(f"npdecode bin_spikes benchmark, seed {seed}: synthetic Allen natural-scenes session")
    print(
        f"  {n_units} units, {s.duration:.0f} s, {n_spikes:,} spikes "
        f"(mean {n_spikes / n_units / s.duration:.2f} Hz per unit, log-normal rates)"
    )
    print(
        f"  {s.starts.size} presentations x {s.n_bins} bins, ~0.2502 s back to back in 3 blocks; "
        f"{n_binned:,} spikes inside them"
    )
    print(f"  numpy {np.__version__}, pynapple {pynapple_version}, {os.cpu_count()} CPUs\n")


def print_table(rows: list[tuple[str, Timing, float, str]], ours: Timing) -> None:
    """Rows of (name, measured timing, scale to the full session, counts note)."""
    print(f"{'method':<49} {'wall [s]':>8} {'ratio':>7} {'cpu ratio':>9}  counts vs ours")
    for name, timing, scale, counts in rows:
        wall = f"{timing.wall * scale / ours.wall:.1f}x"
        cpu = f"{timing.cpu * scale / ours.cpu:.1f}x"
        print(f"{name:<49} {timing.wall * scale:>8.3f} {wall:>7} {cpu:>9}  {counts}")
    print(
        "ratio: its wall time / ours; cpu ratio: the same with this process's CPU time, which\n"
        "other jobs on the machine inflate less. Ours are exact (first row); the others differ.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of our kernel")
    parser.add_argument("--old-units", type=int, default=20, help="units timed for (c)")
    args = parser.parse_args()

    s = make_session(args.seed, args.units)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    ours = run_ours(s, args.repeats)
    out = ours["out"]
    read_floor, write_floor = floors(s, out.shape, args.repeats)
    allen_t, allen_counts = run_allensdk(s)
    pn = run_pynapple(s)
    old_t, old_counts = run_old(s, args.old_units)

    by_wall = sorted(ours["timings"], key=lambda t: t.wall)
    median = by_wall[len(by_wall) // 2]
    t_ours = median.wall
    load = os.getloadavg()[0]
    pn_values = pn["values"]
    pn_counts = (
        compare(pn_values.reshape(out.shape), out)
        if pn_values.size == out.size
        else f"shape {pn_values.shape}, not {out.shape}"
    )
    scale = args.units / args.old_units
    print_header(s, int(out.sum()), pn["version"], args.seed)
    print(
        f"1-min load average at the end: {load:.2f} (this run counts 1; the rest are other jobs)\n"
    )
    exact = "exact: equal to binary search on 100 units" if ours["exact"] else "MISMATCH"
    print_table(
        [
            (f"npdecode bin_spikes (median of {args.repeats} calls)", median, 1.0, exact),
            (
                "(a) AllenSDK presentationwise_spike_counts algo",
                allen_t,
                1.0,
                compare(allen_counts, out),
            ),
            ("(b) pynapple TsGroup.count (numba), 2nd call", pn["timing"], 1.0, pn_counts),
            (
                f"(c) old per-unit per-presentation loop {args.old_units}u x{scale:.0f}",
                old_t,
                scale,
                compare(old_counts, out[:, :, : args.old_units]),
            ),
        ],
        median,
    )
    n_spikes = sum(t.size for t in s.spike_times)
    calls = ", ".join(f"{t.wall:.3f}" for t in ours["timings"])
    print(f"ours: calls {calls} s")
    print(
        f"ours: {n_spikes / t_ours / 1e6:.0f} M session spikes/s, "
        f"{out.sum() / t_ours / 1e6:.0f} M binned spikes/s; "
        f"of the time, input checks (sorted, no NaN) {ours['checks'].wall:.3f} s"
    )
    print(
        f"floor: one read of every spike {read_floor.wall:.3f} s; one write of the "
        f"{out.nbytes / 2**20:.0f} MiB output {write_floor.wall:.3f} s"
    )
    print(
        f"memory: bin_spikes allocation peak {ours['peak'] / 2**20:.0f} MiB (tracemalloc; output "
        f"{out.nbytes / 2**20:.0f} MiB); process peak RSS {rss_data:.2f} GiB with the data, "
        f"{ours['rss_after']:.2f} GiB after bin_spikes"
    )
    print(f"pynapple: TsGroup construction {pn['setup'].wall:.1f} s, not timed; {pn['note']}")


if __name__ == "__main__":
    main()
