"""The bin stage on a realistic session: its wall time over the time to merely read the spikes.

Run from the repository root: ``python bench/bench_bin_stage.py [--units 2000]``.
Writes a 2,000-unit, 9,000 s Allen-format NWB (138 M spikes, ~1.1 GB) to a temporary
folder, then runs, each in a fresh process (so both pay the same imports):
  - `read`: npdecode.nwb.read_spike_times alone (the floor for any stage that needs spikes);
  - `stage`: `python -m npdecode.stages.bin <id>`: read, remove invalid spikes, bin, write
    the counts (npz), the units/presentations parquet tables and the report.
Prints wall times, their ratio, and each process's peak RSS next to the data sizes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from bench_binning import make_session

from npdecode.nwb.write import SessionRecord, write_session_nwb
from npdecode.paths import Layout
from npdecode.sources import synthetic

SID = 900
READ = (
    "import sys; from npdecode.nwb.read import read_spike_times; read_spike_times(sys.argv[1], 0)"
)


def record(n_units: int, seed: int) -> tuple[SessionRecord, int]:
    """An Allen-layout session with the kernel benchmark's spike trains."""
    s = make_session(seed, n_units)
    rng = np.random.default_rng(seed)
    probes = synthetic.make_probes(SID)
    channels = synthetic.make_channels(probes, rng)
    units, _ = synthetic.make_units(n_units, channels, SID, rng)
    units = synthetic._add_quality_metrics(units, s.spike_times, s.duration, rng)
    frames = rng.integers(-1, 118, len(s.starts)).astype(float)
    pres = pd.DataFrame(
        {
            "start_time": s.starts,
            "stop_time": s.stops,
            "stimulus_name": "natural_scenes",
            "stimulus_block": 2,
            "stimulus_index": 5,
            "frame": frames,
        }
    )
    invalid = pd.DataFrame(
        {
            "start_time": [s.starts[100] + 0.01, s.starts[3000] + 0.01],
            "stop_time": [s.starts[110], s.starts[3080]],
            "tags": [
                ["EcephysSession", str(SID), "all_probes"],
                ["EcephysProbe", str(SID * 100 + 2), "probeC"],
            ],
        }
    )
    rec = SessionRecord(
        SID,
        700000900,
        datetime(2019, 1, 1, tzinfo=UTC),
        probes,
        channels,
        units,
        s.spike_times,
        {"natural_scenes": pres},
        invalid,
    )
    return rec, sum(len(t) for t in s.spike_times)


def run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, peak RSS GiB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status:
        raise SystemExit(proc.stderr.read().decode())
    return wall, usage.ru_maxrss / 2**20


def _r(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        rec, n_spikes = record(args.units, args.seed)
        write_session_nwb(args.write, rec)
        print(n_spikes)
        return
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        root = Path(tmp).resolve()
        layout = Layout(root)
        # generate and write the session in a child, so this process stays small (a forked
        # child counts its parent's pages in its peak RSS until it execs)
        t0 = time.perf_counter()
        layout.raw_dir(SID).mkdir(parents=True)
        write = [
            sys.executable,
            __file__,
            "--write",
            str(layout.nwb(SID)),
            "--units",
            str(args.units),
            "--seed",
            str(args.seed),
        ]
        n_spikes = int(subprocess.run(write, check=True, capture_output=True, text=True).stdout)
        write_s = time.perf_counter() - t0
        (root / "params.yaml").write_text(yaml.safe_dump({"sessions": [SID]}))
        nwb_gb = layout.nwb(SID).stat().st_size / 2**30
        print(
            f"session: {args.units} units, {n_spikes:,} spikes, NWB {nwb_gb:.2f} GiB (written in {write_s:.1f} s)"
        )
        reads, stages, peaks = [], [], []
        for _ in range(args.repeats):
            reads.append(run([sys.executable, "-c", READ, str(layout.nwb(SID))], root)[0])
            wall, rss = run([sys.executable, "-m", "npdecode.stages.bin", str(SID)], root)
            stages.append(wall)
            peaks.append(rss)
        peak = max(peaks)
        out_gb = sum(p.stat().st_size for p in (root / "data" / "binned").iterdir()) / 2**30
        read, stage = float(np.median(reads)), float(np.median(stages))
        spikes_gb = n_spikes * 8 / 2**30
        counts_gb = 5950 * 10 * args.units * 2 / 2**30
        print(
            f"read spike times (fresh process, median of {args.repeats}): {read:6.2f} s  {_r(reads)}"
        )
        print(
            f"bin stage        (fresh process, median of {args.repeats}): {stage:6.2f} s  {_r(stages)}"
        )
        print(f"ratio stage / read: {stage / read:.2f}x (target <= 2x)")
        print(
            f"peak RSS of the stage process: {peak:.2f} GiB; spike times {spikes_gb:.2f} GiB "
            f"+ counts {counts_gb:.2f} GiB = {spikes_gb + counts_gb:.2f} GiB; outputs on disk {out_gb:.2f} GiB"
        )


if __name__ == "__main__":
    main()
