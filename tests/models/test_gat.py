"""The dense GATv2 layer equals PyG's GATv2Conv (the reference) on small graphs."""

from __future__ import annotations

import pytest
import torch

from npdecode.models import gat
from npdecode.models.gat import DenseGATv2, neighbour_table

from .conftest import ring_graph


def irregular_graph() -> tuple[torch.Tensor, torch.Tensor]:
    """5 nodes with in-degrees 2, 1, 3, 0, 1 (node 3 hears only itself)."""
    edge_index = torch.tensor([[1, 2, 0, 0, 1, 4, 2], [0, 0, 1, 2, 2, 2, 4]])
    return edge_index, torch.tensor([0.5, -0.4, 0.9, 0.1, 0.7, 0.3, -0.2])


def with_loops(edge_index: torch.Tensor, weight: torch.Tensor, n: int):
    loops = torch.arange(n)
    return (
        torch.cat([edge_index, torch.stack([loops, loops])], 1),
        torch.cat([weight, torch.ones(n)])[:, None],
    )


def pyg_twin(layer: DenseGATv2, in_channels: int, edge_dim: bool):
    from torch_geometric.nn import GATv2Conv

    ref = GATv2Conv(
        in_channels,
        layer.out_channels,
        heads=layer.heads,
        concat=False,
        add_self_loops=False,
        edge_dim=1 if edge_dim else None,
    )
    ref.load_state_dict(layer.state_dict())
    return ref


def test_neighbour_table_of_a_regular_and_an_irregular_graph() -> None:
    edge_index, weight = ring_graph(4, k=2)
    nbr, mask, w = neighbour_table(torch.from_numpy(edge_index), 4, torch.from_numpy(weight))
    assert mask is None  # every node has k in-edges
    assert nbr.tolist() == [[1, 2, 0], [2, 3, 1], [3, 0, 2], [0, 1, 3]]
    assert w[:, 2].tolist() == [1.0] * 4
    torch.testing.assert_close(w[:, :2].reshape(-1), torch.from_numpy(weight))

    nbr, mask, w = neighbour_table(*irregular_graph()[:1], 5, irregular_graph()[1])
    assert nbr.tolist() == [[1, 2, 0, 0], [0, 1, 1, 1], [0, 1, 4, 2], [3, 3, 3, 3], [2, 4, 4, 4]]
    assert mask.tolist() == [
        [True, True, False, True],
        [True, False, False, True],
        [True, True, True, True],
        [False, False, False, True],
        [True, False, False, True],
    ]
    assert w[3].tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("graph", ["ring", "irregular"])
@pytest.mark.parametrize(("heads", "edge_dim"), [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_equals_pyg_gatv2conv(
    graph: str, heads: int, edge_dim: bool, chunk: int, monkeypatch
) -> None:
    # chunk: target units per chunk on the CPU (1 and 2 split the graph across chunks)
    monkeypatch.setattr(gat, "_chunk", lambda *_: chunk)
    n, copies, f_in, c = (6, 3, 5, 4) if graph == "ring" else (5, 3, 5, 4)
    if graph == "ring":
        ei, w = (torch.from_numpy(a) for a in ring_graph(n, k=2))
    else:
        ei, w = irregular_graph()
    torch.manual_seed(0)
    layer = DenseGATv2(f_in, c, heads=heads, edge_dim=edge_dim).double()
    ref = pyg_twin(layer, f_in, edge_dim).double()
    x = torch.randn(copies, n, f_in, dtype=torch.float64, requires_grad=True)
    nbr, mask, table = neighbour_table(ei, n, w.double())
    out = layer(x, nbr, mask, table if edge_dim else None)  # (copies, n, c)

    big_ei, big_w = with_loops(ei, w, n)  # the copies as one disconnected graph, as before
    offsets = torch.arange(copies) * n
    big_ei = (big_ei[:, None, :] + offsets[None, :, None]).reshape(2, -1)
    big_w = big_w.repeat(copies, 1).double()
    xr = x.detach().clone().requires_grad_(True)
    expect = ref(xr.reshape(-1, f_in), big_ei, edge_attr=big_w if edge_dim else None)
    torch.testing.assert_close(out.reshape(-1, c), expect)

    grad = torch.randn_like(out)
    out.backward(grad)
    expect.backward(grad.reshape(-1, c))
    torch.testing.assert_close(x.grad, xr.grad)
    theirs = dict(ref.named_parameters())
    for name, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, msg=f"gradient of {name}")


@pytest.mark.parametrize("edge_dim", [False, True])
def test_same_initialisation_as_pyg(edge_dim: bool) -> None:
    from torch_geometric.nn import GATv2Conv

    torch.manual_seed(3)
    ours = DenseGATv2(4, 4, heads=2, edge_dim=edge_dim)
    after_ours = torch.rand(1)
    torch.manual_seed(3)
    ref = GATv2Conv(
        4, 4, heads=2, concat=False, add_self_loops=False, edge_dim=1 if edge_dim else None
    )
    assert torch.equal(torch.rand(1), after_ours)  # the same number of random draws
    theirs = ref.state_dict()
    assert ours.state_dict().keys() == theirs.keys()
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs[name]), name


def test_padded_slots_get_no_attention() -> None:
    torch.manual_seed(0)
    layer = DenseGATv2(3, 2)
    ei, _ = irregular_graph()
    nbr, mask, _ = neighbour_table(ei, 5)
    x = torch.randn(2, 5, 3)
    out = layer(x, nbr, mask)
    # node 3 hears only itself: its output is its own message, whatever the others do
    own = layer.lin_l(x[:, 3]) + layer.bias
    torch.testing.assert_close(out[:, 3], own)
    y = x.clone()
    y[:, [0, 1, 2, 4]] += 5.0
    torch.testing.assert_close(layer(y, nbr, mask)[:, 3], out[:, 3])


def test_edge_weights_required_when_built_with_edge_dim() -> None:
    layer = DenseGATv2(3, 2, edge_dim=True)
    nbr, mask, _ = neighbour_table(*irregular_graph()[:1], 5)
    with pytest.raises(ValueError, match="edge weights"):
        layer(torch.randn(1, 5, 3), nbr, mask)
