"""The shared decoder and transfer on a small synthetic mouse with three sessions."""

import json

import numpy as np
import pandas as pd
import pytest

from npdecode.evaluation import draw_seed, sample_shots
from npdecode.formats.checkpoint import load_checkpoint, predict
from npdecode.formats.split import load_session
from npdecode.multisession import check_compatible
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.stages import bin as bin_stage
from npdecode.stages import clean, fetch, multisession, reference, split

SESSIONS = [1, 2, 3]
RAW = {
    "sessions": SESSIONS,
    "fetch": {
        "synthetic": {
            "n_units": 20,
            "n_images": 5,
            "n_repeats": 10,
            "tuning_strength": 5.0,
            "sessions_per_mouse": 3,
        }
    },
    "fewshot": {"shots": [1, 2], "repeats": 2, "steps": 3, "max_epochs": 3, "patience": 2},
    "multisession": {"latent": 16, "max_epochs": 4, "patience": 2},
    "train": {"lstm": {"hidden": 16}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("mouse")
    params = params_from_dict(RAW)
    for sid in SESSIONS:
        for stage in (fetch, bin_stage, clean, split, reference):
            stage.main(params, sid, root=root)
    multisession.main(params, root=root)
    return root, params


def test_sessions_of_one_mouse_share_one_model(project):
    root, params = project
    layout = Layout(root)
    data = {s: load_session(layout.split_dir(s), s) for s in SESSIONS}
    assert multisession.group_sessions(data, "mouse") == {"mouse_700000001": SESSIONS}
    assert multisession.group_sessions(data, "all") == {"all": SESSIONS}
    for sid in SESSIONS:
        m = json.loads(layout.metrics("multisession", sid).read_text())
        assert m["model"] == "multisession" and m["group_sessions"] == SESSIONS
        assert 0 <= m["test"]["accuracy"] <= 1 and m["test"]["n"] == len(data[sid].test)
        assert "ideal_accuracy" in m and m["chance"] == pytest.approx(1 / 6)
        assert layout.predictions("multisession", sid).exists()


def test_shared_checkpoint_predicts_each_session(project):
    root, _ = project
    layout = Layout(root)
    path = root / "models" / "multisession" / "mouse_700000001.pt"
    model, ckpt = load_checkpoint(path)
    assert sorted(ckpt["sessions"]) == ["1", "2", "3"]
    data = load_session(layout.split_dir(2), 2)
    probs = predict(path, data.test.X, session_id=2)
    assert probs.shape == (len(data.test), data.n_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="pass session_id"):
        predict(path, data.test.X)


def test_transfer_uses_the_few_shot_draws(project):
    root, params = project
    layout = Layout(root)
    for sid in SESSIONS:
        out = json.loads((root / "metrics" / "fewshot" / "transfer" / f"{sid}.json").read_text())
        assert out["model"] == "transfer" and out["session_id"] == sid
        assert out["protocol"] == "strict" and "read-in" in out["protocol_detail"]["core"]
        preds = pd.read_csv(layout.fewshot_predictions("transfer", sid))
        assert len(preds) == 2 * 2 * out["n_test"]  # 2 k x 2 repeats x every test presentation
        assert out["core_sessions"] == [s for s in SESSIONS if s != sid]
        data = load_session(layout.split_dir(sid), sid)
        for k in ("1", "2"):
            runs = out["shots"][k]["repeats"]
            assert [r["seed"] for r in runs] == [draw_seed(0, int(k), r) for r in range(2)]
            assert all(r["n_train"] == int(k) * data.n_classes for r in runs)
            assert 0 <= out["shots"][k]["mean"] <= 1
        # same draws as the single-session stage: same presentations
        idx = sample_shots(data.train.y, data.n_classes, 2, np.random.default_rng(runs[0]["seed"]))
        assert len(idx) == runs[0]["n_train"]


def test_sessions_with_other_images_cannot_share(project):
    root, params = project
    layout = Layout(root)
    data = {s: load_session(layout.split_dir(s), s) for s in SESSIONS}
    import dataclasses

    data[3] = dataclasses.replace(data[3], frames=data[3].frames[::-1].copy())
    with pytest.raises(ValueError, match="differ in their images"):
        check_compatible(data, list(SESSIONS))


def test_report_compares_single_shared_and_transfer(project):
    from npdecode.stages import fewshot, report, train

    root, params = project
    for model in ("lstm",):  # the scratch side of transfer vs scratch, on session 1
        train.main(params, model, 1, root=root)
        fewshot.main(params, model, 1, root=root)
    report.main(params, root=root)
    table = pd.read_csv(root / "results" / "multisession.csv")
    assert list(table["session_id"]) == SESSIONS
    assert {"single_session", "shared", "transfer_k1", "transfer_k2"} <= set(table.columns)
    assert {"shared_lo", "shared_hi", "transfer_k1_lo", "transfer_k1_hi"} <= set(table.columns)
    assert table["shared"].between(0, 1).all()
    assert (table["transfer_k2_lo"] <= table["transfer_k2"]).all()
    assert table.loc[0, "protocol"] == "strict"
    comp = pd.read_csv(root / "results" / "comparisons.csv")
    pairs = comp[(comp["kind"] == "fewshot") & (comp["session_id"] == 1)]
    assert set(zip(pairs["model_a"], pairs["model_b"], strict=True)) == {("lstm", "transfer")}
    assert sorted(pairs["k"]) == [1, 2] and (pairs["n_draws"] == 2).all()
    shared = comp[(comp["kind"] == "model") & (comp["session_id"] == 1)]
    assert set(zip(shared["model_a"], shared["model_b"], strict=True)) == {("lstm", "multisession")}
    assert (root / "plots" / "multisession.png").stat().st_size > 1000
