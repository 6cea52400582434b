import json

import numpy as np
import pandas as pd
import pytest

from npdecode.errors import DataError
from npdecode.formats.split import load_session
from npdecode.params import GraphParams, SplitParams, params_from_dict
from npdecode.preprocess import assign_splits, knn_edges, labels, unit_graph
from tests.helpers import write_split_folder


def _session(n_classes=4, reps=10, n_bins=3, n_units=6, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.tile(np.arange(-1, n_classes - 1), reps)
    rng.shuffle(frames)
    n = len(frames)
    counts = rng.poisson(2.0, (n, n_bins, n_units)).astype(np.uint16)
    pres = pd.DataFrame(
        {
            "presentation_id": np.arange(1000, 1000 + n),
            "frame": frames.astype(float),
            "start_time": np.arange(n) * 0.25,
        }
    )
    units = pd.DataFrame(
        {
            "unit_id": np.arange(n_units),
            "anterior_posterior_ccf_coordinate": np.arange(n_units) * 10.0,
            "dorsal_ventral_ccf_coordinate": np.zeros(n_units),
            "left_right_ccf_coordinate": np.zeros(n_units),
        }
    )
    return counts, pres, units


def test_labels_with_and_without_blank():
    frames = np.array([5, -1, 0, 5, 0])
    keep, y, classes = labels(frames, include_blank=True)
    assert keep.all() and list(classes) == [-1, 0, 5] and list(y) == [2, 0, 1, 2, 1]
    keep, y, classes = labels(frames, include_blank=False)
    assert (
        list(keep) == [True, False, True, True, True]
        and list(classes) == [0, 5]
        and list(y) == [1, 0, 1, 0]
    )


def test_time_split_is_ordered_and_stratified():
    y = np.repeat(np.arange(3), 10)
    rng = np.random.default_rng(1)
    start = rng.permutation(30).astype(float)
    code = assign_splits(y, start, SplitParams(val_fraction=0.2, test_fraction=0.3))
    for c in range(3):
        m = y == c
        assert np.bincount(code[m], minlength=3).tolist() == [5, 2, 3]
        t = {k: start[m & (code == k)] for k in range(3)}
        assert t[0].max() < t[1].min() and t[1].max() < t[2].min()


def test_random_split_is_seeded_and_stratified():
    y = np.repeat(np.arange(3), 10)
    start = np.arange(30.0)
    a = assign_splits(y, start, SplitParams(method="random", seed=3))
    b = assign_splits(y, start, SplitParams(method="random", seed=3))
    c = assign_splits(y, start, SplitParams(method="random", seed=4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for cls in range(3):
        assert np.bincount(a[y == cls], minlength=3).tolist() == [7, 1, 2]


def test_last_split_tests_the_last_presentations_in_time_unstratified():
    y = np.repeat(np.arange(3), 10)
    rng = np.random.default_rng(2)
    start = rng.permutation(30).astype(float)
    code = assign_splits(y, start, SplitParams(method="last", val_fraction=0.1, test_fraction=0.2))
    assert np.bincount(code, minlength=3).tolist() == [21, 3, 6]
    order = np.argsort(start)
    assert code[order].tolist() == [0] * 21 + [1] * 3 + [2] * 6  # time order: train, val, test
    # not stratified: in this shuffle the classes' test counts differ
    assert len({int(((y == c) & (code == 2)).sum()) for c in range(3)}) > 1


def test_last_split_records_frames_that_never_train(tmp_path):
    counts, pres, units = _session(n_classes=4, reps=10)
    last = pres["frame"] == 2.0
    pres.loc[last, "start_time"] += 1000.0  # frame 2 shown only at the end: all of it tests
    counts[last.to_numpy()] += 1
    params = params_from_dict(
        {"sessions": [1], "split": {"method": "last", "test_fraction": 0.3, "graph": {"k": 2}}}
    )
    data = write_split_folder(tmp_path / "s", 1, counts, pres, units, params, bin_width_s=0.1)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["method"] == "last"
    assert meta["frames_without_training_presentations"] == [2]
    assert 2 in data.frames[data.test.y] and 2 not in data.frames[data.train.y]


def test_too_few_presentations_is_an_error():
    with pytest.raises(DataError, match="class 0 has only 1 presentations"):
        assign_splits(
            np.array([0, 1, 1, 1]), np.arange(4.0), SplitParams(val_fraction=0.5, test_fraction=0.5)
        )


def test_an_empty_val_split_is_an_error_not_a_crash_in_training():
    # 3 presentations per class: round(0.3) = 0 val each, yet every class has a train one
    with pytest.raises(DataError, match=r"the val split is empty: 9 presentations in 3 classes"):
        assign_splits(
            np.repeat([0, 1, 2], 3),
            np.arange(9.0),
            SplitParams(val_fraction=0.1, test_fraction=0.3),
        )


def test_knn_edges_point_to_the_most_similar():
    sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    edge_index, weight = knn_edges(sim, 1)
    assert edge_index.tolist() == [[1, 0, 1], [0, 1, 2]]  # (source, target)
    np.testing.assert_allclose(weight, [0.9, 0.9, 0.5])


@pytest.fixture
def written(tmp_path):
    counts, pres, units = _session()
    # unit 5 is constant in train but not in val/test: it must be dropped
    params = params_from_dict({"sessions": [1], "split": {"graph": {"k": 2}}})
    code = assign_splits(
        labels(pres["frame"].to_numpy().astype(int), True)[1],
        pres["start_time"].to_numpy(),
        params.split,
    )
    counts[code == 0, :, 5] = 3
    counts[code != 0, :, 5] = np.arange((code != 0).sum() * 3).reshape(-1, 3) % 7
    write_split_folder(tmp_path / "split", 1, counts, pres, units, params, bin_width_s=0.25 / 3)
    return tmp_path / "split", counts, pres, code


def test_splits_are_disjoint_and_complete(written):
    out, counts, pres, _ = written
    data = load_session(out, 1)
    ids = [set(s.presentation_id.tolist()) for s in (data.train, data.val, data.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == set(pres["presentation_id"])
    # labels travel with their presentations
    frame_of = dict(zip(pres["presentation_id"], pres["frame"], strict=True))
    for s in (data.train, data.val, data.test):
        assert [frame_of[p] for p in s.presentation_id] == data.frames[s.y].tolist()


def test_normalisation_uses_train_only_and_drops_train_constant_units(written):
    out, counts, pres, code = written
    data = load_session(out, 1)
    assert 5 not in data.unit_ids.tolist() and data.n_units == 5
    meta = json.loads((out / "meta.json").read_text())
    assert meta["zero_variance_units_dropped"] == [5]
    train = data.train.X.reshape(-1, data.n_units).astype(np.float64)
    np.testing.assert_allclose(data.mean, train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(data.std, train.std(axis=0), rtol=1e-6)
    everything = counts[:, :, :5].reshape(-1, 5).astype(np.float64)
    assert not np.allclose(data.mean, everything.mean(axis=0))


def test_graph_is_built_from_train_only(written):
    out, *_ = written
    data = load_session(out, 1)
    expected, _ = unit_graph(data.train.X, data.units, GraphParams(method="correlation", k=2))
    np.testing.assert_array_equal(data.edge_index, expected)
    all_x = np.concatenate([data.train.X, data.val.X, data.test.X])
    leaky, _ = unit_graph(all_x, data.units, GraphParams(method="correlation", k=2))
    assert not np.array_equal(leaky, expected)


def test_geometry_graph_links_neighbouring_channels():
    _, _, units = _session()
    edge_index, weight = unit_graph(np.zeros((2, 1, 6)), units, GraphParams(method="geometry", k=2))
    for src, dst in edge_index.T:
        assert abs(int(src) - int(dst)) <= 2
    assert (weight > 0).all() and (weight <= 1).all()


def test_select_restricts_units_bins_and_the_graph(written):
    out, *_ = written
    data = load_session(out, 1)
    same = data.select()
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(same, name).X, getattr(data, name).X)
    np.testing.assert_array_equal(same.edge_index, data.edge_index)
    view = data.select(np.array([3, 0]), bins=(1, 3))
    np.testing.assert_array_equal(view.train.X, data.train.X[:, 1:3][:, :, [3, 0]])
    np.testing.assert_array_equal(view.test.y, data.test.y)
    assert view.n_bins == 2 and view.unit_ids.tolist() == data.unit_ids[[3, 0]].tolist()
    np.testing.assert_array_equal(view.mean, data.mean[[3, 0]])
    assert view.units["unit_id"].tolist() == data.units["unit_id"].iloc[[3, 0]].tolist()
    # the graph keeps the edges between kept units, renumbered (3 -> 0, 0 -> 1)
    old = {(int(a), int(b)) for a, b in data.edge_index.T}
    new = {(int(a), int(b)) for a, b in view.edge_index.T}
    assert new == {({3: 0, 0: 1}[a], {3: 0, 0: 1}[b]) for a, b in old if {a, b} <= {0, 3}}
    with pytest.raises(ValueError, match="distinct column indices"):
        data.select(np.array([1, 1]))
    with pytest.raises(ValueError, match="bins must satisfy"):
        data.select(bins=(2, 2))
