"""The field's own reader reads our twin's `.mat`: NeuroBench's primate-reaching loader.

`neurobench.datasets.primate_reaching.PrimateReaching` (NeuroBench 2.3.0) is the
installable reader of these files (brainsets' `odoherty_sabes` extraction is not shipped in
its wheel). It reads `spikes` by reference, `cursor_pos`, `target_pos` and `t` with h5py,
marks each 4 ms sample with a spike on each channel (all rows of `spikes` merged), and
differentiates `cursor_pos` into its velocity labels. Installed with `pip install
--no-deps neurobench` (the loader needs only torch, numpy, scipy, h5py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from npdecode.mat.read import read_mat

primate_reaching = pytest.importorskip("neurobench.datasets.primate_reaching")


@pytest.mark.parametrize("name", ["indy_20160622_01", "loco_20170210_03"])
def test_neurobench_reads_the_twin(macaque_twin_files: dict[str, Path], name: str) -> None:
    path = macaque_twin_files[name]
    ds = primate_reaching.PrimateReaching(
        file_path=str(path.parent), filename=name, num_steps=1, bin_width=0.004,
        download=False,
    )  # fmt: skip
    ours = read_mat(path, name, units="crossings")
    n_chan, n_t = len(ours.chan_names), ours.t.size
    assert tuple(ds.samples.shape) == (n_chan, n_t)
    # its velocity labels: torch.gradient of cursor_pos per sample = ours * 4 ms
    vel = np.gradient(ours.cursor_pos, axis=0)  # (T, 2) per sample
    np.testing.assert_allclose(ds.labels.numpy().T, vel, rtol=1e-5, atol=1e-4)
    # its spike marks: sample k has a spike on channel c iff ours has one in
    # [t[k-1], t[k]) (NeuroBench shifts each histogram bin to its upper edge)
    t = ours.t
    edges = np.concatenate([[t[0] - 0.004], t])
    want = np.zeros((n_chan, n_t), dtype=bool)
    for c, train in enumerate(ours.spike_times):
        hist, _ = np.histogram(train, bins=edges[:-1])  # bins [t_{k-2}, t_{k-1})... as theirs
        idx = np.flatnonzero(hist) + 1
        want[c, idx[idx < n_t]] = True
    got = ds.samples.numpy() > 0
    assert got.sum() > 0.2 * n_t * n_chan * 0.004 * 10  # channels fire ~10-40 Hz
    np.testing.assert_array_equal(got, want)
