"""The thin command-line layer shared by every stage, and what a stage run cost."""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from npdecode.errors import NpdecodeError
from npdecode.params import Params, load_params


def run_stage(
    name: str,
    main: Callable[..., None],
    argv: list[str] | None = None,
    per_session: bool = True,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse `[extra args] [session_id]`, load params.yaml and call `main`.

    Expected failures (bad params, bad data) print one line, `npdecode <stage>: error: …`,
    and exit with status 2; anything else is a bug and keeps its traceback.
    """
    parser = argparse.ArgumentParser(prog=f"python -m npdecode.stages.{name}")
    if extra is not None:
        extra(parser)
    if per_session:
        parser.add_argument("session_id", type=int, help="session id (one of params `sessions`)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--root", type=Path, default=Path("."), help="project root")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {name}: %(message)s", datefmt="%H:%M:%S"
    )
    try:
        params = load_params(args.params)
        kwargs = {k: v for k, v in vars(args).items() if k not in ("params",)}
        if per_session:
            check_session(params, args.session_id)
        main(params, **kwargs)
    except NpdecodeError as err:
        print(f"npdecode {name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def check_session(params: Params, session_id: int) -> None:
    if session_id not in params.sessions:
        raise NpdecodeError(
            f"session {session_id} is not in params `sessions` {list(params.sessions)}"
        )


# --- run costs ----------------------------------------------------------------------


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
