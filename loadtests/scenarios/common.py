"""Pieces every scenario shares: simulated client networks, the probes and the leaked
list, page loading with its assets, and the shared ledger.

Client networks: the API trusts ``X-Forwarded-For`` from 127.0.0.1 in the load-test
run only (``run.sh`` sets ``SELFCHECK_TRUSTED_PROXIES=127.0.0.1/32``), so each
simulated client presents its own network, as patients behind their own ISPs do.
Each client gets a network of its own at every tier a limit may count (IPv4 /32 and
/24; IPv6 /64, /48 and /32): patients from 10.0.0.0/9 and, for a quarter of them,
from fd00::/16 (unique local addresses); attackers from 10.128.0.0/9 and fd01::/16,
so no two simulated clients ever share a bucket. Scenarios about shared addresses
choose theirs on purpose.
"""

from __future__ import annotations

import csv
import itertools
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from locust import FastHttpUser

from app.routes.paths import CHECK_PATH
from loadtests.config import load_config
from loadtests.export_dates import iso_date
from loadtests.ledger import Ledger, Tier, breaches
from lookup_index.generator import Probe, read_probes
from lookup_index.normalise import normalise_last_name

WIDGET_PATH = "/widget"
#: Assets a page references (scripts, styles, images, fonts, catalogues), relative or
#: absolute paths; anything with a scheme or a host is another origin's and skipped.
_ASSET = re.compile(
    r"""(?:src|href)\s*=\s*["'](?![a-z][a-z0-9+.\-]*:|//)([^"'#?]+\.(?:js|mjs|css|svg|png|ico|webp|woff2?|json))""",
    re.IGNORECASE,
)
_NIR_SEPARATORS = re.compile(r"[\s.\-]+")


class NetworkAllocator:
    """Hands out client addresses, each in an IPv4 /24 or an IPv6 /32 never used before in
    this run (until 2**15 resp. 2**16 clients), so no two simulated clients share a
    rate-limit bucket at any network tier."""

    def __init__(self, second_octet_base: int, ipv6_prefix: int, ipv6_share: float) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._v4_base = second_octet_base
        self._v6_prefix = ipv6_prefix
        self._ipv6_share = ipv6_share
        self._rng = random.Random()

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
            use_v6 = self._rng.random() < self._ipv6_share
        if use_v6:
            # fd00::/8 is private (unique local): its /32s are the prefix and 16 free bits.
            return f"{self._v6_prefix:x}:{n % 0x10000:x}::1"
        network = n % (1 << 15)  # the /24s of a /9
        return f"10.{self._v4_base + (network >> 8)}.{network & 0xFF}.1"


@cache
def patient_networks() -> NetworkAllocator:
    return NetworkAllocator(second_octet_base=0, ipv6_prefix=0xFD00, ipv6_share=0.25)


@cache
def attacker_networks() -> NetworkAllocator:
    return NetworkAllocator(second_octet_base=128, ipv6_prefix=0xFD01, ipv6_share=0.0)


@cache
def ledger() -> Ledger:
    return Ledger()


@dataclass(frozen=True, slots=True)
class ProbePool:
    valid: list[Probe]
    invalid: list[Probe]


@cache
def probe_pool(path: Path) -> ProbePool:
    probes = read_probes(path)
    valid = [p for p in probes if p.expected in ("affected", "not_found")]
    invalid = [p for p in probes if p.expected == "invalid"]
    if not valid:
        raise RuntimeError(f"no valid probes in {path}")
    return ProbePool(valid, invalid)


def leaked_identities(path: Path, limit: int = 20_000) -> list[dict[str, str]]:
    """The first ``limit`` rows of the generated export, as an attacker would submit them
    (dates turned into ISO, the only format the API takes)."""
    rows: list[dict[str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        delimiter = ";" if ";" in handle.readline() else ","
        handle.seek(0)
        for row in csv.DictReader(handle, delimiter=delimiter):
            born = iso_date(row["birth_date"])
            rows.append({"nir": row["nir"], "birth_date": born, "last_name": row["last_name"]})
            if len(rows) >= limit:
                break
    return rows


def cycle_shuffled(items: list[dict[str, str]], seed: int) -> Iterator[dict[str, str]]:
    order = items[:]
    random.Random(seed).shuffle(order)
    return itertools.cycle(order)


def query_of(probe: Probe) -> dict[str, str]:
    return {"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name}


def mistype_nir(nir: str, rng: random.Random) -> str:
    """One wrong digit among the order number: the NIR key (mod 97) always catches it."""
    compact = _NIR_SEPARATORS.sub("", nir).upper()
    position = rng.randrange(10, 13)
    wrong = rng.choice([d for d in "0123456789" if d != compact[position]])
    return compact[:position] + wrong + compact[position + 1 :]


def mistype_name(name: str, rng: random.Random) -> str:
    """One doubled letter: still a well-formed name, no longer the patient's.

    Not any doubled letter: the identity rules fold some typings together on purpose
    (``Guéérin`` and ``Guérin`` meet, as U+E folds like Ü), and such a typo still finds
    the patient; only a doubling the rules keep apart is a different name."""
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    rng.shuffle(letters)
    folded = normalise_last_name(name)
    for i in letters:
        typed = name[: i + 1] + name[i] + name[i + 1 :]
        if normalise_last_name(typed) != folded:
            return typed
    return name + name[-1] + "x"  # no letter to double apart: still another name


def page_with_assets(
    user: Any,
    path: str,
    headers: dict[str, str],
    group: str,
    widget_optional: bool,
    lang: str = "fr",
) -> None:
    """GET a page, then every same-origin asset it references, like a browser with a cold
    cache. A 404 passes only with LOADTEST_WIDGET_OPTIONAL (before the widget existed)."""
    html = get_ok(user, path, headers, f"{group}: GET {path}", widget_optional)
    for reference in dict.fromkeys(_ASSET.findall(html)):
        asset = urljoin(path, reference)
        get_ok(user, asset, headers, f"{group}: GET {asset}", widget_optional)
    if path == WIDGET_PATH and html:
        # What widget.js fetches once it runs: its message catalogue for the page's language.
        catalogue = f"{WIDGET_PATH}/i18n/{lang}.json"
        get_ok(user, catalogue, headers, f"{group}: GET {catalogue}", widget_optional)


def get_ok(user: Any, path: str, headers: dict[str, str], name: str, optional: bool) -> str:
    with user.client.get(path, headers=headers, name=name, catch_response=True) as response:
        if response.status_code == 200:
            response.success()
            return str(response.text or "")
        if response.status_code == 404 and optional:
            response.success()
        else:
            response.failure(f"HTTP {response.status_code}")
    return ""


def think(rng: random.Random) -> None:
    config = load_config()
    # time.sleep is gevent's under Locust: only this simulated user waits.
    time.sleep(rng.uniform(config.think_min_s, config.think_max_s))


def post_attack(
    user: FastHttpUser,
    scenario: str,
    key: str,
    body: dict[str, str],
    xff: str,
    tiers: list[Tier],
    admitted_statuses: tuple[int, ...],
    name: str,
    invalid_rows: bool = False,
) -> int:
    """Send one attack request, judge it, record it; returns the HTTP status.

    ``invalid_rows``: the attacker replays an export that may hold rows the API refuses
    (422); those are neither admitted nor unexpected. Otherwise a 422 is unexpected."""
    config = load_config()
    sent = time.time()
    response: Any
    with user.client.post(
        CHECK_PATH, json=body, headers={"X-Forwarded-For": xff}, name=name, catch_response=True
    ) as response:
        status = response.status_code
        if status == 429:
            ledger().attack(scenario, key, False, "refused (429)", sent)
            response.success()
        elif status == 422 and invalid_rows:
            # A malformed row: refused before any network or identity budget (junk has its
            # own limit), so neither admitted nor a breach.
            ledger().attack(scenario, key, False, "invalid (422)", sent)
            response.success()
        elif status in admitted_statuses:
            times = ledger().attack(scenario, key, True, f"admitted ({status})", sent)
            found = breaches({key: times}, tiers, config.clock_slack_s)
            if found:
                worst = found[0]
                response.failure(
                    f"admitted beyond the limit {worst.tier}: "
                    f"{worst.admitted_in_window} > {worst.allowed}"
                )
            else:
                response.success()
        else:
            ledger().attack(scenario, key, False, f"unexpected (HTTP {status})", sent)
            response.failure(f"HTTP {status}")
    return int(status)
