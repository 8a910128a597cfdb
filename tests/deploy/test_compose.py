"""deploy/compose.yaml is internally consistent (parsed with PyYAML; no Docker engine needed).

The API believes X-Forwarded-For only from the proxy's address, every service
has a health check, secrets are files, the replicas share one Redis, nothing
but the proxy is published, and the nginx template gets every variable it needs.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

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


@pytest.fixture(scope="module")
def apis(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile."""
    found = {name: s for name, s in services.items() if "build" in s}
    assert len(found) >= 2, "the reference stack runs at least two API replicas"
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


SERVICES = ["proxy", "api-1", "api-2", "redis", "redis-exporter", "prometheus", "grafana"]


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
    apis: dict[str, dict[str, Any]],
) -> None:
    """A variable no setting reads does nothing, silently: the operator thinks it is set."""
    for name, api in apis.items():
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
