"""Few-shot draws in worker processes (npdecode.decode.pool): outputs in the order asked,
a failed draw's error reaches the stage, a dead worker gives a clear one-line error."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from npdecode.cli import measure
from npdecode.decode.fewshot import Draw
from npdecode.decode.pool import DrawPool
from npdecode.errors import NpdecodeError


def _echo(context, idx, draw):  # a worker's draw: the context, the shots and the draw
    if draw.repeat == 99:
        raise ValueError(f"draw k={draw.k} failed")
    if draw.repeat == 98:
        os._exit(1)  # a worker killed mid-draw (the OOM killer does this)
    return np.array([context, draw.k, draw.repeat, idx.sum()])


def _groups(ks, repeats):
    return [[(np.arange(k), Draw(k, r, 1000 * k + r)) for r in repeats] for k in ks]


def test_every_k_gets_its_own_draws_back_in_order():
    groups = _groups((1, 3, 10), range(3))
    with DrawPool(_echo, 7, workers=2, threads=1) as pool:
        pool.start(groups)
        for group in groups:
            out = pool(group)
            assert [o.tolist() for o in out] == [[7, d.k, d.repeat, idx.sum()] for idx, d in group]


def test_a_failed_draw_raises_its_own_error():
    groups = _groups((1, 3), (0, 99))
    with pytest.raises(ValueError, match="draw k=1 failed"), DrawPool(_echo, 0, 2, 1) as pool:
        pool.start(groups)
        for group in groups:
            pool(group)


def test_a_dead_worker_is_a_clear_error():
    groups = _groups((1,), (0, 98))
    with pytest.raises(NpdecodeError, match="worker process died.*params `workers`"):
        with DrawPool(_echo, 0, 2, 1) as pool:
            pool.start(groups)
            pool(groups[0])


def test_a_group_before_start_is_a_bug():
    with (
        pytest.raises(RuntimeError, match="start was not called"),
        DrawPool(_echo, 0, 2, 1) as pool,
    ):
        pool(_groups((1,), (0,))[0])


def test_a_stage_cost_counts_its_worker_processes():
    burn = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    with measure() as cost:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert cost["cpu_time_s"] >= 0.5  # the child's CPU, which this process never spent
