"""Resumable builds without a cluster: checkpoints in --work-dir, refusals, and what they hold.

An interruption is simulated by a progress callback that raises once some
chunks are checkpointed; the Dask tests (test_cluster_build.py) do the same
with a real SIGKILL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lookup_index import builder
from lookup_index.builder import BuildOptions, BuildSummary, build_index
from lookup_index.exceptions import LookupIndexError
from lookup_index.profiles import TEST
from lookup_index.work_dir import SealedChunk, WorkDirError
from tests.lookup_index.conftest import Generated
from tests.lookup_index.helpers import OTHER_PEPPER, PEPPER, masked_index

CHUNK_ROWS = 200
SALT = bytes(range(100, 116))


class Interrupted(Exception):
    pass


def options(
    generated: Generated, out: Path, work_dir: Path | None, **changes: object
) -> BuildOptions:
    values: dict[str, object] = {
        "input": generated.export,
        "out": out,
        "pepper": PEPPER,
        "profile": TEST,
        "workers": 1,
        "work_dir": work_dir,
        "chunk_rows": CHUNK_ROWS,
        "salt": SALT,
    }
    values.update(changes)
    return BuildOptions(**values)  # type: ignore[arg-type]


def interrupted_build(build: BuildOptions, after_rows: int) -> None:
    def stop(rows: int, done: int) -> None:
        if rows >= after_rows:
            raise Interrupted

    with pytest.raises(Interrupted):
        build_index(build, stop)


@pytest.fixture
def reference(generated: Generated, tmp_path: Path) -> tuple[Path, BuildSummary]:
    out = tmp_path / "reference.bin"
    return out, build_index(options(generated, out, None))


def test_rerun_skips_checkpointed_chunks(
    generated: Generated, tmp_path: Path, reference: tuple[Path, BuildSummary]
) -> None:
    work = tmp_path / "work"
    out = tmp_path / "index.bin"
    interrupted_build(options(generated, out, work), after_rows=5 * CHUNK_ROWS)
    checkpoints = sorted(p.name for p in work.glob("chunk-*.ckpt"))
    assert len(checkpoints) == 5
    assert not out.exists()
    summary = build_index(options(generated, out, work))
    total = -(-generated.summary.rows // CHUNK_ROWS)
    assert (summary.chunks, summary.chunks_resumed, summary.chunks_computed) == (
        total,
        5,
        total - 5,
    )
    # Same index as an uninterrupted build, the build id and time aside; same counts.
    ref_path, ref_summary = reference
    assert masked_index(out) == masked_index(ref_path)
    ignore = {"seconds", "rows_per_second", "build_id", "chunks_resumed", "chunks_computed"}
    assert {k: v for k, v in summary.as_dict().items() if k not in ignore} == {
        k: v for k, v in ref_summary.as_dict().items() if k not in ignore
    }
    assert (
        out.with_name("index.bin.rejects.csv").read_bytes()
        == ref_path.with_name("reference.bin.rejects.csv").read_bytes()
    )
    # Wiped only now that the index is written and verified.
    assert not work.exists()


def test_build_id_survives_the_interruption(generated: Generated, tmp_path: Path) -> None:
    work = tmp_path / "work"
    interrupted_build(options(generated, tmp_path / "i.bin", work), after_rows=CHUNK_ROWS)
    manifest_id = (work / "manifest.json").read_text()
    summary = build_index(options(generated, tmp_path / "i.bin", work))
    assert summary.build_id
    assert summary.build_id in manifest_id


def test_changed_input_is_refused(generated: Generated, tmp_path: Path) -> None:
    work = tmp_path / "work"
    source = tmp_path / "export.csv"
    text = generated.export.read_text(encoding="utf-8")
    source.write_text(text, encoding="utf-8")
    build = options(generated, tmp_path / "i.bin", work, input=source)
    interrupted_build(build, after_rows=3 * CHUNK_ROWS)
    # One letter of one name in the first chunk, same size: only the chunk hash sees it.
    lines = text.splitlines(keepends=True)
    fields = lines[5].split(";")
    fields[2] = ("Q" if fields[2][:1] != "Q" else "R") + fields[2][1:]
    lines[5] = ";".join(fields)
    assert len("".join(lines)) == len(text)
    source.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(WorkDirError, match=r"^input changed .* \(chunk 0 differs\)"):
        build_index(build)
    source.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(WorkDirError, match=r"^input changed .* \(size differs\)"):
        build_index(build)
    # The refusal destroyed nothing: with the input restored the build resumes.
    source.write_text(text, encoding="utf-8")
    assert build_index(build).chunks_resumed == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pepper": OTHER_PEPPER}, "key_check"),
        ({"chunk_rows": CHUNK_ROWS + 1}, "chunk_rows"),
        ({"categories": ["identity"]}, "default_mask"),
        ({"salt": bytes(16)}, "salt"),
    ],
)
def test_work_dir_of_another_build_is_refused(
    generated: Generated, tmp_path: Path, change: dict[str, object], field: str
) -> None:
    work = tmp_path / "work"
    interrupted_build(options(generated, tmp_path / "i.bin", work), after_rows=CHUNK_ROWS)
    with pytest.raises(WorkDirError, match=field):
        build_index(options(generated, tmp_path / "i.bin", work, **change))


def test_damaged_checkpoint_is_recomputed(generated: Generated, tmp_path: Path) -> None:
    work = tmp_path / "work"
    out = tmp_path / "i.bin"
    interrupted_build(options(generated, out, work), after_rows=4 * CHUNK_ROWS)
    damaged = work / "chunk-00000002.ckpt"
    data = bytearray(damaged.read_bytes())
    data[40] ^= 1
    damaged.write_bytes(bytes(data))
    (work / "chunk-00000003.ckpt").write_bytes(b"")
    summary = build_index(options(generated, out, work))
    assert summary.chunks_resumed == 2


def test_checkpoints_hold_digests_not_identities(generated: Generated, tmp_path: Path) -> None:
    work = tmp_path / "work"
    interrupted_build(options(generated, tmp_path / "i.bin", work), after_rows=3 * CHUNK_ROWS)
    blob = b"".join(p.read_bytes() for p in sorted(work.iterdir()))
    rows = generated.export.read_text(encoding="utf-8").splitlines()[1 : 3 * CHUNK_ROWS]
    for row in rows:
        for value in row.split(";")[:4]:  # nir, birth date, names
            if len(value) >= 6:
                assert value.encode() not in blob
    assert PEPPER not in blob
    assert PEPPER.hex().encode() not in blob
    chunk = SealedChunk.decode((work / "chunk-00000000.ckpt").read_bytes())
    assert len(chunk.digests) == 16 * len(chunk.masks)


def test_work_dir_must_be_a_directory(generated: Generated, tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(LookupIndexError, match="not a directory"):
        build_index(options(generated, tmp_path / "i.bin", afile))


def test_work_dir_survives_a_failed_write(
    generated: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every chunk hashed, then the disk fills at the write: nothing must be recomputed.
    work = tmp_path / "work"
    out = tmp_path / "i.bin"

    def disk_full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builder, "write_index", disk_full)
    with pytest.raises(OSError, match="No space"):
        build_index(options(generated, out, work))
    monkeypatch.undo()
    total = -(-generated.summary.rows // CHUNK_ROWS)
    assert len(list(work.glob("chunk-*.ckpt"))) == total
    summary = build_index(options(generated, out, work))
    assert (summary.chunks_resumed, summary.chunks_computed) == (total, 0)
    assert not work.exists()
