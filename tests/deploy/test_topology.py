"""The reference topology as real processes on loopback: nginx (TLS) -> two API replicas -> Redis.

deploy/compose.yaml's shape, proven without a container engine. Debian's nginx
runs deploy/nginx/default.conf.template, rendered as the nginx image renders it;
replica 1 runs as `selfcheck serve`, replica 2 as the Dockerfile's exact CMD
(`selfcheck serve --host ... --workers 1`); both trust only the proxy's address (127.0.0.1) and
share one redis-server. Each client binds its own loopback address (127.0.0.x),
so the proxy sees distinct client addresses, as it would on the Internet.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis as redis_client

from lookup_index.generator import Probe
from tests.deploy.dockerfile import image_server
from tests.support.dataset import Dataset
from tests.support.http2 import h2_exchange
from tests.support.nginx import (
    TEMPLATE,
    NginxServer,
    nginx_server,
    self_signed_certificate,
)
from tests.support.servers import ApiServer, RedisServer, api_server, redis_server, stop_process

pytestmark = pytest.mark.slow

#: The production per-network limits: 5 checks a minute from one address.
PER_NETWORK_LIMITS = "5/minute;20/hour;50/day"
PER_MINUTE = 5
CHECK = "/v1/check"
#: The proxy's address, as the replicas see it: the only trusted one.
PROXY_ADDRESS = "127.0.0.1"


def _seconds(directive: str) -> int:
    """A timeout set in the deploy template (e.g. ``client_header_timeout 10s;``)."""
    match = re.search(rf"^{directive}\s+(\d+)s;", TEMPLATE.read_text(), flags=re.MULTILINE)
    assert match, f"{directive} is not set in {TEMPLATE.name}"
    return int(match.group(1))


def _body(probe: Probe) -> dict[str, str]:
    return {"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name}


@dataclass
class Topology:
    directory: Path
    dataset: Dataset
    redis: RedisServer
    nginx: NginxServer
    certificate: Path
    replicas: list[ApiServer]
    stack: contextlib.ExitStack
    probes: Iterator[Probe] = field(init=False)

    def __post_init__(self) -> None:
        # Valid identities only, each used once: the per-identity limits stay out of the way.
        self.probes = iter([p for p in self.dataset.probes if p.expected != "invalid"])

    def replica_env(self, index: Path, key: Path) -> dict[str, str]:
        return {
            "SELFCHECK_INDEX_PATH": str(index),
            "SELFCHECK_KEY_FILE": str(key),
            "SELFCHECK_ALLOW_TEST_PROFILE": "true",
            "SELFCHECK_RATE_LIMIT_STORAGE": self.redis.url,
            "SELFCHECK_POW_PROFILE": "test",
            "SELFCHECK_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
            "SELFCHECK_LIMITS_PER_NETWORK": PER_NETWORK_LIMITS,
            "SELFCHECK_GLOBAL_LIMIT": "1000/second",  # not what these tests are about
            "SELFCHECK_LIMITS_PER_IPV4_24": "100000/minute",  # nor the unproven /24 tier
            "SELFCHECK_LIMITS_PER_IDENTITY_UNPROVEN": "100000/day",
            "SELFCHECK_RESPONSE_FLOOR_MS": "20",
            "SELFCHECK_HASH_CONCURRENCY": "1",
            "SELFCHECK_LOG_LEVEL": "info",
        }

    def start_replica(self, number: int, index: Path, key: Path, port: int | None = None) -> None:
        """Replica 1 as `selfcheck serve`, replica 2 as the image's CMD; kept until teardown."""
        env = self.replica_env(index, key)
        where = self.directory / f"replica-{number}-{time.monotonic_ns()}"
        where.mkdir()
        if number == 1:
            server = self.stack.enter_context(api_server(env, where / "server.log", port=port))
        else:
            server = self.stack.enter_context(image_server(env, where, port=port))
        if len(self.replicas) < number:
            self.replicas.append(server)
        else:
            self.replicas[number - 1] = server

    def client(self, address: str) -> httpx.Client:
        """A client whose connections come from ``address`` (127.0.0.x), through TLS."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        transport = httpx.HTTPTransport(local_address=address, verify=context)
        return httpx.Client(transport=transport, base_url=self.nginx.https_url, timeout=20)

    def check(self, client: httpx.Client, **headers: str) -> httpx.Response:
        return client.post(CHECK, json=_body(next(self.probes)), headers=headers)

    def all_logs(self) -> str:
        """nginx's error log and stderr, and every replica's log, restarted ones included."""
        return "".join(p.read_text(errors="replace") for p in self.directory.rglob("*.log"))


@pytest.fixture(scope="module")
def topology(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    directory = tmp_path_factory.mktemp("topology")
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(redis_server(directory / "redis"))
        certificate, key = self_signed_certificate(directory / "tls")
        topology = Topology(directory, dataset, store, None, certificate, [], stack)  # type: ignore[arg-type]
        topology.start_replica(1, dataset.index, dataset.key)
        topology.start_replica(2, dataset.index, dataset.key)
        upstreams = [f"127.0.0.1:{r.port}" for r in topology.replicas]
        topology.nginx = stack.enter_context(
            nginx_server(directory / "nginx", upstreams, certificate, key)
        )
        yield topology


def test_https_answers_and_http_redirects_to_the_fixed_origin(topology: Topology) -> None:
    with topology.client("127.0.0.8") as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "alive"}
        stream = response.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        assert client.get("/readyz").json()["rate_limits"] == "shared"
    plain = httpx.get(f"{topology.nginx.http_url}/v1/check?x=1", headers={"host": "evil.test"})
    assert plain.status_code == 301
    assert plain.headers["location"] == f"{topology.nginx.https_url}/v1/check?x=1"


def _bytes_written(process: subprocess.Popen[bytes]) -> int:
    """What a process has written to sockets and files so far (Linux's /proc/<pid>/io)."""
    for line in Path(f"/proc/{process.pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "wchar":
            return int(value)
    raise LookupError("no wchar in /proc/<pid>/io")


def test_the_client_address_reaches_the_limiter_and_both_replicas_share_its_budget(
    topology: Topology,
) -> None:
    written = [_bytes_written(r.process) for r in topology.replicas]
    with topology.client("127.0.0.9") as first, topology.client("127.0.0.10") as second:
        responses = [topology.check(first) for _ in range(2 * PER_MINUTE)]
        statuses = [r.status_code for r in responses]
        # Exactly the per-minute budget, though the requests alternated between replicas.
        assert statuses == [200] * PER_MINUTE + [429] * PER_MINUTE
        # Another address has its own budget.
        assert topology.check(second).status_code == 200
    # nginx spread them over both replicas: each wrote several (padded, same-size) answers.
    answer_size = len(responses[0].content)
    for replica, before in zip(topology.replicas, written, strict=True):
        assert _bytes_written(replica.process) - before >= 3 * answer_size, replica.url
    # Each replica, asked directly (as the proxy would), sees the same spent budget.
    for replica in topology.replicas:
        with httpx.Client(base_url=replica.url, timeout=20) as as_proxy:
            spent = topology.check(as_proxy, **{"x-forwarded-for": "127.0.0.9"})
            fresh = topology.check(as_proxy, **{"x-forwarded-for": "127.0.0.11"})
        assert (spent.status_code, fresh.status_code) == (429, 200), replica.url
    # The shared counters are in Redis, under keyed names: no address in any key.
    keys = redis_client.Redis.from_url(topology.redis.url).keys("*")
    assert keys
    assert not [k for k in keys if b"127.0.0." in k]


def test_a_forged_forwarded_for_neither_escapes_nor_spends_another_budget(
    topology: Topology,
) -> None:
    with topology.client("127.0.0.12") as client:
        assert [topology.check(client).status_code for _ in range(PER_MINUTE)] == [200] * 5
        for forged in ("198.51.100.7", PROXY_ADDRESS, "127.0.0.13", "198.51.100.7, 127.0.0.13"):
            response = topology.check(client, **{"x-forwarded-for": forged})
            assert response.status_code == 429, forged
        response = topology.check(client, forwarded="for=198.51.100.8", **{"x-real-ip": "10.1.1.1"})
        assert response.status_code == 429
    # Claiming to be 127.0.0.12 does not put another client in its exhausted bucket.
    with topology.client("127.0.0.13") as other:
        assert topology.check(other, **{"x-forwarded-for": "127.0.0.12"}).status_code == 200


class _EchoHandler(BaseHTTPRequestHandler):
    """An upstream that answers with the headers it received."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_proxy_overwrites_forwarded_for_and_drops_other_address_headers(
    topology: Topology, tmp_path: Path
) -> None:
    """The shipped template in front of an echo upstream: what the API is actually sent."""
    echoes = [ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler) for _ in range(2)]
    threads = [threading.Thread(target=e.serve_forever, daemon=True) for e in echoes]
    for thread in threads:
        thread.start()
    key = topology.directory / "tls" / "key.pem"
    upstreams = [f"127.0.0.1:{e.server_address[1]}" for e in echoes]
    try:
        with nginx_server(tmp_path / "nginx", upstreams, topology.certificate, key) as proxy:
            context = ssl.create_default_context(cafile=str(topology.certificate))
            transport = httpx.HTTPTransport(local_address="127.0.0.14", verify=context)
            with httpx.Client(transport=transport, base_url=proxy.https_url) as client:
                sent = client.post(
                    CHECK,
                    json={},
                    headers={
                        "x-forwarded-for": "198.51.100.7, 203.0.113.9",
                        "forwarded": "for=198.51.100.8",
                        "x-real-ip": "198.51.100.9",
                        "x-forwarded-proto": "http",
                    },
                ).json()
    finally:
        for echo in echoes:
            echo.shutdown()
            echo.server_close()
    assert sent["x-forwarded-for"] == "127.0.0.14"
    assert sent["x-forwarded-proto"] == "https"
    assert "forwarded" not in sent
    assert "x-real-ip" not in sent
    assert "accept-encoding" in sent  # headers in general do pass


def test_the_body_caps_hold_at_the_proxy_and_at_the_api(topology: Topology) -> None:
    with topology.client("127.0.0.20") as client:
        padded = {"nir": "1", "birth_date": "2", "last_name": "x" * 2500}
        # Above the API's cap (2048), below nginx's: the API's constant, padded 413.
        by_api = client.post(CHECK, json=padded)
        assert by_api.status_code == 413
        assert by_api.json()["error"] == "payload_too_large"
        assert "padding" in by_api.json()
        # Above nginx's cap (4k): refused by nginx, the body never reaches a replica.
        big = {"nir": "1", "birth_date": "2", "last_name": "x" * 5000}
        for response in (
            client.post(CHECK, json=big),
            client.post(
                CHECK,
                content=(b"x" * 1000 for _ in range(6)),  # chunked: no Content-Length
                headers={"content-type": "application/json"},
            ),
        ):
            assert response.status_code == 413
            assert response.json() == {
                "error": "payload_too_large",
                "message": "The request body is too large.",
            }
        assert topology.check(client).status_code == 200


def _until_closed(sock: ssl.SSLSocket, drip: bytes | None, limit: float) -> float:
    """Seconds until the server closes ``sock``; sends ``drip`` every second meanwhile."""
    started = time.monotonic()
    sock.settimeout(1.0)
    while time.monotonic() - started < limit:
        try:
            if drip is not None:
                sock.sendall(drip)
            if not sock.recv(4096):
                break
        except TimeoutError:
            continue
        except (ssl.SSLError, OSError):
            break
    return time.monotonic() - started


def _slow_client(topology: Topology, address: str, start: bytes, drip: bytes | None) -> float:
    context = ssl.create_default_context(cafile=str(topology.certificate))
    raw = socket.create_connection(
        ("127.0.0.1", topology.nginx.https_port), timeout=5, source_address=(address, 0)
    )
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(start)
        return _until_closed(sock, drip, limit=30)


def test_slow_clients_are_cut_off_by_the_configured_timeouts(topology: Topology) -> None:
    header_timeout = _seconds("client_header_timeout")
    body_timeout = _seconds("client_body_timeout")
    slow_header = (b"POST /v1/check HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: 1\r\n")
    slow_body = (
        b"POST /v1/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b'Content-Length: 200\r\n\r\n{"nir":',
        None,
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        header = pool.submit(_slow_client, topology, "127.0.0.21", *slow_header)
        body = pool.submit(_slow_client, topology, "127.0.0.22", *slow_body)
        # The header keeps arriving, a line a second, yet must be whole within the timeout.
        assert header_timeout - 1 <= header.result(timeout=60) <= header_timeout + 3
        assert body_timeout - 1 <= body.result(timeout=60) <= body_timeout + 3
    with topology.client("127.0.0.23") as client:
        assert topology.check(client).status_code == 200


def test_logs_hold_no_client_address(topology: Topology) -> None:
    """nginx logs a refused body with the client's address at its default level: not here."""
    address = "127.0.0.60"
    with topology.client(address) as client:
        assert client.post(CHECK, content=b"x" * 5000).status_code == 413
        malformed = client.post(CHECK, content=b"{", headers={"content-type": "application/json"})
        assert malformed.status_code == 422
        assert topology.check(client).status_code == 200
    logs = topology.all_logs()
    assert "index loaded" in logs  # the logs are the right files, and written to
    for used in ("127.0.0.9", "127.0.0.12", "127.0.0.20", "127.0.0.21", address):
        assert used not in logs


def _lookup_index(*args: str) -> None:
    command = [str(Path(sys.executable).with_name("lookup-index")), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_rolling_pepper_rotation_keeps_every_answer(topology: Topology) -> None:
    """docs/OPERATIONS.md "Rotate the pepper": a new (index, pepper) pair, one replica at a time.

    While a replica restarts, nginx sends everything to the other one, and a
    check never fails; after the swap each replica answers from the new pair.
    """
    new = topology.directory / "generation-2"
    new.mkdir()
    new_key, new_index = new / "selfcheck.key", new / "index.bin"
    _lookup_index("keygen", "--out", str(new_key))
    _lookup_index(
        "build", "--input", str(topology.dataset.export), "--key-file", str(new_key),
        "--out", str(new_index), "--profile", "test", "--incident", "test-incident",
        "--incident-label", "Test incident", "--workers", "1", "--quiet",
    )  # fmt: skip
    _lookup_index("verify", str(new_index), "--key-file", str(new_key))
    addresses = (f"127.0.0.{n}" for n in range(100, 200))

    def expected_answers_through_the_proxy(count: int) -> None:
        for _ in range(count):
            probe = next(topology.probes)
            with topology.client(next(addresses)) as client:
                response = client.post(CHECK, json=_body(probe))
            assert response.status_code == 200
            assert response.json()["status"] == probe.expected

    for number in (1, 2):
        old = topology.replicas[number - 1]
        stop_process(old.process)
        expected_answers_through_the_proxy(4)  # the other replica carries everything
        topology.start_replica(number, new_index, new_key, port=old.port)
        expected_answers_through_the_proxy(4)
    # Both replicas now hash with the new pepper: answers straight from each are right.
    for replica in topology.replicas:
        probe = next(p for p in topology.probes if p.expected == "affected")
        with httpx.Client(base_url=replica.url, timeout=20) as as_proxy:
            response = as_proxy.post(
                CHECK,
                json=_body(probe),
                headers={"x-forwarded-for": next(addresses)},
            )
        assert response.json()["status"] == "affected"


def test_http2_answers_are_the_same_size_whatever_the_status(topology: Topology) -> None:
    """Over HTTP/2, HPACK codes :status 200 in one byte and 422 in five: the proxy's
    X-Padding evens that out, so HEADERS and DATA sizes say nothing of the outcome."""
    json_type = {"content-type": "application/json"}
    hit = orjson.dumps(_body(next(topology.probes)))
    requests = [
        # nginx's first HEADERS on a connection carries one more byte (an HPACK table-size
        # update), whatever the answer: spent on a health check, out of the comparison.
        ("GET", "/healthz", b"", {}),
        ("POST", CHECK, hit, json_type),
        ("POST", CHECK, orjson.dumps(_body(next(topology.probes))), json_type),
        ("POST", CHECK, b'{"nir": 1}', json_type),
        ("POST", CHECK, b"{}", {"content-type": "text/plain"}),
        ("POST", CHECK, b"{" + b" " * 3000 + b"}", json_type),
        # Refused bodies count in their own junk bucket: three more checks, then the sixth.
        *[("POST", CHECK, orjson.dumps(_body(next(topology.probes))), json_type)] * 3,
        ("POST", CHECK, hit, json_type),  # the sixth check: 429
    ]
    answers = h2_exchange(
        topology.nginx.https_port, topology.certificate, requests, source="127.0.0.70"
    )[1:]
    assert [a.status for a in answers] == [200, 200, 422, 415, 413, 200, 200, 200, 429]
    sizes = {(a.header_block_without_date(), len(a.body)) for a in answers}
    assert len(sizes) == 1, [(a.status, a.header_block_without_date()) for a in answers]


def test_a_request_flood_from_one_address_stops_at_the_proxy(topology: Topology) -> None:
    """Past the per-address request rate, nginx refuses before any replica (or Redis) works."""
    written = [_bytes_written(r.process) for r in topology.replicas]
    with topology.client("127.0.0.71") as client:
        statuses = [client.post(CHECK, content=b"{}", headers={"content-type": "text/plain"})
                    for _ in range(40)]  # fmt: skip
    by_proxy = [r for r in statuses if r.status_code == 429 and "padding" not in r.json()]
    assert len(by_proxy) >= 20
    answered = sum(
        _bytes_written(r.process) - b for r, b in zip(topology.replicas, written, strict=True)
    )
    assert answered < 20 * len(statuses[0].content)


def test_connections_per_address_are_capped_at_the_proxy(topology: Topology) -> None:
    """Twenty requests held open (bodies still arriving) from one address: the next one is
    refused by nginx; another address is served."""
    found = re.search(r"limit_conn selfcheck_conn_per_client (\d+);", TEMPLATE.read_text())
    assert found, "no per-client connection cap in the template"
    cap = int(found[1])
    context = ssl.create_default_context(cafile=str(topology.certificate))
    held = []
    try:
        for _ in range(cap):
            raw = socket.create_connection(
                ("127.0.0.1", topology.nginx.https_port),
                timeout=5,
                source_address=("127.0.0.80", 0),
            )
            sock = context.wrap_socket(raw, server_hostname="localhost")
            held.append(sock)
            # Not /v1/check, whose request rate cap would answer first.
            sock.sendall(b"POST /held HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.5)
        with topology.client("127.0.0.80") as same, topology.client("127.0.0.81") as other:
            refused = topology.check(same)
            served = topology.check(other)
    finally:
        for sock in held:
            sock.close()
    assert refused.status_code == 429
    assert "padding" not in refused.json()  # nginx's own answer: no replica saw it
    assert served.status_code == 200
