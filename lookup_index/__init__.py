"""Offline lookup index for the patient breach self-check.

Normalises identities, hashes them with Argon2id + an HMAC pepper, and writes
or reads a compact, checksummed, memory-mapped index. No web dependency.
"""

from lookup_index.categories import CATEGORIES, mask_of, names_of
from lookup_index.exceptions import (
    REASONS,
    IndexChecksumError,
    IndexFormatError,
    InputFileError,
    InvalidIdentity,
    KeyBackendError,
    KeyFileError,
    KeyMismatchError,
    KeyUnavailableError,
    LookupIndexError,
    Reason,
)
from lookup_index.key_backend import FileKeyBackend, KeyBackend, KeyMaterial
from lookup_index.keyed_hash import KeyedHasher, derive_subkey, key_check_value
from lookup_index.normalise import (
    BirthDate,
    Identity,
    canonical_identity,
    nir_matches_birth_date,
    normalise_last_name,
    normalise_nir,
    parse_birth_date,
)
from lookup_index.pepper import generate_pepper_file, load_pepper
from lookup_index.profiles import FAST, PROFILES, STANDARD, TEST, Argon2Profile
from lookup_index.reader import IndexReader, LookupResult

__all__ = [
    "CATEGORIES",
    "FAST",
    "PROFILES",
    "REASONS",
    "STANDARD",
    "TEST",
    "Argon2Profile",
    "BirthDate",
    "FileKeyBackend",
    "Identity",
    "IndexChecksumError",
    "IndexFormatError",
    "IndexReader",
    "InputFileError",
    "InvalidIdentity",
    "KeyBackend",
    "KeyBackendError",
    "KeyFileError",
    "KeyMaterial",
    "KeyMismatchError",
    "KeyUnavailableError",
    "KeyedHasher",
    "LookupIndexError",
    "LookupResult",
    "Reason",
    "canonical_identity",
    "derive_subkey",
    "generate_pepper_file",
    "key_check_value",
    "load_pepper",
    "mask_of",
    "names_of",
    "nir_matches_birth_date",
    "normalise_last_name",
    "normalise_nir",
    "parse_birth_date",
]
