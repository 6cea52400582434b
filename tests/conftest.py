"""Shared fixtures: small synthetic sessions written as real NWB files.

Temporary DVC projects for `git`/`dvc` tests live in tests/helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from npdecode.params import SyntheticParams
from npdecode.paths import Layout
from npdecode.sources.synthetic import SyntheticSession, as_record, make_session

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
SMALL = SyntheticParams(n_units=30, n_images=10, n_repeats=12, n_blocks=3, seed=0)
# A reduced Allen twin: 2 % of the units of twin 29 (791319847, ~55 units), 10 images
SMALL_TWIN = SyntheticParams(preset="allen", unit_scale=0.02, n_images=10, n_repeats=12)
QUICKSTART_TWIN = 29


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train fastest on one thread, and a busy 2-core CI box stalls two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_session() -> SyntheticSession:
    """A small synthetic session (30 units, 10 images + blank, 12 repeats)."""
    return make_session(SMALL, 7)


@pytest.fixture(scope="session")
def small_nwb(small_session: SyntheticSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small session written as an Allen-format NWB file (read-only: copy before mutating)."""
    from npdecode.nwb.write import write_session_nwb

    path = tmp_path_factory.mktemp("nwb") / "session_7.nwb"
    write_session_nwb(path, as_record(small_session))
    return path


@pytest.fixture(scope="session")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw folder of reduced twin 29: NWB, truth, tables, twin.json (read-only)."""
    from npdecode.sources.twin import fetch_twin

    root = tmp_path_factory.mktemp("twin")
    fetch_twin(SMALL_TWIN, QUICKSTART_TWIN, Layout(root))
    return Layout(root).raw_dir(QUICKSTART_TWIN)


@pytest.fixture(scope="session")
def macaque_twin_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short (90 s) macaque twin sessions written as real-layout `.mat` + truth files."""
    from npdecode.sources.macaque_twin import TwinSettings, write_twin

    folder = tmp_path_factory.mktemp("macaque")
    out = {}
    for name in ("indy_20160622_01", "loco_20170210_03"):
        write_twin(name, folder / f"{name}.mat", folder / f"{name}.truth.npz",
                   TwinSettings(duration_s=90.0))  # fmt: skip
        out[name] = folder / f"{name}.mat"
    return out
