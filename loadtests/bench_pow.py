"""Proof-of-work benchmark: what a check costs a phone, an attacker and the server.

    .venv/bin/python loadtests/bench_pow.py [--challenges 12] [--profile standard]
        [--memory-kib 32768,65536]   # other Argon2 memory costs, measured side by side

1. The widget's solver (the vendored ALTCHA Argon2id worker) in Debian's Chromium with
   DevTools CPU throttling x4, standing in for a mid-range phone: median time of one
   attempt, which sets ``PowProfile.attempt_ms`` and so every step's counter range.
2. The attacker's native solver (argon2-cffi, one core of this machine): one attempt.
3. Per cost step: W, the phone's median solve time, and the attacker's core-seconds per
   admitted answer (W/2 attempts on average, plus nothing: the check itself is free to
   the asker).
4. The server's CPU per admitted check (one challenge made in the pool, one verification,
   one index hash) against one index hash alone.

Both solvers run here side by side, so their ratio holds on other machines. Results:
``loadtests/results/bench/pow-<time>.json``; the table goes to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import altcha
import httpx
import psutil
from playwright.sync_api import sync_playwright

from app.admission.pow import PROFILES, CostSteps, PowProfile, ProofOfWork
from loadtests.plotting import pow_cost_per_step
from lookup_index import KeyedHasher
from lookup_index.profiles import PROFILES as INDEX_PROFILES
from tests.support.browser import launch_chromium

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "app" / "static" / "widget" / "vendor" / "altcha-argon2id.js"
THROTTLE = 4
#: The page only hosts the worker; its CSP is the widget's.
PAGE = "<!doctype html><title>pow</title>"
SOLVE_IN_WORKER = """async (challenge) => {
  const worker = new Worker("/worker.js");
  const result = await new Promise((resolve) => {
    worker.onmessage = ({ data }) => resolve(data);
    const work = { type: "work", challenge, counterStart: 0, counterStep: 1, timeout: 600000 };
    worker.postMessage(work);
  });
  worker.terminate();
  return result;
}"""


def chromium_attempt_ms(challenges: list[dict[str, Any]]) -> list[float]:
    """Per challenge, the solve time divided by the attempts it took (counter + 1)."""
    worker = WORKER.read_bytes()
    csp = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'"
    per_attempt = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.route(
                "http://bench.local/",
                lambda route: route.fulfill(
                    body=PAGE, content_type="text/html", headers={"content-security-policy": csp}
                ),
            )
            page.route(
                "http://bench.local/worker.js",
                lambda route: route.fulfill(
                    body=worker,
                    content_type="text/javascript",
                    headers={"content-security-policy": csp},
                ),
            )
            page.goto("http://bench.local/")
            session = page.context.new_cdp_session(page)
            session.send("Emulation.setCPUThrottlingRate", {"rate": THROTTLE})
            for challenge in challenges:
                solution = page.evaluate(SOLVE_IN_WORKER, challenge)
                per_attempt.append(solution["time"] / (solution["counter"] + 1))
        finally:
            browser.close()
    return per_attempt


def native_attempt_ms(challenges: list[dict[str, Any]]) -> list[float]:
    per_attempt = []
    for challenge in challenges:
        parsed = altcha.Challenge.from_dict(challenge)
        started = time.process_time()
        solution = altcha.solve_challenge(parsed, timeout=600)
        assert solution is not None
        per_attempt.append((time.process_time() - started) * 1000 / (solution.counter + 1))
    return per_attempt


def server_ms(pow_: ProofOfWork, index_profile: str, runs: int = 20) -> dict[str, float]:
    """CPU milliseconds (this thread) of: making one challenge, verifying one, one index hash."""
    hasher = KeyedHasher(b"\x01" * 32, b"\x02" * 16, INDEX_PROFILES[index_profile])
    challenge = pow_.create(0, counter=0)
    payload = altcha.Payload(
        altcha.Challenge.from_dict(challenge),
        altcha.solve_challenge(altcha.Challenge.from_dict(challenge), counter_start=0),  # type: ignore[arg-type]
    ).to_base64()

    def cpu(action: Any) -> float:
        started = time.process_time()
        for _ in range(runs):
            action()
        return (time.process_time() - started) * 1000 / runs

    return {
        "make_challenge_ms": cpu(lambda: pow_.create(0)),
        "verify_ms": cpu(lambda: pow_.verify(payload)),
        "index_hash_ms": cpu(lambda: hasher.digest(b"v1|1850375115423|1985-03-02|DUPONT")),
    }


def refused_share(work: Path, requests: int = 150) -> dict[str, float]:
    """API process CPU per refused (429) and per admitted check, on one kept-alive connection.

    A 200-row index with the standard profile; the refused checks are past the unproven
    network limit, so they stop before any identity work, as an attacker's do.
    """
    from lookup_index.builder import BuildOptions, build_index
    from lookup_index.generator import generate, read_probes
    from lookup_index.pepper import generate_pepper_file, load_pepper
    from lookup_index.profiles import STANDARD
    from tests.support.servers import api_server

    export, probes_csv, key, index = (work / n for n in ("e.csv", "p.csv", "k.key", "i.bin"))
    generate(200, 5, export, probes_csv, probes=200)
    generate_pepper_file(key)
    build_index(BuildOptions(input=export, out=index, pepper=load_pepper(key), profile=STANDARD))
    bodies = [
        {"nir": p.nir, "birth_date": p.birth_date, "last_name": p.last_name}
        for p in read_probes(probes_csv)
        if p.expected != "invalid"
    ]
    env = {
        "SELFCHECK_INDEX_PATH": str(index),
        "SELFCHECK_KEY_FILE": str(key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",  # its index may use the `test` profile
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_LOG_LEVEL": "warning",
        "SELFCHECK_LIMITS_PER_NETWORK": "1/day",
        "SELFCHECK_GLOBAL_LIMIT": "100000/second",
        "SELFCHECK_LIMITS_PER_IDENTITY_UNPROVEN": "100000/day",
        "SELFCHECK_LIMITS_PER_IPV4_24": "100000/day",
    }
    with api_server(env, work / "api.log") as api:
        process = psutil.Process(api.process.pid)

        def cpu_per_request(address: str, count: int, expect: int) -> float:
            transport = httpx.HTTPTransport(local_address=address)
            with httpx.Client(transport=transport, base_url=api.url, timeout=30) as http:
                http.post("/v1/check", json=bodies[0])  # the connection, and the first answer
                before = sum(process.cpu_times()[:2])
                for n in range(count):
                    status = http.post("/v1/check", json=bodies[n % len(bodies)]).status_code
                    assert status == expect, status
                return (sum(process.cpu_times()[:2]) - before) * 1000 / count

        refused = cpu_per_request("127.0.9.1", requests, 429)
        # The same refusals, each on a fresh connection (a bot keeps none open).
        fresh_ms = []
        for n in range(60):
            with httpx.Client(
                transport=httpx.HTTPTransport(local_address="127.0.9.1"),
                base_url=api.url,
                timeout=30,
            ) as http:
                before = sum(process.cpu_times()[:2])
                assert http.post("/v1/check", json=bodies[n]).status_code == 429
                fresh_ms.append((sum(process.cpu_times()[:2]) - before) * 1000)
        refused_fresh = statistics.mean(fresh_ms)
        # Admitted: a fresh address (and connection) per check, the network limit is 1 a day.
        transport_ms = []
        for n in range(40):
            with httpx.Client(
                transport=httpx.HTTPTransport(local_address=f"127.0.10.{n + 1}"),
                base_url=api.url,
                timeout=30,
            ) as http:
                before = sum(process.cpu_times()[:2])
                assert http.post("/v1/check", json=bodies[n]).status_code == 200
                transport_ms.append((sum(process.cpu_times()[:2]) - before) * 1000)
        admitted = statistics.mean(transport_ms)
    return {
        "refused_cpu_ms": round(refused, 3),
        "refused_fresh_connection_cpu_ms": round(refused_fresh, 3),
        "admitted_cpu_ms": round(admitted, 2),
        "refused_share": round(refused / admitted, 4),
        "refused_fresh_connection_share": round(refused_fresh / admitted, 4),
    }


def measure_profile(
    profile: PowProfile, count: int, index_profile: str, min_ms: int, max_ms: int
) -> dict[str, Any]:
    """Phone and attacker per attempt, side by side, and what that makes each step cost."""
    # Challenges with a known, mid-range counter: a solve then takes a known number of tries.
    probe = ProofOfWork(CostSteps(profile, 1, 1), 600, b"\x03" * 32)
    challenges = [probe.create(0, counter=7) for _ in range(count)]
    browser = chromium_attempt_ms(challenges)
    native = native_attempt_ms(challenges)
    phone_ms = statistics.median(browser)
    native_ms = statistics.median(native)
    measured = CostSteps(replace(profile, attempt_ms=phone_ms), min_ms, max_ms)
    server = server_ms(ProofOfWork(measured, 120, b"\x03" * 32), index_profile)
    per_check = server["make_challenge_ms"] + server["verify_ms"] + server["index_hash_ms"]
    steps = []
    for step in range(measured.top + 1):
        width = measured.counter_range(step)
        steps.append(
            {
                "step": step,
                "W": width,
                "phone_median_solve_s": round(width / 2 * phone_ms / 1000, 2),
                "attacker_core_s_per_answer": round(width / 2 * native_ms / 1000, 2),
            }
        )
    return {
        "argon2": {"t": profile.time_cost, "m_kib": profile.memory_kib, "p": profile.parallelism},
        "phone_attempt_ms_median": round(phone_ms, 1),
        "phone_attempt_ms_all": [round(v, 1) for v in browser],
        "native_attempt_ms_median": round(native_ms, 2),
        "phone_over_native": round(phone_ms / native_ms, 1),
        "server_cpu_ms": {k: round(v, 3) for k, v in server.items()},
        "server_cpu_per_admitted_check_over_one_hash": round(
            per_check / server["index_hash_ms"], 2
        ),
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=12)
    parser.add_argument("--profile", default="standard", choices=sorted(PROFILES))
    parser.add_argument("--index-profile", default="standard")
    parser.add_argument("--min-solve-ms", type=int, default=1000)
    parser.add_argument("--max-solve-ms", type=int, default=8000)
    parser.add_argument(
        "--memory-kib",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[],
        help="other Argon2 memory costs to measure beside the profile, comma-separated",
    )
    parser.add_argument("--skip-refusal", action="store_true")
    parser.add_argument(
        "--refusal-only", action="store_true", help="only the refused/admitted CPU share"
    )
    args = parser.parse_args(argv)
    base = PROFILES[args.profile]
    candidates = {f"{args.profile} ({base.memory_kib // 1024} MiB)": base}
    for memory in args.memory_kib:
        candidates[f"m={memory // 1024} MiB"] = replace(base, memory_kib=memory, attempt_ms=1.0)
    profiles = {
        label: measure_profile(
            profile, args.challenges, args.index_profile, args.min_solve_ms, args.max_solve_ms
        )
        for label, profile in ({} if args.refusal_only else candidates).items()
    }
    refusal = {}
    if not args.skip_refusal:
        with tempfile.TemporaryDirectory() as work:
            refusal = refused_share(Path(work))
    result = {
        "profile": args.profile,
        "chromium_throttle": THROTTLE,
        "min_solve_ms": args.min_solve_ms,
        "max_solve_ms": args.max_solve_ms,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "refusal": refusal,
        "profiles": profiles,
    }
    out = ROOT / "loadtests" / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pow-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    plot = ROOT / "docs" / "img" / "pow_cost_steps.png"
    if profiles:
        pow_cost_per_step({label: r["steps"] for label, r in profiles.items()}, plot)
    print(json.dumps(result, indent=2))
    print(f"written to {path}; plot {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
