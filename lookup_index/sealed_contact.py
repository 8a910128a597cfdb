"""A patient's contact, sealed to the send-worker and bound to the identity that owns it.

Value field ``sealed_contact`` (type ``x25519_sealed_v1``, docs/INDEX_FORMAT.md)::

    ephemeral X25519 public key (32) || ChaCha20-Poly1305(plaintext, 136 bytes) + tag (16)

The AEAD key is HKDF-SHA256 over the X25519 shared secret, with the identity's
*binding key* as HKDF salt. The binding key is HMAC(key backend, label || Argon2id
output): it needs the identity (its Argon2id output) and the pepper, and it is never
derived from the stored digest. So opening a contact takes the sender's private key
*and* someone typing that identity; the index, even with the pepper, opens nothing.

Every key carries one: a key without a contact carries a sealed "no contact" of the
same size, so the value section says nothing about who has one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lookup_index.exceptions import LookupIndexError
from lookup_index.key_backend import KeyMaterial, as_backend

__all__ = [
    "BINDING_KEY_SIZE",
    "CONTACT_PLAINTEXT_SIZE",
    "MAX_EMAIL_LENGTH",
    "MAX_MOBILE_LENGTH",
    "SEALED_CONTACT_FIELD",
    "SEALED_CONTACT_SIZE",
    "Contact",
    "ContactSealError",
    "contact_binding_key",
    "open_contact",
    "seal_contact",
]

#: Longest e-mail address a sealed contact holds (longer ones are dropped at build time).
MAX_EMAIL_LENGTH = 117
#: E.164 with the plus sign: at most 16 characters.
MAX_MOBILE_LENGTH = 16
_PLAIN_HEADER = struct.Struct("<BBB")  # version, e-mail length, mobile length
_PLAIN_VERSION = 1
CONTACT_PLAINTEXT_SIZE = _PLAIN_HEADER.size + MAX_EMAIL_LENGTH + MAX_MOBILE_LENGTH  # 136
_TAG_SIZE = 16
SEALED_CONTACT_SIZE = 32 + CONTACT_PLAINTEXT_SIZE + _TAG_SIZE  # 184
BINDING_KEY_SIZE = 32
SEALED_CONTACT_FIELD = {
    "name": "sealed_contact",
    "offset": 1,
    "size": SEALED_CONTACT_SIZE,
    "type": "x25519_sealed_v1",
}
_BINDING_LABEL = b"patient-breach-selfcheck/contact-binding/v1\0"
_HKDF_INFO = b"patient-breach-selfcheck/sealed-contact/v1\0"
_AAD = b"x25519_sealed_v1"
# One key per ephemeral key pair: a fixed nonce never repeats under a key.
_NONCE = bytes(12)


class ContactSealError(LookupIndexError):
    """A sealed contact does not open: wrong sender key, wrong identity, or damaged."""


@dataclass(frozen=True, slots=True)
class Contact:
    """What the practice holds: a normalised e-mail address and/or an E.164 French mobile."""

    email: str = ""
    mobile: str = ""

    @property
    def empty(self) -> bool:
        return not self.email and not self.mobile

    def __repr__(self) -> str:
        # Contacts are personal data: never in a log line or a traceback.
        return f"Contact(email={bool(self.email)}, mobile={bool(self.mobile)})"

    def encode(self) -> bytes:
        """The fixed-size plaintext (zero padded), the same length for every contact."""
        email, mobile = self.email.encode("ascii"), self.mobile.encode("ascii")
        if len(email) > MAX_EMAIL_LENGTH or len(mobile) > MAX_MOBILE_LENGTH:
            raise ValueError("contact too long for a sealed contact")
        return (
            _PLAIN_HEADER.pack(_PLAIN_VERSION, len(email), len(mobile))
            + email.ljust(MAX_EMAIL_LENGTH, b"\0")
            + mobile.ljust(MAX_MOBILE_LENGTH, b"\0")
        )

    @classmethod
    def decode(cls, plaintext: bytes) -> Contact:
        if len(plaintext) != CONTACT_PLAINTEXT_SIZE:
            raise ContactSealError("sealed contact has the wrong size")
        version, email_length, mobile_length = _PLAIN_HEADER.unpack_from(plaintext)
        if (
            version != _PLAIN_VERSION
            or email_length > MAX_EMAIL_LENGTH
            or mobile_length > MAX_MOBILE_LENGTH
        ):
            raise ContactSealError("sealed contact is malformed")
        start = _PLAIN_HEADER.size
        email = plaintext[start : start + email_length]
        mobile_start = start + MAX_EMAIL_LENGTH
        mobile = plaintext[mobile_start : mobile_start + mobile_length]
        return cls(email.decode("ascii"), mobile.decode("ascii"))


NO_CONTACT = Contact()


def contact_binding_key(key: KeyMaterial, stretched: bytes) -> bytes:
    """The identity's binding key: from its Argon2id output, through the key backend."""
    return as_backend(key).hmac_sha256(_BINDING_LABEL + stretched)


def _raw(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _aead(shared: bytes, binding: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=binding, info=_HKDF_INFO + ephemeral + recipient
    ).derive(shared)
    return ChaCha20Poly1305(key)


def seal_contact(contact: Contact, recipient: X25519PublicKey, binding: bytes) -> bytes:
    """``SEALED_CONTACT_SIZE`` bytes; a fresh ephemeral key each time."""
    if len(binding) != BINDING_KEY_SIZE:
        raise ValueError("binding key must be 32 bytes")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw(ephemeral.public_key())
    aead = _aead(ephemeral.exchange(recipient), binding, ephemeral_public, _raw(recipient))
    return ephemeral_public + aead.encrypt(_NONCE, contact.encode(), _AAD)


def open_contact(sealed: bytes, private_key: X25519PrivateKey, binding: bytes) -> Contact:
    """The contact, or :class:`ContactSealError` (wrong key, wrong identity, damaged)."""
    if len(sealed) != SEALED_CONTACT_SIZE or len(binding) != BINDING_KEY_SIZE:
        raise ContactSealError("sealed contact has the wrong size")
    ephemeral_public = sealed[:32]
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        aead = _aead(shared, binding, ephemeral_public, _raw(private_key.public_key()))
        plaintext = aead.decrypt(_NONCE, sealed[32:], _AAD)
    except (InvalidTag, ValueError):
        raise ContactSealError("sealed contact does not open with this key and identity") from None
    return Contact.decode(plaintext)
