"""The few-shot protocol: what one draw's learner may see (npdecode.decode.fewshot)."""

import numpy as np
import pytest

from npdecode.decode.fewshot import protocol_detail, shot_statistics, shot_view, strict_epochs
from npdecode.params import FewshotParams, FitParams, GraphParams, TrainParams
from npdecode.preprocess import train_statistics, unit_graph
from tests.models.conftest import ring_graph, tiny_session


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (24, 5, 7)).astype(np.uint16)
    counts[:, :, 3] = 0  # unit 3 is silent ...
    counts[20, 0, 3] = 4  # ... except once, in a presentation that is no shot below
    return tiny_session(counts, np.repeat(np.arange(4), 6), 4, ring_graph(7))


def test_strict_view_sees_its_shots_and_nothing_else(data):
    idx = np.array([0, 1, 6, 7, 12, 13, 18, 19])
    view = shot_view(data, idx, "strict", GraphParams(k=3))
    np.testing.assert_array_equal(view.train.X, data.train.X[idx])
    np.testing.assert_array_equal(view.train.y, data.train.y[idx])
    assert len(view.val) == 0 and view.val.X.shape[1:] == data.val.X.shape[1:]
    assert view.test is data.test  # scored on the whole test split
    _, mean, sd = train_statistics(data.train.X[idx])
    np.testing.assert_allclose(view.mean, mean, rtol=1e-6)
    varying = sd > 0
    np.testing.assert_allclose(view.std[varying], sd[varying], rtol=1e-6)
    edge_index, edge_weight = unit_graph(data.train.X[idx], data.units, GraphParams(k=3))
    np.testing.assert_array_equal(view.edge_index, edge_index)
    np.testing.assert_array_equal(view.edge_weight, edge_weight)
    # without graph params (every model but ST-GAT) the graph is left alone
    assert shot_view(data, idx, "strict").edge_index is data.edge_index


def test_a_unit_constant_in_the_shots_is_zero_everywhere(data):
    idx = np.array([0, 6, 12, 18])
    mean, std = shot_statistics(data.train.X[idx])
    assert np.isinf(std[3]) and np.isfinite(np.delete(std, 3)).all()
    view = shot_view(data, idx, "strict")
    z = view.normalise(data.train.X)  # presentation 20 fires unit 3: still 0 for this learner
    assert (z[:, :, 3] == 0).all() and np.isfinite(z).all()


def test_transductive_view_keeps_the_split_stage_statistics(data):
    idx = np.array([0, 6, 12, 18])
    view = shot_view(data, idx, "transductive", GraphParams())
    assert len(view.train) == 4
    assert view.val is data.val and view.mean is data.mean and view.std is data.std
    assert view.edge_index is data.edge_index


def test_strict_budget_is_steps_in_whole_epochs_within_the_models_cap():
    fs = FewshotParams(steps=600)
    assert strict_epochs(200, fs, 1 * 119, 64) == 200  # 2 steps an epoch: 300, capped
    assert strict_epochs(200, fs, 3 * 119, 64) == 100  # 6 steps an epoch
    assert strict_epochs(200, fs, 10 * 119, 64) == 32  # 19 steps: 608 >= 600
    assert strict_epochs(12, fs, 10 * 119, 64) == 12  # ST-GAT's own cap
    assert strict_epochs(200, FewshotParams(steps=1), 5, 64) == 1


def test_protocol_detail_says_what_the_learner_saw():
    train = TrainParams(device="cpu")
    fs = FewshotParams(steps=100, shots=(1, 10))
    strict = protocol_detail("stgat", fs, train, train.stgat.fit, 119)
    assert "100 optimiser steps" in strict["stopping"] and "k=1: 12, k=10: 6" in strict["stopping"]
    assert "shots" in strict["unit_graph"]
    assert strict["draws"] == "each draw trained on its own"  # auto on a CPU
    on = protocol_detail("lstm", FewshotParams(batch_draws="on"), train, FitParams(), 119)
    assert on["draws"].startswith("the draws of each k trained as one batch")
    old = protocol_detail("lstm", FewshotParams(protocol="transductive"), train, FitParams(), 119)
    assert "validation split" in old["labels"] and "whole training split" in old["normalisation"]
    assert "draws" not in old
    logreg = protocol_detail("logreg", FewshotParams(protocol="transductive"), train, None, 119)
    assert logreg["labels"] == "the shots"


def test_each_strict_draw_reports_its_progress(caplog):
    # a strict draw trains with no validation pass and no epoch log: one line per draw is
    # the progress a long few-shot stage shows between its per-k lines
    from npdecode.decode import fewshot

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 6)
    counts = rng.poisson(1.0 + 3.0 * (y[:, None, None] == np.arange(7) % 4), (24, 5, 7))
    data = tiny_session(counts.astype(np.uint16), y, 4, ring_graph(7))
    views = [shot_view(data, np.array([d, 6 + d, 12 + d, 18 + d]), "strict") for d in range(2)]
    fs = FewshotParams(batch_draws="off", steps=2)
    with caplog.at_level("INFO", logger="npdecode.decode.fewshot"):
        fewshot.fit_on_shots("lstm", views, TrainParams(device="cpu", batch_size=4), fs, [0, 1])
    lines = [r.getMessage() for r in caplog.records if "of this k trained" in r.getMessage()]
    assert lines == [
        "draw 1 / 2 of this k trained (4 shots)",
        "draw 2 / 2 of this k trained (4 shots)",
    ]
