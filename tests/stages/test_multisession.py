"""The shared decoder across mice, transfer by folds and the adapt command, on four small
synthetic sessions from two mice (two sessions each)."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from npdecode.decode import adapt
from npdecode.decode.fewshot import draw_seed, sample_shots, shot_view
from npdecode.decode.shared import (
    SessionBatches,
    check_compatible,
    fit_readin,
    group_sessions,
    readin_model,
    train_shared,
)
from npdecode.decode.transfer import make_folds, transfer_curve, transfer_units
from npdecode.errors import DataError, ParamsError
from npdecode.formats.checkpoint import load_checkpoint, predict, save_shared
from npdecode.formats.split import load_session
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.stages import bin as bin_stage
from npdecode.stages import clean, fetch, multisession, reference, report, split

SESSIONS = [1, 2, 3, 4]
MICE = {"mouse_700000001": [1, 2], "mouse_700000002": [3, 4]}
RAW = {
    "sessions": SESSIONS,
    "fetch": {
        "synthetic": {
            "n_units": 20,
            "n_images": 5,
            "n_repeats": 10,
            "tuning_strength": 5.0,
            "sessions_per_mouse": 2,
        }
    },
    "fewshot": {"shots": [1, 2], "repeats": 2, "steps": 3, "max_epochs": 3, "patience": 2},
    "multisession": {"latent": 16, "max_epochs": 4, "patience": 2, "folds": 2, "adapt_epochs": 3},
    "train": {"lstm": {"hidden": 16}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("mice")
    params = params_from_dict(RAW)
    for sid in SESSIONS:
        for stage in (fetch, bin_stage, clean, split, reference):
            stage.main(params, sid, root=root)
    multisession.main(params, root=root)
    return root, params


def _data(root, lazy=True):
    layout = Layout(root)
    return {s: load_session(layout.split_dir(s), s, lazy=lazy) for s in SESSIONS}


def _params(**multisession):
    raw = json.loads(json.dumps(RAW))
    raw["multisession"].update(multisession)
    return params_from_dict(raw)


def test_one_decoder_for_all_mice_with_a_read_in_of_each_sessions_width(project):
    root, _ = project
    layout = Layout(root)
    data = _data(root)
    assert group_sessions(data, "all") == {"all": SESSIONS}
    assert group_sessions(data, "mouse") == MICE
    model, ckpt = load_checkpoint(root / "models" / "multisession" / "all.pt")
    widths = [data[s].n_units for s in SESSIONS]
    assert len(set(widths)) > 1  # the sessions differ in width: nothing is padded
    assert [tuple(r.weight.shape) for r in model.readins] == [(16, u) for u in widths]
    for sid in SESSIONS:
        m = json.loads(layout.metrics("multisession", sid).read_text())
        assert m["model"] == "multisession" and m["group"] == "all"
        assert m["group_sessions"] == SESSIONS
        assert 0 <= m["test"]["accuracy"] <= 1 and m["test"]["n"] == len(data[sid].test)
        assert layout.predictions("multisession", sid).exists()


def test_training_batches_hold_one_sessions_width_interleaved_in_a_seeded_order(project):
    data = _data(project[0])
    source = SessionBatches([data[s] for s in SESSIONS])
    batches = list(source.train_batches(4, torch.Generator().manual_seed(0), torch.device("cpu")))
    assert len(batches) == source.n_steps(4)
    seen = {s: [] for s in range(len(SESSIONS))}
    for b in batches:
        x, s = b.inputs
        assert x.shape[1:] == (data[SESSIONS[s]].n_bins, data[SESSIONS[s]].n_units)
        assert x.dtype == torch.float32 and len(x) <= 4
        seen[s] += b.y.tolist()
    for s, sid in enumerate(SESSIONS):  # every presentation once per epoch
        assert sorted(seen[s]) == sorted(data[sid].train.y.tolist())
    order = [b.inputs[1] for b in batches]
    assert order != sorted(order)  # sessions interleaved, not one after the other
    again = SessionBatches([data[s] for s in SESSIONS]).plan(4, torch.Generator().manual_seed(0))
    assert [s for s, _ in again] == order
    other = source.plan(4, torch.Generator().manual_seed(1))
    assert [s for s, _ in other] != order
    # reading ahead in a thread (as on CUDA) gives the same batches in the same order
    ahead = SessionBatches([data[s] for s in SESSIONS], prefetch=True)
    cpu = torch.device("cpu")
    read_ahead = list(ahead.train_batches(4, torch.Generator().manual_seed(0), cpu))
    for a, b in zip(read_ahead, batches, strict=True):
        assert a.inputs[1] == b.inputs[1] and torch.equal(a.inputs[0], b.inputs[0])
        assert torch.equal(a.y, b.y)
    assert len(list(ahead.val_batches(4, cpu))) == len(list(source.val_batches(4, cpu)))


def test_folds_partition_mice(project):
    root, _ = project
    data = _data(root)
    units = transfer_units(data, SESSIONS, "all")
    assert units == MICE
    folds = make_folds(list(units), 2, seed=0)
    assert sorted(m for f in folds for m in f) == sorted(MICE) and all(len(f) == 1 for f in folds)
    assert make_folds(list(units), 2, seed=0) == folds
    with pytest.raises(ParamsError, match=r"multisession.folds is 3 but there are only 2 mice"):
        make_folds(list(units), 3, seed=0)
    # a stage run with more folds than mice stops before training anything
    with pytest.raises(ParamsError, match=r"multisession.folds is 3"):
        multisession.main(_params(folds=3), root=root)
    # each session's transfer core never saw its mouse
    for sid in SESSIONS:
        out = json.loads((root / "metrics" / "fewshot" / "transfer" / f"{sid}.json").read_text())
        mouse = next(m for m, s in MICE.items() if sid in s)
        assert out["held_out"] == [mouse]
        assert out["core_sessions"] == sorted(set(SESSIONS) - set(MICE[mouse]))
        assert out["n_folds"] == 2 and out["protocol"] == "strict"


def test_transfer_uses_the_few_shot_draws(project):
    root, _ = project
    data = _data(root)
    for sid in SESSIONS:
        out = json.loads((root / "metrics" / "fewshot" / "transfer" / f"{sid}.json").read_text())
        assert out["model"] == "transfer" and out["session_id"] == sid
        assert out["protocol"] == "strict" and "read-in" in out["protocol_detail"]["core"]
        assert "adapt_epochs" in out["protocol_detail"]["stopping"]
        preds = pd.read_csv(Layout(root).fewshot_predictions("transfer", sid))
        assert len(preds) == 2 * 2 * out["n_test"]  # 2 k x 2 repeats x every test presentation
        for k in ("1", "2"):
            runs = out["shots"][k]["repeats"]
            assert [r["seed"] for r in runs] == [draw_seed(0, int(k), r) for r in range(2)]
            assert all(r["n_train"] == int(k) * data[sid].n_classes for r in runs)
            assert 0 <= out["shots"][k]["mean"] <= 1


@pytest.fixture(scope="module")
def donor(project):
    root, params = project
    data = _data(root)
    model, _ = train_shared(data, [1, 2], params)
    return model, data, params


def test_the_core_keeps_each_images_mean_latent(donor):
    model, data, params = donor
    assert model.templates.shape == (data[1].n_classes, data[1].n_bins, 16)
    assert model.templates.abs().sum(dim=(1, 2)).min() > 0  # every class has one


def test_transfer_trains_only_the_new_read_in(donor):
    model, data, params = donor
    core_before = {k: v.clone() for k, v in model.core_state().items()}
    target = data[3]
    idx = sample_shots(target.train.y, target.n_classes, 2, np.random.default_rng(0))
    view = shot_view(target, idx, "strict")
    adapted = fit_readin(model, view, params, seed=5)
    mean = view.mean
    for k, v in adapted.core_state().items():
        assert torch.equal(v, core_before[k]), k  # the frozen core, bitwise
        assert torch.equal(model.core_state()[k], core_before[k]), k  # the donor untouched
    start = readin_model(model, 3, target.n_units, seed=5)  # what fit_readin starts from
    assert not torch.equal(adapted.readins[0].weight, start.readins[0].weight)  # it learned
    shots_x = target.train.X[idx].reshape(-1, target.n_units)
    np.testing.assert_allclose(mean, shots_x.mean(axis=0), rtol=1e-5)  # the shots' own


def test_adapt_head_trains_the_read_in_and_the_classifier_only(donor):
    model, data, params = donor
    core_before = {k: v.clone() for k, v in model.core_state().items()}
    ms = dataclasses.replace(params.multisession, adapt_head=True, readin_init="encoding")
    target = data[3]
    idx = sample_shots(target.train.y, target.n_classes, 2, np.random.default_rng(0))
    view = shot_view(target, idx, "strict")
    adapted = fit_readin(model, view, dataclasses.replace(params, multisession=ms), seed=5)
    changed = {k for k, v in adapted.core_state().items() if not torch.equal(v, core_before[k])}
    assert changed == {"head.weight", "head.bias"}  # the rest of the core, bitwise the donor's
    assert all(torch.equal(v, core_before[k]) for k, v in model.core_state().items())


def test_transfer_sees_nothing_but_its_shots(donor):
    model, data, params = donor
    target = data[3]
    fs = params.fewshot
    shots = set()
    for k in fs.shots:
        for r in range(fs.repeats):
            rng = np.random.default_rng(draw_seed(fs.seed, k, r))
            shots |= set(sample_shots(target.train.y, target.n_classes, k, rng).tolist())
    rest = np.array(sorted(set(range(len(target.train))) - shots))
    rng = np.random.default_rng(9)
    poisoned_train_X = target.train.rows(np.arange(len(target.train)))
    poisoned_train_X[rest] = rng.integers(0, 50, poisoned_train_X[rest].shape)
    val_X = rng.integers(0, 50, target.val.X.shape).astype(target.val.X.dtype)
    poisoned = dataclasses.replace(
        target,
        train=dataclasses.replace(target.train, X=poisoned_train_X, stored=None),
        val=dataclasses.replace(target.val, X=val_X, y=rng.permutation(target.val.y), stored=None),
        mean=target.mean + 100.0,  # the split stage's whole-train-split statistics
        std=target.std * 7.0,
    )
    clean, clean_pred = transfer_curve(model, target, params)
    dirty, dirty_pred = transfer_curve(model, poisoned, params)
    assert dirty == clean
    for k in clean_pred:
        assert np.array_equal(dirty_pred[k], clean_pred[k])
    # the transductive option (the old behaviour) is what reads them
    raw = json.loads(json.dumps(RAW))
    raw["fewshot"]["protocol"] = "transductive"
    old = params_from_dict(raw)
    assert transfer_curve(model, poisoned, old)[0] != transfer_curve(model, target, old)[0]


def test_shared_training_is_deterministic_on_cpu(donor):
    # Bitwise repeatability is promised on one CPU thread only (docs/experiments.md): two
    # threads reorder float sums under load. So both runs are trained here, pinned to one
    # torch thread and one BLAS thread (the module's `donor` is built before the per-test
    # thread fixture runs, so it cannot be one of the two).
    _, data, params = donor
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            model, _ = train_shared(data, [1, 2], params)
            again, _ = train_shared(data, [1, 2], params)
    finally:
        torch.set_num_threads(before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_shared_checkpoint_predicts_each_session(project):
    root, _ = project
    path = root / "models" / "multisession" / "all.pt"
    data = load_session(Layout(root).split_dir(2), 2)
    probs = predict(path, data.test.X, data.unit_ids, session_id=2)
    assert probs.shape == (len(data.test), data.n_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="and session_id="):
        predict(path, data.test.X, data.unit_ids)
    with pytest.raises(
        DataError, match=r"no read-in for session 7 .*python -m npdecode.decode.adapt"
    ):
        predict(path, data.test.X, data.unit_ids, session_id=7)


def test_adapt_command_writes_a_checkpoint_that_predicts(donor, project, tmp_path, capsys):
    model, data, params = donor
    root = project[0]
    shared = tmp_path / "core.pt"
    save_shared(shared, model, data)  # a core that never saw mouse 2
    out = tmp_path / "adapted" / "4.pt"
    split_dir = Layout(root).split_dir(4)
    (tmp_path / "params.yaml").write_text(json.dumps(RAW))
    argv = [str(shared), str(split_dir), "--session-id", "4", "--out", str(out), "--shots", "2"]
    adapt.main([*argv, "--params", str(tmp_path / "params.yaml")])
    adapted, ckpt = load_checkpoint(out)
    assert ckpt["sessions"].keys() == {"4"} and ckpt["provenance"]["shots_per_image"] == 2
    assert ckpt["provenance"]["core_sessions"] == [1, 2]
    for k, v in adapted.core_state().items():
        assert torch.equal(v, model.core_state()[k].cpu()), k
    test = load_session(split_dir, 4).test
    probs = predict(out, test.X, load_session(split_dir, 4).unit_ids, session_id=4)
    assert probs.shape == (len(test), data[4].n_classes)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # a checkpoint for other images is refused, naming both
    other = dataclasses.replace(data[1], frames=data[1].frames[::-1].copy())
    wrong = tmp_path / "wrong.pt"
    save_shared(wrong, model, {1: other, 2: data[2]})
    with pytest.raises(SystemExit):
        adapt.main([str(wrong), *argv[1:]])
    err = capsys.readouterr().err
    assert "npdecode adapt: error: session 4" in err and "wrong.pt" in err


def test_sessions_with_other_images_cannot_share(project):
    data = _data(project[0])
    data[3] = dataclasses.replace(data[3], frames=data[3].frames[::-1].copy())
    with pytest.raises(DataError, match="sessions 1 and 3 differ in their images"):
        check_compatible(data, list(SESSIONS))


def test_report_compares_single_shared_scratch_and_transfer(project):
    from npdecode.stages import fewshot, train

    root, params = project
    for model in ("lstm",):  # the scratch side of transfer vs scratch, on session 1
        train.main(params, model, 1, root=root)
        fewshot.main(params, model, 1, root=root)
    report.main(params, root=root)
    table = pd.read_csv(root / "results" / "multisession.csv")
    assert list(table["session_id"]) == SESSIONS
    assert {"single_session", "shared", "transfer_k1", "transfer_k2"} <= set(table.columns)
    assert (table["shared_with"] == 3).all() and table["transfer_skipped"].isna().all()
    assert table["transfer_fold"].notna().all()
    assert {"shared_lo", "shared_hi", "transfer_k1_lo", "transfer_k1_hi"} <= set(table.columns)
    assert {"scratch_k1", "scratch_k2"} <= set(table.columns)
    assert table["shared"].between(0, 1).all()
    assert (table["transfer_k2_lo"] <= table["transfer_k2"]).all()
    assert table.loc[0, "protocol"] == "strict"
    comp = pd.read_csv(root / "results" / "comparisons.csv")
    pairs = comp[(comp["kind"] == "fewshot") & (comp["session_id"] == 1)]
    assert set(zip(pairs["model_a"], pairs["model_b"], strict=True)) == {("lstm", "transfer")}
    assert sorted(pairs["k"]) == [1, 2] and (pairs["n_draws"] == 2).all()
    assert (pairs["protocol"] == "strict").all()
    shared = comp[(comp["kind"] == "model") & (comp["session_id"] == 1)]
    assert set(zip(shared["model_a"], shared["model_b"], strict=True)) == {("lstm", "multisession")}
    assert (root / "plots" / "multisession.png").stat().st_size > 1000


def test_nothing_shared_is_reported_as_such(project, tmp_path):
    src_root, _ = project
    root = tmp_path / "p"
    for name in ("data", "metrics"):
        (root / name).mkdir(parents=True)
    for sid in (1, 3):  # one session per mouse
        shutil.copytree(src_root / "data" / "split" / str(sid), root / "data" / "split" / str(sid))
        (root / "metrics" / "reference").mkdir(exist_ok=True)
        shutil.copy(Layout(src_root).reference(sid), Layout(root).reference(sid))
        shutil.copytree(src_root / "data" / "raw", root / "data" / "raw", dirs_exist_ok=True)
    raw = json.loads(json.dumps(RAW))
    raw.update(sessions=[1, 3])
    raw["multisession"]["group"] = "mouse"
    params = params_from_dict(raw)
    multisession.main(params, root=root)
    out = json.loads((root / "metrics" / "fewshot" / "transfer" / "1.json").read_text())
    assert "only one" in out["skipped"] and out["shots"] == {}
    # the predictions folder is never empty (git would drop it): columns, no draws
    preds = pd.read_csv(Layout(root).fewshot_predictions("transfer", 1))
    assert len(preds) == 0 and {"k", "repeat", "presentation_id"} <= set(preds.columns)
    report.main(params, root=root)
    table = pd.read_csv(root / "results" / "multisession.csv")
    assert (table["shared_with"] == 0).all()
    assert table["transfer_skipped"].str.contains("only one").all()
