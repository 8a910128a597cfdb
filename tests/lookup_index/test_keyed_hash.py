"""The keyed hash: HMAC-SHA256(pepper, Argon2id(canonical, salt))[:16].

Known answers were computed with the reference Argon2 CLI (Debian package
``argon2``) and OpenSSL, not with this code, so they pin the construction,
the parameter units (KiB) and the truncation, not just "whatever it returns".
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from argon2.low_level import Type, hash_secret_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from lookup_index.keyed_hash import DIGEST_SIZE, KeyedHasher, derive_subkey, key_check_value
from lookup_index.normalise import canonical_identity
from lookup_index.profiles import FAST, PROFILES, STANDARD, TEST, Argon2Profile
from tests.lookup_index.helpers import OTHER_PEPPER, PEPPER

SALT = b"0123456789abcdef"
DUPONT = b"v1|1850375123456|1985-03-12|DUPONT"
COEUR_DE_LION = b"v1|285032A004123|1985-03-20|COEURDELION"

# K=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  (bytes(range(32)))
# $ printf '%s' "$CANONICAL" | argon2 0123456789abcdef -id -t $T -k $M -p 1 -l 32 -r \
#     | xxd -r -p | openssl dgst -sha256 -mac HMAC -macopt hexkey:$K | cut -d' ' -f2 | cut -c1-32
KNOWN_DIGESTS = [
    (TEST, DUPONT, "614285ab95f076ba962494f559169395"),  # T=1 M=8
    (TEST, COEUR_DE_LION, "31ae270ea93da09c053d68a93bf1278a"),  # T=1 M=8
    (FAST, DUPONT, "5aa9641346eb3235cd93e21016d1d1d0"),  # T=1 M=8192
    (STANDARD, DUPONT, "d78346b215b609df65431bb86e4dedc3"),  # T=2 M=19456
]


@pytest.mark.parametrize(("profile", "canonical", "expected"), KNOWN_DIGESTS)
def test_known_answer_digests(profile: Argon2Profile, canonical: bytes, expected: str) -> None:
    assert KeyedHasher(PEPPER, SALT, profile).digest(canonical).hex() == expected


#: The identity rules v2 (docs/INDEX_FORMAT.md): Œ folds to O like Ö, particles inside a
#: compound name stay; the test profile's digests computed with the commands above.
DUPONT_V2 = b"v2|1850375123456|1985-03-12|DUPONT"
COEUR_DE_LION_V2 = b"v2|285032A004123|1985-03-20|COURDELION"
KNOWN_V2_DIGESTS = ["810b536e71c07cd5e3e6337a5f185fde", "09e2427c2ddf936adc95e1e1f4f64be2"]


def test_known_answers_start_from_normalised_input() -> None:
    # Known answers reached from what a patient would type, under today's identity rules.
    hasher = KeyedHasher(PEPPER, SALT, TEST)
    dupont = canonical_identity("1 85 03 75 123 456 41", "1985-03-12", "dupont").canonical()
    coeur = canonical_identity("2 85 03 2a 004 123 71", "1985-03-20", "Cœur-de-Lion").canonical()
    assert (dupont, coeur) == (DUPONT_V2, COEUR_DE_LION_V2)
    assert [hasher.digest(dupont).hex(), hasher.digest(coeur).hex()] == KNOWN_V2_DIGESTS


def test_key_check_value_known_answer() -> None:
    # $ printf '%s' 'patient-breach-selfcheck/key-check/v1' \
    #     | openssl dgst -sha256 -mac HMAC -macopt hexkey:$K | cut -d' ' -f2 | cut -c1-32
    assert key_check_value(PEPPER).hex() == "fcdab5983c97f02aad5d0cf807ede853"


def test_derive_subkey_known_answer() -> None:
    # $ printf '%s' 'patient-breach-selfcheck/subkey/ratelimit' \
    #     | openssl dgst -sha256 -mac HMAC -macopt hexkey:$K | cut -d' ' -f2
    assert derive_subkey(PEPPER, "ratelimit").hex() == (
        "3ec85af98fddb1e414e0bf971ec19c8d06c3202d1b0b96d8862c425d7a0eb8a9"
    )


def test_profiles_are_the_documented_parameters() -> None:
    # Changing a profile silently would make new indexes cost something else than documented.
    assert {name: (p.time_cost, p.memory_cost, p.parallelism) for name, p in PROFILES.items()} == {
        "test": (1, 8, 1),
        "fast": (1, 8 * 1024, 1),
        "standard": (2, 19 * 1024, 1),
    }


@settings(max_examples=25)
@given(
    st.binary(max_size=200), st.binary(min_size=8, max_size=32), st.binary(min_size=32, max_size=32)
)
def test_digest_is_hmac_of_argon2id(canonical: bytes, salt: bytes, pepper: bytes) -> None:
    # The composition, checked against argon2-cffi and hmac directly for arbitrary inputs.
    stretched = hash_secret_raw(canonical, salt, 1, 8, 1, 32, Type.ID)
    expected = hmac.new(pepper, stretched, hashlib.sha256).digest()[:DIGEST_SIZE]
    assert KeyedHasher(pepper, salt, TEST).digest(canonical) == expected
    # Private delivery splits it: the Argon2id output alone (its binding key is derived from
    # it), then the keyed half; the two halves make the same digest.
    hasher = KeyedHasher(pepper, salt, TEST)
    assert hasher.stretch(canonical) == stretched
    assert hasher.seal(hasher.stretch(canonical)) == expected


@settings(max_examples=25)
@given(st.binary(min_size=1, max_size=60), st.binary(min_size=1, max_size=60))
def test_distinct_inputs_give_distinct_digests(a: bytes, b: bytes) -> None:
    hasher = KeyedHasher(PEPPER, SALT, TEST)
    assert (hasher.digest(a) == hasher.digest(b)) is (a == b)
    assert len(hasher.digest(a)) == DIGEST_SIZE


def test_pepper_salt_and_profile_each_change_the_digest() -> None:
    base = KeyedHasher(PEPPER, SALT, TEST).digest(DUPONT)
    assert KeyedHasher(OTHER_PEPPER, SALT, TEST).digest(DUPONT) != base
    assert KeyedHasher(PEPPER, SALT[::-1], TEST).digest(DUPONT) != base
    two_passes = Argon2Profile("test-t2", time_cost=2, memory_cost=8, parallelism=1)
    assert KeyedHasher(PEPPER, SALT, two_passes).digest(DUPONT) != base


def test_repr_hides_the_pepper() -> None:
    text = repr(KeyedHasher(PEPPER, SALT, TEST))
    assert "hidden" in text
    assert PEPPER.hex() not in text
    assert repr(PEPPER)[2:-1] not in text


def test_key_check_and_subkeys_are_distinct_from_each_other_and_the_pepper() -> None:
    values = {
        key_check_value(PEPPER),
        key_check_value(OTHER_PEPPER),
        derive_subkey(PEPPER, "ratelimit"),
        derive_subkey(PEPPER, "other"),
        derive_subkey(OTHER_PEPPER, "ratelimit"),
    }
    assert len(values) == 5
    assert all(PEPPER[:16] not in v and v not in PEPPER for v in values)
