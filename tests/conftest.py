"""Shared fixtures: small synthetic sessions written as real NWB files, and the one
reproduced DVC project of a test session (`reproduced`, read-only; `project`, a copy).

How temporary DVC projects are built lives in tests/helpers.py. Tests that run `dvc` or
`git` are marked `integration` (still in the default run; `-m "not integration"` skips them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from npdecode.params import SyntheticParams
from npdecode.paths import Layout
from npdecode.sources.synthetic import SyntheticSession, as_record, make_session
from tests.helpers import SPLIT_SESSION, build_reproduced_project, copy_project

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


# modules whose every test shells out to dvc or git (others are marked by their fixtures)
INTEGRATION_MODULES = {
    "test_cluster.py",
    "test_integrity.py",
    "test_experiments.py",
    "test_pipeline.py",
    "test_twin_pipeline.py",
    "test_workspace.py",
    "test_check_params.py",
}
INTEGRATION_FIXTURES = {"reproduced", "project"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that run real dvc/git commands `integration`."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.path.name in INTEGRATION_MODULES or fixtures & INTEGRATION_FIXTURES:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small project per test session, traced, `dvc repro`-ed and committed (read-only:
    tests that run commands in it use `project`, a copy). Built once, whichever test asks
    first; its size (tests/helpers.py SMALL_PARAMS) keeps `dvc repro` short.

    Under pytest-xdist (the default run, pyproject's addopts) the workers share one build:
    the first to ask builds it in the run's base folder under a file lock, the others
    wait and reuse it (the recipe of pytest-xdist's docs, "Making session-scoped
    fixtures execute only once")."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build_reproduced_project(tmp_path_factory.mktemp("reproduced") / "project")
    from filelock import FileLock

    run_dir = tmp_path_factory.getbasetemp().parent  # this run's folder, shared by workers
    dest, done = run_dir / "reproduced" / "project", run_dir / "reproduced.done"
    with FileLock(str(run_dir / "reproduced.lock")):
        if not done.exists():
            if dest.exists():  # a worker's build that failed: start again
                shutil.rmtree(dest)
            build_reproduced_project(dest)
            done.touch()
    return dest


@pytest.fixture
def project(tmp_path: Path, reproduced: Path) -> Path:
    """A private copy of the reproduced project (git history, DVC cache, outputs)."""
    return copy_project(reproduced, tmp_path / "project")


@pytest.fixture(scope="session")
def split_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root with session 1 of `SPLIT_SESSION` fetched, binned, cleaned, split and
    its reference metrics, built once (read-only: `copy_split_session` before writing)."""
    from npdecode.params import params_from_dict
    from npdecode.stages import bin as bin_stage
    from npdecode.stages import clean, fetch, reference, split

    root = tmp_path_factory.mktemp("split_session")
    params = params_from_dict(SPLIT_SESSION)
    for stage in (fetch, bin_stage, clean, split, reference):
        stage.main(params, 1, root)
    return root


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
