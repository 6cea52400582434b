"""The thin command-line layer shared by every stage, and what a stage run cost.

`run_stage` removes the temporaries of killed runs before a stage starts, and records
the run's cost (wall time, CPU time, peak memory) in `costs/<stage>.json` after it
succeeds: outside every artifact, so the artifacts of a rerun keep their bytes.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from npdecode.errors import NpdecodeError
from npdecode.formats.costs import format_record, write_cost
from npdecode.formats.files import remove_stale_temporaries
from npdecode.params import Params, SessionId, load_params, session_id_of
from npdecode.paths import Layout
from npdecode.threads import configure_threads

# Set to 1 to get the traceback of an expected failure (bad data, full disk) as well.
DEBUG_ENV = "NPDECODE_DEBUG"
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_ALLOWED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# torch.save reports a failed write (a full disk) as a RuntimeError from its zip writer
TORCH_WRITE_FAILED = ("inline_container.cc", "PytorchStreamWriter failed")
log = logging.getLogger(__name__)


def run_stage(
    name: str,
    main: Callable[..., None],
    argv: list[str] | None = None,
    per_session: bool = True,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    dvc_stage: str | None = None,
) -> None:
    """Parse `[extra args] [session_id]`, load params.yaml, set threads and call `main`.

    Expected failures (bad params, bad data, a full disk, a folder it may not write) print
    one line, `npdecode <stage>: error: …`, and exit with status 2 (`NPDECODE_DEBUG=1` keeps
    the traceback too); anything else is a bug and keeps its traceback. `--help` prints the
    stage module's docstring: what the stage does. `dvc_stage` is the stage's name in
    dvc.yaml when it is not `name` (+ `_<model>`); its run cost goes to `costs/<stage>.json`.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m npdecode.stages.{name}",
        description=getattr(main, "__globals__", {}).get("__doc__"),  # the stage's docstring
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if extra is not None:
        extra(parser)
    if per_session:
        parser.add_argument(
            "session_id", type=session_id_of, help="session id (one of params `sessions`)"
        )
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
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        params = load_params(args.params)
        kwargs = {k: v for k, v in vars(args).items() if k not in ("params",)}
        if per_session:
            check_session(params, args.session_id)
            if args.session_id in params.reach_sessions:  # dvc.yaml's reach_* stages
                model = f"{args.model}-" if "model" in vars(args) else ""
                stage = f"reach_{name}@{model}{args.session_id}"
        threads, why = configure_threads(params.threads)
        log.info("threads for torch and BLAS: %d (%s)", threads, why)
        with measure() as cost:
            main(params, **kwargs)
        record = {"stage": stage, **cost, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_cost(Layout(args.root).cost(stage), record)
        log.info("cost: %s", format_record(record))
    except (NpdecodeError, OSError, RuntimeError) as err:
        message = expected_failure(err, args.root)
        if message is None or debug:
            raise
        _fail(name, message)
    except KeyboardInterrupt:
        if debug:
            raise
        # every writer removes its temporary on the way out (files.atomic_path), so the
        # outputs are the old ones or absent: no traceback to read, nothing to clean
        print(
            f"npdecode {name}: interrupted: no output was changed and no temporary left behind",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def expected_failure(err: Exception, root: Path) -> str | None:
    """The one-line message for a failure the user can fix; None for a bug (keep its traceback).

    NpdecodeError (bad params, bad data), a full disk or a folder the stage may not write
    (`storage_error`), and torch's report of a failed checkpoint write.
    """
    if isinstance(err, NpdecodeError):
        return str(err)
    if isinstance(err, OSError):
        return storage_error(err, root)
    if any(mark in str(err) for mark in TORCH_WRITE_FAILED):
        return (
            f"torch could not write a file ({str(err).strip()}): most often the disk is full "
            "or the folder is not writable (`df -h models`, `ls -ld models`); fix that, then rerun"
        )
    return None


def _fail(name: str, message: str) -> None:
    print(f"npdecode {name}: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def storage_error(err: OSError, root: Path) -> str | None:
    """One line for a full disk or a folder the stage may not write; None for anything else.

    Only these errno values (also when a library such as pyarrow or h5py reports them in
    its message alone) are the user's to fix; every other OSError is left to propagate with
    its traceback. The file is named when the error tells it (pyarrow names a file it
    cannot open, not one whose write failed).
    """
    code = err.errno if err.errno is not None else _errno_in_text(str(err))
    named = err.filename or _quoted_path(str(err))
    where = Path(named) if named else None
    if code in NO_SPACE:
        if where is None:
            place = f"while writing the stage's outputs under {root.resolve()}"
        else:
            folder = _existing(where.parent)
            free = shutil.disk_usage(folder).free / 2**20
            place = f"while writing {where} ({free:.0f} MiB free in {folder})"
        return (
            f"{os.strerror(code)} {place}: free space on that disk (`df -h data models "
            ".dvc/cache`; `dvc gc` drops old versions from the DVC cache), then rerun"
        )
    if code in NOT_ALLOWED:
        target = where or root.resolve()
        return (
            f"{os.strerror(code)}: {target}: this user may not write there; run from a copy "
            "of the project you can write to, or fix the folder's permissions "
            f"(`ls -ld {_existing(target.parent)}`)"
        )
    return None


def _quoted_path(message: str) -> str | None:
    """A path a library quoted in its message (pyarrow: "Failed to open local file 'x'")."""
    match = re.search(r"'([^']*/[^']*)'", message)
    return match.group(1) if match else None


def _errno_in_text(message: str) -> int | None:
    """The errno whose text (e.g. 'No space left on device') appears in `message`."""
    for code in (*NO_SPACE, *NOT_ALLOWED):
        if os.strerror(code).lower() in message.lower():
            return code
    return None


def _existing(path: Path) -> Path:
    """`path` or its nearest existing parent."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_session(params: Params, session_id: SessionId) -> None:
    """Refuse a session id that params `sessions` (or `reach_sessions`) does not list."""
    if session_id not in params.sessions and session_id not in params.reach_sessions:
        raise NpdecodeError(
            f"session {session_id} is not in params `sessions` {list(params.sessions)} "
            f"nor `reach_sessions` {list(params.reach_sessions)}"
        )


# --- run costs ----------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def children_cpu_s() -> float:
    """User + system CPU-s of the child processes this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measure() -> Iterator[dict[str, float]]:
    """Fill a dict with `wall_time_s`, `cpu_time_s` (user + system, this process and the
    worker processes it ended: `npdecode.decode.pool`) and `peak_rss_mb` (this process; and
    `peak_gpu_mb` on CUDA) when the block ends."""
    info: dict[str, float] = {}
    start = time.perf_counter()
    cpu = time.process_time() + children_cpu_s()
    try:
        yield info
    finally:
        info["wall_time_s"] = round(time.perf_counter() - start, 3)
        info["cpu_time_s"] = round(time.process_time() + children_cpu_s() - cpu, 3)
        info["peak_rss_mb"] = round(peak_rss_mb(), 1)
        cuda = _cuda_peak_mb()
        if cuda is not None:
            info["peak_gpu_mb"] = cuda


def _cuda_peak_mb() -> float | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
