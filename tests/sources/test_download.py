"""npdecode.sources.download against a fake HTTP server on 127.0.0.1: retries, resume, verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from npdecode.errors import DataError
from npdecode.nwb import read as nwb_read
from npdecode.sources import download
from tests.allen.helpers import FakeAllen, FakeAllenServer, drop_near_end, write_nwb

SID = 715093703
FAST = download.RetryPolicy(timeout_s=5.0, max_tries=4, backoff_s=0.0)


@pytest.fixture(scope="module")
def nwb_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_nwb(tmp_path_factory.mktemp("nwb") / "s.nwb", SID).read_bytes()


def _url(fake: FakeAllen) -> str:
    return f"{fake.url}/api/v2/well_known_file_download/{SID}"


def _verify(path: Path, size: int) -> None:
    nwb_read.verify_session_nwb(path, SID, expected_size=size)


def test_fails_twice_then_succeeds(tmp_path: Path, nwb_bytes: bytes) -> None:
    fake = FakeAllen(files={SID: nwb_bytes}, actions=["503", "503"])
    part = tmp_path / "s.nwb.part"
    with FakeAllenServer(fake):
        size = download.download(_url(fake), part, FAST, verify=_verify, what=f"session {SID}")
    assert size == len(nwb_bytes)
    assert part.read_bytes() == nwb_bytes
    assert len(fake.file_requests()) == 3


def test_dropped_connection_resumes_with_range(tmp_path: Path, nwb_bytes: bytes) -> None:
    cut = int(drop_near_end(nwb_bytes).removeprefix("drop:"))
    fake = FakeAllen(files={SID: nwb_bytes}, actions=[f"drop:{cut}"])
    part = tmp_path / "s.nwb.part"
    with FakeAllenServer(fake):
        download.download(_url(fake), part, FAST, verify=_verify)
    first, second = fake.file_requests()
    assert first is None
    assert second is not None and second.startswith("bytes=")
    resumed_at = int(second.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= cut
    assert part.read_bytes() == nwb_bytes


def test_interrupted_run_is_resumed_by_the_next(tmp_path: Path, nwb_bytes: bytes) -> None:
    part = tmp_path / "s.nwb.part"
    once = download.RetryPolicy(timeout_s=5.0, max_tries=1, backoff_s=0.0)
    fake = FakeAllen(files={SID: nwb_bytes}, actions=[drop_near_end(nwb_bytes)])
    with FakeAllenServer(fake):
        with pytest.raises(DataError, match=r"session 1: .*failed 1 times.*kept in .*resumes"):
            download.download(_url(fake), part, once, verify=_verify, what="session 1")
        kept = part.stat().st_size
        assert 0 < kept < len(nwb_bytes)
        download.download(_url(fake), part, once, verify=_verify)
    assert fake.file_requests()[-1] == f"bytes={kept}-"
    assert part.read_bytes() == nwb_bytes


def test_server_without_range_support_restarts(tmp_path: Path, nwb_bytes: bytes) -> None:
    fake = FakeAllen(files={SID: nwb_bytes}, actions=[drop_near_end(nwb_bytes)], ranges=False)
    part = tmp_path / "s.nwb.part"
    with FakeAllenServer(fake):
        download.download(_url(fake), part, FAST, verify=_verify)
    assert part.read_bytes() == nwb_bytes


def test_unknown_size_relies_on_hdf5_verification(tmp_path: Path, nwb_bytes: bytes) -> None:
    """Without Content-Length a dropped connection looks complete: HDF5 checks catch it."""
    fake = FakeAllen(files={SID: nwb_bytes}, actions=[drop_near_end(nwb_bytes)], lengths=False)
    part = tmp_path / "s.nwb.part"
    with FakeAllenServer(fake):
        size = download.download(_url(fake), part, FAST, verify=_verify)
    assert size == len(nwb_bytes) and part.read_bytes() == nwb_bytes
    assert fake.file_requests() == [None, None]  # the truncated bytes were discarded


def test_stalled_connection_times_out_and_retries(tmp_path: Path, nwb_bytes: bytes) -> None:
    fake = FakeAllen(files={SID: nwb_bytes}, actions=["stall:3"])
    part = tmp_path / "s.nwb.part"
    quick = download.RetryPolicy(timeout_s=0.5, max_tries=2, backoff_s=0.0)
    with FakeAllenServer(fake):
        download.download(_url(fake), part, quick, verify=_verify)
    assert len(fake.file_requests()) == 2
    assert part.read_bytes() == nwb_bytes


def test_gives_up_after_max_tries_with_backoff(tmp_path: Path, nwb_bytes: bytes) -> None:
    fake = FakeAllen(files={SID: nwb_bytes}, actions=["503"] * 10)
    waits: list[float] = []
    policy = download.RetryPolicy(timeout_s=5.0, max_tries=3, backoff_s=2.0)
    with FakeAllenServer(fake):
        url = _url(fake)
        with pytest.raises(DataError, match=r"session 9: downloading .* failed 3 times.*HTTP 503"):
            download.download(url, tmp_path / "p", policy, what="session 9", sleep=waits.append)
    assert waits == [2.0, 4.0]
    assert len(fake.file_requests()) == 3


def test_not_found_is_not_retried(tmp_path: Path) -> None:
    fake = FakeAllen(files={})
    with FakeAllenServer(fake):
        with pytest.raises(DataError, match="HTTP 404"):
            download.download(_url(fake), tmp_path / "p", FAST)
    assert len(fake.file_requests()) == 1


def test_truncated_file_on_server_fails_verification_and_leaves_nothing(
    tmp_path: Path, nwb_bytes: bytes
) -> None:
    served = nwb_bytes[: len(nwb_bytes) // 2]  # a complete response of a truncated file
    fake = FakeAllen(files={SID: served})
    part = tmp_path / "s.nwb.part"
    with FakeAllenServer(fake):
        with pytest.raises(DataError, match=r"failed verification.*truncated"):
            download.download(_url(fake), part, FAST, verify=_verify, what=f"session {SID}")
    assert len(fake.file_requests()) == FAST.max_tries
    assert not part.exists() and not download.sidecar(part).exists()


def test_backoff_is_exponential_and_capped() -> None:
    policy = download.RetryPolicy(backoff_s=10.0, backoff_max_s=60.0)
    assert [policy.wait_s(k) for k in (1, 2, 3, 4, 5)] == [10.0, 20.0, 40.0, 60.0, 60.0]
