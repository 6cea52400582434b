"""Getting real macaque sessions: download from Zenodo with md5 checks, or find them on disk.

Download (`download_session`): the record's md5 of the file comes from
`macaque_sessions.KNOWN_MD5` where published, otherwise from the Zenodo API's file list
(`record_md5s`: `files[].key` and `files[].checksum = "md5:<hex>"`). Bytes go through
`npdecode.sources.download` (stall timeouts, retries with backoff, resume with HTTP Range);
the complete file's md5 is checked before it is moved onto `<dest>` in one rename, so a
failed or corrupt download never leaves a file where a session is expected.

Local (`find_mat`, `find_file`): `<name>.mat` (or an NLB session's NWB) under a folder, by a breadth-first walk bounded in depth
and in folders visited, following no symlinked folder (a link cycle cannot loop it).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

import requests

from npdecode.errors import DataError
from npdecode.sources import download
from npdecode.sources.macaque_sessions import (
    FILE_URL,
    KNOWN_MD5,
    RECORD,
    RECORD_API,
    record_session,
)

MAX_DEPTH = 6
MAX_FOLDERS = 10_000


def record_md5s(api_url: str, timeout_s: float = 60.0) -> dict[str, str]:
    """{session name: md5} of every `.mat` the Zenodo record lists."""
    try:
        r = requests.get(api_url, timeout=timeout_s)
        r.raise_for_status()
        files = r.json()["files"]
        out = {}
        for f in files:
            key, checksum = f["key"], f["checksum"]
            if key.endswith(".mat") and checksum.startswith("md5:"):
                out[key.removesuffix(".mat")] = checksum.removeprefix("md5:")
        return out
    except (requests.RequestException, ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot read the file list of Zenodo record {api_url}: {err}") from err


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_check(name: str, expected: str) -> Callable[[Path, int], None]:
    """A `download.download` verifier: DataError naming the session when the md5 differs."""

    def verify(part: Path, size: int) -> None:
        got = md5sum(part)
        if got != expected:
            raise DataError(
                f"session {name}: {part.name}: md5 {got} does not match the record's {expected}"
            )

    return verify


def download_session(
    name: str,
    dest: Path,
    policy: download.RetryPolicy,
    file_url: str = FILE_URL,
    api_url: str = RECORD_API,
    record: int = RECORD,
    md5: str | None = None,
) -> Path:
    """Download session `name`'s `.mat` to `dest` (verified, placed atomically); return it.

    An existing `dest` with the right md5 is kept. `file_url` / `api_url` are format
    strings with `{record}` and `{name}` (tests point them at a local server).
    """
    record_session(name)  # ValueError for a name the record does not have
    expected = md5 or KNOWN_MD5.get(name) or _listed_md5(name, api_url.format(record=record))
    if dest.exists() and md5sum(dest) == expected:
        return dest
    part = dest.parent / ".partial" / f"{dest.name}.part"
    download.download(
        file_url.format(record=record, name=name),
        part,
        policy,
        verify=md5_check(name, expected),
        what=f"session {name}",
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    download.sidecar(part).unlink(missing_ok=True)
    return dest


def _listed_md5(name: str, api_url: str) -> str:
    listed = record_md5s(api_url)
    if name not in listed:
        raise DataError(f"session {name}: Zenodo record {api_url} lists no {name}.mat")
    return listed[name]


def find_mat(root: Path, name: str, max_depth: int = MAX_DEPTH) -> Path:
    """The one `<name>.mat` under `root` (breadth first, at most `max_depth` folders deep).

    Raises:
        DataError: none found, several found, or the walk exceeded MAX_FOLDERS folders.
    """
    return find_file(root, f"{name}.mat", name, max_depth)


def find_file(root: Path, target: str, name: str, max_depth: int = MAX_DEPTH) -> Path:
    """The one file called `target` under `root`, for session `name` (as `find_mat`)."""
    found: list[Path] = []
    queue: deque[tuple[Path, int]] = deque([(Path(root), 0)])
    seen = 0
    while queue:
        folder, depth = queue.popleft()
        seen += 1
        if seen > MAX_FOLDERS:
            raise DataError(f"session {name}: more than {MAX_FOLDERS} folders under {root}: "
                            "point fetch.local at the folder holding the .mat files")  # fmt: skip
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folder: nothing of ours there
        for e in entries:
            if e.name == target and e.is_file():
                found.append(Path(e.path))
            elif depth < max_depth and e.is_dir(follow_symlinks=False):
                queue.append((Path(e.path), depth + 1))
    if not found:
        raise DataError(f"session {name}: no {target} under {root} (searched {max_depth} levels)")
    if len(found) > 1:
        raise DataError(f"session {name}: {len(found)} copies of {target} under {root}: "
                        f"{', '.join(map(str, sorted(found)))}")  # fmt: skip
    return found[0]
