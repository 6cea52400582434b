"""The macaque twin and the 47-session table: real names and channel counts, realistic
behaviour and rates, units persisting across a monkey's sessions with turnover, truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from npdecode.formats.files import CorruptError
from npdecode.formats.macaque_truth import (
    PER_UNIT,
    in_unit_order,
    read_macaque_truth,
    write_macaque_truth,
)
from npdecode.mat.read import kinematics, read_mat
from npdecode.sources import macaque_sessions as ms
from npdecode.sources.macaque_twin import (
    SAMPLE_S,
    TwinSettings,
    generate,
    monkey_pool,
    reaches,
    shared_gain,
    spike_train,
    write_twin,
)


def peak_speed_bound(s: TwinSettings) -> float:
    """mm/s: the fastest reach the model draws (the grid's diagonal; a minimum-jerk path
    peaks at 1.875 x its mean speed) plus a margin for the tracking jitter."""
    d = 7 * s.grid_mm * np.sqrt(2)
    return 1.875 * d / (s.move_base_s + d / s.move_speed_mm_s) + 25.0


def test_the_47_sessions() -> None:
    assert len(ms.SESSIONS) == 47
    indy = [s for s in ms.SESSIONS if s.monkey == "indy"]
    loco = [s for s in ms.SESSIONS if s.monkey == "loco"]
    assert len(indy) == 37 and len(loco) == 10
    assert all(s.channels == 192 for s in loco)
    assert [s.name for s in indy if s.channels == 192] == [
        "indy_20160407_02", "indy_20160411_01", "indy_20160411_02", "indy_20160418_01",
        "indy_20160419_01", "indy_20160420_01", "indy_20160426_01",
    ]  # fmt: skip
    # NeuroBench's loader assumes 96 channels for its Indy sessions and 192 for Loco
    for name in ms.KNOWN_MD5:
        assert ms.session(name).channels == (96 if name.startswith("indy") else 192)
    assert ms.days_apart(ms.session("indy_20160407_02"), ms.session("indy_20170131_02")) == 299


def test_twin_reads_back_with_truth(macaque_twin_files: dict[str, Path]) -> None:
    path = macaque_twin_files["loco_20170210_03"]
    r = read_mat(path, "loco_20170210_03")
    truth = read_macaque_truth(path.with_suffix(".truth.npz"))
    assert len(r.chan_names) == 192 and r.chan_names[96] == "S1 001"
    assert sorted(zip(r.unit_channel, r.unit_row, strict=True)) == sorted(
        zip(truth.channel, truth.row, strict=True)
    )
    rates = np.array([s.size for s in r.spike_times]) / (r.t[-1] - r.t[0])
    assert 4 < np.median(rates) < 20  # M1/S1 sorted units: a few to tens of Hz
    crossings = read_mat(path, "loco_20170210_03", units="crossings")
    assert len(crossings.spike_times) == 192


def test_real_size_session_has_100_to_300_units() -> None:
    for name in ("indy_20160622_01", "indy_20160407_02", "loco_20170301_05"):
        mat, truth = generate(name, TwinSettings(duration_s=1.0))
        assert 100 <= truth.neuron_id.size <= 300, name


def test_reaches_are_bell_shaped_with_holds_and_long_still_periods() -> None:
    s = TwinSettings(duration_s=600.0)
    cursor, target = reaches(s, np.random.default_rng(0))
    t = np.arange(cursor.shape[0]) * SAMPLE_S
    vel, _ = kinematics(t, cursor)
    speed = np.linalg.norm(vel, axis=1)
    assert 150 < np.quantile(speed, 0.99) < 600  # mm/s
    grid = (np.arange(8) - 3.5) * s.grid_mm
    assert np.isin(target, grid).all()
    # a reach (between target changes) peaks near its middle
    change = np.flatnonzero(np.any(np.diff(target, axis=0) != 0, axis=1)) + 1
    mids = []
    for a, b in zip(change[:-1], change[1:], strict=True):
        moving = np.flatnonzero(speed[a:b] > 20)
        if moving.size > 20:
            peak = np.argmax(speed[a:b][moving[0] : moving[-1]])
            mids.append(peak / (moving[-1] - moving[0]))
    assert 0.4 < np.median(mids) < 0.6
    # still periods longer than 10 s exist (the field excludes them)
    still = np.concatenate([[0], (speed < 10).astype(int), [0]])
    runs = np.diff(np.flatnonzero(np.diff(still)))[::2] * SAMPLE_S  # lengths of still runs
    assert runs.max() > 10
    assert np.quantile(runs, 0.9) < 5  # most are holds, well under a second or two


def test_a_reach_cut_by_the_end_of_the_recording_is_its_first_samples() -> None:
    """A recording that ends mid-reach ends partway along that reach: the cursor is the
    longer recording's prefix, never the whole reach squeezed into the samples left."""
    s = TwinSettings(duration_s=30.0)
    full, _ = reaches(s, np.random.default_rng(7))
    speed = np.linalg.norm(np.gradient(full, SAMPLE_S, axis=0), axis=1)
    starts = np.flatnonzero((speed[:-1] < 20) & (speed[1:] >= 20)) + 1  # reaches starting
    assert starts.size > 5
    for k0 in starts[1:4]:
        for j in (1, 3, 10, 60):
            n = int(k0) + j
            cut, _ = reaches(dataclasses.replace(s, duration_s=n * SAMPLE_S),
                             np.random.default_rng(7))  # fmt: skip
            assert cut.shape == (n, 2)
            np.testing.assert_allclose(cut, full[:n], atol=1.0)  # the jitter differs (0.05 mm)
            v = np.linalg.norm(np.gradient(cut, SAMPLE_S, axis=0), axis=1)
            assert v.max() < peak_speed_bound(s), (k0, j)


def test_a_twin_ending_mid_reach_has_bounded_speeds_and_plausible_rates(tmp_path: Path) -> None:
    """The shortest twin that showed a cut reach squeezed (7070 mm/s; a unit's rate then
    overflowed): its file's cursor stays within the reach model and its units' rates sane."""
    name, s = "indy_20170123_02", TwinSettings(duration_s=1.3)
    mat = tmp_path / f"{name}.mat"
    write_twin(name, mat, tmp_path / f"{name}.truth.npz", s)
    r = read_mat(mat, name)
    vel, _ = kinematics(r.t, r.cursor_pos)
    speed = np.linalg.norm(vel, axis=1)
    assert np.isfinite(speed).all() and speed.max() < peak_speed_bound(s)
    assert np.linalg.norm(r.cursor_pos[-1] - r.target_pos[-1]) > 20  # it ends before the target
    rates = np.array([x.size for x in r.spike_times]) / (r.t[-1] - r.t[0] + SAMPLE_S)
    assert rates.size > 100 and rates.max() < 300  # Hz: no unit runs away


def test_units_persist_with_turnover_growing_with_days() -> None:
    s = TwinSettings(duration_s=1.0)
    ids = {n: set(generate(n, s)[1].neuron_id) for n in
           ("indy_20160407_02", "indy_20160411_01", "indy_20160426_01", "indy_20170131_02")}  # fmt: skip

    def shared(a: str, b: str) -> float:
        return len(ids[a] & ids[b]) / len(ids[a])

    near = shared("indy_20160407_02", "indy_20160411_01")  # 4 days
    mid = shared("indy_20160407_02", "indy_20160426_01")  # 19 days
    far = shared("indy_20160407_02", "indy_20170131_02")  # 299 days
    assert near > 0.7 and mid < near and far < 0.05


def test_tuning_drifts_slowly_and_stays_as_strong() -> None:
    pool = monkey_pool("indy", TwinSettings())
    tuned = np.abs(pool.coef[0, :, :2]).sum(axis=1) > 0
    c = pool.coef[:, tuned]  # (D, N, 5)
    # similarity to day 0 falls with days apart (about exp(-days / drift_days))
    sim = [np.corrcoef(c[0].ravel(), c[i].ravel())[0, 1] for i in range(c.shape[0])]
    near, far = sim[1], sim[-1]  # 4 days, 299 days
    assert near > 0.9 and far < 0.2
    # the population's tuning strength (rms) is stationary: no growth over ten months
    strength = np.sqrt((c[:, :, :2] ** 2).sum(axis=2).mean(axis=1))  # (D,)
    assert strength.max() / strength.min() < 1.15


def test_same_settings_same_twin() -> None:
    a, _ = generate("loco_20170213_02", TwinSettings(duration_s=5.0))
    b, _ = generate("loco_20170213_02", TwinSettings(duration_s=5.0))
    np.testing.assert_array_equal(a.cursor_pos, b.cursor_pos)
    np.testing.assert_array_equal(a.spikes[1][0], b.spikes[1][0])


def test_counts_are_over_dispersed_by_each_units_fano_factor() -> None:
    """Negative binomial counts per 4 ms sample add up to the same Fano factor in any bin."""
    rng = np.random.default_rng(3)
    t = np.arange(1_000_000) * SAMPLE_S
    for fano in (1.0, 1.6):
        spikes = spike_train(rng, t, np.full(t.size, np.log(20.0)), fano)
        for width in (0.02, 0.1):
            counts = np.bincount((spikes // width).astype(int))[:-1]
            assert abs(counts.mean() - 20 * width) < 0.02 * 20 * width
            assert abs(counts.var() / counts.mean() - fano) < 0.06, (fano, width)


def test_shared_gain_has_its_sd_and_timescale() -> None:
    s = TwinSettings()
    g = shared_gain(s, np.random.default_rng(4), 2_000_000)
    assert abs(g.std() - s.gain_sd) < 0.02
    lag = int(round(s.gain_tau_s / SAMPLE_S))
    r = np.corrcoef(g[:-lag], g[lag:])[0, 1]
    assert abs(r - np.exp(-1)) < 0.08


def test_noise_properties_belong_to_the_neuron() -> None:
    s = TwinSettings(duration_s=1.0)
    a = generate("indy_20160407_02", s)[1]
    b = generate("indy_20160411_01", s)[1]
    assert s.fano_range[0] <= a.fano.min() and a.fano.max() <= s.fano_range[1]
    assert s.loading_range[0] <= a.loading.min() and a.loading.max() <= s.loading_range[1]
    shared, ia, ib = np.intersect1d(a.neuron_id, b.neuron_id, return_indices=True)
    assert shared.size > 50
    np.testing.assert_array_equal(a.fano[ia], b.fano[ib])
    np.testing.assert_array_equal(a.loading[ia], b.loading[ib])
    np.testing.assert_array_equal(a.reach, s.reach_model())


def test_truth_round_trips_and_rejects_a_bad_reach_model(tmp_path: Path) -> None:
    _, truth = generate("loco_20170213_02", TwinSettings(duration_s=1.0))
    path = tmp_path / "t.truth.npz"
    write_macaque_truth(path, truth)
    back = read_macaque_truth(path)
    np.testing.assert_array_equal(back.fano, truth.fano)
    assert back.gain_tau_s == truth.gain_tau_s and back.reach_params()["grid_mm"] == 20.0
    write_macaque_truth(path, dataclasses.replace(truth, reach=truth.reach[:5]))
    with pytest.raises(CorruptError, match="reach has shape"):
        read_macaque_truth(path)


def test_in_unit_order_reorders_every_per_unit_field() -> None:
    _, truth = generate("loco_20170213_02", TwinSettings(duration_s=1.0))
    order = np.random.default_rng(5).permutation(truth.channel.size)
    moved = in_unit_order(truth, truth.channel[order], truth.row[order])
    for k in PER_UNIT:
        np.testing.assert_array_equal(getattr(moved, k), getattr(truth, k)[order])
    with pytest.raises(ValueError, match="not in the truth"):
        in_unit_order(truth, np.array([999]), np.array([1]))
