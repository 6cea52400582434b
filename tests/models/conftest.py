"""Tiny inputs for the decoder tests: B=2, T=5, U=7, and a seeded separable problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from npdecode.formats.split import SessionData, Split
from npdecode.models import build_model

DEEP = ("lstm", "transformer", "stgat")
# small but complete architectures, so tests run in seconds
SMALL = {
    "lstm": {"hidden": 16},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "lstm_hidden": 16},
    "stgat": {"hidden": 4, "heads": 2, "readout": 16, "lstm_hidden": 16},
}


def ring_graph(n_units: int, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each unit receives edges from its k following units (mod U): ((2, U*k), (U*k,))."""
    dst = np.repeat(np.arange(n_units), k)
    src = (dst + np.tile(np.arange(1, k + 1), n_units)) % n_units
    return np.stack([src, dst]).astype(np.int64), np.linspace(
        0.1, 1.0, n_units * k, dtype=np.float32
    )


def make_model(
    name: str,
    n_units: int = 7,
    n_bins: int = 5,
    n_classes: int = 3,
    seed: int = 0,
    graph: tuple[np.ndarray, np.ndarray] | None = None,
    **overrides: object,
) -> nn.Module:
    """Model `name` with SMALL settings, seeded; stgat gets `graph` (default a ring)."""
    dims: dict = {"n_units": n_units, "n_bins": n_bins, "n_classes": n_classes}
    params = {**SMALL[name], **overrides}
    if name == "stgat":
        edge_index, edge_weight = graph if graph is not None else ring_graph(n_units)
        dims["n_edges"] = edge_index.shape[1]
    torch.manual_seed(seed)
    model = build_model(name, dims, params)
    if name == "stgat":
        model.set_graph(torch.from_numpy(edge_index), torch.from_numpy(edge_weight))
    return model


def separable(
    n_classes: int = 4, per_class: int = 6, n_bins: int = 5, n_units: int = 7, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised-looking inputs (P, T, U) float32 whose class sits in a unit × bin pattern."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(0, 1.5, (n_classes, n_bins, n_units))
    y = np.repeat(np.arange(n_classes), per_class)
    x = protos[y] + rng.normal(0, 0.3, (len(y), n_bins, n_units))
    return x.astype(np.float32), y.astype(np.int64)


def tiny_session(
    x_counts: np.ndarray, y: np.ndarray, n_classes: int, graph: tuple[np.ndarray, np.ndarray]
) -> SessionData:
    """A SessionData whose three splits are all (x_counts, y) — for checkpoint tests."""
    split = Split(x_counts, y, np.arange(len(y)))
    flat = x_counts.reshape(-1, x_counts.shape[2]).astype(np.float64)
    return SessionData(
        session_id=1,
        train=split,
        val=split,
        test=split,
        frames=np.arange(n_classes, dtype=np.int64) - 1,
        unit_ids=np.arange(100, 100 + x_counts.shape[2], dtype=np.int64),
        mean=flat.mean(0).astype(np.float32),
        std=np.maximum(flat.std(0), 1e-3).astype(np.float32),
        edge_index=graph[0],
        edge_weight=graph[1],
        units=pd.DataFrame({"unit_id": np.arange(100, 100 + x_counts.shape[2])}),
        n_bins=x_counts.shape[1],
        bin_width_s=0.025,
    )


@pytest.fixture(params=DEEP)
def name(request: pytest.FixtureRequest) -> str:
    return request.param
