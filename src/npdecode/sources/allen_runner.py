"""`fetch.source: allen`: the side that runs in the separate AllenSDK environment.

AllenSDK 2.16.2 needs numpy < 2 and pandas 1.5, so it lives in its own venv
(scripts/setup_allen_env.sh) and the fetch stage runs this module there
(`npdecode.sources.allen`). It imports only what that venv has (`ALLEN_ENV_PACKAGES`)
and npdecode modules that do the same (download, install, nwb.read, formats.files,
formats.tables, paths, errors) - never torch, pynwb 4 or dvc.

What AllenSDK does here, and what it does not:
- `EcephysProjectCache` with its manifest at `data/raw/manifest.json` lists the sessions
  and gives the sessions/probes/channels/units tables (its global CSVs in `data/raw/` are
  a cache; git ignores them). Its RMA queries go through `TimedRmaEngine`: the same
  queries with a stall timeout and retries with backoff (AllenSDK's own have neither).
  Its CSV cache writes are made atomic.
- The session's NWB link comes from AllenSDK's own warehouse query
  (`EcephysProjectWarehouseApi.get_session_data`), but the bytes are downloaded by
  `npdecode.sources.download` into `data/raw/.partial/` and verified before they are placed at
  AllenSDK's cache path `data/raw/session_<id>/session_<id>.nwb`. AllenSDK's cached-read
  path (`get_session_data`) is never used on that file: when a cached NWB fails to read
  it downloads again and, on failure, deletes the file.

Commands (each writes a JSON result to `--result`: the answer, or {"error": message}):
    python -m npdecode.sources.allen_runner sessions --root . --result out.json
    python -m npdecode.sources.allen_runner fetch 715093703 --root . --stimulus natural_scenes --result out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests
from allensdk.brain_observatory.ecephys import ecephys_project_cache as epc
from allensdk.brain_observatory.ecephys.ecephys_project_api import EcephysProjectWarehouseApi
from allensdk.brain_observatory.ecephys.ecephys_project_api.rma_engine import (
    RmaEngine,
    RmaRequestError,
)

from npdecode.errors import DataError, NpdecodeError
from npdecode.formats.files import atomic_path
from npdecode.nwb import read as nwb_read
from npdecode.paths import Layout
from npdecode.sources import download
from npdecode.sources.install import install_session, read_record

log = logging.getLogger("npdecode.sources.allen_runner")
# What the AllenSDK environment has (numpy < 2, pandas 1.5, pynwb 2.8): this module and every
# npdecode module it imports may import only these and the standard library
# (tests/sources/test_allen_imports.py follows the imports and checks).
# ruamel: hdmf's own dependency (paths.producing_stage reads dvc.yaml with it)
ALLEN_ENV_PACKAGES = ("allensdk", "numpy", "pandas", "h5py", "requests", "tqdm", "ruamel")

# The lab keeps every unit (AllenSDK's defaults drop ~2/3 of them); clean filters later.
UNIT_FILTERS_OFF = {
    "filter_by_validity": False,
    "amplitude_cutoff_maximum": np.inf,
    "presence_ratio_minimum": -np.inf,
    "isi_violations_maximum": np.inf,
    "filter_out_of_brain_units": False,
}
TABLES = ("sessions", "probes", "channels", "units")


class TimedRmaEngine(RmaEngine):
    """AllenSDK's RMA engine with a stall timeout and retries; `stream` only resolves URLs.

    `RmaEngine.get_rma` calls `requests.get(url)` with no timeout and no retry; this is
    the same paging loop with both. `stream(route)` returns the file's URL instead of
    opening it, so `EcephysProjectWarehouseApi.get_session_data` (AllenSDK's query for a
    session's NWB) tells us where to download from, and `npdecode.sources.download` does the rest.
    """

    def __init__(self, api_url: str, policy: download.RetryPolicy, **kwargs: object) -> None:
        parts = urlsplit(api_url)
        if not parts.scheme or not parts.netloc:
            raise DataError(f"fetch.allen.api_url {api_url!r} is not a URL like http://host")
        super().__init__(scheme=parts.scheme, host=parts.netloc, **kwargs)
        self.policy = policy
        self.http = requests.Session()

    def get_rma(self, query: str) -> Iterator[list]:
        url = f"{self.scheme}://{self.host}/{self.rma_prefix}/{self.format_query_string}?{query}"
        start_row, total_rows = 0, None
        while total_rows is None or start_row < total_rows:
            page = self._get_json(self.add_page_params(url, start_row))
            if not page["success"]:
                raise RmaRequestError(page["msg"])
            if total_rows is None:
                total_rows = page["total_rows"]
            if page["num_rows"] == 0:
                break
            start_row += page["num_rows"]
            yield page["msg"]

    def _get_json(self, url: str) -> dict:
        last = ""
        log.debug("Allen API query %s", url)
        for attempt in range(1, self.policy.max_tries + 1):
            try:
                r = self.http.get(url, timeout=(self.policy.timeout_s, self.policy.timeout_s))
                r.raise_for_status()
                return r.json()
            except (requests.RequestException, ValueError) as err:
                last = _short(err)
            log.warning(
                "Allen API query, try %d/%d failed: %s", attempt, self.policy.max_tries, last
            )
            if attempt < self.policy.max_tries:
                time.sleep(self.policy.wait_s(attempt))
        raise DataError(
            f"the Allen API at {self.scheme}://{self.host} failed {self.policy.max_tries} times "
            f"(offline? see fetch.allen); last error: {last}"
        )

    def stream(self, route: str) -> str:  # type: ignore[override]
        return f"{self.scheme}://{self.host}/{route.lstrip('/')}"


def _short(err: Exception) -> str:
    """An exception in one line, without the long request URL requests puts in it."""
    reason = getattr(err, "args", [None])[0]
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError -> its cause
    return f"{type(err).__name__}: {reason if reason is not None else err}"[:300]


def _refuse_stream_writer(path: str, stream: object) -> None:
    raise RuntimeError(
        f"npdecode does not let AllenSDK write {path} in place; the fetch stage downloads it"
    )


def open_cache(
    layout: Layout, api_url: str, policy: download.RetryPolicy
) -> epc.EcephysProjectCache:
    """AllenSDK's project cache on `data/raw/manifest.json`, querying `api_url`."""
    layout.allen_manifest.parent.mkdir(parents=True, exist_ok=True)
    api = EcephysProjectWarehouseApi(TimedRmaEngine(api_url, policy))
    return epc.EcephysProjectCache(
        fetch_api=api,
        manifest=str(layout.allen_manifest),
        fetch_tries=1,  # TimedRmaEngine retries each query itself, with backoff
        stream_writer=_refuse_stream_writer,
    )


@contextmanager
def atomic_cache_csvs() -> Iterator[None]:
    """Make AllenSDK's cache write its CSVs atomically while the block runs.

    `ecephys_project_cache.write_csv` writes in place; an interrupted write would leave a
    short `units.csv` that later reads as a table with units missing.
    """
    original = epc.write_csv

    def write_csv(path: str, df: pd.DataFrame) -> None:
        with atomic_path(path) as tmp:
            original(str(tmp), df)

    epc.write_csv = write_csv
    try:
        yield
    finally:
        epc.write_csv = original


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """The index as an `id` column; list-valued cells (numpy arrays) as Python lists."""
    df = df.copy()
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, np.ndarray)).any():
            df[col] = df[col].map(lambda v: list(v) if isinstance(v, np.ndarray) else v)
    df.index.name = "id"
    return df.reset_index()


def session_table(cache: epc.EcephysProjectCache) -> pd.DataFrame:
    """All sessions (AllenSDK's session table, `has_nwb` kept), indexed by session id."""
    return cache.get_session_table(suppress=[])


def session_tables(
    cache: epc.EcephysProjectCache, sessions: pd.DataFrame, session_id: int
) -> dict[str, pd.DataFrame]:
    """This session's rows of the sessions/probes/channels/units tables (all units kept).

    `sessions` is `session_table(cache)` (computing it reads every table once more).
    """
    probes = cache.get_probes()
    channels = cache.get_channels()
    units = cache.get_units(**UNIT_FILTERS_OFF)
    return {
        "sessions": _plain(sessions.loc[[session_id]]),
        "probes": _plain(probes[probes["ecephys_session_id"] == session_id]),
        "channels": _plain(channels[channels["ecephys_session_id"] == session_id]),
        "units": _plain(units[units["ecephys_session_id"] == session_id]),
    }


def check_listed(sessions: pd.DataFrame, session_id: int, stimulus: str) -> str:
    """Fail before any download if the session is unknown, has no NWB or lacks `stimulus`."""
    if session_id not in sessions.index:
        raise DataError(
            f"session {session_id} is not in the Allen session table ({len(sessions)} sessions); "
            "list them with `python -m npdecode.sources.sessions --source allen`"
        )
    row = sessions.loc[session_id]
    if "has_nwb" in row and not bool(row["has_nwb"]):
        raise DataError(f"session {session_id}: the Allen warehouse has no NWB file for it")
    session_type = str(row.get("session_type", ""))
    shown = nwb_read.STIMULI_BY_SESSION_TYPE.get(session_type)
    if shown is not None and stimulus not in shown:
        raise DataError(
            f"session {session_id} is a {session_type} session: it shows no {stimulus}. "
            "List the sessions that do with `python -m npdecode.sources.sessions --source allen --write`"
        )
    return session_type


def resolve_nwb_url(cache: epc.EcephysProjectCache, session_id: int) -> str:
    """The session NWB's download URL, from AllenSDK's warehouse query."""
    try:
        return cache.fetch_api.get_session_data(session_id)
    except DataError:
        raise
    except ValueError as err:  # AllenSDK: "expected exactly 1 nwb file for session ..."
        raise DataError(f"session {session_id}: the Allen API lists no single NWB: {err}") from err


def _reusable(layout: Layout, session_id: int, stimulus: str) -> nwb_read.NwbSummary | None:
    """The NWB already at the final path if it is complete and this session's, else None."""
    final = layout.nwb(session_id)
    if not final.exists():
        return None
    if layout.truth(session_id).exists():
        log.info("session %d: %s is a synthetic session: replacing it", session_id, final)
        return None
    try:
        return nwb_read.verify_session_nwb(final, session_id, stimulus)
    except DataError as err:
        log.warning(
            "session %d: the file already there fails verification (%s): downloading it again; "
            "it stays in place until a verified download replaces it",
            session_id,
            err,
        )
        return None


def fetch_session(
    session_id: int, layout: Layout, stimulus: str, api_url: str, policy: download.RetryPolicy
) -> dict:
    """Download (or keep) one session's NWB, verify it and write its tables; return its record."""
    with atomic_cache_csvs():
        cache = open_cache(layout, api_url, policy)
        cache_path = Path(cache.get_cache_path(None, cache.SESSION_NWB_KEY, session_id, session_id))
        if cache_path.resolve() != layout.nwb(session_id).resolve():
            raise DataError(
                f"{layout.allen_manifest} maps session {session_id} to {cache_path}, not "
                f"{layout.nwb(session_id)}: remove that manifest.json (AllenSDK rewrites it)"
            )
        sessions = session_table(cache)
        session_type = check_listed(sessions, session_id, stimulus)
        tables = session_tables(cache, sessions, session_id)
    old_record = read_record(layout, session_id)
    summary = _reusable(layout, session_id, stimulus)
    part = layout.partial_dir / f"session_{session_id}.nwb.part"
    if summary is not None:
        log.info("session %d: %s is complete and verified: keeping it", session_id, summary.path)
        origin, nwb = old_record.get("origin", "AllenSDK cache"), layout.nwb(session_id)
    else:
        origin, nwb = _download(cache, layout, session_id, stimulus, policy, part)
        summary = nwb_read.verify_session_nwb(part, session_id, stimulus)
    _check_probes(summary, tables["probes"], session_id)
    record = {
        "session_id": session_id,
        "source": "allen",
        "origin": origin,
        "session_type": session_type,
        **{
            k: v
            for k, v in vars(summary).items()
            if k not in ("path", "session_id", "session_type")
        },
    }
    record["probe_ids"] = list(record["probe_ids"])
    install_session(layout, session_id, nwb, tables, record, stimulus)
    if nwb == part:
        download.discard(part)
    return record


def _download(
    cache: epc.EcephysProjectCache,
    layout: Layout,
    session_id: int,
    stimulus: str,
    policy: download.RetryPolicy,
    part: Path,
) -> tuple[str, Path]:
    """Resolve and download the session's NWB into `part`; return (URL, part)."""

    def verify(path: Path, size: int) -> None:
        nwb_read.verify_session_nwb(path, session_id, stimulus, expected_size=size)

    try:
        url = resolve_nwb_url(cache, session_id)
        download.download(url, part, policy, verify=verify, what=f"session {session_id}")
    except DataError as err:
        msg = str(err).rstrip(".")
        if not msg.startswith(f"session {session_id}"):
            msg = f"session {session_id}: {msg}"
        final = layout.nwb(session_id)
        if final.exists():
            msg += f". The unusable file already at {final} is left in place"
        raise DataError(msg) from err
    return url, part


def _check_probes(summary: nwb_read.NwbSummary, probes: pd.DataFrame, session_id: int) -> None:
    """The file's probes must be the session's probes in Allen's table (ids never mixed up)."""
    listed = set(probes["id"].astype(int))
    if listed and summary.probe_ids and not listed.intersection(summary.probe_ids):
        raise DataError(
            f"session {session_id}: {summary.path} has probes {list(summary.probe_ids)}, but the "
            f"Allen table lists {sorted(listed)} for this session: refusing a mixed-up file"
        )


# --- command line ---------------------------------------------------------------------------


def _policy(args: argparse.Namespace) -> download.RetryPolicy:
    return download.RetryPolicy(
        timeout_s=args.timeout_s, max_tries=args.max_tries, backoff_s=args.backoff_s
    )


def _cmd_sessions(args: argparse.Namespace) -> dict:
    with atomic_cache_csvs():
        table = session_table(open_cache(Layout(args.root), args.api_url, _policy(args)))
    cols = [c for c in ("session_type", "specimen_id", "has_nwb") if c in table.columns]
    rows = table[cols].reset_index().rename(columns={"index": "id"})
    rows["id"] = rows["id"].astype(int)
    return {"sessions": json.loads(rows.to_json(orient="records"))}


def _cmd_fetch(args: argparse.Namespace) -> dict:
    record = fetch_session(
        args.session_id, Layout(args.root), args.stimulus, args.api_url, _policy(args)
    )
    return {"record": record}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npdecode.sources.allen_runner", description=__doc__
    )
    parser.add_argument("command", choices=("sessions", "fetch"))
    parser.add_argument("session_id", type=int, nargs="?")
    parser.add_argument("--root", type=Path, default=Path("."), help="project root")
    parser.add_argument("--stimulus", default="natural_scenes")
    parser.add_argument("--api-url", default="http://api.brain-map.org")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--max-tries", type=int, default=5)
    parser.add_argument("--backoff-s", type=float, default=10.0)
    parser.add_argument("--result", type=Path, help="write the JSON result here")
    args = parser.parse_args(argv)
    if args.command == "fetch" and args.session_id is None:
        parser.error("fetch needs a session id")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s fetch (allen env): %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("call_caching").setLevel(logging.WARNING)  # AllenSDK: a line per read
    try:
        result = _cmd_fetch(args) if args.command == "fetch" else _cmd_sessions(args)
        status = 0
    except NpdecodeError as err:
        if args.result is None:  # else the caller reports it
            print(f"npdecode allen: error: {err}", file=sys.stderr)
        result, status = {"error": str(err)}, 2
    if args.result is not None:
        with atomic_path(args.result) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    elif status == 0:
        print(json.dumps(result, indent=2))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
