"""agent.update.fetch against a real HTTPS server that requires the device's
client certificate, through a proxy that cuts the link at random offsets."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.update.fetch import FetchError, HttpsFetcher, HttpStatusError, TlsIdentity, TokenBucket
from tests.support.cutting_proxy import CuttingProxy
from tests.support.tls import DEVICE, Pki, make_pki
from tests.support.update_server import UpdateServer


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def served(tmp_path: Path, pki: Pki) -> Iterator[UpdateServer]:
    root = tmp_path / "repo"
    (root / "targets").mkdir(parents=True)
    server = UpdateServer(root, pki).start()
    yield server
    server.close()


def identity(p: Pki) -> TlsIdentity:
    return TlsIdentity(ca=p.ca, cert=p.cert, key=p.key)


def artefact(server: UpdateServer, name: str, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    (server.root / "targets" / name).write_bytes(data)
    return server.url + "targets/" + name, data


def test_downloads_over_mtls_and_the_server_sees_the_device(served: UpdateServer, pki: Pki, tmp_path: Path) -> None:
    url, data = artefact(served, "a.bin", 200_000)
    fetcher = HttpsFetcher(identity(pki))
    part = fetcher.download(url, tmp_path / "dl" / "a.bin.part", len(data))
    assert part.read_bytes() == data
    assert served.peer_cns == [DEVICE]


def test_metadata_requests_share_one_connection(served: UpdateServer, pki: Pki) -> None:
    url, data = artefact(served, "small.json", 900)
    fetcher = HttpsFetcher(identity(pki))
    for _ in range(4):
        assert fetcher.get(url, 10_000) == data
    assert fetcher.connections == 1  # one TLS handshake, not four, on a metered link


def test_a_server_outside_the_county_ca_is_refused(served: UpdateServer, pki: Pki, tmp_path: Path) -> None:
    url, _ = artefact(served, "a.bin", 1000)
    stranger = make_pki(tmp_path / "other")
    fetcher = HttpsFetcher(TlsIdentity(ca=stranger.ca, cert=pki.cert, key=pki.key), give_up_s=5)
    with pytest.raises(FetchError, match="certificate is not trusted"):
        fetcher.get(url, 10_000)


def test_a_device_certificate_from_another_ca_is_refused_by_the_server(
    served: UpdateServer, pki: Pki, tmp_path: Path
) -> None:
    url, _ = artefact(served, "a.bin", 1000)
    stranger = make_pki(tmp_path / "other")
    fetcher = HttpsFetcher(TlsIdentity(ca=pki.ca, cert=stranger.cert, key=stranger.key), give_up_s=2, backoff_cap_s=0.1)
    with pytest.raises(FetchError):
        fetcher.get(url, 10_000)
    assert served.peer_cns == []  # never got as far as a request


def test_a_partial_file_resumes_with_a_range_request(served: UpdateServer, pki: Pki, tmp_path: Path) -> None:
    url, data = artefact(served, "a.bin", 300_000)
    part = tmp_path / "a.bin.part"
    part.write_bytes(data[:123_457])
    fetcher = HttpsFetcher(identity(pki))
    fetcher.download(url, part, len(data))
    assert part.read_bytes() == data
    assert fetcher.body_bytes == len(data) - 123_457
    assert served.requests == [("/tuf/targets/a.bin", "bytes=123457-", 206)]


def test_a_server_that_ignores_range_is_read_from_the_start(pki: Pki, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "targets").mkdir(parents=True)
    server = UpdateServer(root, pki, ignore_range=True).start()
    try:
        url, data = artefact(server, "a.bin", 50_000)
        part = tmp_path / "a.bin.part"
        part.write_bytes(b"\0" * 20_000)  # not even a prefix of the file: must not survive
        HttpsFetcher(identity(pki)).download(url, part, len(data))
        assert part.read_bytes() == data
    finally:
        server.close()


def test_a_server_sending_more_than_the_signed_length_is_cut_off(
    served: UpdateServer, pki: Pki, tmp_path: Path
) -> None:
    url, _ = artefact(served, "a.bin", 100_000)
    part = tmp_path / "a.bin.part"
    with pytest.raises(FetchError, match="more than the 60000 bytes"):
        HttpsFetcher(identity(pki)).download(url, part, 60_000)
    assert part.stat().st_size <= 60_000


def test_a_missing_file_is_an_http_error_at_once(served: UpdateServer, pki: Pki, tmp_path: Path) -> None:
    fetcher = HttpsFetcher(identity(pki), give_up_s=60)
    started = time.monotonic()
    with pytest.raises(HttpStatusError, match="HTTP 404") as err:
        fetcher.download(served.url + "targets/nope.bin", tmp_path / "nope.part", 10)
    assert err.value.status == 404
    assert time.monotonic() - started < 5  # not retried as if the link were down
    assert len(served.requests) == 1


def test_a_link_cut_many_times_costs_at_most_ten_percent_more(served: UpdateServer, pki: Pki, tmp_path: Path) -> None:
    """20 cuts at random offsets in a 3 MB artefact (one every 120 KB on average).

    What a cut costs is physics more than code: the TLS record it lands in is
    lost (the server writes 16 KB records: 8 KB on average), plus a resumed
    handshake and the response headers (about 1.5 KB). Resuming from the byte
    that stopped is what keeps it at that; starting over would cost MBs."""
    size, cuts = 3_000_000, 20
    _, data = artefact(served, "big.bin", size)
    proxy = CuttingProxy(served.port, cuts=cuts, mean_gap=120_000)
    try:
        url = f"https://localhost:{proxy.port}/tuf/targets/big.bin"
        fetcher = HttpsFetcher(identity(pki), timeout_s=10, backoff_cap_s=0.1)
        part = fetcher.download(url, tmp_path / "big.part", size)
        assert part.read_bytes() == data
    finally:
        proxy.close()
    assert len(proxy.cut_at) >= 15, proxy.cut_at  # the rest fell past the end of the file
    assert sum(1 for _, r, _ in served.requests if r) == len(proxy.cut_at)  # each cut resumed with a Range
    # Everything the link carried to the device: TLS handshakes, headers, and bytes lost in flight at cuts.
    assert proxy.down_bytes <= 1.1 * size, (proxy.down_bytes, proxy.cut_at)
    assert (proxy.down_bytes - size) / len(proxy.cut_at) <= 16_384 + 4_096  # one TLS record and a handshake per cut


def test_the_bandwidth_cap_holds(served: UpdateServer, pki: Pki, tmp_path: Path) -> None:
    url, data = artefact(served, "a.bin", 300_000)
    fetcher = HttpsFetcher(identity(pki), bandwidth_bytes_per_s=100_000)
    started = time.monotonic()
    fetcher.download(url, tmp_path / "a.part", len(data))
    took = time.monotonic() - started
    # 300 KB at 100 KB/s: 3 s, less the one-chunk burst (12.5 KB) it may start with.
    assert 2.8 <= took < 6.0, took
    assert (tmp_path / "a.part").read_bytes() == data


def test_token_bucket_sleeps_off_exactly_the_debt() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(1000, 100, clock=lambda: now[0], sleep=sleep)
    bucket.take(100)  # the burst
    assert slept == []
    for _ in range(10):
        bucket.take(100)
    assert sum(slept) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(0, 1)
