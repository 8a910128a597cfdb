"""Service settings: environment variables prefixed ``SELFCHECK_``, validated at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretBytes, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.client_address import IPNetwork
from app.limit_syntax import parse_limits, storage_scheme
from lookup_index import FileKeyBackend, KeyBackend, KeyBackendError, load_pepper
from lookup_index.pkcs11_backend import Pkcs11Config, Pkcs11KeyBackend, read_pin_file

#: Where orchestrators mount secrets as files (Docker/Compose/Kubernetes).
DEFAULT_SECRETS_DIR = Path("/run/secrets")
# A CSP source expression: a keyword, a scheme, or a host source. No separators, no quotes
# elsewhere, so a setting can never add a directive to the header.
_CSP_SOURCE = re.compile(
    r"'self'|'none'|[a-z][a-z0-9+.\-]*:|[a-z][a-z0-9+.\-]*://[^\s;,']+|[^\s;,':]+(:\d+)?"
)
# A serialised origin as browsers send it in `Origin`: scheme, host, optional port, nothing else.
_ORIGIN = re.compile(r"https?://[a-z0-9.\-]+(:\d{1,5})?|https?://\[[0-9a-f:.]+\](:\d{1,5})?")


def _split(value: object) -> object:
    """Accept comma- or space-separated lists in environment variables."""
    if isinstance(value, str):
        return [item for item in value.replace(",", " ").split() if item]
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment; no ``.env`` unless one is named."""

    model_config = SettingsConfigDict(
        env_prefix="SELFCHECK_",
        env_file=None,
        extra="ignore",
        frozen=True,
        # A refused value may be a secret (a Redis URL with its password): never echo it.
        hide_input_in_errors=True,
    )

    index_path: Path = Path("index.bin")
    #: Serve an index built with the ``test`` Argon2 profile (tests and demos only).
    allow_test_profile: bool = False
    #: The index signer's Ed25519 public key (PEM, from ``lookup-index keygen --signing``).
    index_public_key_file: Path | None = None
    #: Refuse an index that is not signed by that key (the compose stack sets it).
    require_signed_index: bool = False
    #: Where the key lives: ``file`` (the pepper file) or ``pkcs11`` (an HSM).
    key_backend: Literal["file", "pkcs11"] = "file"
    #: The pepper file. A bare name is also looked up in ``secrets_dir`` (e.g. /run/secrets).
    key_file: Path = Path("selfcheck.key")
    secrets_dir: Path = DEFAULT_SECRETS_DIR
    #: The HSM's PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2).
    pkcs11_library: Path | None = None
    pkcs11_token_label: str = ""
    pkcs11_key_label: str = "selfcheck-pepper"
    #: The token's user PIN, read from this file (a bare name is looked up in ``secrets_dir``).
    pkcs11_pin_file: Path = Path("selfcheck-pkcs11.pin")
    #: Longest wait for one token operation before the check answers 503.
    pkcs11_timeout_ms: int = Field(default=2000, ge=50, le=30_000)
    response_floor_ms: int = Field(default=250, ge=0, le=10_000)
    max_body_bytes: int = Field(default=2048, ge=256, le=65_536)
    #: The body must be complete this long after the head, or the answer is the padded 408.
    body_timeout_s: float = Field(default=5.0, gt=0, le=60)
    allowed_origins: Annotated[list[str], NoDecode] = []
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = []
    #: Who may read /readyz (besides the trusted proxies): it says when the store is down.
    health_allowed: Annotated[list[IPNetwork], NoDecode] = [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    #: Admitted checks hashing or waiting for a hash slot before overload answers the 503;
    #: 0 means QUEUE_PER_HASH_SLOT per hash slot (app/admission/queue.py).
    max_in_flight: int = Field(default=0, ge=0, le=100_000)
    docs_enabled: bool = False
    #: Response bodies of /v1/check are padded to exactly this many bytes.
    response_size: int = Field(default=8192, ge=4096, le=65_536)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: One line per request on stdout: ``json`` (production) or ``text`` (``make run``).
    log_format: Literal["json", "text"] = "json"
    #: Prometheus exposition (``/metrics``), served by ``selfcheck serve`` on its own port,
    #: never the public one; loopback unless the scraper needs another interface.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9180, ge=1, le=65_535)
    #: Operator-owned texts: privacy notice, incident descriptions, advice (FR/EN); unset,
    #: the bundled defaults (docs/OPERATIONS.md, "Texts").
    content_dir: Path | None = None
    #: Reload the index when its file changes (SIGHUP always reloads).
    index_watch: bool = True

    # Rate limiting (see README "Rate limits").
    #: May hold a password (redis://:password@host), so it stays out of repr().
    rate_limit_storage: str = Field(default="memory://", repr=False)
    #: The store's password, read from this file (a bare name is looked up in ``secrets_dir``)
    #: and handed to the client apart from the URL, so it is never an environment value.
    rate_limit_password_file: Path | None = None
    #: A 32-byte key file for the rate-limit storage keys, apart from the pepper, so that
    #: rotating the pepper keeps the counters (docs/OPERATIONS.md, "Rotate"); unset, they
    #: derive from the pepper.
    rate_limit_key_file: Path | None = None
    # The unproven class (no valid proof of work): small budgets on every network tier.
    limits_per_network: str = "5/minute;20/hour;50/day"
    limits_per_ipv4_24: str = "20/minute;100/hour;300/day"
    limits_per_ipv6_48: str = "50/minute;200/hour;500/day"
    limits_per_ipv6_32: str = "100/minute;500/hour;2000/day"
    limits_per_identity_unproven: str = "3/day"
    #: The unproven class's global ceiling, small: free checks cannot crowd out paid ones.
    global_limit: str = "5/second"
    # The proven class: an allowance per address big enough for a carrier NAT.
    limits_per_address_proven: str = "120/minute;2000/hour;10000/day"
    limits_per_identity: str = "10/day"
    #: Per NIR's first 10 characters (sex, year, month, place), both classes: caps
    #: completing a victim's NIR over its ~999 order numbers whatever names are rotated.
    limits_per_nir_prefix: str = "60/day"
    #: Sized to the Argon2 capacity of the whole deployment.
    global_limit_proven: str = "40/second"
    #: Refused bodies (413, 415, 422), per IPv4 address or IPv6 /64: never a global budget.
    limits_junk: str = "30/minute;300/hour"
    #: GET /v1/challenge per IPv4 address or IPv6 /64 (slowapi): above the proven address
    #: allowance, since each proven check needs a challenge (and a few are abandoned).
    limits_challenge: str = "150/minute;2500/hour"
    #: How long a proven check may wait for room under its ceiling and a hash slot.
    admission_wait_ms: int = Field(default=2000, ge=0, le=30_000)

    # Proof of work (ALTCHA v2, Argon2id; see README "Admission").
    pow: Literal["on", "off"] = "on"
    pow_profile: Literal["test", "standard", "hardened"] = "standard"
    #: Median solve time of the cheapest and the dearest step on a mid-range phone. At
    #: 10 s the dearest step costs a native solver about one core-second per answer.
    pow_min_solve_ms: int = Field(default=1000, ge=1, le=60_000)
    pow_max_solve_ms: int = Field(default=10_000, ge=1, le=600_000)
    pow_ttl_s: int = Field(default=120, ge=10, le=3600)
    pow_pool_size: int = Field(default=64, ge=1, le=100_000)
    pow_pool_cpu_share: float = Field(default=0.25, gt=0, le=1)
    #: A site (IPv4 /24, IPv6 /48) past this rate of proven checks gets dearer challenges.
    pow_escalate_after: str = "60/minute"
    #: The attack signal rises once the top cost step has held this long.
    attack_after_s: int = Field(default=300, ge=1, le=86_400)
    rate_limit_timeout_ms: int = Field(default=500, ge=50, le=5_000)
    #: How many worker processes share this configuration (uvicorn --workers).
    workers: int = Field(default=1, ge=1, le=64)

    # Private delivery (README "Private delivery", docs/OPERATIONS.md).
    #: screen: the answer on screen; private: "we wrote to you" for every valid query and
    #: one sealed outbox entry each; auto: screen while calm, private under attack.
    delivery: Literal["screen", "private", "auto"] = "screen"
    #: The outbox's Redis (a Stream); unset, the rate-limit store when it is redis://.
    #: May hold an ACL user name (redis://selfcheck-api@host); never a password.
    outbox_url: str | None = Field(default=None, repr=False)
    #: The outbox store's password (its ACL user's), read from this file.
    outbox_password_file: Path | None = None
    outbox_stream: str = Field(default="selfcheck:outbox", pattern=r"^[A-Za-z0-9:._-]{1,64}$")
    #: 32 bytes (``lookup-index keygen``) authenticating and sealing outbox entries: on the
    #: API hosts and the send-worker, never in Redis.
    outbox_key_file: Path | None = None
    #: The send-worker's X25519 private key (``lookup-index keygen --sender``): worker only.
    sender_key_file: Path | None = None
    #: smtp://host:587 (STARTTLS when offered) or smtps://host:465; no credentials here.
    smtp_url: str = Field(default="smtp://127.0.0.1:25", repr=False)
    smtp_username_file: Path | None = None
    smtp_password_file: Path | None = None
    mail_from: str = Field(default="no-reply@localhost", pattern=r"^[^\s<>@]+@[^\s<>@]+$")
    #: The one link a message holds: the service's public origin.
    public_origin: str = "http://127.0.0.1:8000"
    #: Dead letters (and undelivered entries) are deleted after this many days.
    outbox_retention_days: int = Field(default=30, ge=1, le=365)
    #: Failed deliveries before an entry becomes a dead letter.
    send_max_attempts: int = Field(default=8, ge=1, le=100)
    #: First retry delay; it doubles each failure (capped at one hour).
    send_retry_base_s: float = Field(default=30.0, gt=0, le=3600)
    #: Global sending rate of one worker: messages wait for it, never dropped.
    send_rate_per_s: float = Field(default=10.0, gt=0, le=10_000)
    #: At most one message per contact in this many days.
    send_contact_interval_days: int = Field(default=7, ge=1, le=365)
    #: This worker's name in the consumer group (unique per worker process).
    send_worker_name: str = Field(default="worker-1", pattern=r"^[A-Za-z0-9._-]{1,64}$")

    # Widget.
    frame_ancestors: Annotated[list[str], NoDecode] = ["'self'"]

    # Server (used by `selfcheck serve` only).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    #: A connection must send a complete request head within this many seconds of
    #: opening or of its previous answer (idle and dripping sockets are closed).
    keep_alive_s: int = Field(default=5, ge=1, le=300)

    @field_validator("allowed_origins", "frame_ancestors", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return _split(value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin like https://practice.example")
        return value

    @field_validator("frame_ancestors")
    @classmethod
    def _csp_sources(cls, value: list[str]) -> list[str]:
        # They go verbatim into the widget's Content-Security-Policy header.
        for source in value:
            if not _CSP_SOURCE.fullmatch(source):
                raise ValueError(f"{source!r} is not a CSP source like https://practice.example")
        return value or ["'none'"]

    @field_validator("trusted_proxies", "health_allowed", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        items = _split(value)
        if isinstance(items, list):
            return [ipaddress.ip_network(str(item), strict=False) for item in items]
        return items

    @field_validator(
        "limits_per_network",
        "limits_per_ipv4_24",
        "limits_per_ipv6_48",
        "limits_per_ipv6_32",
        "limits_per_identity_unproven",
        "global_limit",
        "limits_per_address_proven",
        "limits_per_identity",
        "limits_per_nir_prefix",
        "global_limit_proven",
        "limits_junk",
        "limits_challenge",
        "pow_escalate_after",
    )
    @classmethod
    def _parse_limits(cls, value: str) -> str:
        # A limit that does not parse must stop the start, never leave a bucket unlimited.
        parse_limits(value)
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        storage_scheme(value)
        return value

    @model_validator(mode="after")
    def _solve_times_in_order(self) -> Settings:
        if self.pow_min_solve_ms > self.pow_max_solve_ms:
            raise ValueError("pow_min_solve_ms must not exceed pow_max_solve_ms")
        return self

    @model_validator(mode="after")
    def _metrics_apart_from_the_api(self) -> Settings:
        if self.metrics_port == self.port:
            raise ValueError("metrics_port must differ from port: /metrics is never public")
        return self

    @model_validator(mode="after")
    def _password_file_is_readable(self) -> Settings:
        self.rate_limit_password()
        return self

    @model_validator(mode="after")
    def _signature_needs_a_public_key(self) -> Settings:
        if self.require_signed_index and self.index_public_key_file is None:
            raise ValueError(
                "require_signed_index needs SELFCHECK_INDEX_PUBLIC_KEY_FILE (the signer's key)"
            )
        return self

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("smtp_url must be smtp://host:port or smtps://host:port")
        if parts.username or parts.password:
            raise ValueError("smtp_url holds no credentials: use SELFCHECK_SMTP_*_FILE")
        return value

    @field_validator("public_origin")
    @classmethod
    def _public_origin(cls, value: str) -> str:
        if not _ORIGIN.fullmatch(value):
            raise ValueError("public_origin must be an origin like https://check.example")
        return value

    @model_validator(mode="after")
    def _delivery_is_complete(self) -> Settings:
        if self.delivery != "screen" and self.outbox_key_file is None:
            raise ValueError(f"delivery {self.delivery} needs SELFCHECK_OUTBOX_KEY_FILE")
        if self.delivery != "screen" and self.resolved_outbox_url() is None:
            raise ValueError(
                f"delivery {self.delivery} needs SELFCHECK_OUTBOX_URL (or a redis:// "
                "rate-limit store)"
            )
        return self

    def resolved_outbox_url(self) -> str | None:
        """The outbox's Redis URL: its own, or the rate-limit store's when that is redis://."""
        if self.outbox_url:
            return self.outbox_url
        if urlsplit(self.rate_limit_storage).scheme in ("redis", "rediss", "redis+unix"):
            return self.rate_limit_storage
        return None

    def _secret_text(self, path: Path | None, name: str) -> str | None:
        if path is None:
            return None
        resolved = self.resolved_secret(path)
        try:
            text = resolved.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ValueError(f"{name} {resolved} cannot be read") from None
        if not text:
            raise ValueError(f"{name} {resolved} is empty")
        return text

    def outbox_password(self) -> str | None:
        """The outbox store's password: its own file, else the rate-limit store's if shared."""
        if self.outbox_password_file is not None:
            return self._secret_text(self.outbox_password_file, "outbox_password_file")
        return None if self.outbox_url else self.rate_limit_password()

    def smtp_credentials(self) -> tuple[str | None, str | None]:
        return (
            self._secret_text(self.smtp_username_file, "smtp_username_file"),
            self._secret_text(self.smtp_password_file, "smtp_password_file"),
        )

    def load_outbox_key(self) -> bytes:
        if self.outbox_key_file is None:
            raise KeyBackendError("SELFCHECK_OUTBOX_KEY_FILE is not set")
        return load_pepper(self.resolved_secret(self.outbox_key_file))

    @model_validator(mode="after")
    def _pkcs11_is_complete(self) -> Settings:
        if self.key_backend == "pkcs11" and (
            self.pkcs11_library is None or not self.pkcs11_token_label
        ):
            raise ValueError(
                "key_backend pkcs11 needs SELFCHECK_PKCS11_LIBRARY and SELFCHECK_PKCS11_TOKEN_LABEL"
            )
        return self

    @model_validator(mode="after")
    def _one_process_for_memory_storage(self) -> Settings:
        if self.workers > 1 and self.rate_limit_storage.startswith("memory://"):
            raise ValueError(
                "rate_limit_storage memory:// keeps limits per process; "
                "with several workers set SELFCHECK_RATE_LIMIT_STORAGE=redis://..."
            )
        return self

    def resolved_secret(self, path: Path) -> Path:
        """``path`` as given, or a bare name looked up in ``secrets_dir``."""
        if path.exists() or path.is_absolute() or len(path.parts) > 1:
            return path
        return self.secrets_dir / path

    def rate_limit_password(self) -> str | None:
        """The rate-limit store's password from its file, or None; never from the environment."""
        if self.rate_limit_password_file is None:
            return None
        path = self.resolved_secret(self.rate_limit_password_file)
        try:
            password = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ValueError(f"rate_limit_password_file {path} cannot be read") from None
        if not password:
            raise ValueError(f"rate_limit_password_file {path} is empty")
        return password

    def resolved_key_file(self) -> Path:
        return self.resolved_secret(self.key_file)

    def load_pepper(self) -> SecretBytes:
        """Read the pepper once; kept in a SecretBytes so it never prints."""
        return SecretBytes(load_pepper(self.resolved_key_file()))

    def open_key_backend(self) -> KeyBackend:
        """The configured key backend, opened (raises a LookupIndexError subclass)."""
        if self.key_backend == "file":
            return FileKeyBackend(self.load_pepper().get_secret_value())
        if self.pkcs11_library is None:  # refused by the validator; kept for the type checker
            raise KeyBackendError("SELFCHECK_PKCS11_LIBRARY is not set")
        return Pkcs11KeyBackend(
            Pkcs11Config(
                library=self.pkcs11_library,
                token_label=self.pkcs11_token_label,
                key_label=self.pkcs11_key_label,
                pin=read_pin_file(self.resolved_secret(self.pkcs11_pin_file)),
                timeout=self.pkcs11_timeout_ms / 1000,
            )
        )
