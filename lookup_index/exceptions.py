"""The one small exception hierarchy of :mod:`lookup_index`.

Every message is a single line meant for an operator. None of them ever
contains an identity, a pepper or any other value read from the input.
"""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "nir_format", "nir_key", "nir_range", "birth_date", "birth_date_two_digit_year", "last_name"
]
REASONS: tuple[Reason, ...] = (
    "nir_format", "nir_key", "nir_range", "birth_date", "birth_date_two_digit_year", "last_name"
)  # fmt: skip


class LookupIndexError(Exception):
    """Base class: anything this package raises on purpose."""


class InvalidIdentity(LookupIndexError, ValueError):
    """An identity field failed validation.

    Only the reason code is kept, never the rejected value, so the exception
    can be logged, counted or shown without leaking what a patient typed.
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


class KeyFileError(LookupIndexError):
    """The pepper file is missing, unreadable, malformed, or would be overwritten."""


class KeyBackendError(LookupIndexError):
    """The key backend cannot be opened: no such library, token, key or PIN, or a weak key."""


class KeyUnavailableError(KeyBackendError):
    """The key backend failed or did not answer in time; no digest was computed (fail closed)."""


class IndexFormatError(LookupIndexError):
    """The file is not a readable index of a format this code understands."""


class IndexChecksumError(IndexFormatError):
    """The index checksum does not match its content: the file is corrupt."""


class SignatureError(LookupIndexError):
    """The index is unsigned where a signature is required, tampered, or signed by another key;
    or a signing key file is missing, malformed, or would be overwritten."""


class KeyMismatchError(LookupIndexError):
    """The pepper does not match the index's key-check value (wrong key file)."""


class InputFileError(LookupIndexError):
    """The builder's input export cannot be read as the expected CSV."""
