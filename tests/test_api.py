"""The notebook API (src/npdecode/api.py) on a small reproduced project: the README's lines
run as written, and docs/notebook.ipynb executed by a Jupyter kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import npdecode
from npdecode.errors import DataError

from .helpers import PROJECT


@pytest.fixture
def project(reproduced: Path) -> Path:
    """The session's reproduced project, read only (overrides conftest's private copy)."""
    return reproduced


def readme_python() -> str:
    text = (PROJECT / "README.md").read_text()
    body = text.split("## In a notebook\n", 1)[1].split("\n## ", 1)[0]
    return body.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_lines_run_in_a_reproduced_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = readme_python()
    # import + three lines for Allen + two for a reaching session
    assert len([line for line in code.splitlines() if line.strip()]) == 6
    monkeypatch.chdir(project)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    split, probs, summary = scope["split"], scope["probs"], scope["summary"]
    assert probs.shape == (len(split.test.y), len(split.frames))
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    lstm = summary[(summary.model == "lstm") & (summary.session_id == 1)].iloc[0]
    assert np.mean(probs.argmax(axis=1) == split.test.y) == pytest.approx(lstm.accuracy)
    reach, vel = scope["reach"], scope["vel"]
    assert vel.shape == (len(reach.counts), 2)
    assert np.isfinite(vel[reach.rows["test"]]).all()


def test_units_and_classes_are_explicit(project: Path) -> None:
    split = npdecode.load_split(1, root=project)
    model = npdecode.load_model("lstm", 1, root=project)
    assert (model.unit_ids == split.unit_ids).all() and (model.classes == split.frames).all()
    assert -1 in model.classes  # the blank
    # columns in another order, plus one unit the model never saw: matched by id
    order = np.r_[np.arange(split.n_units)[::-1]]
    extra = np.concatenate([split.test.X[:, :, order], split.test.X[:, :, :1]], axis=2)
    ids = np.r_[split.unit_ids[order], split.unit_ids.max() + 1]
    np.testing.assert_allclose(
        model.predict(extra, unit_ids=ids),
        model.predict(split.test.X, unit_ids=split.unit_ids),
        rtol=1e-5,
        atol=1e-6,
    )
    assert set(model.predict_classes(split.test.X[:5], split.unit_ids)) <= set(split.frames)
    shared = npdecode.load_model("multisession", 1, root=project)
    assert shared.name == "multisession" and (shared.classes == split.frames).all()
    with pytest.raises(DataError, match=r"models/lstm/2.pt does not exist"):
        npdecode.load_model("lstm", 2, root=project)
    assert {"summary", "fewshot_lstm"} <= set(npdecode.load_results(root=project))


def test_the_example_notebook_runs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    shutil.copytree(project, tmp_path / "p", symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    docs = tmp_path / "p" / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copy2(PROJECT / "docs" / "notebook.ipynb", docs)
    nb = nbformat.read(docs / "notebook.ipynb", as_version=4)
    # the kernel is a child process: it imports this checkout's npdecode
    monkeypatch.setenv("PYTHONPATH", str(PROJECT / "src"))
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(docs)}}
    ).execute()
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "lstm: test accuracy" in text and "presentations x bins x units" in text
    assert "test velocity R²" in text and "pipeline: " in text
