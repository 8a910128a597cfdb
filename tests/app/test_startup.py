"""Start-up refusals: a bad index or key stops the process with one line, never a traceback.

Through the real entry points: `python -m app serve` (checks before uvicorn
starts) and `uvicorn --factory app.main:create_app` (the lifespan refuses;
OneLineStartupErrors turns it into one line).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message

import app
from app.main import create_app
from app.settings import Settings
from lookup_index import generate_pepper_file
from tests.app.helpers import run_refusal
from tests.support.dataset import Dataset
from tests.support.servers import free_port

REPO = Path(app.__file__).resolve().parents[1]
SERVE = [sys.executable, "-m", "app", "serve"]
#: The test dataset is built with the cheap `test` profile, refused without this override.
ALLOW = {"SELFCHECK_ALLOW_TEST_PROFILE": "true"}


def _flipped(source: Path, target: Path, position: int) -> Path:
    data = bytearray(source.read_bytes())
    data[position % len(data)] ^= 0x01
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(scope="module")
def broken(
    dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, str], str]]:
    """Each broken set-up: its environment and a word the refusal must contain."""
    here = tmp_path_factory.mktemp("broken")
    wrong_key = here / "wrong.key"
    generate_pepper_file(wrong_key)
    size = dataset.index.stat().st_size
    truncated = here / "truncated.bin"
    truncated.write_bytes(dataset.index.read_bytes()[: size // 2])
    index, key = str(dataset.index), str(dataset.key)
    return {
        "missing index": (
            {"SELFCHECK_INDEX_PATH": str(here / "absent.bin"), "SELFCHECK_KEY_FILE": key, **ALLOW},
            "not found",
        ),
        "wrong pepper": (
            {"SELFCHECK_INDEX_PATH": index, "SELFCHECK_KEY_FILE": str(wrong_key), **ALLOW},
            "key",
        ),
        "corrupt index (body)": (
            {
                "SELFCHECK_INDEX_PATH": str(_flipped(dataset.index, here / "body.bin", size // 2)),
                "SELFCHECK_KEY_FILE": key,
                **ALLOW,
            },
            "corrupt",
        ),
        "corrupt index (header)": (
            {
                "SELFCHECK_INDEX_PATH": str(_flipped(dataset.index, here / "head.bin", 0)),
                "SELFCHECK_KEY_FILE": key,
                **ALLOW,
            },
            "index",
        ),
        "truncated index": (
            {"SELFCHECK_INDEX_PATH": str(truncated), "SELFCHECK_KEY_FILE": key, **ALLOW},
            "index",
        ),
        "missing key file": (
            {
                "SELFCHECK_INDEX_PATH": index,
                "SELFCHECK_KEY_FILE": str(here / "absent.key"),
                **ALLOW,
            },
            "key file",
        ),
    }


def _assert_one_line_refusal(code: int, output: str, word: str, secret: bytes) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    reasons = [line for line in output.splitlines() if "cannot start" in line]
    assert len(reasons) == 1, output
    assert word in reasons[0].lower(), output
    assert secret.hex() not in output


def test_serve_refuses_to_start_with_one_line(
    broken: dict[str, tuple[dict[str, str], str]], dataset: Dataset
) -> None:
    env_port = {"SELFCHECK_PORT": str(free_port())}
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = {
            name: pool.submit(run_refusal, SERVE, {**env, **env_port})
            for name, (env, _) in broken.items()
        }
    for name, future in results.items():
        code, output = future.result()
        _assert_one_line_refusal(code, output, broken[name][1], dataset.key.read_bytes())
        assert len(output.strip().splitlines()) == 1, (name, output)


def test_uvicorn_factory_refuses_to_start_with_one_line(
    broken: dict[str, tuple[dict[str, str], str]], dataset: Dataset
) -> None:
    def uvicorn() -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
            "--app-dir", str(REPO), "--host", "127.0.0.1", "--port", str(free_port()),
        ]  # fmt: skip

    cases = ("missing index", "wrong pepper", "corrupt index (body)", "missing key file")
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = {name: pool.submit(run_refusal, uvicorn(), broken[name][0]) for name in cases}
    for name, future in results.items():
        code, output = future.result()
        _assert_one_line_refusal(code, output, broken[name][1], dataset.key.read_bytes())
        assert "Application startup complete" not in output, name


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SELFCHECK_RESPONSE_FLOOR_MS": "soon"}, "SELFCHECK_RESPONSE_FLOOR_MS"),
        ({"SELFCHECK_TRUSTED_PROXIES": "10.0.0.0/33"}, "SELFCHECK_TRUSTED_PROXIES"),
        ({"SELFCHECK_WORKERS": "2"}, "SELFCHECK_RATE_LIMIT_STORAGE"),
    ],
)
def test_serve_names_an_invalid_setting_in_one_line(
    dataset: Dataset, env: dict[str, str], named: str
) -> None:
    base = {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        **ALLOW,
    }
    code, output = run_refusal(SERVE, {**base, **env, "SELFCHECK_PORT": str(free_port())})
    assert code != 0
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output
    assert named in output


async def lifespan_startup(application: Any) -> list[Message]:
    """Drive the ASGI lifespan protocol as a server does; return what the app sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(application({"type": "lifespan", "state": {}}, receive, send), 10)
    return sent


async def test_the_lifespan_refuses_in_process_with_one_line(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    application = create_app(make_settings(index_path=tmp_path / "absent.bin"))
    sent = await lifespan_startup(application)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "\n" not in sent[0]["message"]
    assert sent[0]["message"].startswith("selfcheck cannot start: index file not found")


async def test_a_response_size_too_small_for_the_answers_is_refused(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    settings = make_settings(response_size=4096, index_path=_long_label_index(dataset))
    sent = await lifespan_startup(create_app(settings))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "SELFCHECK_RESPONSE_SIZE too small" in sent[0]["message"]


def _long_label_index(dataset: Dataset) -> Path:
    """An index whose incident label is so long no answer fits 4096 bytes."""
    from lookup_index.builder import BuildOptions, build_index
    from lookup_index.pepper import load_pepper
    from lookup_index.profiles import TEST

    target = dataset.directory / "long-label.bin"
    if not target.exists():
        build_index(
            BuildOptions(
                input=dataset.export,
                out=target,
                pepper=load_pepper(dataset.key),
                profile=TEST,
                workers=1,
                incident_id="long",
                incident_label="x" * 3000,
            )
        )
    return target


def test_serve_flags_override_the_settings(dataset: Dataset) -> None:
    """`--workers 2` reaches the settings' checks exactly as SELFCHECK_WORKERS=2 does."""
    base = {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        **ALLOW,
    }
    argv = [*SERVE, "--workers", "2", "--host", "127.0.0.1", "--port", str(free_port())]
    code, output = run_refusal(argv, {**base, "SELFCHECK_WORKERS": "1"})
    assert code != 0
    assert len(output.strip().splitlines()) == 1, output
    assert "SELFCHECK_RATE_LIMIT_STORAGE" in output
    code, output = run_refusal([*SERVE, "--port", "0"], base)
    assert code != 0
    assert "SELFCHECK_PORT" in output, output


def test_a_test_profile_index_is_refused_without_the_override(dataset: Dataset) -> None:
    env = {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_PORT": str(free_port()),
    }
    code, output = run_refusal(SERVE, env)
    _assert_one_line_refusal(code, output, "'test' argon2 profile", dataset.key.read_bytes())
    assert "SELFCHECK_ALLOW_TEST_PROFILE" in output


async def test_the_lifespan_refuses_a_test_profile_index_in_process(
    make_settings: Callable[..., Settings],
) -> None:
    sent = await lifespan_startup(create_app(make_settings(allow_test_profile=False)))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "'test' Argon2 profile" in sent[0]["message"]


async def test_a_fast_profile_index_starts_with_one_warning(
    make_settings: Callable[..., Settings],
    dataset: Dataset,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lookup_index.builder import BuildOptions, build_index
    from lookup_index.pepper import load_pepper
    from lookup_index.profiles import FAST

    index = tmp_path / "fast.bin"
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(dataset.export.read_text().splitlines()[:40]) + "\n")
    build_index(
        BuildOptions(
            input=rows, out=index, pepper=load_pepper(dataset.key), profile=FAST, workers=1
        )
    )
    caplog.set_level("WARNING", logger="app.startup")
    sent = await lifespan_startup(
        create_app(make_settings(index_path=index, allow_test_profile=False))
    )
    assert sent[0]["type"] == "lifespan.startup.complete"
    warnings = [r.getMessage() for r in caplog.records if "'fast' Argon2 profile" in r.getMessage()]
    assert len(warnings) == 1
