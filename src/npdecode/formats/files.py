"""Atomic writers and checked readers: an artifact is complete at its final path or absent,
and a damaged one is refused on read, never read as good data.

Temporaries live in the project's `.npdecode-tmp/` (beside dvc.yaml, git-ignored), never
inside a declared output or dependency folder, and carry the host and PID of their writer,
so `remove_stale_temporaries` can drop those of killed processes when a stage starts.

Every reader checks what its format can check: parquet page checksums, the zip CRC of each
npz member, and for JSON a sha256 of its content stored in the file (`HASH_KEY`). A failed
check raises `CorruptError` naming the file and how to restore or rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import zipfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from npdecode.errors import CorruptError, DataError
from npdecode.paths import producing_stage

TMP_DIR = ".npdecode-tmp"
HASH_KEY = "sha256"
_SEP = "~"  # temporary names: <host>~<pid>~<target path, '/' as '%'>


# --- temporaries --------------------------------------------------------------------------


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def project_root(path: str | Path) -> Path | None:
    """The nearest folder above `path` holding a dvc.yaml (the project), or None."""
    for parent in Path(path).absolute().parents:
        if (parent / "dvc.yaml").is_file():
            return parent
    return None


def temp_dir(root: str | Path) -> Path:
    """The project's folder for temporaries (git-ignored; never a DVC output or dependency)."""
    return Path(root) / TMP_DIR


def temporary_path(path: str | Path, tag: str = "") -> Path:
    """Where `path` is built before it is renamed into place (`tag` tells several apart).

    In a project: `.npdecode-tmp/<host>~<pid>~<tag><path relative to the project>`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = project_root(path)
    if root is not None:
        folder = temp_dir(root)
        folder.mkdir(exist_ok=True)
        # a rename works only within one filesystem (data/ may be a link to another disk)
        if os.stat(folder).st_dev == os.stat(path.parent).st_dev:
            rel = path.absolute().relative_to(root).as_posix().replace("/", "%")
            return folder / f"{_host()}{_SEP}{os.getpid()}{_SEP}{tag}{rel}"
    # outside a project (or across filesystems): a hidden sibling; it keeps the suffix,
    # which some writers (pynwb) check
    return path.with_name(f".{_host()}{_SEP}{os.getpid()}{_SEP}{tag}{path.name}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _is_stale(name: str) -> bool:
    parts = name.lstrip(".").split(_SEP, 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    # another machine's process (a shared file system) cannot be checked: leave it
    return host == _host() and pid != os.getpid() and not _alive(pid)


def remove_stale_temporaries(root: str | Path) -> list[Path]:
    """Remove the temporaries left in `root`'s `.npdecode-tmp/` by processes that died.

    A temporary of a live process (another stage running now) is kept. Returns what was
    removed.
    """
    folder = temp_dir(root)
    removed = []
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if _is_stale(entry.name):
                _remove(entry)
                removed.append(entry)
    return removed


def _remove_stale_siblings(path: Path) -> None:
    """Hidden sibling temporaries of `path` left by dead processes (outside a project)."""
    if path.parent.is_dir():
        for entry in path.parent.glob(f".*{_SEP}*{_SEP}*{path.name}"):
            if _is_stale(entry.name):
                _remove(entry)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; rename it onto `path` only if the block succeeds.

    Works for files and directories. On any exception the temporary is removed and
    `path` is left as it was, so no stage ever leaves a half-written artifact; a process
    killed outright leaves its temporary in `.npdecode-tmp/`, outside every output, for
    the next stage to remove.
    """
    path = Path(path)
    refuse_linked_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    _remove_stale_siblings(path)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def refuse_linked_folder(path: str | Path) -> None:
    """Raise DataError if the output `path` is a symbolic link to a folder.

    Writing would go through the link into a folder elsewhere (outside the project,
    perhaps someone else's), so nothing is written; the link and its target are left
    as they are. A link to a file (DVC's `symlink` cache type) is fine: the new file
    replaces the link itself, never its target.
    """
    path = Path(path)
    if path.is_symlink() and path.is_dir():
        raise DataError(
            f"{path} is a symbolic link to the folder {os.path.realpath(path)}: refusing to "
            "write through it (that folder is left untouched); remove the link "
            f"(`rm {path}`, which keeps its target) and rerun, or link the whole data/ "
            "folder to another disk instead"
        )


# The project's folders of stage outputs: each may itself be a link to another disk, but
# nothing below them may be a link to a folder (`linked_folders`).
ARTIFACT_FOLDERS = ("data", "models", "metrics", "predictions", "scores", "results", "plots")


def linked_folders(root: str | Path) -> list[Path]:
    """Symbolic links to folders anywhere below the project's `ARTIFACT_FOLDERS`, sorted.

    Such a link makes an output (or the folder of one) live elsewhere: DVC makes every
    file below a persisted output writable before its stage starts, following the link,
    and a stage would write through it. The walk does not follow links, so it ends.
    """
    found = []
    for name in ARTIFACT_FOLDERS:
        top = Path(root) / name
        for dirpath, dirnames, _ in os.walk(top):  # top itself may be a link: os.walk enters it
            found += [Path(dirpath) / d for d in dirnames if (Path(dirpath) / d).is_symlink()]
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# --- damaged files --------------------------------------------------------------------------


def corrupt(path: str | Path, what: str) -> CorruptError:
    """The error for a damaged artifact: names it, and how to restore or rebuild it."""
    stage = producing_stage(path) or "<the stage that writes it>"
    return CorruptError(
        f"{path} is damaged ({what}): restore it with `dvc checkout --force {path}`, "
        f"or rebuild it with `dvc repro -f {stage}`"
    )


# --- JSON -----------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def _digest(obj: Any) -> str:
    return hashlib.sha256(_dumps(obj).encode()).hexdigest()


def write_json(path: str | Path, obj: Any, checksum: bool = True) -> None:
    """Write `obj` as indented JSON (numpy scalars and arrays converted), atomically.

    With `checksum`, a dict gets `HASH_KEY`: the sha256 of its content, which `read_json`
    verifies. Files no stage reads (DVC's metrics summaries) go without it.
    """
    data = _jsonable(obj)
    if checksum:
        if not isinstance(data, dict):
            raise TypeError(f"{path}: a checksummed JSON must hold an object, not {type(obj)}")
        data = {k: v for k, v in data.items() if k != HASH_KEY}
        data[HASH_KEY] = _digest(data)
    text = _dumps(data)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path, checksum: bool = True) -> Any:
    """Read a JSON file; with `checksum`, verify the hash `write_json` stored (and drop it)."""
    try:
        data = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise corrupt(path, f"not valid JSON: {err}") from err
    if not checksum:
        return data
    if not isinstance(data, dict) or not isinstance(data.get(HASH_KEY), str):
        raise corrupt(path, f"no {HASH_KEY!r} content hash")
    stored = data.pop(HASH_KEY)
    if _digest(data) != stored:
        raise corrupt(path, "its content does not match its sha256")
    return data


# --- parquet --------------------------------------------------------------------------------


def write_parquet(df: pd.DataFrame, path: str | Path, **options: object) -> None:
    """Write a DataFrame to parquet (pyarrow; zstd unless `options` say otherwise) atomically.

    Page checksums are written so `read_parquet` detects damaged pages.
    """
    options = {"compression": "zstd", "write_page_checksum": True, **options}
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False, **options)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """A parquet file written by `write_parquet`, its page checksums verified."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        return pd.read_parquet(path, engine="pyarrow", page_checksum_verification=True)
    except (OSError, ValueError) as err:  # pyarrow: ArrowInvalid (ValueError), IOError
        raise corrupt(path, f"parquet: {err}") from err


# --- CSV ------------------------------------------------------------------------------------


def write_csv(df: pd.DataFrame, path: str | Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index)


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV written by `write_csv` (FileNotFoundError if absent, CorruptError if unreadable)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise corrupt(path, f"CSV: {err}") from err


# --- npz ------------------------------------------------------------------------------------


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays to an uncompressed .npz at `path` (not atomic: see `write_npz`).

    The format of `np.savez` (one `<name>.npy` member each, zip64, a fixed 1980 timestamp,
    so the same arrays give the same bytes), but each array goes to the zip straight from
    its own memory (as a whole, or block by block along its first axis when only those are
    contiguous): `np.savez` copies it through 16 MiB `tobytes` chunks first, which cost
    more than the write itself for a stage's counts.
    """
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; npz outputs must not pickle")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            arr = np.asarray(value)
            header = np.lib.format.header_data_from_array_1_0(arr)
            header["fortran_order"] = False  # written in C order, whatever the memory order
            with zf.open(zipfile.ZipInfo(f"{name}.npy"), "w", force_zip64=True) as fh:
                try:
                    np.lib.format.write_array_header_1_0(fh, header)
                except ValueError:  # a header too long for format 1.0 (thousands of dims)
                    np.lib.format.write_array_header_2_0(fh, header)
                if arr.size:
                    blocks = [arr] if arr.flags.c_contiguous or arr.ndim == 0 else arr
                    for block in blocks:
                        block = np.ascontiguousarray(block)  # no copy if it is already
                        fh.write(block.reshape(-1).view(np.uint8).data)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays to an uncompressed .npz atomically (no pickled objects allowed)."""
    with atomic_path(path) as tmp:
        save_npz(tmp, **arrays)


def read_npz(path: str | Path, names: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz, each member read to its end so zip's CRC-32 is verified.

    (`np.load` checks the CRC only when a read happens to reach a member's end: a damaged
    shape in a header can make it stop short and return wrong data without a word.)
    `names`, when given, are exactly the members the file must hold: a damaged zip
    directory can hide a member without any other sign.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename.removesuffix(".npy")
                with zf.open(info) as fh:
                    out[name] = np.lib.format.read_array(fh, allow_pickle=False)
                    if fh.read():  # reaching the end makes zipfile compare the CRC
                        raise ValueError(f"member {name!r} is longer than its array")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        raise corrupt(path, f"npz: {err}") from err
    if names is not None and set(out) != set(names):
        raise corrupt(path, f"npz members {sorted(out)}, expected {sorted(names)}")
    return out
