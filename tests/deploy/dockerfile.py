"""Read the Dockerfile and .dockerignore as Docker does, enough to check them without an engine.

- :func:`parse_dockerfile`: instructions per stage (continuations joined,
  comments dropped), with ARG defaults substituted.
- :func:`build_context`: the files `docker build .` would send, by the
  .dockerignore rules of moby/patternmatcher (`**`, `*`, `?`, `!` exceptions,
  last match wins, a matched directory excludes what is under it).
- :func:`local_command`, :func:`image_server`: the image's CMD turned into a
  local command line (loopback host, free port, local paths) and run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from app.logging_setup import log_config
from tests.support.servers import ApiServer, free_port, served

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN (after HEALTHCHECK options)."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + len("CMD") :]
        value = json.loads(text)
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise ValueError(f"{self.keyword} is not in exec form: {self.arguments}")
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        if not found:
            raise LookupError(f"no {keyword} in stage {self.name or self.base}")
        return found[-1]

    def env(self) -> dict[str, str]:
        """ENV of this stage (key=value form), later values winning, $VAR expanded from earlier."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.arguments):
                key, sep, value = token.partition("=")
                if not sep:
                    raise ValueError(f"ENV must use key=value: {instruction.arguments}")
                values[key] = _expand(value, values)
        return values


def _expand(text: str, values: Mapping[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), m.group(0)), text
    )


def _logical_lines(text: str) -> Iterable[str]:
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments inside a continued instruction are dropped, as Docker does
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        yield current + line
        current = ""
    if current:
        yield current


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            if name not in args or default:
                args[name] = default
            if stages:
                stages[-1].instructions.append(Instruction(keyword, rest))
            continue
        rest = _expand(rest, args) if keyword in ("FROM", "USER", "COPY", "WORKDIR") else rest
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
            continue
        if not stages:
            raise ValueError(f"{keyword} before the first FROM")
        stages[-1].instructions.append(Instruction(keyword, rest))
    return stages


# --- .dockerignore ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    pattern: re.Pattern[str]
    exclusion: bool  # a `!` rule: put back what earlier rules took out
    text: str


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """moby/patternmatcher: `**` any number of directories, `*` and `?` within one name."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


def read_dockerignore(path: Path = DOCKERIGNORE) -> list[IgnoreRule]:
    rules: list[IgnoreRule] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!").strip().lstrip("/")))
        rules.append(IgnoreRule(_pattern_regex(pattern), exclusion, pattern))
    return rules


def is_ignored(relative: str, rules: list[IgnoreRule]) -> bool:
    """Whether ``relative`` (a POSIX path in the context) is left out of the build context.

    A file is out when its path or one of its parent directories matches the
    last rule that decides; that is how a `*` rule takes out whole trees and a
    `!app/` rule puts one back.
    """
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.pattern.match(candidate) for candidate in candidates):
            ignored = not rule.exclusion
    return ignored


def _may_put_back(directory: str, rules: list[IgnoreRule]) -> bool:
    """Whether some `!` rule could re-include a file under an ignored ``directory``."""
    return any(
        rule.exclusion and (rule.text.startswith(directory + "/") or rule.text.startswith("*"))
        for rule in rules
    )


def build_context(root: Path = REPO, rules: list[IgnoreRule] | None = None) -> set[str]:
    """Every file under ``root`` that Docker would send (POSIX paths relative to root)."""
    rules = read_dockerignore() if rules is None else rules
    files: set[str] = set()
    for current, directories, names in os.walk(root):
        base = Path(current).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # Skip trees no rule can put back (.git, .venv): what Docker's walker does too.
        directories[:] = [
            d
            for d in directories
            if not is_ignored(prefix + d, rules) or _may_put_back(prefix + d, rules)
        ]
        files.update(prefix + n for n in names if not is_ignored(prefix + n, rules))
    return files


# --- the image's CMD and HEALTHCHECK as local commands -----------------------------------


def runtime_stage(stages: list[Stage] | None = None) -> Stage:
    return (stages or parse_dockerfile())[-1]


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in an argv (``--port 8000``)."""
    return argv[argv.index(name) + 1]


def local_command(argv: list[str], *, port: int, log_config: Path) -> list[str]:
    """The CMD with this venv's executables, bound to 127.0.0.1:port, with a local log config."""
    replacements = {"--host": "127.0.0.1", "--port": str(port), "--log-config": str(log_config)}
    local = list(argv)
    for name, value in replacements.items():
        if name in local:
            local[local.index(name) + 1] = value
    local[0] = str(Path(sys.executable).with_name(local[0]))
    return local


def local_healthcheck(argv: list[str], *, image_port: str, port: int) -> list[str]:
    """The HEALTHCHECK command with this venv's python, aimed at ``port``."""
    if argv[0] != "python":
        raise ValueError(f"the health check is expected to run python, not {argv[0]}")
    code = argv[-1].replace(f"127.0.0.1:{image_port}/", f"127.0.0.1:{port}/")
    return [sys.executable, *argv[1:-1], code]


@contextlib.contextmanager
def image_server(
    env: Mapping[str, str], directory: Path, port: int | None = None
) -> Iterator[ApiServer]:
    """The image's CMD with the image's ENV (plus ``env``) as a local process on loopback.

    What differs from the container is only where things are: 127.0.0.1 and a
    free port instead of 0.0.0.0:8000, this venv instead of /opt/venv, and the
    log configuration the builder stage writes, written here the same way.
    """
    stage = runtime_stage()
    directory.mkdir(parents=True, exist_ok=True)
    log_config_file = directory / "logging.json"
    log_config_file.write_text(json.dumps(log_config("info")))
    image_env = stage.env()
    image_env.pop("PATH")  # the image's venv is this one
    workdir = directory / "srv"  # like the image's empty WORKDIR
    workdir.mkdir(exist_ok=True)
    port = port or free_port()
    log = directory / "server.log"
    argv = local_command(stage.last("CMD").exec_form(), port=port, log_config=log_config_file)
    with log.open("wb") as handle:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **image_env, **env},
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
        )
    with served(process, port, log) as server:
        yield server
