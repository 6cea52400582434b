"""POYO across sessions (stage train_multisession_poyo) and the adapt command on POYO."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("torch_brain")

from npdecode.decode import adapt, poyo_allen  # noqa: E402
from npdecode.decode.fewshot import draw_seed  # noqa: E402
from npdecode.decode.transfer import make_folds, transfer_units  # noqa: E402
from npdecode.formats.files import read_csv, read_json  # noqa: E402
from npdecode.formats.split import load_session  # noqa: E402
from npdecode.models.poyo import EMBEDDINGS  # noqa: E402
from npdecode.params import Params, params_from_dict  # noqa: E402
from npdecode.paths import Layout  # noqa: E402
from tests.helpers import SPLIT_SESSION  # noqa: E402
from tests.test_poyo_pipeline import TINY_POYO  # noqa: E402

SESSIONS = [1, 2, 3]  # synthetic: one mouse each


def shared_params(**extra: Any) -> Params:
    return params_from_dict(
        {
            **SPLIT_SESSION,
            "sessions": SESSIONS,
            "train": {"poyo": {**TINY_POYO, "max_epochs": 2}, "batch_size": 16},
            "fewshot": {"shots": [1], "repeats": 2},
            "multisession": {"folds": 2, "adapt_epochs": 2},
            **extra,
        }
    )


@pytest.fixture(scope="module")
def three_sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with three tiny synthetic sessions fetched, binned, cleaned, split, referenced."""
    from npdecode.stages import bin as bin_stage
    from npdecode.stages import clean, fetch, reference, split

    root = tmp_path_factory.mktemp("three")
    params = shared_params()
    for sid in SESSIONS:
        for stage in (fetch, bin_stage, clean, split, reference):
            stage.main(params, sid, root)
    return root


@pytest.fixture(scope="module")
def shared_run(three_sessions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from npdecode.stages import poyo_multisession

    root = Path(shutil.copytree(three_sessions, tmp_path_factory.mktemp("run") / "p"))
    poyo_multisession.main(shared_params(), root)
    return root


def test_shared_poyo_scores_every_session_and_transfers_on_our_folds(shared_run: Path):
    layout = Layout(shared_run)
    for sid in SESSIONS:
        m = read_json(layout.metrics("multisession_poyo", sid))
        assert m["group_sessions"] == SESSIONS
        assert m["test"]["accuracy_lo"] <= m["test"]["accuracy"] <= m["test"]["accuracy_hi"]
    data = {s: load_session(layout.split_dir(s), s) for s in SESSIONS}
    units = transfer_units(data, SESSIONS, "all")
    ours = make_folds(list(units), 2, 0)  # our shared decoder's folds
    want = {f: {s for u in held for s in units[u]} for f, held in enumerate(ours)}
    held_by_fold: dict[int, set[int]] = {}
    for sid in SESSIONS:
        t = read_json(layout.fewshot("transfer_poyo", sid))
        held_by_fold.setdefault(t["fold"], set()).add(sid)
        assert sid not in t["core_sessions"]  # never trained on the session it adapts to
        seeds = [r["seed"] for r in t["shots"]["1"]["repeats"]]
        assert seeds == [draw_seed(0, 1, r) for r in range(2)]  # the few-shot stage's draws
        rows = read_csv(layout.fewshot_predictions("transfer_poyo", sid))
        assert len(rows) == 2 * t["n_test"]
    assert held_by_fold == want  # the same held-out mice in the same folds as ours


def test_adapt_command_adapts_a_shared_poyo_to_a_new_session(shared_run: Path, tmp_path: Path):
    layout = Layout(shared_run)
    ckpt = shared_run / "models" / "multisession_poyo" / "all.pt"
    donor, _ = poyo_allen.load_poyo(ckpt)
    out = tmp_path / "adapted.pt"
    params_file = tmp_path / "params.yaml"
    import yaml

    from npdecode.params import as_dict

    params_file.write_text(yaml.safe_dump(as_dict(shared_params())))
    adapt.main([str(ckpt), str(layout.split_dir(3)), "--session-id", "3", "--out", str(out),
                "--shots", "2", "--root", str(shared_run), "--params", str(params_file)])  # fmt: skip
    model, stored = poyo_allen.load_poyo(out)
    assert sorted(model.units) == ["3"] and stored["provenance"]["n_train"] == 2 * 7
    # only the embeddings moved: every other weight is the donor's, bitwise
    before, after = donor.tensors(), model.tensors()
    for name, value in after.items():
        if not name.startswith(EMBEDDINGS):
            assert torch.equal(value, before[name]), name
    # the adapted checkpoint predicts the session's test presentations
    data = load_session(layout.split_dir(3), 3)
    test = poyo_allen.session_windows(layout, data)["test"]
    logits = poyo_allen.predict_poyo(model, test)
    assert logits.shape == (len(data.test), data.n_classes) and np.isfinite(logits).all()
    acc = float(np.mean(np.argmax(logits, 1) == data.test.y))
    assert acc == pytest.approx(stored["provenance"]["test"]["accuracy"])
