"""bench_edge.py stays runnable: it imports what it measures, and its options parse.

The run itself (minutes) is `make bench`; its figures are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import pytest

from loadtests import bench_edge


def test_bench_edge_measures_the_launchers_protocol_against_both_parsers() -> None:
    flags = [argv for argv in bench_edge.PARSERS.values()]
    assert ["--http", "httptools"] in flags
    assert any("h11" in argv for argv in flags)
    assert any("app.server_protocol:BoundedHttpToolsProtocol" in argv for argv in flags)


def test_bench_edge_options_parse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_edge.main(["--help"])
    assert exit_info.value.code == 0
    assert "--clients" in capsys.readouterr().out
