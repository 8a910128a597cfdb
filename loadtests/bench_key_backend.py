"""Benchmark of the key backends: one HMAC through SoftHSM2 (pkcs11) vs the pepper file.

Each check computes exactly one HMAC-SHA256 over a 32-byte Argon2id output, so the
pkcs11 backend's cost per check is one token operation (plus the hop to the token's
thread that bounds its wait). This script measures, side by side in one run, with the
same key material imported into a fresh SoftHSM2 token in a temporary directory:

1. one HMAC through each backend (``KeyBackend.hmac_sha256``), in interleaved rounds
   so a neighbour's load hits both alike; wall and CPU time per call;
2. one whole keyed hash (``KeyedHasher.digest``: Argon2id + HMAC) with ``--profile``
   (default ``standard``) through each backend, to put the HMAC next to Argon2.

Usage::

    python loadtests/bench_key_backend.py                  # ~30 s on 2 cores
    python loadtests/bench_key_backend.py --calls 20000 --hashes 100 --profile fast

Needs Debian's softhsm2 (``scripts/ensure-system-packages.sh`` installs it).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lookup_index.key_backend import FileKeyBackend, KeyBackend
from lookup_index.keyed_hash import KeyedHasher
from lookup_index.profiles import PROFILES

TOKEN_LABEL = "bench"  # noqa: S105 - a label, not a secret


def _token(directory: Path) -> str:
    """A fresh SoftHSM2 token under ``directory``; sets SOFTHSM2_CONF; returns the user PIN."""
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = secrets.token_hex(8)
    subprocess.run(
        [
            *("softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL),
            *("--pin", pin, "--so-pin", secrets.token_hex(8)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return pin


def _per_call(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(wall, CPU of this process) seconds per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def _rounds(
    backends: dict[str, Callable[[], object]], calls: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Median over interleaved rounds of (wall, CPU) per call for each backend."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    for _ in range(rounds):
        for name, call in backends.items():
            samples[name].append(_per_call(call, calls))
    return {
        name: (
            statistics.median(s[0] for s in values),
            statistics.median(s[1] for s in values),
        )
        for name, values in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="HMACs per round and backend")
    parser.add_argument("--hashes", type=int, default=40, help="keyed hashes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    args = parser.parse_args(argv)

    from lookup_index.pkcs11_backend import (
        SOFTHSM2_LIBRARY,
        Pkcs11Config,
        Pkcs11KeyBackend,
        import_key,
    )

    pepper = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="bench-key-") as tmp:
        pin = _token(Path(tmp))
        config = Pkcs11Config(SOFTHSM2_LIBRARY, TOKEN_LABEL, "bench-key", pin)
        import_key(config, pepper)
        backends: dict[str, KeyBackend] = {
            "file": FileKeyBackend(pepper),
            "pkcs11 (SoftHSM2)": Pkcs11KeyBackend(config),
        }
        try:
            message = secrets.token_bytes(32)  # an Argon2id output's size
            assert len({b.hmac_sha256(message) for b in backends.values()}) == 1
            hmac_times = _rounds(
                {n: (lambda b=b: b.hmac_sha256(message)) for n, b in backends.items()},
                args.calls,
                args.rounds,
            )
            salt = secrets.token_bytes(16)
            profile = PROFILES[args.profile]
            hashers = {n: KeyedHasher(b, salt, profile) for n, b in backends.items()}
            canonical = b"v1|1850375123456|1985-03-12|DUPONT"
            hash_times = _rounds(
                {n: (lambda h=h: h.digest(canonical)) for n, h in hashers.items()},
                args.hashes,
                args.rounds,
            )
        finally:
            for backend in backends.values():
                backend.close()

    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; medians of {args.rounds} interleaved rounds\n")
    print(
        f"| backend | one HMAC, wall | one HMAC, CPU | keyed hash ({args.profile}), wall "
        "| keyed hash, CPU |"
    )
    print("|---|---|---|---|---|")
    for name in backends:
        (h_wall, h_cpu), (d_wall, d_cpu) = hmac_times[name], hash_times[name]
        print(
            f"| {name} | {h_wall * 1e6:.1f} µs | {h_cpu * 1e6:.1f} µs "
            f"| {d_wall * 1e3:.2f} ms | {d_cpu * 1e3:.2f} ms |"
        )
    file_hmac, token_hmac = hmac_times["file"][0], hmac_times["pkcs11 (SoftHSM2)"][0]
    argon2 = hash_times["file"][1]  # CPU: on a shared machine wall time measures neighbours
    print(
        f"\npkcs11 HMAC / file HMAC: {token_hmac / file_hmac:.0f}x; "
        f"extra per check: {(token_hmac - file_hmac) * 1e6:.0f} µs = "
        f"{(token_hmac - file_hmac) / argon2 * 100:.2f} % of one {args.profile} keyed hash's CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
