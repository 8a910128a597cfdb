"""A minimal HTTP/2 client over TLS that also counts the HEADERS bytes of each answer.

HPACK compresses headers, so the size a TLS observer sees is the HEADERS frame,
not the decoded header list: this client reads the frames as they arrive.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

_HEADERS, _CONTINUATION = 0x1, 0x9


@dataclass
class H2Answer:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_block: int = 0  # bytes of HPACK on the wire
    body: bytes = b""

    def header_block_without_date(self) -> int:
        """The Date header's size changes with the clock (Huffman), not with the answer."""
        date = self.headers.get(b"date", b"")
        encoded = len(HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(date))
        return self.header_block - (1 + 1 + min(encoded, len(date)))


def h2_exchange(
    port: int,
    certificate: Path,
    requests: list[tuple[str, str, bytes, dict[str, str]]],
    source: str = "127.0.0.1",
    timeout: float = 20.0,
) -> list[H2Answer]:
    """Send ``requests`` (method, path, body, headers) one after the other on one connection."""
    context = ssl.create_default_context(cafile=str(certificate))
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        if sock.selected_alpn_protocol() != "h2":
            raise ConnectionError("the server did not negotiate HTTP/2")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        buffer = b""
        answers = []
        for method, path, body, headers in requests:
            stream = conn.get_next_available_stream_id()
            request_headers = [
                (":method", method), (":path", path), (":scheme", "https"),
                (":authority", "localhost"), ("content-length", str(len(body))),
                *headers.items(),
            ]  # fmt: skip
            conn.send_headers(stream, request_headers, end_stream=not body)
            if body:
                conn.send_data(stream, body, end_stream=True)
            sock.sendall(conn.data_to_send())
            answer = H2Answer()
            ended = False
            while not ended:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed mid-answer")
                buffer += data
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    kind = buffer[3]
                    (stream_id,) = struct.unpack(">I", buffer[5:9])
                    if kind in (_HEADERS, _CONTINUATION) and stream_id & 0x7FFFFFFF == stream:
                        answer.header_block += length
                    buffer = buffer[9 + length :]
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        answer.headers = {bytes(k): bytes(v) for k, v in event.headers}
                        answer.status = int(answer.headers[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        answer.body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = True
                sock.sendall(conn.data_to_send())
            answers.append(answer)
        return answers
