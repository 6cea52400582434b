"""Download one large file over HTTP: timeouts, bounded retries with backoff, resume, verify.

Why not AllenSDK's own downloader (`HttpEngine.stream` + `write_from_stream`, 2.16.2):
its `requests.get(url, stream=True)` has no connect/read timeout, so a stalled
connection hangs forever (its 20-minute `timeout` is checked only after a chunk
arrives, and it also aborts a healthy 3 GB download on a slow link); it writes straight
to the final `session_<id>.nwb`, so an interrupted download leaves a truncated file where
a complete one is expected; it never checks the byte count; and its retry
(`fetch_tries`, no backoff) starts from zero.

Here bytes go to a `.part` file beside a small JSON sidecar (URL, total size). Every
request has a stall timeout; a failed try is retried after `backoff_s * 2**(k-1)` seconds,
resuming with an HTTP `Range` request from the bytes already on disk (the server may
ignore it; then the download restarts). A finished file must have exactly the announced
size and pass `verify` before the caller may move it to its final path. Runs in the
AllenSDK environment too: it imports only requests, tqdm and the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from npdecode.errors import DataError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# A server answering these will answer them again: no point retrying.
PERMANENT_STATUS = frozenset({400, 401, 403, 404, 405, 410})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: stall timeout per request, total tries, exponential backoff."""

    timeout_s: float = 120.0
    max_tries: int = 5
    backoff_s: float = 10.0
    backoff_max_s: float = 600.0

    def wait_s(self, tries_done: int) -> float:
        """Seconds to wait after the `tries_done`-th failed try."""
        return min(self.backoff_s * 2 ** (tries_done - 1), self.backoff_max_s)


class TransferError(Exception):
    """One try failed in a way that another try may fix (network, 5xx, short read)."""


class RestartError(TransferError):
    """The bytes on disk cannot be resumed (the server's offsets disagree): start over."""


def sidecar(part: Path) -> Path:
    """The JSON file beside `part` recording which URL and size the bytes belong to."""
    return part.with_name(part.name + ".json")


def discard(part: Path) -> None:
    """Remove a partial download and its sidecar."""
    for p in (part, sidecar(part)):
        p.unlink(missing_ok=True)


def download(
    url: str,
    part: Path,
    policy: RetryPolicy,
    verify: Callable[[Path, int], None] | None = None,
    what: str = "download",
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Download `url` into `part`, resuming bytes already there; return the file size.

    Args:
        url: http(s) URL of the file.
        part: where the bytes go (e.g. `data/raw/.partial/session_1.nwb.part`); it keeps
            a failed download's bytes so the next call resumes.
        policy: timeouts, tries and backoff.
        verify: called as `verify(part, size)` on a complete file; raises DataError when
            the content is bad, which discards the bytes and counts as a failed try.
        what: names the download in logs and errors (e.g. "session 715093703").
        session: requests session to use (a fresh one by default).
        sleep: the backoff wait (tests pass a no-op).

    Returns:
        The size in bytes of the complete, verified file at `part`.

    Raises:
        DataError: after `policy.max_tries` failed tries, on a permanent HTTP error
            (e.g. 404), or when `part` cannot be written; the message names `what`,
            the URL, the file and the last error.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    sess = session or requests.Session()
    last = ""
    for attempt in range(1, policy.max_tries + 1):
        try:
            size = _try_once(sess, url, part, policy.timeout_s, what)  # DataError: permanent
        except TransferError as err:
            last = str(err)
        else:
            try:
                if verify is not None:
                    verify(part, size)
                return size
            except DataError as err:
                discard(part)  # complete but wrong: resuming it cannot help
                last = f"the downloaded file failed verification: {err}"
        log.warning("%s: try %d/%d failed: %s", what, attempt, policy.max_tries, last)
        if attempt < policy.max_tries:
            wait = policy.wait_s(attempt)
            log.info("%s: retrying in %.0f s", what, wait)
            sleep(wait)
    kept = part.stat().st_size if part.exists() else 0
    tail = (
        f" The {kept} bytes received are kept in {part}; running fetch again resumes from there."
        if kept
        else ""
    )
    raise DataError(
        f"{what}: downloading {url} failed {policy.max_tries} times; "
        f"last error: {last.rstrip('.')}.{tail}"
    )


def _try_once(sess: requests.Session, url: str, part: Path, timeout_s: float, what: str) -> int:
    """One GET (ranged when bytes are already there) appended to `part`; returns its size."""
    have, known_total = _resume_state(part, url)
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with sess.get(url, stream=True, timeout=(timeout_s, timeout_s), headers=headers) as r:
            start, total = _plan(r, have, known_total, url, what)
            sidecar(part).write_text(json.dumps({"url": url, "size": total}))
            if start == total:
                return start
            _write_body(r, part, start, total, what)
    except RestartError:
        discard(part)
        raise
    except requests.RequestException as err:
        got = part.stat().st_size if part.exists() else 0
        raise TransferError(f"{type(err).__name__} with {got} bytes on disk: {err}"[:400]) from err
    got = part.stat().st_size
    if total is not None and got != total:
        raise TransferError(f"the connection ended after {got} of {total} bytes")
    return got


def _resume_state(part: Path, url: str) -> tuple[int, int | None]:
    """(bytes to keep, total size recorded by an earlier try) for `part`."""
    if not part.exists():
        discard(part)
        return 0, None
    try:
        meta = json.loads(sidecar(part).read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("url") != url:
        log.info("%s holds bytes of another or unknown URL: starting over", part)
        discard(part)
        return 0, None
    return part.stat().st_size, meta.get("size")


_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)")


def _plan(
    r: requests.Response, have: int, known_total: int | None, url: str, what: str
) -> tuple[int, int | None]:
    """From the response status: (offset the body starts at, total size or None)."""
    if r.status_code in PERMANENT_STATUS:
        raise DataError(f"{what}: {url} answered HTTP {r.status_code} {r.reason}")
    match = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
    total = int(match.group(2)) if match and match.group(2) != "*" else None
    if r.status_code == 416 and have:
        if total == have:
            return have, have  # the earlier try had already received everything
        raise RestartError(f"the server refused to resume at byte {have} (HTTP 416)")
    if r.status_code == 206 and have:
        start = int(match.group(1)) if match and match.group(1) else -1
        if start != have or (known_total is not None and total != known_total):
            raise RestartError(
                f"the server resumed at byte {start} of {total}, expected {have} of "
                f"{known_total}: starting over"
            )
        return have, total
    if r.status_code == 200:
        if have:
            log.info("%s: the server does not resume downloads: starting over", what)
        length = r.headers.get("Content-Length")
        return 0, int(length) if length and length.isdigit() else None
    raise TransferError(f"HTTP {r.status_code} {r.reason}")


def _write_body(r: requests.Response, part: Path, start: int, total: int | None, what: str) -> None:
    """Stream the response body into `part` from byte `start`, with a progress bar."""
    tty = sys.stderr.isatty()
    log.info(
        "%s: downloading %s (%s bytes%s)",
        what,
        r.url,
        "?" if total is None else total,
        f", resuming at byte {start}" if start else "",
    )
    bar = tqdm(
        total=total,
        initial=start,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=what,
        mininterval=0.5 if tty else 30.0,
        file=sys.stderr,
    )
    try:
        with open(part, "ab" if start else "wb") as fh:
            for chunk in r.iter_content(CHUNK_BYTES):
                fh.write(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        if isinstance(err, requests.RequestException):
            raise
        raise DataError(f"{what}: cannot write {part}: {err}") from err
    finally:
        bar.close()
