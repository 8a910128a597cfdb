"""`lookup-index build --scheduler tls://...` on a real Dask cluster: 1 scheduler, 2 workers.

The cluster runs on loopback with mutual TLS and throwaway certificates
(tests/support/dask_cluster.py); the builds run the real CLI in a subprocess,
so killing the client is a real SIGKILL. Every cluster build is compared,
byte for byte (build id and time masked), with a local build of the same
input, salt and pepper.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lookup_index.builder import BuildOptions, build_index
from lookup_index.cli import main
from lookup_index.generator import generate
from lookup_index.profiles import FAST, TEST
from tests.lookup_index.conftest import Generated
from tests.lookup_index.helpers import masked_index
from tests.support.dask_cluster import DaskCluster, write_certificates

pytestmark = pytest.mark.slow

#: A random key, not a pattern that could turn up in a process's memory by chance.
PEPPER = secrets.token_bytes(32)
SALT = secrets.token_bytes(16)
#: The `fast` profile (~4 ms per key) makes a 400-row build last long enough to be
#: interrupted; 40 chunks of 10 rows give the kill something to land between.
SLOW_ROWS, SLOW_CHUNK = 400, 10
SLOW_CHUNKS = SLOW_ROWS // SLOW_CHUNK
BUILD_TIMEOUT = 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    running = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        running.start(workers=2)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "build.key"
    path.write_bytes(PEPPER)
    path.chmod(0o600)
    return path


def local_build(export: Path, out: Path, profile: object, workers: int) -> Path:
    build_index(
        BuildOptions(
            input=export, out=out, pepper=PEPPER, profile=profile, workers=workers, salt=SALT
        )  # type: ignore[arg-type]
    )
    return out


@dataclass(frozen=True)
class SlowData:
    export: Path
    reference: Path


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> SlowData:
    directory = tmp_path_factory.mktemp("slow")
    export = directory / "export.csv"
    generate(SLOW_ROWS, 11, export, None)
    return SlowData(export, local_build(export, directory / "reference.bin", FAST, workers=1))


def cli_args(cluster: DaskCluster, export: Path, key: Path, out: Path, like: Path) -> list[str]:
    return [
        *("build", "--input", str(export), "--key-file", str(key), "--out", str(out)),
        *("--like", str(like), "--scheduler", cluster.address, *cluster.tls, "--quiet"),
    ]


def start_cli(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lookup_index.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_checkpoints(work: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT
    while len(list(work.glob("chunk-*.ckpt"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the build made no progress"
        time.sleep(0.02)


def summary_field(stdout: bytes, name: str) -> int:
    match = re.search(rf"^  {name}: (\d+)$", stdout.decode(), re.MULTILINE)
    assert match, stdout
    return int(match.group(1))


def test_cluster_build_is_byte_identical_to_a_local_one(
    cluster: DaskCluster, generated: Generated, key_file: Path, tmp_path: Path
) -> None:
    reference = local_build(generated.export, tmp_path / "local.bin", TEST, workers=1)
    out = tmp_path / "cluster.bin"
    done = subprocess.run(
        [
            sys.executable, "-m", "lookup_index.cli",
            *cli_args(cluster, generated.export, key_file, out, reference)[:-1],  # not --quiet
            "--chunk-rows", "200",
        ],
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # No dashboard link: --no-dashboard leaves only /health and /metrics, not a dashboard.
    assert b"dashboard" not in done.stderr
    assert summary_field(done.stdout, "chunks_computed") == 15
    assert masked_index(out) == masked_index(reference)
    assert (
        out.with_name("cluster.bin.rejects.csv").read_bytes()
        == reference.with_name("local.bin.rejects.csv").read_bytes()
    )
    # Both workers took part: the work was spread, not run on one.
    assert {p.name.split("-")[0] for p in cluster.spy_dir.glob("*.pickle")} == {"w1", "w2"}


def test_no_worker_ever_receives_the_pepper(
    cluster: DaskCluster, generated: Generated, key_file: Path, tmp_path: Path
) -> None:
    reference = local_build(generated.export, tmp_path / "local.bin", TEST, workers=1)
    args = cli_args(cluster, generated.export, key_file, tmp_path / "c.bin", reference)
    done = subprocess.run(
        [sys.executable, "-m", "lookup_index.cli", *args, "--chunk-rows", "500"],
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    tasks = [p.read_bytes() for p in cluster.spy_dir.glob("*.pickle")]
    assert tasks
    forms = (PEPPER, PEPPER.hex().encode(), PEPPER.hex().upper().encode())
    # The spy sees the arguments (the salt is in every task), and never the pepper.
    assert all(SALT in task for task in tasks)
    assert not [t for t in tasks for form in forms if form in t]
    for pid in cluster.worker_pids():
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert not any(form in environ for form in forms)
        assert not memory_holds(pid, forms)
    # The scanner does find a key where there is one: this process holds PEPPER.
    assert memory_holds(os.getpid(), forms)
    for path in cluster.directory.rglob("*"):
        if path.is_file() and path.parent != cluster.spy_dir:
            data = path.read_bytes()
            assert not any(form in data for form in forms), path


def memory_holds(pid: int, needles: tuple[bytes, ...]) -> bool:
    """Whether any readable, private mapping of ``pid`` contains one of ``needles``."""
    with Path(f"/proc/{pid}/maps").open() as maps, Path(f"/proc/{pid}/mem").open("rb") as mem:
        for line in maps:
            fields = line.split()
            span, perms = fields[0], fields[1]
            if not perms.startswith("r") or (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            if end - start > 1 << 30:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError):
                continue
            if any(needle in data for needle in needles):
                return True
    return False


def test_killing_a_worker_mid_build_still_completes(
    cluster: DaskCluster, slow: SlowData, key_file: Path, tmp_path: Path
) -> None:
    work, out = tmp_path / "work", tmp_path / "index.bin"
    args = cli_args(cluster, slow.export, key_file, out, slow.reference)
    process = start_cli([*args, "--work-dir", str(work), "--chunk-rows", str(SLOW_CHUNK)])
    try:
        wait_for_checkpoints(work, 4, process)
        assert process.poll() is None
        cluster.kill_worker("w2")
        killed_at = len(list(work.glob("chunk-*.ckpt")))
        stdout, stderr = process.communicate(timeout=BUILD_TIMEOUT)
    finally:
        process.kill()
        cluster.ensure_workers()
    assert process.returncode == 0, stderr
    assert killed_at < SLOW_CHUNKS, "the worker died after the build's last chunk"
    assert summary_field(stdout, "chunks_computed") == SLOW_CHUNKS
    assert masked_index(out) == masked_index(slow.reference)
    assert not work.exists()


def test_killed_client_resumes_and_refuses_a_changed_input(
    cluster: DaskCluster, slow: SlowData, key_file: Path, tmp_path: Path
) -> None:
    work, out = tmp_path / "work", tmp_path / "index.bin"
    export = tmp_path / "export.csv"
    original = slow.export.read_bytes()
    export.write_bytes(original)
    args = cli_args(cluster, export, key_file, out, slow.reference)
    args += ["--work-dir", str(work), "--chunk-rows", str(SLOW_CHUNK)]
    process = start_cli(args)
    try:
        wait_for_checkpoints(work, 6, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    finished = len(list(work.glob("chunk-*.ckpt")))
    assert 6 <= finished < SLOW_CHUNKS
    assert not out.exists()
    # The checkpoints are peppered digests: no key in them, nor in the manifest.
    for path in work.iterdir():
        assert PEPPER not in path.read_bytes()
        assert PEPPER.hex().encode() not in path.read_bytes()

    # Same size, one byte changed in the first chunk: refused in one line, nothing lost.
    changed = bytearray(original)
    first_name = original.index(b"\n") + 25
    changed[first_name] = ord("Q") if changed[first_name] != ord("Q") else ord("R")
    export.write_bytes(bytes(changed))
    refused = subprocess.run(
        [sys.executable, "-m", "lookup_index.cli", *args],
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert refused.returncode == 1
    lines = refused.stderr.decode().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"lookup-index: error: input changed .*\(chunk 0 differs\).*", lines[0])
    assert len(list(work.glob("chunk-*.ckpt"))) == finished

    export.write_bytes(original)
    done = subprocess.run(
        [sys.executable, "-m", "lookup_index.cli", *args],
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert summary_field(done.stdout, "chunks_resumed") == finished
    assert summary_field(done.stdout, "chunks_computed") == SLOW_CHUNKS - finished
    assert masked_index(out) == masked_index(slow.reference)
    assert not work.exists()


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("tcp://10.1.2.3:8786", "refusing scheduler tcp://10.1.2.3: .* needs tls://"),
        ("tcp://build.example:8786", "refusing scheduler tcp://build.example"),
        ("inproc://x", "refusing scheduler inproc://"),
        ("tls://127.0.0.1:1", "tls:// needs --tls-ca-file, --tls-cert and --tls-key"),
    ],
)
def test_unsafe_scheduler_is_refused_in_one_line(
    generated: Generated, key_file: Path, tmp_path: Path, scheduler: str, message: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # No TLS settings from the environment: the refusal must come from the flags alone.
    monkeypatch.delenv("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", raising=False)
    code = main(
        [
            *("build", "--input", str(generated.export), "--key-file", str(key_file)),
            *("--out", str(tmp_path / "i.bin"), "--profile", "test", "--scheduler", scheduler),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []


ON_DISK = "/var/lib/dask-worker"
ON_TMPFS = "/dev/shm/dask-worker"  # noqa: S108 (a tmpfs is the point)


@dataclass
class FakeMemoryManager:
    memory_limit: int | None
    memory_target_fraction: float | bool = 0.6
    memory_spill_fraction: float | bool = 0.7


@dataclass
class FakeWorker:
    memory_manager: FakeMemoryManager
    local_directory: str


@pytest.mark.parametrize(
    ("manager", "directory", "refused"),
    [
        (FakeMemoryManager(None), ON_DISK, False),  # --memory-limit 0: never spills
        (FakeMemoryManager(8 << 30), ON_TMPFS, False),  # spills to a tmpfs
        (FakeMemoryManager(8 << 30, False, False), ON_DISK, False),  # spill: false
        (FakeMemoryManager(8 << 30), ON_DISK, True),
        (FakeMemoryManager(8 << 30, False, 0.7), ON_DISK, True),
    ],
)
def test_workers_that_could_spill_identities_to_disk_are_refused(
    manager: FakeMemoryManager, directory: str, refused: bool
) -> None:
    from lookup_index.cluster import _memory_leak_to_disk

    mounts = Path("/proc/self/mounts").read_text().split()
    assert str(Path(ON_TMPFS).parent) in mounts  # the tmpfs case needs one
    why = _memory_leak_to_disk(FakeWorker(manager, directory))
    assert (why is not None) == refused, why


def test_scheduler_file_address_is_checked_too(tmp_path: Path) -> None:
    from lookup_index.cluster import ClusterError, ClusterOptions, scheduler_address

    path = tmp_path / "scheduler.json"
    path.write_text('{"address": "tcp://192.0.2.7:8786"}')
    with pytest.raises(ClusterError, match=r"refusing scheduler tcp://192\.0\.2\.7"):
        scheduler_address(ClusterOptions(scheduler_file=path))
    path.write_text('{"address": "tcp://127.0.0.1:8786"}')
    assert scheduler_address(ClusterOptions(scheduler_file=path)) == "tcp://127.0.0.1:8786"
    path.write_text("{}")
    with pytest.raises(ClusterError, match="cannot read a scheduler address"):
        scheduler_address(ClusterOptions(scheduler_file=path))


def test_a_client_without_the_clusters_certificate_is_refused(
    cluster: DaskCluster, generated: Generated, key_file: Path, tmp_path: Path
) -> None:
    # Mutual TLS: the client trusts the scheduler (right CA) but shows a certificate from
    # another CA: the scheduler must refuse it.
    _, cert, key = write_certificates(tmp_path)
    done = subprocess.run(
        [
            sys.executable, "-m", "lookup_index.cli", "build", "--input", str(generated.export),
            "--key-file", str(key_file), "--out", str(tmp_path / "i.bin"), "--profile", "test",
            "--scheduler", cluster.address, "--tls-ca-file", str(cluster.ca),
            "--tls-cert", str(cert), "--tls-key", str(key),
        ],
        capture_output=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"},
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("lookup-index: error: cannot reach the Dask scheduler at tls://")
    assert not (tmp_path / "i.bin").exists()
