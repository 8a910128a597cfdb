"""At saturation, with every feature on, a hit and a miss look the same on the wire.

One real `selfcheck serve` with one hash slot and many more checks in flight, every
check proven (proof of work on, a pre-solved payload each), hits and misses interleaved.
Compared, as a TLS observer would see them: status, bytes on the wire (head and body) and
time to answer (two-sample Kolmogorov-Smirnov test).

FEATURES is the switchboard: each entry is the settings that turn one feature on, and all
of them are on: proof of work, metrics (scraped during the run, so the exporter really
works under load) and private delivery. In private delivery every valid check answers
"submitted" and writes one sealed outbox entry: a hit seals a delivery, a miss a nothing
entry of the same size. So the index is one with sealed contacts, the outbox a real
redis-server with the API's ACL user, and the outcome is read back from the outbox
(opened with the outbox key, as the send-worker does), never from the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import orjson
import pytest
from scipy.stats import ks_2samp

from app.delivery.outbox_entry import EntrySealer, Kind
from lookup_index.generator import Probe
from lookup_index.pepper import load_pepper
from tests.app.helpers import GENEROUS_ENV
from tests.security.conftest import serve_env_for
from tests.security.wire import WireAnswer, read_answer, request
from tests.support.delivery import STREAM, AclRedis, ContactDataset, acl_redis, make_contact_dataset
from tests.support.pow import presolved
from tests.support.servers import ApiServer, api_server, free_port

pytestmark = [pytest.mark.security, pytest.mark.slow]

#: Settings per feature; all of them are on in this test ({metrics_port}: a free port).
FEATURES: dict[str, dict[str, str]] = {
    "proof of work": {"SELFCHECK_POW": "on"},
    "metrics": {"SELFCHECK_METRICS_PORT": "{metrics_port}"},
    "private delivery": {
        "SELFCHECK_DELIVERY": "private",
        "SELFCHECK_OUTBOX_URL": "{outbox_url}",
        "SELFCHECK_OUTBOX_PASSWORD_FILE": "{outbox_password_file}",
        "SELFCHECK_OUTBOX_KEY_FILE": "{outbox_key_file}",
    },
}
FLOOR_MS = 150
HASH_SLOTS = 1
IN_FLIGHT = 12  # more checks in flight than hash slots, under the queue's cap (8 per slot)
ROUNDS = 100  # hits and as many misses
#: A KS p-value under this says hit and miss timings differ (one test: no correction).
ALPHA = 0.01


@dataclass(frozen=True)
class Saturated:
    server: ApiServer
    metrics_port: int
    contacts: ContactDataset
    outbox: AclRedis


@pytest.fixture(scope="module")
def saturated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Saturated]:
    """The server with every feature on, its metrics port, its index and its outbox."""
    directory = tmp_path_factory.mktemp("saturation")
    contacts = make_contact_dataset(directory / "contacts")
    metrics_port = free_port()
    with acl_redis(directory / "outbox") as outbox:
        placeholders = {
            "metrics_port": str(metrics_port),
            "outbox_url": outbox.url("selfcheck-api"),
            "outbox_password_file": str(outbox.password_file("selfcheck-api")),
            "outbox_key_file": str(contacts.outbox_key),
        }
        features = {
            k: v.format(**placeholders)
            for settings in FEATURES.values()
            for k, v in settings.items()
        }
        env = {
            **serve_env_for(contacts.index, contacts.key),
            **GENEROUS_ENV,
            "SELFCHECK_RESPONSE_FLOOR_MS": str(FLOOR_MS),
            "SELFCHECK_HASH_CONCURRENCY": str(HASH_SLOTS),
            "SELFCHECK_POW_PROFILE": "test",
            **features,
        }
        with api_server(env, directory / "server.log") as server:
            yield Saturated(server, metrics_port, contacts, outbox)


def outbox_kinds(saturated: Saturated) -> list[Kind]:
    """What each outbox entry says, opened with the outbox key as the send-worker opens it."""
    sealer = EntrySealer(load_pepper(saturated.contacts.outbox_key), STREAM)
    admin = saturated.outbox.admin()
    try:
        return [sealer.open(fields[b"e"]).kind for _, fields in admin.xrange(STREAM)]
    finally:
        admin.close()


def timed_check(port: int, probe: Probe, payload: str) -> tuple[WireAnswer, float]:
    body = {
        "nir": probe.nir,
        "birth_date": probe.birth_date,
        "last_name": probe.last_name,
        "altcha": payload,
    }
    raw = request("POST", "/v1/check", orjson.dumps(body))
    started = time.perf_counter()  # as tests/app/test_floor_process.py: connect included
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(raw)
        answer = read_answer(sock)
        return answer, time.perf_counter() - started


def test_hit_and_miss_are_alike_at_saturation_with_every_feature_on(
    saturated: Saturated,
) -> None:
    server, metrics_port, contacts = saturated.server, saturated.metrics_port, saturated.contacts
    pepper = load_pepper(contacts.key)
    # Affected with an e-mail address and without any contact alike, and unknown people.
    hits = [probe for probe, _ in contacts.with_email] + contacts.without_contact
    misses = contacts.not_found
    order = [p for i in range(ROUNDS) for p in (hits[i % len(hits)], misses[i % len(misses)])]
    payloads = [presolved(pepper) for _ in order]  # solved before the clock starts
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        scrape = pool.submit(httpx.get, f"http://127.0.0.1:{metrics_port}/metrics", timeout=20)
        results = list(
            pool.map(
                lambda args: timed_check(server.port, *args), zip(order, payloads, strict=True)
            )
        )

    metrics = scrape.result()
    assert metrics.status_code == 200
    assert "selfcheck_" in metrics.text

    by_outcome: dict[str, list[tuple[WireAnswer, float]]] = {"affected": [], "not_found": []}
    for probe, result in zip(order, results, strict=True):
        by_outcome[probe.expected].append(result)
    hit, miss = by_outcome["affected"], by_outcome["not_found"]
    assert {a.status for a, _ in hit} == {a.status for a, _ in miss} == {200}
    # Private delivery: one answer for all, and the outcome only in the sealed outbox, where
    # the answers really differ: a delivery per hit, a nothing entry per miss.
    assert {orjson.loads(a.body)["status"] for a, _ in hit + miss} == {"submitted"}
    kinds = outbox_kinds(saturated)
    assert kinds.count(Kind.DELIVER) == len(hit)
    assert kinds.count(Kind.NOTHING) == len(miss)
    wire = {len(a.head) + len(a.body) for a, _ in hit + miss}
    assert len(wire) == 1, wire
    assert min(t for _, t in hit + miss) >= FLOOR_MS / 1000
    p_value = ks_2samp([t for _, t in hit], [t for _, t in miss]).pvalue
    assert p_value > ALPHA, f"hit and miss timings differ (KS p = {p_value:.4f})"
