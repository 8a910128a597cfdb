"""Raw HTTP/1.1 over a socket: what a TLS observer counts is the bytes, headers included."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import orjson

from lookup_index.generator import Probe


@dataclass(frozen=True)
class WireAnswer:
    head: bytes  # status line and headers, up to and including the blank line
    body: bytes

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header_names(self) -> list[bytes]:
        lines = self.head.split(b"\r\n")[1:]
        return [line.split(b":", 1)[0].lower() for line in lines if line]

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.lower() == name:
                return value.strip()
        return None


def request(
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
    **headers: str,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body or method == "POST":
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def check_request(probe: Probe, **headers: str) -> bytes:
    body = {"nir": probe.nir, "birth_date": probe.birth_date, "last_name": probe.last_name}
    return request("POST", "/v1/check", orjson.dumps(body), **headers)


def read_answer(sock: socket.socket) -> WireAnswer:
    """One answer with a Content-Length body (all the API sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} bytes")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    answer = WireAnswer(head + b"\r\n\r\n", b"")
    length = int(answer.header(b"content-length") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        rest += chunk
    return WireAnswer(answer.head, rest[:length])


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> WireAnswer:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_answer(sock)


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the server closes this connection within ``within`` seconds (EOF or reset)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False
