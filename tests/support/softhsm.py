"""A fresh SoftHSM2 token in a temporary directory, for the pkcs11 key backend's tests.

SoftHSM2 reads ``SOFTHSM2_CONF`` once, when its library is first initialised in a
process, so the suite sets it for the whole session (child processes inherit it) and
every test uses its own key label in the one token.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lookup_index.pkcs11_backend import SOFTHSM2_LIBRARY, Pkcs11Config

TOKEN_LABEL = "selfcheck-tests"  # noqa: S105 - a label, not a secret
_labels = itertools.count()


@dataclass(frozen=True)
class SoftHsm:
    conf: Path
    pin_file: Path
    pin: str

    def config(self, key_label: str, timeout: float = 2.0) -> Pkcs11Config:
        return Pkcs11Config(SOFTHSM2_LIBRARY, TOKEN_LABEL, key_label, self.pin, timeout)

    @staticmethod
    def new_label() -> str:
        return f"key-{os.getpid()}-{next(_labels)}"

    def env(self, key_label: str) -> dict[str, str]:
        """The service's settings for this token and key (the PIN by file, never by value)."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "SELFCHECK_KEY_BACKEND": "pkcs11",
            "SELFCHECK_PKCS11_LIBRARY": str(SOFTHSM2_LIBRARY),
            "SELFCHECK_PKCS11_TOKEN_LABEL": TOKEN_LABEL,
            "SELFCHECK_PKCS11_KEY_LABEL": key_label,
            "SELFCHECK_PKCS11_PIN_FILE": str(self.pin_file),
        }

    def cli_args(self, key_label: str) -> list[str]:
        return [
            "--pkcs11-library",
            str(SOFTHSM2_LIBRARY),
            "--token-label",
            TOKEN_LABEL,
            "--key-label",
            key_label,
            "--pin-file",
            str(self.pin_file),
        ]


def init_token(directory: Path) -> SoftHsm:
    """Create a token store under ``directory`` and initialise one token in it."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    pin = "4321-test-pin"
    pin_file = directory / "user.pin"
    pin_file.write_text(pin + "\n")
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            pin,
            "--so-pin",
            "8765-test-so-pin",
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
        timeout=30,
    )
    return SoftHsm(conf, pin_file, pin)
