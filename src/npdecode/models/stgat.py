"""ST-GAT decoder: graph attention across units within each time bin, then an LSTM over bins.

Every (presentation, bin) is one copy of the unit graph (kNN on train-split correlation or
on probe geometry, from the split stage). A node starts as a per-unit affine embedding of
its normalised count, so units keep their identity; GATv2 layers (`models.gat.DenseGATv2`:
PyG's GATv2Conv computed as dense gathers over a neighbour table, on all B*T copies at once)
mix each unit with its neighbours, with a residual connection; a linear readout of all U
node vectors summarises each bin, an LSTM reads the T bin summaries, and its last hidden
state feeds the head. `gat_layers: 0` is the same decoder without the graph.

One model, two heads: the head is a linear layer of `n_classes` outputs, and the task
(`npdecode.decode.task`) decides what they are: class logits under cross-entropy (an
Allen image), or a z-scored continuous target under MSE (a reaching session's 2-D cursor
velocity, `npdecode.reaching.decoders`, with `n_classes` = the task's output size).

Cost scales with B*T*U*(k+1)*heads*hidden: every one of the B*T*U*(k+1) (copy, unit,
neighbour) pairs takes ~20 elementwise operations of width heads*hidden forward and
backward, where the LSTM's whole input layer is one matrix product. On a CPU that makes an
epoch tens of times an LSTM epoch at 2,000 units, and the attention buys no accuracy on the
synthetic sessions (docs/cost.md, "ST-GAT"), so dvc.yaml runs it only when params
`optional_models` lists it. On a GPU the same kernels run as a handful of large launches.
"""

from __future__ import annotations

import torch
from torch import nn

from npdecode.models.dropout import Dropout
from npdecode.models.gat import DenseGATv2, neighbour_table
from npdecode.models.lstm import lstm_fp32
from npdecode.params import STGATParams


class STGAT(nn.Module):
    """x (B, T, U) normalised counts -> outputs (B, C) (logits, or a regression target), on
    a fixed unit graph."""

    # Not trainable as a vmapped batch of draws (`npdecode.decode.batched`): the dense GATv2's
    # neighbour table has a data-dependent width and its attention is a custom autograd
    # Function, neither of which torch.func.vmap can trace. Its draws train one by one.
    batchable = False

    edge_index: torch.Tensor  # buffers: the unit graph, fitted on the train split
    edge_weight: torch.Tensor

    def __init__(
        self, p: STGATParams, n_units: int, n_bins: int, n_classes: int, n_edges: int
    ) -> None:
        super().__init__()
        self.p = p  # architecture from params `train.stgat`
        # n_edges: edges of the unit graph (buffers, restored from the checkpoint)
        self.dims = {
            "n_units": n_units,
            "n_bins": n_bins,
            "n_classes": n_classes,
            "n_edges": n_edges,
        }
        self.n_units = n_units
        u, h = n_units, p.hidden
        self.register_buffer("edge_index", torch.zeros(2, n_edges, dtype=torch.long))
        self.register_buffer("edge_weight", torch.zeros(n_edges))
        self.input_dropout = Dropout(p.input_dropout)
        self.scale = nn.Parameter(torch.randn(u, h) / h**0.5)  # per-unit count -> node vector
        self.embed = nn.Parameter(0.1 * torch.randn(u, h))  # unit identity
        self.gats = nn.ModuleList(
            DenseGATv2(h, h, heads=p.heads, edge_dim=p.edge_weight) for _ in range(p.gat_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(h) for _ in range(p.gat_layers))
        self.dropout = Dropout(p.dropout)
        self.readout = nn.Linear(u * h, p.readout)
        self.lstm = nn.LSTM(p.readout, p.lstm_hidden, batch_first=True)
        self.head = nn.Linear(p.lstm_hidden, n_classes)

    def set_graph(self, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> None:
        """Install the unit graph: edge_index (2, E) as (source, target), edge_weight (E,)."""
        if edge_index.shape != self.edge_index.shape or edge_weight.shape != self.edge_weight.shape:
            raise ValueError(
                f"graph has {tuple(edge_index.shape)} edges / {tuple(edge_weight.shape)} weights, "
                f"the model was built for {tuple(self.edge_index.shape)}"
            )
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= self.n_units):
            raise ValueError(f"edge_index refers to nodes outside 0..{self.n_units - 1}")
        self.edge_index.copy_(edge_index)
        self.edge_weight.copy_(edge_weight)

    def neighbours(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The unit graph as a neighbour table with self-loops (`models.gat.neighbour_table`)."""
        weight = self.edge_weight if self.p.edge_weight else None
        return neighbour_table(self.edge_index, self.n_units, weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, u = x.shape
        h = self.input_dropout(x)[..., None] * self.scale + self.embed  # (B, T, U) -> (B, T, U, H)
        nodes = h.reshape(b * t, u, -1)  # (B, T, U, H) -> (B*T, U, H): one graph copy per bin
        nbr, mask, weights = self.neighbours()
        for gat, norm in zip(self.gats, self.norms, strict=True):
            # pre-norm residual: the count itself reaches the readout unsquashed
            msg = gat(norm(nodes), nbr, mask, weights)  # (B*T, U, H)
            nodes = nodes + self.dropout(nn.functional.elu(msg))
        per_bin = nodes.reshape(b, t, -1)  # (B*T, U, H) -> (B, T, U*H)
        z = self.readout(self.dropout(per_bin))  # (B, T, R)
        return self.head(self.dropout(lstm_fp32(self.lstm, z)))  # (B, H) -> (B, C)
