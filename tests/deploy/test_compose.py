"""deploy/compose.yaml is internally consistent (parsed with PyYAML; no Docker engine needed).

The API believes X-Forwarded-For only from the proxy's address, every service
has a health check, secrets are files, the replicas share one Redis, nothing
but the proxy is published, and the nginx template gets every variable it needs.
Private delivery: the outbox is a Redis of its own (AOF, noeviction) that the replicas
and the send-worker reach on one internal network, with the ACL users of
deploy/redis/outbox.acl.template (tests/deploy/test_outbox_acl.py loads it into a real
redis-server).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.client_address import IPNetwork
from app.limit_syntax import parse_limits
from app.settings import Settings
from tests.deploy.dockerfile import REPO, option, parse_dockerfile, runtime_stage
from tests.support.nginx import TEMPLATE, template_variables

COMPOSE = REPO / "deploy" / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / "env.example"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


#: The send-worker's command: this repository's image, another entry point.
WORKER_COMMAND = ["selfcheck", "send-worker"]


def _built(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile."""
    return {name: s for name, s in services.items() if "build" in s}


@pytest.fixture(scope="module")
def apis(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The built services running the image's own CMD (``selfcheck serve``): the replicas."""
    found = {name: s for name, s in _built(services).items() if "command" not in s}
    assert len(found) >= 2, "the reference stack runs at least two API replicas"
    return found


@pytest.fixture(scope="module")
def worker(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The one built service running ``selfcheck send-worker``."""
    (found,) = [s for s in _built(services).values() if s.get("command") == WORKER_COMMAND]
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _networks(value: str) -> set[IPNetwork]:
    return {ipaddress.ip_network(item, strict=False) for item in re.split(r"[,\s]+", value) if item}


def _address_on(service: dict[str, Any], network: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(service["networks"][network]["ipv4_address"])


def _subnet(compose: dict[str, Any], network: str) -> IPNetwork:
    (config,) = compose["networks"][network]["ipam"]["config"]
    return ipaddress.ip_network(config["subnet"])


def _shared_network(a: dict[str, Any], b: dict[str, Any]) -> str:
    shared = set(a.get("networks", {})) & set(b.get("networks", {}))
    assert len(shared) == 1, f"expected exactly one network in common, got {shared}"
    return shared.pop()


def test_only_the_proxy_publishes_ports(services: dict[str, dict[str, Any]]) -> None:
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"proxy"}
    assert all(not s.get("network_mode") for s in services.values())


SERVICES = [
    "proxy",
    "api-1",
    "api-2",
    "redis",
    "outbox",
    "send-worker",
    "redis-exporter",
    "prometheus",
    "grafana",
]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_a_health_check(services: dict[str, dict[str, Any]], name: str) -> None:
    assert set(services) == set(SERVICES)
    check = services[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert len(check["test"]) > 1
    assert not check.get("disable", False)
    for key in ("interval", "timeout", "retries"):
        assert check[key]


def test_the_replicas_health_check_is_the_images(apis: dict[str, dict[str, Any]]) -> None:
    image_check = runtime_stage(parse_dockerfile()).last("HEALTHCHECK").exec_form()
    for name, api in apis.items():
        assert api["healthcheck"]["test"] == ["CMD", *image_check], name


def test_every_selfcheck_variable_given_to_the_api_is_a_setting(
    apis: dict[str, dict[str, Any]], worker: dict[str, Any]
) -> None:
    """A variable no setting reads does nothing, silently: the operator thinks it is set."""
    for name, api in {**apis, "send-worker": worker}.items():
        given = {var for var in api["environment"] if var.startswith("SELFCHECK_")}
        unknown = {
            var
            for var in given
            if var.removeprefix("SELFCHECK_").lower() not in Settings.model_fields
        }
        assert unknown == set(), name


def test_trusted_proxies_are_exactly_the_proxys_address(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    proxy = services["proxy"]
    for name, api in apis.items():
        env = api["environment"]
        trusted = _networks(env["SELFCHECK_TRUSTED_PROXIES"])
        # `selfcheck serve` turns uvicorn's own X-Forwarded-For handling off: one list.
        assert "FORWARDED_ALLOW_IPS" not in env, name
        network = _shared_network(proxy, api)
        subnet = _subnet(compose, network)
        proxy_address = _address_on(proxy, network)
        assert proxy_address in subnet
        assert trusted, name
        for trusted_network in trusted:
            assert proxy_address in trusted_network, (name, trusted_network)
            assert trusted_network.subnet_of(subnet), (name, trusted_network)  # type: ignore[arg-type]
        # No replica is trusted: only the proxy writes X-Forwarded-For.
        for other in apis.values():
            address = _address_on(other, network)
            assert address in subnet
            assert not any(address in t for t in trusted), (name, address)


def test_fixed_addresses_are_outside_dockers_dynamic_range(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for network_name, network in compose["networks"].items():
        for config in network.get("ipam", {}).get("config", []):
            dynamic = ipaddress.ip_network(config["ip_range"])
            for service in services.values():
                settings = (service.get("networks") or {}).get(network_name) or {}
                if "ipv4_address" in settings:
                    assert ipaddress.ip_address(settings["ipv4_address"]) not in dynamic


def test_replicas_share_one_persistent_redis_store(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    stores = {api["environment"]["SELFCHECK_RATE_LIMIT_STORAGE"] for api in apis.values()}
    assert len(stores) == 1
    (store,) = stores
    match = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/\d+", store)
    assert match, store
    redis = services[match.group(1)]
    command = _command(redis)
    assert command[0] == "redis-server"
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction"
    port = option(command, "--port") if "--port" in command else "6379"
    assert match.group(2) == port
    # Counters survive a restart: /data is a volume.
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    for api in apis.values():
        _shared_network(api, redis)


def test_secrets_are_files_not_environment_values(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} must come from a file"
    for name, api in apis.items():
        targets = {s["target"] for s in api["secrets"]}
        key_file = api["environment"]["SELFCHECK_KEY_FILE"]
        # A bare name, resolved in /run/secrets (the app's SELFCHECK_SECRETS_DIR default).
        assert "/" not in key_file
        assert key_file in targets, name
    proxy_env = services["proxy"]["environment"]
    proxy_targets = {s["target"] for s in services["proxy"]["secrets"]}
    for variable in ("NGINX_TLS_CERT", "NGINX_TLS_KEY"):
        directory, _, file_name = proxy_env[variable].rpartition("/")
        assert directory == "/run/secrets"
        assert file_name in proxy_targets
    for service in services.values():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"KEY|PEPPER|PASSWORD|SECRET|TOKEN", variable):
                assert re.fullmatch(r"[\w./-]+", str(value)), f"{variable} looks like a value"
                assert not re.search(r"[0-9a-fA-F]{32,}", str(value)), variable


def test_no_secret_value_in_the_file() -> None:
    text = COMPOSE.read_text()
    assert "-----BEGIN" not in text
    assert not re.search(r"[0-9a-fA-F]{32,}", text)  # a hex pepper
    assert not re.search(r"[A-Za-z0-9+/]{40,}={0,2}", text)  # a base64 key
    assert not re.search(r"\w+://[^\s/@]*:[^\s/@]+@", text)  # a URL with credentials
    settings = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert not re.search(r"(?i)password\s*[:=]|requirepass", settings)


def test_the_index_is_mounted_read_only_and_services_are_hardened(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    index_path = runtime_stage(parse_dockerfile()).env()["SELFCHECK_INDEX_PATH"]
    for name, api in apis.items():
        assert api["environment"]["SELFCHECK_INDEX_PATH"] == index_path
        (mount,) = [v for v in api["volumes"] if v["target"] == index_path]
        assert mount["read_only"] is True, name
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service.get("user"), f"{name} must not run as root"


def test_the_proxy_template_gets_every_variable_and_targets_every_replica(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    proxy = services["proxy"]
    mounted = [v for v in proxy["volumes"] if v["source"].endswith(".template")]
    assert [m["source"] for m in mounted] == ["./nginx/" + TEMPLATE.name]
    env = proxy["environment"]
    assert template_variables(TEMPLATE.read_text()) == set(env)
    upstreams = sorted(v for k, v in env.items() if k.startswith("NGINX_API_"))
    port = option(runtime_stage(parse_dockerfile()).last("CMD").exec_form(), "--port")
    assert upstreams == sorted(f"{name}:{port}" for name in apis)
    # The template's listen ports are the published container ports.
    published = {p.split(":")[-1] for p in proxy["ports"]}
    assert published == {env["NGINX_LISTEN_HTTP"], env["NGINX_LISTEN_HTTPS"]}


def test_env_example_defines_every_required_variable() -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required
    example = ENV_EXAMPLE.read_text()
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert required <= defined
    # ...and only file paths or public values: no secret in the example either.
    assert not re.search(r"[0-9a-fA-F]{32,}", example)


#: Measured by `python -m loadtests.bench_edge` (docs/BENCHMARKS.md, "Redis memory"):
#: what one client leaves in Redis for a day after one check.
REDIS_BYTES_PER_CLIENT_DAY = 2236


def test_redis_maxmemory_holds_a_day_at_the_global_ceiling(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    """At the ceiling, every check from a new client: the day's keys must fit, or every
    check answers 503 hours before the oldest counters expire (2 GiB lasted 9-11 h)."""
    maxmemory = option(_command(services["redis"]), "--maxmemory")
    default = re.fullmatch(r"\$\{REDIS_MAXMEMORY:-(\d+)gb\}", maxmemory)
    assert default, maxmemory
    ceiling = parse_limits(str(Settings.model_fields["global_limit"].default))[0]
    per_day = ceiling.amount * 86_400 / ceiling.get_expiry()
    assert int(default.group(1)) * 1024**3 >= per_day * REDIS_BYTES_PER_CLIENT_DAY


def test_redis_requires_a_password_that_the_apis_read_from_a_secret_file(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    redis_targets = {s["target"] for s in redis["secrets"]}
    # redis.conf (a secret file) holds `requirepass`: the password is on no command line.
    assert redis["command"][1] == "/run/secrets/redis.conf"
    assert "redis.conf" in redis_targets
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    for name, api in apis.items():
        env = api["environment"]
        assert "@" not in env["SELFCHECK_RATE_LIMIT_STORAGE"], name
        password_file = env["SELFCHECK_RATE_LIMIT_PASSWORD_FILE"]
        assert password_file in {s["target"] for s in api["secrets"]}, name
        assert env["SELFCHECK_REQUIRE_SIGNED_INDEX"] == "true", name
        mounts = {v["target"] for v in api["volumes"]}
        assert env["SELFCHECK_INDEX_PUBLIC_KEY_FILE"] in mounts, name


# --- Private delivery: the outbox Redis and the send-worker ------------------------------------

ACL_TEMPLATE = REPO / "deploy" / "redis" / "outbox.acl.template"
_URL = re.compile(r"redis://([a-z0-9-]+)@([a-z0-9-]+):(\d+)/\d+")


def env_example() -> dict[str, str]:
    """deploy/env.example's values (what `docker compose` reads from deploy/.env)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"([A-Z0-9_]+)=(.*)", line)
        if match:
            values[match.group(1)] = match.group(2).strip('"')
    return values


def interpolated(environment: dict[str, Any], defined: dict[str, str]) -> dict[str, str]:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``, from ``defined``."""

    def value(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if name in defined and defined[name] != "":
            return defined[name]
        assert operator != ":?", f"{name} is required and env.example leaves it empty"
        return rest if operator == ":-" else ""

    pattern = re.compile(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}")
    return {key: pattern.sub(value, str(item)) for key, item in environment.items()}


def acl_users(text: str) -> dict[str, list[str]]:
    """``user NAME rule...`` lines; a selector ``(...)`` stays one rule."""
    users = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        words = re.findall(r"\([^)]*\)|\S+", line)
        assert words[0] == "user", line
        users[words[1]] = words[2:]
    return users


def _outbox_user(service: dict[str, Any]) -> str:
    match = _URL.fullmatch(service["environment"]["SELFCHECK_OUTBOX_URL"])
    assert match
    return match.group(1)


@pytest.fixture(scope="module")
def outbox_store(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]], worker: dict[str, Any]
) -> str:
    """The outbox's service name: the one host every replica's and the worker's URL names."""
    hosts = set()
    for service in [*apis.values(), worker]:
        match = _URL.fullmatch(service["environment"]["SELFCHECK_OUTBOX_URL"])
        assert match, service["environment"]["SELFCHECK_OUTBOX_URL"]
        store = _command(services[match.group(2)])
        port = option(store, "--port") if "--port" in store else "6379"
        assert match.group(3) == port
        hosts.add(match.group(2))
    (host,) = hosts
    return host


def test_the_send_worker_runs_the_replicas_image(
    apis: dict[str, dict[str, Any]], worker: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    # Every built service is a replica or the worker: nothing else runs this code.
    assert len(_built(services)) == len(apis) + 1
    for api in apis.values():
        assert (worker["image"], worker["build"], worker["user"]) == (
            api["image"],
            api["build"],
            api["user"],
        )
    # No index, no pepper: the worker never sees a query, only sealed entries.
    env = worker["environment"]
    assert "SELFCHECK_INDEX_PATH" not in env
    assert "SELFCHECK_KEY_FILE" not in env
    assert not worker.get("volumes")


def test_the_outbox_is_its_own_persistent_store(
    services: dict[str, dict[str, Any]], apis: dict[str, dict[str, Any]], outbox_store: str
) -> None:
    """An SMTP outage grows the stream: it must never fill the rate-limit store."""
    rate_limit_hosts = {
        urlsplit(api["environment"]["SELFCHECK_RATE_LIMIT_STORAGE"]).hostname
        for api in apis.values()
    }
    assert outbox_store not in rate_limit_hosts
    outbox = services[outbox_store]
    command = _command(outbox)
    assert command[0] == "redis-server"
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--appendfsync") in ("everysec", "always")
    assert option(command, "--maxmemory-policy") == "noeviction"
    (volume,) = [str(v) for v in outbox["volumes"] if str(v).endswith(":/data")]
    rate_limit_volumes = {str(v) for h in rate_limit_hosts for v in services[str(h)]["volumes"]}
    assert volume not in rate_limit_volumes
    # Users (and their passwords) come from a secret file, not from the command line.
    acl_file = option(command, "--aclfile")
    directory, _, file_name = acl_file.rpartition("/")
    assert directory == "/run/secrets"
    assert file_name in {s["target"] for s in outbox["secrets"]}
    assert "--requirepass" not in command
    assert "--user" not in command


#: docs/OPERATIONS.md 11.6: an entry costs about 310 bytes in Redis memory.
OUTBOX_BYTES_PER_ENTRY = 310


def test_outbox_maxmemory_holds_a_day_of_smtp_outage_at_the_global_ceiling(
    services: dict[str, dict[str, Any]], outbox_store: str
) -> None:
    maxmemory = option(_command(services[outbox_store]), "--maxmemory")
    default = re.fullmatch(r"\$\{OUTBOX_MAXMEMORY:-(\d+)gb\}", maxmemory)
    assert default, maxmemory
    assert int(env_example()["OUTBOX_MAXMEMORY"].removesuffix("gb")) >= int(default.group(1))
    ceiling = parse_limits(str(Settings.model_fields["global_limit"].default))[0]
    per_day = ceiling.amount * 86_400 / ceiling.get_expiry()
    assert int(default.group(1)) * 1024**3 >= per_day * OUTBOX_BYTES_PER_ENTRY


def test_the_worker_and_the_replicas_reach_the_outbox_on_one_internal_network(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    apis: dict[str, dict[str, Any]],
    worker: dict[str, Any],
    outbox_store: str,
) -> None:
    outbox = services[outbox_store]
    (network,) = {_shared_network(s, outbox) for s in [*apis.values(), worker]}
    assert compose["networks"][network]["internal"] is True
    members = {name for name, s in services.items() if network in (s.get("networks") or {})}
    assert members == {*apis, outbox_store, next(n for n, s in services.items() if s is worker)}
    # The outbox Redis is on that network alone.
    assert set(outbox["networks"]) == {network}
    # The worker reaches neither the rate-limit store, nor the proxy, nor monitoring.
    for name in ("redis", "proxy", "prometheus"):
        assert not set(worker["networks"]) & set(services[name]["networks"]), name
    # Its other network is its way to the SMTP relay: not internal, and its alone.
    (egress,) = set(worker["networks"]) - {network}
    assert not (compose["networks"][egress] or {}).get("internal", False)
    assert [n for n, s in services.items() if egress in (s.get("networks") or {})] == [
        n for n, s in services.items() if s is worker
    ]


def test_the_worker_publishes_nothing_and_its_secrets_are_files(
    compose: dict[str, Any], apis: dict[str, dict[str, Any]], worker: dict[str, Any]
) -> None:
    assert not worker.get("ports")
    assert not worker.get("expose")
    assert worker["read_only"] is True
    env = worker["environment"]
    targets = {s["target"] for s in worker["secrets"]}
    files = {k: v for k, v in env.items() if k.endswith("_FILE")}
    assert set(files) == {
        "SELFCHECK_OUTBOX_PASSWORD_FILE",
        "SELFCHECK_OUTBOX_KEY_FILE",
        "SELFCHECK_SENDER_KEY_FILE",
        "SELFCHECK_SMTP_USERNAME_FILE",
        "SELFCHECK_SMTP_PASSWORD_FILE",
    }
    for variable, file_name in files.items():
        assert "/" not in file_name, variable
        assert file_name in targets, variable
    # One file per secret: a key is never the SMTP password's file, or the reverse.
    assert len({s["source"] for s in worker["secrets"]}) == len(worker["secrets"])
    # No credential in the SMTP URL; the sender's key never reaches an API host.
    assert "@" not in env["SELFCHECK_SMTP_URL"]
    sender_source = next(
        s["source"] for s in worker["secrets"] if s["target"] == env["SELFCHECK_SENDER_KEY_FILE"]
    )
    assert sender_source in compose["secrets"]
    for name, api in apis.items():
        assert sender_source not in {s["source"] for s in api["secrets"]}, name
        assert not {"SELFCHECK_SENDER_KEY_FILE", "SELFCHECK_SMTP_URL"} & set(api["environment"])


def test_the_replicas_write_to_the_outbox_only_when_told(
    apis: dict[str, dict[str, Any]], worker: dict[str, Any]
) -> None:
    worker_secrets = {s["target"]: s["source"] for s in worker["secrets"]}
    for name, api in apis.items():
        env = api["environment"]
        assert env["SELFCHECK_DELIVERY"] == "${SELFCHECK_DELIVERY:-screen}", name
        targets = {s["target"]: s["source"] for s in api["secrets"]}
        key = env["SELFCHECK_OUTBOX_KEY_FILE"]
        # One outbox key, both sides: entries the API seals, the worker authenticates.
        assert targets[key] == worker_secrets[worker["environment"]["SELFCHECK_OUTBOX_KEY_FILE"]]
        password = env["SELFCHECK_OUTBOX_PASSWORD_FILE"]
        assert "/" not in password, name
        assert password in targets, name
        # Its own ACL user and password, not the worker's.
        worker_password = worker["environment"]["SELFCHECK_OUTBOX_PASSWORD_FILE"]
        assert targets[password] != worker_secrets[worker_password], name
    assert env_example()["SELFCHECK_DELIVERY"] == "screen"


@pytest.mark.parametrize("delivery", ["screen", "private"])
def test_the_services_environments_are_valid_settings(
    apis: dict[str, dict[str, Any]],
    worker: dict[str, Any],
    delivery: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """What each service is given parses: a typo in a value stops the service at start."""
    defined = {**env_example(), "SELFCHECK_DELIVERY": delivery}
    for name, service in {**apis, "send-worker": worker}.items():
        secrets = tmp_path / name
        secrets.mkdir()
        for secret in service["secrets"]:
            (secrets / secret["target"]).write_text("generated-for-the-test")
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("SELFCHECK_")]:
                patch.delenv(key)
            for key, value in interpolated(service["environment"], defined).items():
                patch.setenv(key, value)
            patch.setenv("SELFCHECK_SECRETS_DIR", str(secrets))
            settings = Settings()
        assert settings.resolved_outbox_url() == service["environment"]["SELFCHECK_OUTBOX_URL"]
        if service is not worker:
            assert settings.delivery == delivery, name


def test_the_acl_template_grants_the_api_user_only_xadd_on_the_stream(
    apis: dict[str, dict[str, Any]], worker: dict[str, Any]
) -> None:
    from tests.support.delivery import acl_lines

    stream = Settings.model_fields["outbox_stream"].default
    assert "SELFCHECK_OUTBOX_STREAM" not in worker["environment"]
    users = acl_users(ACL_TEMPLATE.read_text())
    (api_name,) = {_outbox_user(api) for api in apis.values()}
    worker_name = _outbox_user(worker)
    assert set(users) == {"default", api_name, worker_name}
    api_rules = users[api_name]
    assert api_rules[0] == "on"
    assert re.fullmatch(r">@[A-Z_]+@", api_rules[1])
    # Only the stream's key, no channel, no command but XADD, no selector.
    assert api_rules[2:] == ["resetkeys", f"~{stream}", "resetchannels", "-@all", "+xadd"]
    # The sender's rules are those tests/app/delivery/ run the worker with.
    tested = acl_users("\n".join(acl_lines(stream)))
    assert users[worker_name][2:] == tested[worker_name][2:]
    assert users[worker_name][1] != api_rules[1]
    # Every user has a password placeholder: none is open, none shares another's.
    placeholders = [rules[1] for rules in users.values()]
    assert all(re.fullmatch(r">@[A-Z_]+@", p) for p in placeholders)
    assert len(set(placeholders)) == len(placeholders)
