"""`fetch.source: local`: session NWB files already on disk (`fetch.path`).

Two layouts are recognised, anywhere below `fetch.path`:
- AllenSDK's cache: `session_<id>/session_<id>.nwb` (or a bare `session_<id>.nwb`);
- DANDI (000021/000022): `sub-<specimen>/sub-<specimen>_ses-<id>.nwb`; the per-probe
  LFP files (`..._probe-<probe>_ecephys.nwb`) are skipped.
A file is taken for a session only if its NWB `identifier` is that session id.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from npdecode.errors import DataError
from npdecode.nwb import read as nwb_read
from npdecode.paths import Layout
from npdecode.sources.install import install_session

log = logging.getLogger(__name__)

# A walk of more folders than this is a wrong fetch.path (`/`, a home folder), not a cache.
MAX_FOLDERS = 100_000
PROGRESS_EVERY = 5_000
_NAME = re.compile(r"^(?:session_(\d+)|.*?(?:^|_)ses-(\d+)(?:_.*)?)\.nwb$")


@dataclass(frozen=True)
class LocalFile:
    session_id: int
    path: Path


def session_id_from_name(name: str) -> int | None:
    """The session id a file name announces (`session_<id>.nwb`, `*_ses-<id>*.nwb`), or None.

    Per-probe LFP files (`probe_<id>_lfp.nwb`, `..._probe-<id>...`) announce none.
    """
    if "probe-" in name or name.startswith("probe_"):
        return None
    match = _NAME.match(name)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def scan(folder: Path, max_folders: int = MAX_FOLDERS) -> list[LocalFile]:
    """Every NWB below `folder` whose name announces a session id, sorted by id then path.

    Links are followed (a DANDI download is often a tree of links), but each real folder
    is entered once: a link back to a folder above (or to itself) is skipped, so the walk
    ends. It stops with a DataError after `max_folders` folders (`fetch.path: /`) and logs
    a progress line every `PROGRESS_EVERY` folders.
    """
    if not folder.is_dir():
        raise DataError(f"fetch.path {folder} is not a folder")
    found = []
    seen: set[tuple[int, int]] = set()
    n_folders = 0
    for dirpath, dirnames, names in os.walk(folder, followlinks=True):
        here = os.stat(dirpath)
        if (here.st_dev, here.st_ino) in seen:
            dirnames[:] = []  # entered before through another link: do not walk it again
            continue
        seen.add((here.st_dev, here.st_ino))
        n_folders += 1
        if n_folders > max_folders:
            raise DataError(
                f"fetch.path {folder}: more than {max_folders} folders below it; point "
                "fetch.path at the folder that holds the NWB files"
            )
        if n_folders % PROGRESS_EVERY == 0:
            log.info("looking for NWB files below %s: %d folders so far", folder, n_folders)
        for name in names:
            sid = session_id_from_name(name)
            if sid is not None:
                found.append(LocalFile(sid, Path(dirpath) / name))
    log.info("looked in %d folders below %s: %d session files", n_folders, folder, len(found))
    return sorted(found, key=lambda f: (f.session_id, str(f.path)))


def find_session_file(folder: Path, session_id: int) -> Path:
    """The one NWB below `folder` that is session `session_id`, by name and by `identifier`.

    Raises:
        DataError: no file is named for the session, a file named for it holds another
            session, or several distinct files hold it.
    """
    files = scan(folder)
    named = [f.path for f in files if f.session_id == session_id]
    if not named:
        others = sorted({f.session_id for f in files})
        raise DataError(
            f"session {session_id}: no NWB file for it below fetch.path {folder} "
            f"(looked for session_{session_id}.nwb and *_ses-{session_id}.nwb in every folder "
            f"below it, links followed once each; found files of sessions {others[:10]})"
        )
    for path in named:
        identifier = nwb_read.read_identifier(path, session_id)
        if identifier != str(session_id):
            raise DataError(
                f"session {session_id}: {path} is named for session {session_id} but its NWB "
                f"identifier is {identifier!r}: refusing a mixed-up file"
            )
    distinct = {(p.stat().st_dev, p.stat().st_ino): p for p in named}
    if len(distinct) > 1:
        raise DataError(
            f"session {session_id}: several files below {folder} hold it: "
            f"{', '.join(map(str, named))}; point fetch.path at a folder with one of them"
        )
    return named[0]


def fetch_local(folder: Path, session_id: int, stimulus: str, layout: Layout) -> dict:
    """Verify the session's file below `folder`, link or copy it into data/raw/, write tables."""
    src = find_session_file(folder, session_id)
    summary = nwb_read.verify_session_nwb(src, session_id, stimulus)
    tables = nwb_read.metadata_tables(src, session_id)
    record = {
        "session_id": session_id,
        "source": "local",
        "origin": os.path.relpath(src, folder),
        "session_type": summary.session_type,
        **{
            k: v
            for k, v in vars(summary).items()
            if k not in ("path", "session_id", "session_type")
        },
    }
    record["probe_ids"] = list(record["probe_ids"])
    install_session(layout, session_id, src, tables, record, stimulus)
    return record
