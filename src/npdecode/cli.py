"""The thin command-line layer shared by every stage, and what a stage run cost.

`run_stage` removes the temporaries of killed runs before a stage starts, and records
the run's cost (wall time, CPU time, peak memory) in `costs/<stage>.json` after it
succeeds: outside every artifact, so the artifacts of a rerun keep their bytes.
"""

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
from npdecode.formats.costs import format_record, write_cost
from npdecode.formats.files import remove_stale_temporaries
from npdecode.params import Params, load_params
from npdecode.paths import Layout

log = logging.getLogger(__name__)


def run_stage(
    name: str,
    main: Callable[..., None],
    argv: list[str] | None = None,
    per_session: bool = True,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    dvc_stage: str | None = None,
) -> None:
    """Parse `[extra args] [session_id]`, load params.yaml and call `main`.

    Expected failures (bad params, bad data) print one line, `npdecode <stage>: error: …`,
    and exit with status 2; anything else is a bug and keeps its traceback.
    `dvc_stage` is the stage's name in dvc.yaml when it is not `name` (+ `_<model>`).
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
    stage = dvc_stage or name + (f"_{args.model}" if "model" in vars(args) else "")
    if per_session:
        stage += f"@{args.session_id}"
    for path in remove_stale_temporaries(args.root):
        log.info("removed %s, left by a killed run", path)
    try:
        params = load_params(args.params)
        kwargs = {k: v for k, v in vars(args).items() if k not in ("params",)}
        if per_session:
            check_session(params, args.session_id)
        with measure() as cost:
            main(params, **kwargs)
        record = {"stage": stage, **cost, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_cost(Layout(args.root).cost(stage), record)
        log.info("cost: %s", format_record(record))
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
    """Fill a dict with `wall_time_s`, `cpu_time_s` (user + system, this process) and
    `peak_rss_mb` (and `peak_gpu_mb` on CUDA) when the block ends."""
    info: dict[str, float] = {}
    start = time.perf_counter()
    cpu = time.process_time()
    try:
        yield info
    finally:
        info["wall_time_s"] = round(time.perf_counter() - start, 3)
        info["cpu_time_s"] = round(time.process_time() - cpu, 3)
        info["peak_rss_mb"] = round(peak_rss_mb(), 1)
        cuda = _cuda_peak_mb()
        if cuda is not None:
            info["peak_gpu_mb"] = cuda


def _cuda_peak_mb() -> float | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
