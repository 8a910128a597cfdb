"""Contacts in the index: validated, sealed per key, dummies for the rest, rejects by reason."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from lookup_index.builder import BuildOptions, BuildSummary, build_index
from lookup_index.cli import main
from lookup_index.contact_validation import validate_contact
from lookup_index.keyed_hash import stretch
from lookup_index.normalise import canonical_identity
from lookup_index.profiles import TEST
from lookup_index.reader import IndexReader
from lookup_index.sealed_contact import (
    SEALED_CONTACT_SIZE,
    Contact,
    contact_binding_key,
    open_contact,
)
from lookup_index.sender_keys import load_sender_private_key
from tests.lookup_index.helpers import PEPPER, keyed, write_export

HEADER = ("nir", "birth_date", "last_name", "usage_name", "categories", "MAIL", "mobile")
ANNE = (keyed("2700575123045"), "1970-05-02", "Martin")
BRUNO = (keyed("1820269123456"), "1982-02-11", "Bernard")
CLARA = (keyed("295032A004123"), "1995-03-20", "Petit")
DAVID = (keyed("1850575123456"), "1985-05-12", "Durand")


@pytest.fixture(scope="module")
def sender() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, sender: X25519PrivateKey
) -> tuple[Path, BuildSummary]:
    directory = tmp_path_factory.mktemp("contacts")
    source = write_export(
        directory / "export.csv",
        [
            (*ANNE, "Dupont", "", "Anne.Martin@Example.ORG", "06 12 34 56 78"),
            (*BRUNO, "", "", "", ""),  # no contact: a sealed dummy
            (*CLARA, "", "", "not-an-address", "01 45 67 89 01"),  # both dropped
            (*DAVID, "", "", "", "+33 6 98 76 54 32"),
            ("123", "1990-01-01", "X", "", "", "x@example.org", ""),  # invalid row
        ],
        header=HEADER,
    )
    out = directory / "index.bin"
    summary = build_index(
        BuildOptions(
            input=source,
            out=out,
            pepper=PEPPER,
            profile=TEST,
            workers=1,
            columns={"email": "MAIL"},
            sender_public_key=sender.public_key(),
            max_reject_rate=100.0,  # one invalid row of five, on purpose
        )
    )
    return out, summary


def opened(index: Path, sender: X25519PrivateKey, identity: tuple[str, str, str]) -> Contact:
    with IndexReader.open(index) as reader:
        canonical = canonical_identity(*identity).canonical()
        stretched = stretch(canonical, reader.header.salt, reader.header.profile)
        digest = reader.hasher(PEPPER).seal(stretched)
        found, _, sealed = reader.lookup_with_contact(digest)
        assert found
        return open_contact(sealed, sender, contact_binding_key(PEPPER, stretched))


def test_each_key_opens_to_its_own_contact(
    built: tuple[Path, BuildSummary], sender: X25519PrivateKey
) -> None:
    index, _ = built
    anne = Contact("Anne.Martin@example.org", "+33612345678")
    assert opened(index, sender, ANNE) == anne
    assert opened(index, sender, (ANNE[0], ANNE[1], "Dupont")) == anne  # the usage-name key too
    assert opened(index, sender, BRUNO).empty
    assert opened(index, sender, CLARA).empty
    assert opened(index, sender, DAVID) == Contact("", "+33698765432")


def test_the_value_section_is_mask_plus_sealed_contact(built: tuple[Path, BuildSummary]) -> None:
    index, summary = built
    with IndexReader.open(index) as reader:
        header = reader.header
        assert header.value_size == 1 + SEALED_CONTACT_SIZE
        assert [f["name"] for f in header.value_fields] == ["categories", "sealed_contact"]
        assert reader.has_sealed_contacts
    assert summary.keys_with_contact == 3  # Anne's two keys and David's


def test_rejects_count_dropped_contacts_by_reason_only(built: tuple[Path, BuildSummary]) -> None:
    index, summary = built
    assert summary.contacts_dropped == Counter({"email_invalid": 1, "mobile_not_french_mobile": 1})
    assert summary.rejected == Counter({"nir_format": 1})
    report = index.with_name(index.name + ".rejects.csv").read_text()
    assert sorted(csv.reader(report.splitlines()[1:])) == [
        ["3", "email_invalid"],
        ["3", "mobile_not_french_mobile"],
        ["5", "nir_format"],
    ]
    assert "@" not in report
    assert "45 67" not in report


def _entropy(data: bytes) -> float:
    counts = Counter(data)
    return -sum(c / len(data) * math.log2(c / len(data)) for c in counts.values())


def test_dummies_look_like_contacts(built: tuple[Path, BuildSummary]) -> None:
    """Without the sender's key a dummy is as random as a real contact, and all differ."""
    index, _ = built
    with IndexReader.open(index) as reader:
        count, size = reader.header.count, reader.header.value_size
        start = reader._layout.values_offset
        raw = index.read_bytes()[start : start + count * size]
    values = [raw[i * size + 1 : (i + 1) * size] for i in range(count)]
    assert len(set(values)) == count
    assert len({len(v) for v in values}) == 1
    # 184 random bytes have an entropy near 7; a zero-padded plaintext would be far lower.
    assert min(_entropy(v) for v in values) > 6.5


def test_validation_normalises_and_gives_reasons() -> None:
    valid = validate_contact(" jean@EXAMPLE.org ", "0612345678")
    assert valid.contact == Contact("jean@example.org", "+33612345678")
    assert validate_contact("jean@", "").dropped == ("email_invalid",)
    assert validate_contact("", "0145678901").dropped == ("mobile_not_french_mobile",)
    assert validate_contact("", "06 12").dropped == ("mobile_invalid",)
    assert validate_contact(f"{'a' * 120}@example.org", "").dropped == ("email_too_long",)


def test_cli_keygen_sender_and_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "pepper.key"
    key.write_bytes(PEPPER)
    assert main(["keygen", "--sender", "--out", str(tmp_path / "sender")]) == 0
    assert (tmp_path / "sender.key").stat().st_mode & 0o777 == 0o600
    source = write_export(
        tmp_path / "e.csv", [(*ANNE, "", "", "anne@example.org", "")], header=HEADER
    )
    out = tmp_path / "index.bin"
    argv = ["build", "--input", str(source), "--out", str(out), "--key-file", str(key)]
    argv += ["--profile", "test", "--workers", "1", "--quiet", "--column", "email=MAIL"]
    assert main([*argv, "--sender-public-key", str(tmp_path / "sender.pub")]) == 0
    private = load_sender_private_key(tmp_path / "sender.key")
    assert opened(out, private, ANNE).email == "anne@example.org"
    capsys.readouterr()
    # A second keygen never overwrites; a private key is not a public key: one line each.
    assert main(["keygen", "--sender", "--out", str(tmp_path / "sender")]) == 1
    assert main([*argv, "--sender-public-key", str(tmp_path / "sender.key")]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err
    assert "not an X25519 public key" in err
    assert "Traceback" not in err


def test_a_miss_reads_a_zero_contact_of_the_same_size(
    built: tuple[Path, BuildSummary], tmp_path: Path
) -> None:
    """A miss does the same work as a hit and yields as many bytes, all zero: the outbox
    entry of a miss then has the size of a hit's. Below the first key, between keys and
    past the last one alike."""
    index, _ = built
    with IndexReader.open(index) as reader:
        stranger = canonical_identity(keyed("1750175123456"), "1975-01-05", "Nobody").canonical()
        digest = reader.hasher(PEPPER).seal(
            stretch(stranger, reader.header.salt, reader.header.profile)
        )
        for probe in (digest, bytes(len(digest)), b"\xff" * len(digest)):
            assert reader.lookup_with_contact(probe) == (False, 0, bytes(SEALED_CONTACT_SIZE))
        canonical = canonical_identity(*ANNE).canonical()
        stretched = stretch(canonical, reader.header.salt, reader.header.profile)
        found, mask, sealed = reader.lookup_with_contact(reader.hasher(PEPPER).seal(stretched))
        assert (found, mask) == reader.lookup_mask(reader.hasher(PEPPER).seal(stretched))
        assert found
        assert len(sealed) == SEALED_CONTACT_SIZE
        assert any(sealed)
    plain = tmp_path / "plain.bin"
    source = write_export(tmp_path / "plain.csv", [(*ANNE, "", "", "", "")], header=HEADER)
    build_index(BuildOptions(input=source, out=plain, pepper=PEPPER, profile=TEST, workers=1))
    with IndexReader.open(plain) as reader:
        digest = reader.hasher(PEPPER).seal(stretch(canonical, reader.header.salt, TEST))
        found, _, sealed = reader.lookup_with_contact(digest)
        assert (found, sealed) == (True, b"")  # no contacts in this index: nothing to seal
