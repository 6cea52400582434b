"""What a stage run cost: wall time, peak RAM and, on CUDA, peak GPU memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@contextmanager
def measure() -> Iterator[dict[str, float]]:
    """Fill a dict with `wall_time_s` and `peak_rss_mb` when the block ends."""
    info: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield info
    finally:
        info["wall_time_s"] = round(time.perf_counter() - start, 3)
        info["peak_rss_mb"] = round(peak_rss_mb(), 1)
        cuda = _cuda_peak_mb()
        if cuda is not None:
            info["peak_gpu_mb"] = cuda


def _cuda_peak_mb() -> float | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
