"""A real nginx (Debian's) on loopback, configured from deploy/nginx's template. Bounded in time.

The site configuration is rendered from the same template the container uses,
the way the nginx image renders it (envsubst of the given names only), and
wrapped in a main configuration that keeps every path in a temporary
directory: /etc/nginx is never read or touched. Never skipped: `make test`
installs nginx (scripts/ensure-system-packages.sh).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import START_TIMEOUT, free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "nginx" / "default.conf.template"

#: ``${NAME}`` or ``$NAME``: envsubst replaces both forms, and only for the names it is given.
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_TEMPLATE_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def nginx_binary() -> str:
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise RuntimeError("nginx not installed: run scripts/ensure-system-packages.sh")
    return binary


def template_variables(template: str) -> set[str]:
    """The ``${NAME}`` placeholders a deployment must define."""
    return set(_TEMPLATE_VARIABLE.findall(template))


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """What the nginx image's 20-envsubst-on-templates.sh does with these variables defined."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return _VARIABLE.sub(substitute, template)


def config_block(config: str, opening: str) -> str:
    """The body of the block whose first line starts with ``opening`` (e.g. ``upstream x {``).

    Blocks close on a ``}`` line indented like their opening line, as in the template.
    """
    lines = config.splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith(opening):
            indent = line[: len(line) - len(line.lstrip())]
            body = []
            for inner in lines[number + 1 :]:
                if inner == indent + "}":
                    return "\n".join(body)
                body.append(inner)
    raise LookupError(f"no block {opening!r}")


def self_signed_certificate(directory: Path, timeout: float = 30.0) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 and localhost, valid two days: (certificate, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not installed: apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=timeout,
    )  # fmt: skip
    return cert, key


def _main_config(directory: Path, site: Path) -> str:
    temp = directory / "temp"
    # As root, nginx's workers would otherwise run as `nobody` and could not
    # enter pytest's 0700 temporary directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\n"
        "worker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} notice;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    client_body_temp_path {temp / 'body'};\n"
        f"    proxy_temp_path {temp / 'proxy'};\n"
        f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
        f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"    scgi_temp_path {temp / 'scgi'};\n"
        f"    include {site};\n"
        "}\n"
    )


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclass
class NginxServer:
    directory: Path
    http_port: int
    https_port: int
    process: subprocess.Popen[bytes]
    site_config: str

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log_text(self) -> str:
        """Everything nginx wrote: its main error log and its stderr (the site's error_log)."""
        parts = [self.directory / "error.log", self.directory / "stderr.log"]
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())


@contextlib.contextmanager
def nginx_server(
    directory: Path,
    upstreams: Sequence[str],
    certificate: Path,
    key: Path,
    *,
    template: Path = TEMPLATE,
    timeout: float = START_TIMEOUT,
) -> Iterator[NginxServer]:
    """Debian's nginx with the deploy template, in front of ``upstreams`` (host:port)."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "temp" / sub).mkdir(parents=True, exist_ok=True)
    http_port, https_port = free_port(), free_port()
    variables = {
        "NGINX_SERVER_NAME": "localhost",
        "NGINX_PUBLIC_ORIGIN": f"https://127.0.0.1:{https_port}",
        "NGINX_LISTEN_HTTP": f"127.0.0.1:{http_port}",
        "NGINX_LISTEN_HTTPS": f"127.0.0.1:{https_port}",
        "NGINX_TLS_CERT": str(certificate),
        "NGINX_TLS_KEY": str(key),
    } | {f"NGINX_API_{i}": upstream for i, upstream in enumerate(upstreams, start=1)}
    text = template.read_text()
    missing = template_variables(text) - variables.keys()
    if missing:
        raise ValueError(f"template needs {sorted(missing)}; got upstreams {list(upstreams)}")
    site = directory / "default.conf"
    site.write_text(render_template(text, variables))
    main = directory / "nginx.conf"
    main.write_text(_main_config(directory, site))
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [nginx_binary(), "-p", str(directory), "-e", str(directory / "error.log"),
             "-c", str(main)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )  # fmt: skip
    server = NginxServer(directory, http_port, https_port, process, site.read_text())
    try:
        deadline = time.monotonic() + timeout
        for port in (http_port, https_port):
            while not _listening(port):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"nginx exited with {process.returncode}: {server.log_text()}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nginx not up after {timeout} s: {server.log_text()}")
                time.sleep(0.05)
        yield server
    finally:
        stop_process(process)
