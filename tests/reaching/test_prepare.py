"""reaching.prepare on a twin file: binned counts and targets, split report, decodable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npdecode import evaluation
from npdecode.mat.read import kinematics, read_mat
from npdecode.models import wiener
from npdecode.reaching import bins
from npdecode.reaching.prepare import prepare


def test_prepare_a_twin_session_and_decode_it(macaque_twin_files: dict[str, Path]) -> None:
    name = "indy_20160622_01"
    r = read_mat(macaque_twin_files[name], name)
    p = prepare(r, 0.04, 5, roles=("train",) * 3 + ("val", "test"))
    n = r.t.size // 10
    assert p.counts.shape == (n, len(r.spike_times)) and p.vel.shape == (n, 2)
    vel, _ = kinematics(r.t, r.cursor_pos)
    np.testing.assert_allclose(p.vel[7], vel[70:80].mean(axis=0))
    assert int(p.counts.sum()) == sum(
        int(((s >= r.t[0]) & (s < r.t[0] + n * 0.04)).sum()) for s in r.spike_times
    )
    assert p.report["rows"]["test"] == p.rows["test"].size > 0
    win = bins.history(p.counts.astype(np.float32), 5)
    tr, va, te = p.rows["train"], p.rows["val"], p.rows["test"]
    model = wiener.fit(win[tr], p.vel[tr], win[va], p.vel[va])
    assert evaluation.r2_scores(p.vel[te], model.predict(win[te]))["r2"] > 0.3
    shuffled = np.random.default_rng(0).permutation(win)
    model = wiener.fit(shuffled[tr], p.vel[tr], shuffled[va], p.vel[va])
    assert evaluation.r2_scores(p.vel[te], model.predict(shuffled[te]))["r2"] < 0.1
