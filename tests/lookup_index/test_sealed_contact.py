"""Sealed contacts: open only with the sender's key *and* the identity's binding key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from lookup_index.keyed_hash import KeyedHasher, stretch
from lookup_index.profiles import TEST
from lookup_index.sealed_contact import (
    SEALED_CONTACT_SIZE,
    Contact,
    ContactSealError,
    contact_binding_key,
    open_contact,
    seal_contact,
)
from tests.lookup_index.helpers import OTHER_PEPPER, PEPPER

SALT = bytes(16)
ANNE = b"v1|2700575123045|1970-05-02|MARTIN"
BRUNO = b"v1|1820269123456|1982-02-11|BERNARD"
CONTACT = Contact("anne.martin@example.org", "+33612345678")


def binding(canonical: bytes, pepper: bytes = PEPPER) -> bytes:
    return contact_binding_key(pepper, stretch(canonical, SALT, TEST))


@pytest.fixture(scope="module")
def sender() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def test_a_sealed_contact_opens_with_the_sender_key_and_the_identity(
    sender: X25519PrivateKey,
) -> None:
    sealed = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    assert len(sealed) == SEALED_CONTACT_SIZE == 184
    assert open_contact(sealed, sender, binding(ANNE)) == CONTACT
    assert b"example" not in sealed
    assert b"612345678" not in sealed


def test_another_identity_cannot_open_it(sender: X25519PrivateKey) -> None:
    sealed = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    with pytest.raises(ContactSealError):
        open_contact(sealed, sender, binding(BRUNO))


def test_the_binding_needs_the_pepper_too(sender: X25519PrivateKey) -> None:
    sealed = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    with pytest.raises(ContactSealError):
        open_contact(sealed, sender, binding(ANNE, OTHER_PEPPER))


def test_the_stored_digest_does_not_open_it(sender: X25519PrivateKey) -> None:
    """Whoever holds the index (digests) and the pepper still lacks the Argon2id output."""
    sealed = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    digest = KeyedHasher(PEPPER, SALT, TEST).digest(ANNE)
    for guess in (digest.ljust(32, b"\0"), contact_binding_key(PEPPER, digest)):
        with pytest.raises(ContactSealError):
            open_contact(sealed, sender, guess)


def test_another_sender_key_cannot_open_it(sender: X25519PrivateKey) -> None:
    sealed = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    with pytest.raises(ContactSealError):
        open_contact(sealed, X25519PrivateKey.generate(), binding(ANNE))


def test_a_damaged_contact_is_refused(sender: X25519PrivateKey) -> None:
    sealed = bytearray(seal_contact(CONTACT, sender.public_key(), binding(ANNE)))
    sealed[100] ^= 1
    with pytest.raises(ContactSealError):
        open_contact(bytes(sealed), sender, binding(ANNE))


def test_the_dummy_has_the_same_size_and_opens_to_nothing(sender: X25519PrivateKey) -> None:
    dummy = seal_contact(Contact(), sender.public_key(), binding(BRUNO))
    real = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    assert len(dummy) == len(real)
    assert open_contact(dummy, sender, binding(BRUNO)).empty
    # Fresh ephemeral key every time: two seals of the same contact share no byte run.
    again = seal_contact(CONTACT, sender.public_key(), binding(ANNE))
    assert again[:32] != real[:32]
    assert again[32:] != real[32:]


def test_a_contact_never_prints() -> None:
    assert "example" not in repr(CONTACT)
    assert "+33" not in repr(CONTACT)
