"""The service checks the index signature against the pinned public key before serving."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.main import create_app
from app.settings import Settings
from lookup_index.builder import BuildOptions, build_index
from lookup_index.index_format import CHECKSUM_SIZE, SIGNATURE_TRAILER_SIZE
from lookup_index.pepper import load_pepper
from lookup_index.profiles import TEST
from lookup_index.signing import generate_signing_key, load_signing_key
from tests.app.test_startup import lifespan_startup
from tests.support.dataset import Dataset


@pytest.fixture(scope="module")
def signed_index(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("signed-index")
    private, public = generate_signing_key(directory / "build")
    index = directory / "index.bin"
    build_index(
        BuildOptions(
            input=dataset.export,
            out=index,
            pepper=load_pepper(dataset.key),
            profile=TEST,
            workers=1,
            signing_key=load_signing_key(private),
        )
    )
    return index, public


async def _start(settings: Settings) -> dict[str, Any]:
    sent: dict[str, Any] = (await lifespan_startup(create_app(settings)))[0]
    return sent


async def test_a_signed_index_starts_when_signatures_are_required(
    make_settings: Callable[..., Settings], signed_index: tuple[Path, Path]
) -> None:
    index, public = signed_index
    settings = make_settings(
        index_path=index, index_public_key_file=public, require_signed_index=True
    )
    assert (await _start(settings))["type"] == "lifespan.startup.complete"


async def test_an_unsigned_index_warns_and_is_refused_when_required(
    make_settings: Callable[..., Settings],
    signed_index: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, public = signed_index
    caplog.set_level("WARNING", logger="app.startup")
    assert (await _start(make_settings(index_public_key_file=public)))["type"] == (
        "lifespan.startup.complete"
    )
    assert any("not signed" in r.getMessage() for r in caplog.records)
    refused = await _start(make_settings(index_public_key_file=public, require_signed_index=True))
    assert refused["type"] == "lifespan.startup.failed"
    assert refused["message"].endswith("the index is not signed, and a signature is required")


async def test_a_tampered_index_is_refused_even_when_signatures_are_optional(
    make_settings: Callable[..., Settings], signed_index: tuple[Path, Path], tmp_path: Path
) -> None:
    index, public = signed_index
    data = index.read_bytes()
    end = len(data) - SIGNATURE_TRAILER_SIZE - CHECKSUM_SIZE
    body = bytearray(data[:end])
    body[-1] ^= 0x01
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(bytes(body) + hashlib.sha256(body).digest() + data[-104:])
    refused = await _start(make_settings(index_path=tampered, index_public_key_file=public))
    assert refused["type"] == "lifespan.startup.failed"
    assert "does not verify" in refused["message"]
    assert "\n" not in refused["message"]


def test_requiring_signatures_needs_a_public_key(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="SELFCHECK_INDEX_PUBLIC_KEY_FILE"):
        make_settings(require_signed_index=True)
