"""ST-GAT specifics: the unit graph comes from the training split only and travels with the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from npdecode.decode.session import build_for_session
from npdecode.formats.checkpoint import load_checkpoint, save_checkpoint
from npdecode.formats.split import load_session
from npdecode.params import params_from_dict
from npdecode.preprocess import knn_edges
from tests.helpers import write_split_folder

from .conftest import make_model, ring_graph


def four_node_graph() -> tuple[np.ndarray, np.ndarray]:
    edge_index = np.array([[1, 2, 0, 3, 0], [0, 0, 1, 2, 3]], dtype=np.int64)
    return edge_index, np.array([0.5, 0.4, 0.5, 0.9, 0.1], dtype=np.float32)


def test_four_node_graph_shapes_and_gradients() -> None:
    model = make_model("stgat", n_units=4, graph=four_node_graph(), edge_weight=True).train()
    out = model(torch.randn(2, 5, 4))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_neighbour_table_has_the_graph_and_self_loops() -> None:
    model = make_model("stgat", n_units=4, graph=four_node_graph(), edge_weight=True)
    nbr, mask, weights = model.neighbours()
    real = {(int(nbr[u, d]), u) for u in range(4) for d in range(nbr.shape[1]) if mask[u, d]}
    edges = {(int(s), int(t)) for s, t in four_node_graph()[0].T}
    assert real == edges | {(u, u) for u in range(4)}
    assert weights[mask].sum().item() == pytest.approx(four_node_graph()[1].sum() + 4)


def test_units_only_talk_along_edges() -> None:
    # unit 3 receives only from unit 0: perturbing unit 1 changes node 3 nowhere in layer 1
    model = make_model("stgat", n_units=4, graph=four_node_graph()).eval()
    x = torch.randn(1, 5, 4)
    y = x.clone()
    y[..., 1] += 3.0
    nodes = []
    for inp in (x, y):
        h = inp[..., None] * model.scale + model.embed  # (1, 5, 4, H)
        nodes.append(model.gats[0](h.reshape(5, 4, -1), *model.neighbours()))  # (5, 4, H)
    torch.testing.assert_close(nodes[0][:, 3], nodes[1][:, 3])
    assert not torch.allclose(nodes[0][:, 0], nodes[1][:, 0])


def test_set_graph_rejects_bad_graphs() -> None:
    model = make_model("stgat", n_units=4, graph=four_node_graph())
    with pytest.raises(ValueError, match="built for"):
        model.set_graph(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3))
    bad = torch.tensor([[0, 1, 2, 3, 9], [0, 0, 1, 2, 3]])
    with pytest.raises(ValueError, match="outside"):
        model.set_graph(bad, torch.zeros(5))


def correlated_counts(rng: np.random.Generator, groups: list[list[int]], n: int) -> np.ndarray:
    """(n, 4 bins, 6 units) Poisson counts; units in one group share a latent rate."""
    counts = np.zeros((n, 4, 6))
    for group in groups:
        latent = rng.gamma(2.0, 2.0, (n, 4))
        for u in group:
            counts[:, :, u] = rng.poisson(latent)
    return counts.astype(np.uint16)


def test_graph_comes_from_the_training_split_only(tmp_path) -> None:
    rng = np.random.default_rng(0)
    per_class, n_classes = 20, 2
    n_train = 14  # time split: the 14 earliest of 20 per image train (0.1 val, 0.2 test)
    early = [[0, 1, 2], [3, 4, 5]]  # correlation structure of the training presentations
    late = [[0, 3], [1, 4], [2, 5]]  # and a different one later (val + test)
    blocks, frames, starts = [], [], []
    for c in range(n_classes):
        blocks += [correlated_counts(rng, early, n_train), correlated_counts(rng, late, 6)]
        frames += [c] * per_class
        starts += list(c * 1000.0 + np.arange(per_class))
    counts = np.concatenate(blocks)
    pres = pd.DataFrame(
        {"presentation_id": np.arange(len(frames)), "frame": frames, "start_time": starts}
    )
    units = pd.DataFrame({"unit_id": np.arange(10, 16)})
    params = params_from_dict({"split": {"graph": {"method": "correlation", "k": 2}}})
    write_split_folder(tmp_path / "split", 5, counts, pres, units, params, bin_width_s=0.025)
    data = load_session(tmp_path / "split", 5)

    is_train = np.isin(np.arange(len(counts)), np.r_[0:14, 20:34])
    assert np.array_equal(np.sort(data.train.presentation_id), np.flatnonzero(is_train))
    expect, _ = knn_edges(np.corrcoef(counts[is_train].reshape(-1, 6), rowvar=False), 2)
    leaky, _ = knn_edges(np.corrcoef(counts[~is_train].reshape(-1, 6), rowvar=False), 2)
    for u in range(6):  # a graph fitted on val + test would link each unit to its late partner
        partner = (u + 3) % 6
        assert partner in leaky[0, leaky[1] == u]
        assert partner not in expect[0, expect[1] == u]

    model = build_for_session("stgat", data, params.train)
    np.testing.assert_array_equal(model.edge_index.numpy(), expect)
    for u in range(6):  # each unit listens to its own training group
        group = next(g for g in early if u in g)
        assert set(expect[0, expect[1] == u]) == set(group) - {u}

    save_checkpoint(tmp_path / "stgat.pt", "stgat", model, data)
    rebuilt, _ = load_checkpoint(tmp_path / "stgat.pt")
    np.testing.assert_array_equal(rebuilt.edge_index.numpy(), expect)
    torch.testing.assert_close(rebuilt.edge_weight, torch.from_numpy(data.edge_weight))


def test_ring_graph_helper_has_k_in_edges_per_unit() -> None:
    edge_index, _ = ring_graph(7, k=2)
    assert np.array_equal(np.bincount(edge_index[1]), np.full(7, 2))
    assert not (edge_index[0] == edge_index[1]).any()


def test_without_graph_attention_the_graph_is_ignored() -> None:
    # gat_layers: 0 is the ablation: the same decoder with no message passing between units
    ring = make_model("stgat", gat_layers=0).eval()
    other = make_model("stgat", gat_layers=0, graph=(np.array([[1], [0]]), np.ones(1, np.float32)))
    assert not any(name.startswith("gats") for name, _ in ring.named_parameters())
    x = torch.randn(2, 5, 7)
    torch.testing.assert_close(ring(x), other.eval()(x))
