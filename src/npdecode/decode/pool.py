"""Few-shot draws trained side by side in worker processes on a CPU (params `workers`).

A draw's learner depends only on its shots and its seed, and each trains at the stage's
`threads` (1 by default), so training the draws of a curve in separate processes gives
the same bytes as training them one after another, in a fraction of the wall time on a
machine with several cores. More torch threads in one process cannot do this: two threads
do not give repeatable bytes (docs/experiments.md). On CUDA the draws of a k train as one
batch instead (`fewshot.batch_draws`, `npdecode.decode.batched`).

Hand-written over `concurrent.futures` because a worker needs the session once, not once
per draw: it arrives with the worker's start (`initargs`) and stays in `_CONTEXT`, the one
piece of state a worker process keeps.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

import numpy as np

from npdecode.errors import NpdecodeError

if TYPE_CHECKING:  # fewshot imports this module
    from npdecode.decode.fewshot import Draw

log = logging.getLogger(__name__)

# fit_draw(context, shot indices, draw) -> the draw's test outputs (a module-level function:
# a worker finds it by name)
FitDraw = Callable[[Any, np.ndarray, "Draw"], np.ndarray]
_CONTEXT: dict[str, Any] = {}  # in a worker process: what it was started with


def _start_worker(threads: int, context: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    _CONTEXT["context"] = context


def _run(fit_draw: FitDraw, idx: np.ndarray, draw: Draw) -> np.ndarray:
    return fit_draw(_CONTEXT["context"], idx, draw)


class DrawPool:
    """A `fewshot_curve` fit_group that trains every draw of the curve in `workers`
    processes: `start` (fewshot_curve's `start`) submits the draws of all k at once, so
    the workers never wait for a k to finish; each call returns one k's outputs in order.

    Use as a context manager: leaving it stops the workers (and drops draws not started
    when a draw failed).
    """

    def __init__(self, fit_draw: FitDraw, context: Any, workers: int, threads: int) -> None:
        self.fit_draw, self.context, self.workers, self.threads = (
            fit_draw,
            context,
            workers,
            threads,
        )
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[tuple[int, int], Future] = {}  # by (k, repeat)
        self._done = self._total = 0

    def __enter__(self) -> DrawPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if self._pool is None:
            return
        if kind is not None:  # a failed draw, Ctrl-C: stop the draws under way too
            # (ProcessPoolExecutor has no public call for this before Python 3.14)
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def start(self, groups: Sequence[list[tuple[np.ndarray, Draw]]]) -> None:
        """Submit every draw of the curve (all k), largest k first: the longest draws
        start early and the short ones fill the end."""
        draws = [item for group in groups for item in group]
        # spawn, not fork: a forked child of a process that has run torch's OpenMP can hang
        workers = max(1, min(self.workers, len(draws)))
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.threads, self.context),
        )
        for idx, draw in sorted(draws, key=lambda item: -len(item[0])):
            future = self._pool.submit(_run, self.fit_draw, idx, draw)
            future.add_done_callback(self._progress)
            self._futures[draw.k, draw.repeat] = future
        self._total = len(draws)
        log.info("%d draws on %d worker processes", len(draws), workers)

    def _progress(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self._done += 1
            log.info("draws trained %d / %d", self._done, self._total)

    def __call__(self, group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        """The test outputs of one k's draws, in the group's order."""
        if self._pool is None:
            raise RuntimeError("DrawPool.start was not called before the first group")
        try:
            return [self._futures[draw.k, draw.repeat].result() for _, draw in group]
        except BrokenProcessPool as err:
            raise NpdecodeError(
                "a few-shot worker process died (killed, or out of memory: each worker holds "
                "the session; set params `workers` lower, e.g. 1)"
            ) from err
