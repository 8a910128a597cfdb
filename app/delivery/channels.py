"""Where a message goes: e-mail (SMTP, the one real channel) and the SMS slot.

A channel raises :class:`DeliveryFailed` when the message was not accepted; ``permanent``
says a retry cannot help (a 5xx answer), so the entry becomes a dead letter at once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit


class DeliveryFailed(Exception):
    """The server did not accept the message (the cause's type is logged, never a value)."""

    def __init__(self, cause: str, *, permanent: bool = False) -> None:
        super().__init__(cause)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    timeout: float = 30.0

    @classmethod
    def from_url(
        cls, url: str, username: str | None, password: str | None, timeout: float = 30.0
    ) -> SmtpConfig:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(
            parts.hostname or "localhost", parts.port or (465 if tls else 25), tls, username,
            password, timeout,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.implicit_tls})"


class EmailChannel:
    """SMTP through aiosmtplib: implicit TLS (smtps://) or STARTTLS whenever offered.

    One connection is kept between messages (a new one per message cost ~4x the
    throughput, docs/BENCHMARKS.md); any failure closes it, the next send reconnects.
    """

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._client: Any = None

    async def _connected(self) -> Any:
        # Imported here: only the send-worker sends mail; the API never loads it.
        import aiosmtplib

        if self._client is None or not self._client.is_connected:
            config = self.config
            client = aiosmtplib.SMTP(
                hostname=config.host,
                port=config.port,
                use_tls=config.implicit_tls,
                start_tls=None if not config.implicit_tls else False,
                username=config.username,
                password=config.password,
                timeout=config.timeout,
            )
            await client.connect()
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            with contextlib.suppress(Exception):
                await client.quit()

    async def send(self, message: EmailMessage) -> None:
        import aiosmtplib

        try:
            try:
                client = await self._connected()
                await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                # The kept connection went idle and the server closed it: once more, afresh.
                await self.close()
                client = await self._connected()
                await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self.close()
            codes = [r.code for r in exc.recipients]
            raise DeliveryFailed("smtp recipient refused", permanent=min(codes) >= 500) from None
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            raise DeliveryFailed(f"smtp {exc.code}", permanent=exc.code >= 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise DeliveryFailed(type(exc).__name__) from None


class SmsChannel(Protocol):
    """The SMS slot: an SMS gateway's client implements this (none is shipped).

    ``send`` gets an E.164 French mobile number and the text of
    :func:`app.delivery.messages.sms_text` (no data categories), and raises
    :class:`DeliveryFailed` unless the gateway accepted it.
    """

    name: str

    async def send_sms(self, mobile: str, text: str) -> None: ...
