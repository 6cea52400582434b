import json

import numpy as np
import pytest

from npdecode.evaluation import draw_seed, sample_shots
from npdecode.formats.split import load_session
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.stages import fewshot
from tests.helpers import write_split_folder

from .test_split import _session


def test_sample_shots_takes_k_per_class_or_all():
    y = np.array([0, 0, 0, 1, 1, 2])
    idx = sample_shots(y, 3, 2, np.random.default_rng(0))
    assert np.bincount(y[idx], minlength=3).tolist() == [2, 2, 1]
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


def test_fewshot_stage_writes_curve_per_session(split_root):
    params = params_from_dict({"sessions": [1], "fewshot": {"shots": [1, 3], "repeats": 3}})
    fewshot.main(params, "logreg", 1, root=split_root)
    out = json.loads(Layout(split_root).fewshot("logreg", 1).read_text())
    assert out["session_id"] == 1 and out["specimen_id"] == "77" and out["model"] == "logreg"
    assert set(out["shots"]) == {"1", "3"}
    data = load_session(Layout(split_root).split_dir(1), 1)
    for k, res in out["shots"].items():
        assert len(res["repeats"]) == 3
        assert all(r["n_train"] == int(k) * data.n_classes for r in res["repeats"])
        assert all(r["n"] == len(data.test) for r in res["repeats"])
        accs = [r["accuracy"] for r in res["repeats"]]
        assert res["mean"] == pytest.approx(np.mean(accs)) and res["sd"] == pytest.approx(
            np.std(accs, ddof=1)
        )
        assert 0 <= res["mean"] <= 1
    assert out["shots"]["3"]["mean"] > out["chance"]
    # rerunning gives the same numbers: every draw is seeded
    fewshot.main(params, "logreg", 1, root=split_root)
    again = json.loads(Layout(split_root).fewshot("logreg", 1).read_text())
    assert again["shots"] == out["shots"]
