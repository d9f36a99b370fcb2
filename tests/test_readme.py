"""The README documents what the code does: the quick start, the library example, every verdict
and reason code."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from capdebug.analysis.events import Reason
from capdebug.analysis.triage import CATALOG

README = (Path(__file__).parent.parent / "README.md").read_text()
MAKEFILE = (Path(__file__).parent.parent / "Makefile").read_text()


def test_quick_start_is_two_commands_that_exist() -> None:
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [
        line.split("#")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith(" ")
    ]
    assert commands == ["make demo", "make test"]
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", MAKEFILE, re.M)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_verdict_code_is_documented() -> None:
    for code in CATALOG:
        assert f"`{code}`" in README, code


def test_every_reason_code_is_documented() -> None:
    codes = [v for k, v in vars(Reason).items() if k.isupper()]
    assert len(codes) >= 10
    for code in codes:
        assert f"`{code}`" in README, code


def test_library_example_runs_and_prints_the_alerts_and_verdicts() -> None:
    """The "Library API" example, run on a fixture (its file names swapped for the fixture's):
    it prints the capture's alert and its verdict."""
    block = README.split("## Library API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    fixtures = Path(__file__).parent / "fixtures" / "triage"
    code = block.replace('"case.pcapng"', repr(str(fixtures / "alert.pcap"))).replace(
        '"keys.log"', repr(str(fixtures / "alert.keys"))
    )
    assert code != block
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    alerts = [line for line in lines if line.startswith("conn ")]
    assert len(alerts) == 1 and " sent " in alerts[0], lines
    assert any(" error " in line for line in lines[len(alerts) :]), lines
