"""reaching.ideal: the particle filter's reach model, and the ceiling on a real twin file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npdecode import evaluation
from npdecode.formats.macaque_truth import MacaqueTruth, in_unit_order, read_macaque_truth
from npdecode.mat.read import read_mat
from npdecode.models import wiener
from npdecode.reaching import bins, ideal
from npdecode.reaching.prepare import prepare
from npdecode.sources.macaque_twin import SAMPLE_S, TwinSettings, write_twin


def test_still_periods_follow_the_twin_settings() -> None:
    s = TwinSettings()
    truth = MacaqueTruth(**{**_EMPTY, "reach": s.reach_model()})
    still = ideal._ReachModel(truth).still(np.random.default_rng(0), 200_000) * SAMPLE_S
    lo = s.hold_s[0] + s.reaction_s[0]
    assert still.min() >= lo - 2 * SAMPLE_S
    base = s.hold_s[1] + s.reaction_s[1]
    assert 0.07 < np.mean(still > base + 0.01) < 0.13  # rests: p = 0.1 (plus rare long ones)
    assert np.mean(still > 10) > 0.002  # long still periods exist


def test_runs_split_rows_at_gaps() -> None:
    assert ideal._runs(np.array([7, 3, 4, 5, 9, 8])) == [(3, 6), (7, 10)]


_EMPTY = dict(
    neuron_id=np.zeros(0, int), channel=np.zeros(0, int), row=np.zeros(0, int),
    baseline=np.zeros(0), coef=np.zeros((0, 5)), lead_s=np.zeros(0), hash_baseline=np.zeros(1),
    hash_coef=np.zeros((1, 5)), v_ref=300.0, p_ref=80.0, fano=np.zeros(0), loading=np.zeros(0),
    gain_sd=0.2, gain_tau_s=2.0, reach=np.zeros(12),
)  # fmt: skip


def test_ideal_beats_the_wiener_filter_on_a_twin_session(tmp_path: Path) -> None:
    """The ceiling: on a twin file, the ideal decoder's R² exceeds the Wiener filter's by a
    paired margin (same test bins, the same bootstrap blocks) whose lower bound is > 0.05."""
    name, width, h = "indy_20160622_01", 0.04, 8
    mat, tru = tmp_path / f"{name}.mat", tmp_path / f"{name}.truth.npz"
    write_twin(name, mat, tru, TwinSettings(duration_s=400.0))
    r = read_mat(mat, name)
    truth = read_macaque_truth(tru)
    roles = ("train",) * 6 + ("val",) + ("test",) * 3
    p = prepare(r, width, h, roles=roles)
    tr, va, te = p.rows["train"], p.rows["val"], p.rows["test"]
    win = bins.history(p.counts.astype(np.float32), h)
    pred_w = wiener.fit(win[tr], p.vel[tr], win[va], p.vel[va]).predict(win[te])
    sub = in_unit_order(truth, r.unit_channel, r.unit_row)
    out = ideal.decode(p.counts, sub, width, rows=te, particles=1000)
    assert np.isnan(out[np.setdiff1d(np.arange(p.counts.shape[0]), te)]).all()
    pred_i = out[te, 2:]
    block = int(round(evaluation.BLOCK_S / width))
    paired = evaluation.paired_r2(p.vel[te], pred_i, pred_w, block)
    assert paired["lo"] > 0.05, paired
    # same inputs, same bytes
    again = ideal.decode(p.counts, sub, width, rows=te[:50], particles=1000)
    np.testing.assert_array_equal(again[te[:50]], ideal.decode(p.counts, sub, width,
                                  rows=te[:50], particles=1000)[te[:50]])  # fmt: skip
