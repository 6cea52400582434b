"""bench/bench_poyo.py stays runnable: its sessions are valid POYO inputs, read lazily."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from npdecode.models.poyo_tokens import SPIKE, tokenize

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "bench"))
import bench_poyo  # noqa: E402


def test_bench_sessions_are_read_back_lazily(tmp_path: Path) -> None:
    for s in (1, 2):
        bench_poyo.write_session(tmp_path, s, units=20, windows=30)
    sessions = bench_poyo.NpySessions(tmp_path, 2)
    assert len(list(sessions)) == 2  # iteration stops at the end (IndexError)
    d = sessions[1]
    assert d.session == "2" and len(d.starts) == 30 and d.y.max() < bench_poyo.N_CLASSES
    assert isinstance(d.spikes.times, np.memmap) and np.all(np.diff(d.spikes.times) >= 0)
    tok = tokenize(d.spikes, d.starts, d.stops)
    n_spikes = (tok.mask & (tok.kind == SPIKE)).sum()
    inside = sum(
        np.count_nonzero((d.spikes.times >= a) & (d.spikes.times < b))
        for a, b in zip(d.starts, d.stops, strict=True)
    )
    assert n_spikes == inside > 0
    with pytest.raises(IndexError):
        sessions[2]


@pytest.mark.slow
def test_bench_runs_at_smoke_size(tmp_path: Path) -> None:
    import subprocess

    cmd = [sys.executable, "bench/bench_poyo.py", "--units", "10", "--windows", "40"]
    done = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, check=True)
    assert "POYO lazy  4 vs 8 sessions" in done.stdout
