import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from npdecode.decode.fewshot import draw_seed, sample_shots
from npdecode.errors import ParamsError
from npdecode.formats.split import load_session, write_split
from npdecode.params import GraphParams, params_from_dict
from npdecode.paths import Layout
from npdecode.preprocess import train_statistics, unit_graph
from npdecode.stages import fewshot
from tests.helpers import write_split_folder

from .test_split import _session

TINY = {"lstm": {"hidden": 16}}  # a small LSTM: seconds per curve


def test_sample_shots_takes_k_per_class():
    y = np.array([0, 0, 0, 1, 1, 2, 2])
    idx = sample_shots(y, 3, 2, np.random.default_rng(0))
    assert np.bincount(y[idx], minlength=3).tolist() == [2, 2, 2]
    assert len(set(idx.tolist())) == len(idx)


def test_draw_seeds_differ_by_k_and_repeat_and_repeat_by_base():
    seeds = {draw_seed(0, k, r) for k in (1, 3) for r in range(3)}
    assert len(seeds) == 6
    assert draw_seed(0, 3, 1) == draw_seed(0, 3, 1) != draw_seed(1, 3, 1)


@pytest.fixture(scope="module")
def split_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    counts, pres, units = _session(n_classes=4, reps=12, n_units=6)
    # make the classes decodable: class c raises unit c's rate
    y = pres["frame"].to_numpy().astype(int) + 1
    counts[np.arange(len(y)), :, y] += 4
    params = params_from_dict({"sessions": [1]})
    write_split_folder(
        Layout(root).split_dir(1), 1, counts, pres, units, params, bin_width_s=0.1, specimen_id="77"
    )
    return root


def _params(model_overrides=None, **fewshot):
    return params_from_dict(
        {
            "sessions": [1],
            "fewshot": {
                "shots": [1, 3],
                "repeats": 2,
                "steps": 6,
                "max_epochs": 6,
                "patience": 2,
                **fewshot,
            },
            "train": {**TINY, **(model_overrides or {})},
            "workers": 1,  # one process (test_worker_processes_give_the_same_bytes: more)
        }
    )


def _run(root, model, params):
    fewshot.main(params, model, 1, root=root)
    layout = Layout(root)
    result = json.loads(layout.fewshot(model, 1).read_text())
    return result, pd.read_csv(layout.fewshot_predictions(model, 1))


def test_fewshot_stage_writes_curve_per_session(split_root):
    params = params_from_dict({"sessions": [1], "fewshot": {"shots": [1, 3], "repeats": 3}})
    out, preds = _run(split_root, "logreg", params)
    assert out["session_id"] == 1 and out["specimen_id"] == "77" and out["model"] == "logreg"
    assert out["protocol"] == "strict" and "shots" in out["protocol_detail"]["normalisation"]
    assert set(out["shots"]) == {"1", "3"}
    data = load_session(Layout(split_root).split_dir(1), 1)
    for k, res in out["shots"].items():
        assert len(res["repeats"]) == 3
        assert all(r["n_train"] == int(k) * data.n_classes for r in res["repeats"])
        assert all(r["n"] == len(data.test) for r in res["repeats"])
        assert all(r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"] for r in res["repeats"])
        accs = [r["accuracy"] for r in res["repeats"]]
        assert res["mean"] == pytest.approx(np.mean(accs)) and res["sd"] == pytest.approx(
            np.std(accs, ddof=1)
        )
        assert res["mean_lo"] < res["mean"] < res["mean_hi"] or res["sd"] == 0
        assert 0 <= res["mean"] <= 1
        # every draw's test predictions, for paired comparisons
        rows = preds[preds["k"] == int(k)]
        assert len(rows) == 3 * len(data.test)
        for r in res["repeats"]:
            draw = rows[rows["repeat"] == r["repeat"]]
            assert (draw["seed"] == r["seed"]).all()
            assert (draw["actual"] == draw["predicted"]).mean() == pytest.approx(r["accuracy"])
    assert out["shots"]["3"]["mean"] > out["chance"]
    # rerunning gives the same numbers: every draw is seeded
    again, preds_again = _run(split_root, "logreg", params)
    assert again["shots"] == out["shots"]
    pd.testing.assert_frame_equal(preds, preds_again)


def test_k_larger_than_the_training_split_is_refused(split_root, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(split_root / "data", root / "data")
    data = load_session(Layout(root).split_dir(1), 1)
    k_max = int(np.bincount(data.train.y).min())
    params = params_from_dict({"sessions": [1], "fewshot": {"shots": [1, 1000]}})
    with pytest.raises(
        ParamsError, match=rf"fewshot.shots .*k = 1000.*largest k available is {k_max}$"
    ):
        fewshot.main(params, "logreg", 1, root=root)
    assert not Layout(root).fewshot("logreg", 1).exists()  # nothing half-written
    # the largest k itself is fine: every draw is the whole training split
    params = params_from_dict({"sessions": [1], "fewshot": {"shots": [k_max], "repeats": 2}})
    out, _ = _run(root, "logreg", params)
    assert out["shots"][str(k_max)]["repeats"][0]["n_train"] == len(data.train)


def _rewrite(src_root, dst_root, change):
    """A copy of the split folder with `change(data) -> data` applied to its arrays."""
    data = change(load_session(Layout(src_root).split_dir(1), 1))
    write_split(Layout(dst_root).split_dir(1), data, {})
    return dst_root


def _shuffle_val_labels(data):
    # a permutation of the label names: every validation presentation gets a wrong label
    y = (data.val.y + 1) % data.n_classes
    return dataclasses.replace(data, val=dataclasses.replace(data.val, y=y))


def test_strict_results_ignore_validation_labels_and_transductive_do_not(split_root, tmp_path):
    shuffled = _rewrite(split_root, tmp_path / "shuffled", _shuffle_val_labels)
    for protocol in ("strict", "transductive"):
        params = _params(protocol=protocol)
        a, pa = _run(split_root, "lstm", params)
        b, pb = _run(shuffled, "lstm", params)
        assert a["protocol"] == b["protocol"] == protocol
        if protocol == "strict":  # bit-identical: the learners never saw the val split
            assert a["shots"] == b["shots"]
            pd.testing.assert_frame_equal(pa, pb)
        else:  # early stopping on the val split: its labels change the results
            assert a["shots"] != b["shots"]


def test_strict_learners_use_no_labelled_data_beyond_their_shots(split_root, tmp_path):
    # poison everything a k-shot learner must not see: the training presentations that are
    # no draw's shots (counts and labels of the val split too), then rerun every model
    data = load_session(Layout(split_root).split_dir(1), 1)
    shots = np.unique(
        np.concatenate(
            [
                sample_shots(
                    data.train.y, data.n_classes, k, np.random.default_rng(draw_seed(0, k, r))
                )
                for k in (1, 3)
                for r in range(2)
            ]
        )
    )
    others = np.setdiff1d(np.arange(len(data.train)), shots)
    assert len(others) > 0

    def poison(d):
        x = d.train.X.copy()
        x[others] = 60000  # would swamp any mean, sd or correlation that touched them
        val = dataclasses.replace(d.val, X=np.full_like(d.val.X, 60000), y=np.zeros_like(d.val.y))
        # as the split stage would have fitted them on these training data
        _, mean, sd = train_statistics(x)
        edge_index, edge_weight = unit_graph(x, d.units, GraphParams())
        return dataclasses.replace(
            d,
            train=dataclasses.replace(d.train, X=x),
            val=val,
            mean=mean.astype(np.float32),
            std=sd.astype(np.float32),
            edge_index=edge_index,
            edge_weight=edge_weight,
        )

    poisoned = _rewrite(split_root, tmp_path / "poisoned", poison)
    small = {
        "transformer": {"d_model": 16, "heads": 2, "ff": 32, "lstm_hidden": 16},
        "stgat": {"readout": 16, "lstm_hidden": 16, "max_epochs": 3},
    }
    for model in ("logreg", "lstm", "transformer", "stgat"):
        a, pa = _run(split_root, model, _params(small))
        b, pb = _run(poisoned, model, _params(small))
        assert a["shots"] == b["shots"], model
        pd.testing.assert_frame_equal(pa, pb)
    # the transductive option is what reads them: whole-split statistics, val stopping
    a, _ = _run(split_root, "lstm", _params(protocol="transductive"))
    b, _ = _run(poisoned, "lstm", _params(protocol="transductive"))
    assert a["shots"] != b["shots"]


def test_batched_draws_record_it_and_repeat(split_root):
    small = {"lstm": {"hidden": 16, "max_epochs": 2}}
    params = _params(small, batch_draws="on")
    a, pa = _run(split_root, "lstm", params)
    assert a["protocol_detail"]["draws"].startswith("the draws of each k trained as one batch")
    b, pb = _run(split_root, "lstm", params)
    assert a["shots"] == b["shots"]
    pd.testing.assert_frame_equal(pa, pb)
    off, _ = _run(split_root, "lstm", _params(small, batch_draws="auto"))  # auto: CPU, one by one
    assert off["protocol_detail"]["draws"] == "each draw trained on its own"


def test_stgat_draws_train_one_by_one_even_when_batching_is_on(split_root):
    # the dense GATv2 does not vmap: its draws are trained alone, and the result says so
    small = {"stgat": {"readout": 16, "lstm_hidden": 16, "max_epochs": 2}}
    a, _ = _run(split_root, "stgat", _params(small, batch_draws="on"))
    assert a["protocol_detail"]["draws"] == "each draw trained on its own"


def test_worker_processes_give_the_same_bytes(split_root, tmp_path, caplog):
    # the draws of a curve trained in two worker processes (npdecode.decode.pool): the
    # curve, every draw's predictions and the scores are those of one process, byte for byte
    small = {"transformer": {"d_model": 16, "heads": 2, "ff": 32, "lstm_hidden": 16}}
    one = _params(small)
    two = dataclasses.replace(one, workers=2)
    layout = Layout(split_root)
    for model in ("lstm", "transformer"):
        _run(split_root, model, one)
        files = [layout.fewshot(model, 1), layout.fewshot_predictions(model, 1)]
        before = [f.read_bytes() for f in files]
        with caplog.at_level("INFO", logger="npdecode"):
            _run(split_root, model, two)
        assert [f.read_bytes() for f in files] == before, model
        assert "4 draws on 2 worker processes" in caplog.text
        assert "draws trained 4 / 4" in caplog.text
        caplog.clear()
