"""Put a fetched real session in place: `data/raw/session_<id>/` with its NWB and tables.

Shared by `fetch.source: allen` (which runs in the AllenSDK environment) and `local`, so
it imports only the standard library, numpy, pandas, tqdm and the h5py readers of `nwb.read`.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from npdecode.formats.files import (
    read_json,
    refuse_linked_folder,
    temporary_path,
    write_json,
)
from npdecode.formats.tables import write_tables
from npdecode.nwb.read import verify_session_nwb
from npdecode.paths import Layout

log = logging.getLogger(__name__)

COPY_CHUNK = 8 << 20
# os.link fails with these when a hardlink is impossible (other filesystem, not allowed)
NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


def link_or_copy(src: Path, dst: Path) -> str:
    """Hardlink `src` to `dst` when both are on one filesystem, else copy it.

    Returns:
        "hardlink" or "copy".
    """
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError as err:
        if err.errno not in NO_LINK:
            raise
    size = src.stat().st_size
    tty = sys.stderr.isatty()
    with (
        open(src, "rb") as fin,
        open(dst, "wb") as fout,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"copy {src.name}",
            mininterval=0.5 if tty else 30.0,
            file=sys.stderr,
        ) as bar,
    ):
        while chunk := fin.read(COPY_CHUNK):
            fout.write(chunk)
            bar.update(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())
    return "copy"


def install_session(
    layout: Layout,
    session_id: int,
    nwb: Path,
    tables: dict[str, pd.DataFrame],
    record: dict,
    stimulus: str,
) -> str:
    """Replace the session's raw folder by one holding `nwb` as `session_<id>.nwb`, tables, record.

    The new folder is built in the project's `.npdecode-tmp/` (the NWB hardlinked, or copied
    across filesystems; tables as `<name>.csv`; `record` as `fetch.json`), its NWB verified
    (`verify_session_nwb` for `stimulus`: a bad copy never replaces a good session) and
    swapped in with two renames. So `out_dir` is at every moment the old folder or the
    complete new one,
    nothing left over from an earlier fetch (e.g. a synthetic `truth.npz`) survives, and
    an NWB already in `out_dir` is never deleted before its replacement is in place.

    Returns:
        How the NWB was placed: "hardlink" or "copy".
    """
    out_dir = layout.raw_dir(session_id)
    refuse_linked_folder(out_dir)
    # outside data/raw/: a killed fetch leaves them where the next stage removes them
    tmp = temporary_path(out_dir, "new-")
    old = temporary_path(out_dir, "old-")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    try:
        tmp.mkdir(parents=True)
        how = link_or_copy(nwb, tmp / layout.nwb(session_id).name)
        verify_session_nwb(tmp / layout.nwb(session_id).name, session_id, stimulus)
        write_tables(tmp, tables)
        record_path = tmp / layout.fetch_record(session_id).name
        write_json(record_path, dict(sorted(record.items())))
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old.exists() and not out_dir.exists():
            os.replace(old, out_dir)  # put the previous folder back
        raise
    if old.exists():
        shutil.rmtree(old)
    log.info("session %d: placed %s (%s of %s)", session_id, out_dir, how, nwb)
    return how


def read_record(layout: Layout, session_id: int) -> dict:
    """The `fetch.json` record `install_session` wrote; {} if absent or unreadable (damaged:
    the caller then verifies the session's files from scratch)."""
    path = layout.fetch_record(session_id)
    try:
        return read_json(path) if path.exists() else {}
    except ValueError as err:
        log.warning("%s", err)
        return {}
