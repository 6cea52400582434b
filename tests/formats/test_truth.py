import numpy as np

from npdecode.formats.truth import SyntheticTruth, read_truth, write_truth


def _truth(**extra) -> SyntheticTruth:
    rng = np.random.default_rng(0)
    return SyntheticTruth(
        rates_hz=rng.random((3, 4, 2)).astype(np.float32),
        frames=np.array([-1, 0, 1]),
        unit_ids=np.array([10, 11]),
        baseline_hz=np.array([1.0, 2.0]),
        step_s=0.005,
        gain_sd=0.2,
        **extra,
    )


def test_truth_round_trip_with_and_without_the_twin_fields(tmp_path):
    plain = _truth()
    write_truth(tmp_path / "a.npz", plain, np.ones(5))
    back = read_truth(tmp_path / "a.npz")
    assert back.unit_gain is None and back.confusion is None
    np.testing.assert_array_equal(back.rates_hz, plain.rates_hz)
    with np.load(tmp_path / "a.npz") as z:  # a plain truth keeps the files it always had
        assert "unit_gain" not in z.files and "confusion" not in z.files
    twin = _truth(unit_gain=np.full((5, 2), 0.5, np.float32), confusion=np.eye(3))
    write_truth(tmp_path / "b.npz", twin, np.ones(5))
    back = read_truth(tmp_path / "b.npz")
    np.testing.assert_array_equal(back.unit_gain, twin.unit_gain)
    np.testing.assert_array_equal(back.confusion, np.eye(3))
