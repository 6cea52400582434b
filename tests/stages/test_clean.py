import numpy as np
import pandas as pd
import pytest

from npdecode.errors import DataError
from npdecode.formats.binned import Counts
from npdecode.params import CleanParams
from npdecode.preprocess import clean_session


def _inputs():
    """6 units × 8 presentations × 2 bins with one planted problem per unit."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (8, 2, 6)).astype(np.uint16)
    counts[:, :, 4] = 0  # silent
    counts[:, :, 5] = 1
    counts[3, 1, 5] = 200  # one absurd bin: abnormal z-score
    pres = pd.DataFrame(
        {
            "presentation_id": np.arange(8),
            "start_time": np.arange(8) * 0.25,
            "stop_time": np.arange(1, 9) * 0.25,
            "frame": [0.0, 1.0, -1.0, 0.0, np.nan, 1.0, 0.0, 1.0],
            "overlaps_invalid": [False, False, True, False, False, False, False, False],
        }
    )
    units = pd.DataFrame(
        {
            "unit_id": np.arange(100, 106),
            "quality": ["good", "noise", "good", "good", "good", "good"],
            "isi_violations": [0.1, 0.1, 2.0, 0.1, 0.1, 0.1],
            "amplitude_cutoff": [0.01, 0.01, 0.01, 0.3, 0.01, 0.01],
            "presence_ratio": [0.99] * 6,
            "area": ["VISp", "VISl", "CA1", "VISam", "LGd", "VISp"],
        }
    )
    binned = Counts.from_counts(
        counts, pres["presentation_id"].to_numpy(), units["unit_id"].to_numpy()
    )
    return binned, units, pres


def unit_columns(c: Counts) -> list[str]:
    return [str(u) for u in c.unit_id]


def test_defaults_drop_silent_units_and_invalid_presentations():
    table, units, pres = _inputs()
    clean, report = clean_session(table, units, pres, CleanParams(), 1)
    assert unit_columns(clean) == ["100", "101", "102", "103", "105"]
    assert report["units"]["dropped"]["silent"] == {"n": 1, "ids": [104]}
    assert report["presentations"]["dropped"]["invalid_times"] == {"n": 1, "ids": [2]}
    assert report["presentations"]["dropped"]["no_frame"] == {"n": 1, "ids": [4]}
    assert clean.presentation_id.tolist() == [0, 1, 3, 5, 6, 7]
    # the kept counts are the original ones, by id
    np.testing.assert_array_equal(
        clean.counts, table.counts[[0, 1, 3, 5, 6, 7]][:, :, [0, 1, 2, 3, 5]]
    )
    assert report["presentations"]["kept"] == 6 and report["units"]["kept"] == 5


def test_each_quality_rule_reports_its_units():
    table, units, pres = _inputs()
    params = CleanParams(
        quality="good", isi_violations_max=0.5, amplitude_cutoff_max=0.1, presence_ratio_min=0.95
    )
    clean, report = clean_session(table, units, pres, params, 1)
    dropped = report["units"]["dropped"]
    assert dropped["quality"]["ids"] == [101]
    assert dropped["isi_violations"]["ids"] == [102]
    assert dropped["amplitude_cutoff"]["ids"] == [103]
    assert dropped["presence_ratio"]["n"] == 0
    assert unit_columns(clean) == ["100", "105"]


def test_area_patterns_and_zscore_thresholds():
    # one 200-count bin among 12 rows of ones: z ~ 3.2, the most a single outlier can reach here
    table, units, pres = _inputs()
    clean, report = clean_session(
        table, units, pres, CleanParams(areas=("VIS*",), zscore_max=3.0), 1
    )
    assert report["units"]["dropped"]["area"]["ids"] == [102, 104]
    assert report["units"]["dropped"]["zscore_high"]["ids"] == [105]
    assert unit_columns(clean) == ["100", "101", "103"]


def test_unit_reported_under_first_rule_only():
    table, units, pres = _inputs()
    _, report = clean_session(table, units, pres, CleanParams(areas=("VIS*",)), 1)
    all_ids = [i for rule in report["units"]["dropped"].values() for i in rule["ids"]]
    assert len(all_ids) == len(set(all_ids))


def test_dropping_every_unit_is_an_error():
    table, units, pres = _inputs()
    with pytest.raises(DataError, match="session 1: clean dropped every unit"):
        clean_session(table, units, pres, CleanParams(areas=("XYZ",)), 1)


def test_mismatched_units_table_is_an_error():
    table, units, pres = _inputs()
    with pytest.raises(DataError, match="do not match the units table"):
        clean_session(table, units.iloc[:5], pres, CleanParams(), 1)
