"""GATv2 over many copies of one small-degree graph, as dense gathers: no scatter, no PyG.

ST-GAT runs graph attention over the same unit graph in every (presentation, bin): B*T
copies of a graph whose nodes each receive from a handful of others (the kNN graph gives
every unit exactly k in-edges, plus its self-loop). PyG's `GATv2Conv` treats those copies
as one big disconnected graph and works edge by edge through scatter operations, with
every per-edge intermediate of shape (copies*edges, heads, channels) kept for backward.
Here the graph is a neighbour table `nbr` (U, D) (D = largest in-degree, padded and
masked), and attention is a gather `x[nbr]` plus a softmax over the D slots, computed
unit-chunk by unit-chunk with a hand-written backward that recomputes what it needs, so
memory holds the attention weights (U, D, heads, copies) and no per-edge feature tensor.

`DenseGATv2` computes exactly what `torch_geometric.nn.GATv2Conv(in, out, heads,
concat=False, add_self_loops=False, edge_dim=1 or None)` computes on the same graph, with
the same parameter names, shapes and initialisation (tests/models/test_gat.py compares the
two), so checkpoints of either load into the other.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

NEGATIVE_SLOPE = 0.2  # GATv2Conv's default LeakyReLU slope
# elements of one chunk's (units, D, heads, channels, copies) tensors on the CPU: small
# enough to stay in cache (measured: the whole graph at once is ~2x slower at 2,000 units)
CPU_CHUNK_ELEMENTS = 2**20


def neighbour_table(
    edge_index: torch.Tensor, n_nodes: int, edge_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Incoming neighbours of every node, with a self-loop in the last slot.

    Args:
        edge_index: (2, E) as (source, target), node ids in 0..n_nodes-1.
        n_nodes: number of nodes U.
        edge_weight: (E,) or None; self-loops get weight 1.

    Returns:
        nbr (U, D) int64 source ids (D = largest in-degree + 1; edges in their input order,
        padding points at the node itself), mask (U, D) bool of real slots or None when
        every node has the same in-degree, and the weights (U, D) (0 in padding) or None.
    """
    dev = edge_index.device
    src, dst = edge_index[0], edge_index[1]
    deg = torch.bincount(dst, minlength=n_nodes)  # (U,)
    width = int(deg.max()) if dst.numel() else 0
    order = torch.argsort(dst, stable=True)  # edges grouped by target, input order kept
    first = torch.cumsum(deg, 0) - deg  # (U,) position of each target's first edge
    slot = torch.arange(dst.numel(), device=dev) - first[dst[order]]  # (E,) slot within row
    nodes = torch.arange(n_nodes, device=dev)
    nbr = nodes[:, None].repeat(1, width + 1)  # (U, D): padding and the last slot = self
    nbr[dst[order], slot] = src[order]
    regular = bool((deg == width).all())
    mask = None
    if not regular:
        mask = torch.arange(width + 1, device=dev)[None, :] < deg[:, None]  # (U, D)
        mask[:, width] = True  # the self-loop
    weights = None
    if edge_weight is not None:
        weights = torch.zeros(n_nodes, width + 1, dtype=edge_weight.dtype, device=dev)
        weights[dst[order], slot] = edge_weight[order]
        weights[:, width] = 1.0
    return nbr, mask, weights


class _GATv2Attention(torch.autograd.Function):
    """out[u, h, c, g] = sum_d a[u, d, h, g] * xl[nbr[u, d], h, c, g], with GATv2's
    a = softmax_d(att[h] . leaky_relu(xl[nbr[u, d]] + xr[u] + edge[u, d]))."""

    @staticmethod
    def forward(
        ctx: Any,
        xl: torch.Tensor,  # (U, H, C, G) source-side features
        xr: torch.Tensor,  # (U, H, C, G) target-side features
        att: torch.Tensor,  # (H, C)
        edge: torch.Tensor | None,  # (U, D, H, C) per-edge features, or None
        nbr: torch.Tensor,  # (U, D)
        mask: torch.Tensor | None,  # (U, D) real slots, or None (all real)
        chunk: int,  # target units per chunk
    ) -> torch.Tensor:
        u, h, c, g = xl.shape
        d = nbr.shape[1]
        out = xl.new_empty(u, h, c, g)
        alpha = xl.new_empty(u, d, h, g)
        attv = att.view(1, 1, h, c, 1)
        for u0 in range(0, u, chunk):
            u1 = min(u, u0 + chunk)
            z, xj = _pre_activation(xl, xr, edge, nbr, u0, u1)  # (Uc, D, H, C, G)
            s = (F.leaky_relu(z, NEGATIVE_SLOPE) * attv).sum(3)  # (Uc, D, H, G)
            if mask is not None:
                s.masked_fill_(~mask[u0:u1, :, None, None], float("-inf"))
            a = torch.softmax(s, dim=1)
            alpha[u0:u1] = a
            out[u0:u1] = (a[:, :, :, None] * xj).sum(1)  # (Uc, H, C, G)
        ctx.save_for_backward(xl, xr, att, edge, nbr, alpha)
        ctx.chunk = chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xl, xr, att, edge, nbr, alpha = ctx.saved_tensors
        u, h, c, g = xl.shape
        grad_xl = torch.zeros_like(xl)
        grad_xr = torch.empty_like(xr)
        grad_att = torch.zeros_like(att)
        grad_edge = None if edge is None else torch.empty_like(edge)
        attv = att.view(1, 1, h, c, 1)
        for u0 in range(0, u, ctx.chunk):
            u1 = min(u, u0 + ctx.chunk)
            z, xj = _pre_activation(xl, xr, edge, nbr, u0, u1)  # recomputed, (Uc, D, H, C, G)
            a = alpha[u0:u1, :, :, None]  # (Uc, D, H, 1, G)
            go = grad_out[u0:u1, None]  # (Uc, 1, H, C, G)
            grad_a = (go * xj).sum(3, keepdim=True)  # (Uc, D, H, 1, G)
            grad_s = a * (grad_a - (a * grad_a).sum(1, keepdim=True))  # softmax backward
            grad_att += torch.einsum(
                "udhcg,udhg->hc", F.leaky_relu(z, NEGATIVE_SLOPE), grad_s[:, :, :, 0]
            )
            grad_z = torch.ops.aten.leaky_relu_backward(grad_s * attv, z, NEGATIVE_SLOPE, False)
            grad_xr[u0:u1] = grad_z.sum(1)
            if grad_edge is not None:
                grad_edge[u0:u1] = grad_z.sum(4)
            grad_z += a * go  # the message path: out = sum_d a * xj
            grad_xl.index_add_(0, nbr[u0:u1].reshape(-1), grad_z.view(-1, h, c, g))
        return grad_xl, grad_xr, grad_att, grad_edge, None, None, None


def _pre_activation(
    xl: torch.Tensor,
    xr: torch.Tensor,
    edge: torch.Tensor | None,
    nbr: torch.Tensor,
    u0: int,
    u1: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(xl[nbr] + xr + edge, xl[nbr]) for targets u0..u1-1, both (Uc, D, H, C, G)."""
    _, h, c, g = xl.shape
    xj = xl.index_select(0, nbr[u0:u1].reshape(-1)).view(u1 - u0, -1, h, c, g)
    z = xj + xr[u0:u1, None]
    if edge is not None:
        z += edge[u0:u1, ..., None]
    return z, xj


class DenseGATv2(nn.Module):
    """GATv2 (heads averaged, no self-loops added) over `copies` copies of one graph.

    Same parameters as `torch_geometric.nn.GATv2Conv(in_channels, out_channels, heads,
    concat=False, add_self_loops=False, edge_dim=1 if edge_dim else None)`.
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, edge_dim: bool = False):
        super().__init__()
        self.heads, self.out_channels = heads, out_channels
        hc = heads * out_channels
        self.lin_l = nn.Linear(in_channels, hc)
        self.lin_r = nn.Linear(in_channels, hc)
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        self.lin_edge = nn.Linear(1, hc, bias=False) if edge_dim else None
        self.bias = nn.Parameter(torch.empty(out_channels))
        # GATv2Conv's initialisation, random draw for random draw: its Linear layers draw
        # once when built and again in reset_parameters (glorot weights, uniform biases)
        self._reset_linears()
        _glorot(self.att)
        nn.init.zeros_(self.bias)

    def _reset_linears(self) -> None:
        for lin in (self.lin_l, self.lin_r, self.lin_edge):
            if lin is None:
                continue
            _glorot(lin.weight)
            if lin.bias is not None:
                bound = 1.0 / math.sqrt(lin.in_features)
                nn.init.uniform_(lin.bias, -bound, bound)

    def forward(
        self,
        x: torch.Tensor,
        nbr: torch.Tensor,
        mask: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (G, U, F) node features of G graph copies -> (G, U, out_channels).

        nbr, mask, weights: from `neighbour_table` (weights only if built with edge_dim).
        """
        g, u, _ = x.shape
        h, c = self.heads, self.out_channels
        # unit-major, copies innermost: gathers copy whole rows, ops run along G
        xl = _full(self.lin_l(x)).view(g, u, h, c).permute(1, 2, 3, 0).contiguous()
        xr = _full(self.lin_r(x)).view(g, u, h, c).permute(1, 2, 3, 0).contiguous()
        edge = None
        if self.lin_edge is not None:
            if weights is None:
                raise ValueError("this layer was built with edge_dim: pass the edge weights")
            edge = _full(weights[..., None] * self.lin_edge.weight[:, 0]).view(u, -1, h, c)
        chunk = _chunk(xl.device, u, nbr.shape[1] * h * c * g)
        out = _GATv2Attention.apply(
            xl, xr, _full(self.att.view(h, c)), edge, nbr, mask, chunk
        )  # (U, H, C, G)
        return out.mean(1).permute(2, 0, 1) + self.bias  # (U, C, G) -> (G, U, C)


def _full(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32 if it is in half precision (autocast): the softmax needs the range."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _chunk(device: torch.device, n_units: int, per_unit: int) -> int:
    """Target units per chunk: all of them on a GPU, a cache-sized share on the CPU."""
    if device.type != "cpu":
        return n_units
    return max(1, min(n_units, CPU_CHUNK_ELEMENTS // max(per_unit, 1)))


def _glorot(w: torch.Tensor) -> None:
    """PyG's glorot: uniform in +-sqrt(6 / (fan_in + fan_out)) over the last two dims."""
    bound = math.sqrt(6.0 / (w.size(-2) + w.size(-1)))
    with torch.no_grad():
        w.uniform_(-bound, bound)
