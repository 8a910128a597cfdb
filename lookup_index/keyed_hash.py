"""digest = HMAC-SHA256(pepper, Argon2id(canonical, salt))[:16].

Argon2id makes every guess expensive; the HMAC with a pepper that never
leaves the service (or never leaves its HSM, with the ``pkcs11`` backend)
makes a stolen index useless without the key.
"""

from __future__ import annotations

from argon2.low_level import Type, hash_secret_raw

from lookup_index.key_backend import KeyBackend, KeyMaterial, as_backend
from lookup_index.profiles import Argon2Profile

DIGEST_SIZE = 16
SALT_SIZE = 16
_KEY_CHECK_LABEL = b"patient-breach-selfcheck/key-check/v1"


def key_check_value(key: KeyMaterial) -> bytes:
    """A value stored in the index header so a wrong pepper is refused at start-up."""
    return as_backend(key).hmac_sha256(_KEY_CHECK_LABEL)[:DIGEST_SIZE]


def derive_subkey(key: KeyMaterial, label: str) -> bytes:
    """A key for another purpose (e.g. rate-limit storage keys), never the pepper itself.

    With an HSM this is one HMAC in the token at start-up; the subkey then lives in
    memory, so a stolen process image yields rate-limit keys, never the pepper.
    """
    return as_backend(key).hmac_sha256(b"patient-breach-selfcheck/subkey/" + label.encode())


def stretch(canonical: bytes, salt: bytes, profile: Argon2Profile) -> bytes:
    """The Argon2id half of a digest: needs no key, so build workers can compute it."""
    return hash_secret_raw(
        canonical,
        salt,
        time_cost=profile.time_cost,
        memory_cost=profile.memory_cost,
        parallelism=profile.parallelism,
        hash_len=profile.hash_len,
        type=Type.ID,
    )


class KeyedHasher:
    """Computes index digests for one (key, salt, profile) triple.

    ``hash_secret_raw`` releases the GIL, so one instance can be shared by a
    thread pool; the key backend serialises what it must.
    """

    __slots__ = ("_key", "_profile", "_salt")

    def __init__(self, key: KeyMaterial, salt: bytes, profile: Argon2Profile) -> None:
        self._key = as_backend(key)
        self._salt = salt
        self._profile = profile

    def __repr__(self) -> str:
        return f"KeyedHasher(profile={self._profile.name!r}, pepper=<hidden>)"

    @property
    def profile(self) -> Argon2Profile:
        return self._profile

    @property
    def key(self) -> KeyBackend:
        return self._key

    def digest(self, canonical: bytes) -> bytes:
        return self.seal(stretch(canonical, self._salt, self._profile))

    def stretch(self, canonical: bytes) -> bytes:
        """The Argon2id output alone (private delivery derives the binding key from it)."""
        return stretch(canonical, self._salt, self._profile)

    def seal(self, stretched: bytes) -> bytes:
        """The keyed half: HMAC with the key over an Argon2id output (never on a worker)."""
        return self._key.hmac_sha256(stretched)[:DIGEST_SIZE]
