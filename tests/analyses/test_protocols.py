"""AllenSDK's quick-start protocol, on hand-made counts and end to end on a reduced twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from npdecode.analyses import protocols
from npdecode.errors import DataError
from tests.conftest import QUICKSTART_TWIN


@pytest.fixture(scope="module")
def nwb_path(twin_dir: Path) -> Path:
    return twin_dir / f"session_{QUICKSTART_TWIN}.nwb"


def test_counts_use_allensdks_start_exclusive_stop_inclusive_windows():
    spikes = [np.array([0.0, 0.25, 0.3, 0.5, 0.75]), np.array([0.1])]
    starts, stops = np.array([0.0, 0.25, 0.5]), np.array([0.25, 0.5, 0.75])
    counts = protocols.presentation_counts(spikes, starts, stops)
    # a spike on a shared edge belongs to the presentation that ends there
    np.testing.assert_array_equal(counts, [[1, 1], [2, 0], [1, 0]])


def test_default_qc_is_allensdks():
    units = pd.DataFrame(
        {
            "quality": ["good", "good", "noise", "good", "good"],
            "amplitude_cutoff": [0.1, 0.2, 0.0, 0.0, 0.0],
            "presence_ratio": [0.95, 0.99, 0.99, 0.94, 0.99],
            "isi_violations": [0.5, 0.0, 0.0, 0.0, 0.51],
        }
    )
    np.testing.assert_array_equal(protocols.default_qc(units), [True, False, False, False, False])


def test_quickstart_end_to_end_on_a_reduced_twin(nwb_path: Path, capsys) -> None:
    design = protocols.quickstart_design(nwb_path, QUICKSTART_TWIN)
    assert design.X.shape == (len(design.y), len(design.unit_ids)) and len(design.unit_ids) >= 1
    assert len(design.y) + design.n_dropped == 11 * 12
    folds = protocols.quickstart_folds(design.X, design.y)
    assert len(folds) == 5 and all(0.0 <= f <= 1.0 for f in folds)
    assert protocols.main(["quickstart", "--nwb", str(nwb_path), "--session-id", "29"]) == 0
    out = capsys.readouterr().out
    assert "twin of Allen" in out and "791319847" in out
    assert "0.414" in out and "0.478" in out  # the published folds and mean beside ours


def test_a_session_without_the_area_is_a_clear_error(nwb_path: Path, capsys) -> None:
    with pytest.raises(DataError, match=r"session 29: .* has no VISmma units .*areas in this file"):
        protocols.quickstart_design(nwb_path, QUICKSTART_TWIN, area="VISmma")
    args = ["quickstart", "--nwb", str(nwb_path), "--session-id", "29", "--area", "VISmma"]
    assert protocols.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("npdecode protocols: error: session 29") and len(err.splitlines()) == 1
