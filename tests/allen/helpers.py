"""Test helpers for the fetch stage: small synthetic Allen sessions, an AllenSDK cache
folder built from them, and a fake Allen API server on 127.0.0.1.

Everything here runs in the main environment; the AllenSDK environment only ever sees
the files these helpers write and the HTTP answers the fake server gives.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import pandas as pd

from npdecode.nwb.read import metadata_tables
from npdecode.nwb.write import write_session_nwb
from npdecode.params import SyntheticParams
from npdecode.sources import synthetic

SMALL = SyntheticParams(n_units=30, n_images=10, n_repeats=12)
BO = "brain_observatory_1.1"
FC = "functional_connectivity"


def write_nwb(path: Path, session_id: int, params: SyntheticParams = SMALL) -> Path:
    """A small synthetic session in the Allen NWB layout at `path`."""
    session = synthetic.make_session(params, session_id)
    write_session_nwb(path, synthetic.as_record(session))
    return path


def truncate(path: Path, fraction: float = 0.6) -> Path:
    """Cut `path` to `fraction` of its size, like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def drop_stimulus(path: Path, stimulus: str = "natural_scenes") -> Path:
    """Remove the `<stimulus>_presentations` table (the file stays valid HDF5)."""
    with h5py.File(path, "r+") as f:
        del f[f"intervals/{stimulus}_presentations"]
    return path


def write_allen_cache(
    folder: Path, sessions: dict[int, str], with_nwb: set[int], params: SyntheticParams = SMALL
) -> Path:
    """An AllenSDK `EcephysProjectCache` folder (no manifest.json: AllenSDK writes it).

    `sessions` maps session id -> session type. The CSVs have the columns of the real
    warehouse tables (allen-nwb-schema.md); NWB files are written for `with_nwb`.
    """
    tables: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("sessions", "probes", "channels", "units")
    }
    for sid, kind in sessions.items():
        session = synthetic.make_session(params, sid)
        nwb = folder / f"session_{sid}" / f"session_{sid}.nwb"
        if sid not in with_nwb:  # the tables come from a file, then the file goes
            nwb = folder / f".tables_{sid}.nwb"
        nwb.parent.mkdir(parents=True, exist_ok=True)
        write_session_nwb(nwb, synthetic.as_record(session))
        t = metadata_tables(nwb, sid)
        if sid not in with_nwb:
            nwb.unlink()
        s = t["sessions"].rename(columns={"full_genotype": "genotype"})
        s["session_type"] = kind
        s["date_of_acquisition"] = "2019-01-01T00:00:00Z"
        s["published_at"] = "2019-10-01T00:00:00Z"
        s["isi_experiment_id"] = sid + 7
        tables["sessions"].append(s.drop(columns=["unit_count", "probe_count", "channel_count"]))
        tables["probes"].append(t["probes"].assign(phase="3a"))
        channels = t["channels"].copy()
        codes = {
            a: i + 1 for i, a in enumerate(sorted(channels["ecephys_structure_acronym"].unique()))
        }
        channels["ecephys_structure_id"] = channels["ecephys_structure_acronym"].map(codes)
        tables["channels"].append(channels)
        tables["units"].append(t["units"])
    folder.mkdir(parents=True, exist_ok=True)
    for name, parts in tables.items():
        pd.concat(parts, ignore_index=True).to_csv(folder / f"{name}.csv", index=False)
    return folder


def copy_tree(src: Path, dst: Path) -> Path:
    """A fresh copy of a fixture folder (AllenSDK may delete files in its cache)."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


# --- a fake Allen API ---------------------------------------------------------------------


@dataclass
class FakeAllen:
    """What the fake server serves and what it saw.

    `files` maps session id -> NWB bytes. `actions` is consumed one per file request:
    "ok", "503", "drop:N" (announce the full size, send N bytes, close) or "stall:S"
    (announce the full size, send nothing for S seconds). With no action left: "ok".
    `ranges` (default True) says whether Range requests are honoured, `lengths` whether
    file responses announce their Content-Length (else the body ends when the connection
    closes, so a dropped connection looks like a complete file).
    """

    files: dict[int, bytes] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    ranges: bool = True
    lengths: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def file_requests(self) -> list[str | None]:
        """The Range header of each file request, in order (None: no Range)."""
        return [rng for path, rng in self.requests if "well_known_file_download" in path]


_WKF = re.compile(r"attachable_id\$eq(\d+)")


class _Handler(BaseHTTPRequestHandler):
    """Serves `self.fake` (set per server by `_handler`)."""

    fake: FakeAllen

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.fake.requests.append((self.path, self.headers.get("Range")))
        if self.path.startswith("/api/v2/data/query.json") and "WellKnownFile" in self.path:
            self._well_known_file()
        elif self.path.startswith("/api/v2/well_known_file_download/"):
            self._file(int(self.path.rsplit("/", 1)[1]))
        else:
            self.send_error(404)

    def _well_known_file(self) -> None:
        match = _WKF.search(self.path)
        sid = int(match.group(1)) if match else -1
        rows = (
            [
                {
                    "id": sid + 1,
                    "attachable_id": sid,
                    "download_link": f"/api/v2/well_known_file_download/{sid}",
                    "path": f"/allen/ecephys/session_{sid}.nwb",
                }
            ]
            if sid in self.fake.files
            else []
        )
        body = json.dumps(
            {
                "success": True,
                "id": 0,
                "start_row": 0,
                "num_rows": len(rows),
                "total_rows": len(rows),
                "msg": rows,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, sid: int) -> None:
        if sid not in self.fake.files:
            self.send_error(404)
            return
        data = self.fake.files[sid]
        action = self.fake.actions.pop(0) if self.fake.actions else "ok"
        if action == "503":
            self.send_error(503)
            return
        start = 0
        rng = self.headers.get("Range")
        if self.fake.ranges and rng:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if self.fake.lengths:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._body(action, body)

    def _body(self, action: str, body: bytes) -> None:
        if action.startswith("drop:"):
            self.wfile.write(body[: int(action.split(":")[1])])
        elif action.startswith("stall:"):
            self.wfile.flush()
            time.sleep(float(action.split(":")[1]))
        else:
            self.wfile.write(body)
            return
        self.wfile.flush()
        self.close_connection = True


def _handler(fake: FakeAllen) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"fake": fake})


class FakeAllenServer:
    """Context manager running `FakeAllen` on 127.0.0.1 in a thread."""

    def __init__(self, fake: FakeAllen) -> None:
        self.fake = fake
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
        self.server.daemon_threads = True
        fake.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeAllen:
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def drop_near_end(data: bytes) -> str:
    """A FakeAllen action dropping the connection past the first 1 MiB chunk (whole chunks
    reach the disk before the drop) and before the end."""
    cut = len(data) - 200_000
    assert cut > 1_100_000, "fixture too small to test a dropped download"
    return f"drop:{cut}"
