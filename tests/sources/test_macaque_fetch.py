"""npdecode.sources.macaque: md5-verified download from a fake server on 127.0.0.1 (retries,
resume, atomic placing), the Zenodo file list, and the bounded local walk."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from npdecode.errors import DataError
from npdecode.sources import download, macaque
from tests.allen.helpers import FakeAllen, FakeAllenServer, drop_near_end

NAME = "indy_20160622_01"
FAST = download.RetryPolicy(timeout_s=5.0, max_tries=4, backoff_s=0.0)


def _url(fake: FakeAllen) -> str:
    return f"{fake.url}/api/v2/well_known_file_download/1"  # no {name}: one fake file


@pytest.fixture(scope="module")
def mat_bytes(macaque_twin_files: dict[str, Path]) -> bytes:
    return macaque_twin_files[NAME].read_bytes()


def test_download_retries_resumes_verifies_and_places(tmp_path: Path, mat_bytes: bytes) -> None:
    fake = FakeAllen(files={1: mat_bytes}, actions=["503", drop_near_end(mat_bytes)])
    dest = tmp_path / "raw" / f"{NAME}.mat"
    md5 = hashlib.md5(mat_bytes).hexdigest()
    with FakeAllenServer(fake):
        got = macaque.download_session(NAME, dest, FAST, file_url=_url(fake), md5=md5)
    assert got == dest and dest.read_bytes() == mat_bytes
    ranges = fake.file_requests()
    assert len(ranges) == 3 and ranges[2] is not None and ranges[2].startswith("bytes=")
    assert not list((dest.parent / ".partial").iterdir())  # nothing left behind


def test_md5_mismatch_places_nothing(tmp_path: Path, mat_bytes: bytes) -> None:
    fake = FakeAllen(files={1: mat_bytes})
    dest = tmp_path / f"{NAME}.mat"
    once = download.RetryPolicy(timeout_s=5.0, max_tries=1, backoff_s=0.0)
    with FakeAllenServer(fake):
        with pytest.raises(DataError, match=rf"session {NAME}: .*{NAME}.mat.part: md5 \w+ does "
                           r"not match the record's 0{32}"):  # fmt: skip
            macaque.download_session(NAME, dest, once, file_url=_url(fake), md5="0" * 32)
    assert not dest.exists()


def test_unknown_session_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown macaque session 'indy_1'"):
        macaque.download_session("indy_1", tmp_path / "x.mat", FAST)


class _Zenodo(BaseHTTPRequestHandler):
    body = json.dumps({"files": [
        {"key": f"{NAME}.mat", "checksum": "md5:" + "a" * 32},
        {"key": "README.txt", "checksum": "md5:" + "b" * 32},
    ]}).encode()  # fmt: skip

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_md5s_from_the_zenodo_file_list() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Zenodo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/records/583331"
        assert macaque.record_md5s(url) == {NAME: "a" * 32}
    finally:
        server.shutdown()


def test_find_mat_bounded_walk(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / f"{NAME}.mat").write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)  # a link cycle
    assert macaque.find_mat(tmp_path, NAME) == deep / f"{NAME}.mat"
    with pytest.raises(DataError, match=rf"session {NAME}: no {NAME}.mat under .* 1 levels"):
        macaque.find_mat(tmp_path, NAME, max_depth=1)
    (tmp_path / f"{NAME}.mat").write_bytes(b"y")
    with pytest.raises(DataError, match=rf"2 copies of {NAME}.mat"):
        macaque.find_mat(tmp_path, NAME)
