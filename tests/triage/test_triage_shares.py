"""Triage in several processes says exactly what triage in one says.

The captures here hold many connections: real fixture captures (openssl, GnuTLS and Python ssl
peers; TLS 1.2 and 1.3; alerts, resets, resumption, early data, ...) merged into one file by
mergecap, with their key logs joined. Each is triaged by one process and by two and three
(``capdebug/_shares.py``: forked processes, each following the connections of its share) and the
reports must be equal, numbers included. Where a share cannot be sure (a key is missing, so the
explanation counts the capture's other sessions), the shares give way to one process; that is
checked to happen, and the result to be the same still.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from capdebug import _shares
from capdebug.api import load_keys, triage_capture
from tests.tools import require

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRIAGE = FIXTURES / "triage"


def _merge(tmp: Path, captures: list[Path], name: str) -> tuple[Path, Path]:
    require("mergecap")
    out = tmp / f"{name}.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(out), *map(str, captures)], check=True)
    keys = tmp / f"{name}.keys"
    keys.write_bytes(
        b"".join(p.with_suffix(".keys").read_bytes() for p in captures if p.with_suffix(".keys").exists())
    )
    return out, keys


def _json(reports: list[Any]) -> list[dict[str, Any]]:
    return [r.to_json() for r in reports]


def _fixture_captures() -> list[Path]:
    return sorted(FIXTURES.glob("*.pcap"))


@pytest.mark.parametrize("jobs", [2, 3])
def test_shares_give_the_reports_of_one_process(tmp_path: Path, jobs: int) -> None:
    capture, keys = _merge(tmp_path, _fixture_captures(), "fixtures")
    alone = triage_capture(capture, load_keys(capture, [keys]), jobs=1)
    one = alone.reports
    assert len(one) >= 20
    loaded = load_keys(capture, [keys])
    shared = _shares.triage_in_shares(capture, loaded, slow_handshake=1.0, jobs=jobs, progress=None)
    assert shared is not None, "a share depended on another: the shares gave way"
    reports, shared_warnings, contents = shared
    assert _json(reports) == _json(one)
    assert shared_warnings == alone.warnings and contents == alone.contents
    # The work was really divided: every share followed some of the connections.
    for k in range(jobs):
        share = _shares._share(capture, loaded, 1.0, k, jobs, None)
        assert share.reports and not share.dependent
        assert len(share.reports) < len(one)


def test_a_missing_key_makes_the_shares_give_way(tmp_path: Path) -> None:
    """Without one connection's secrets, its explanation counts the key log's sessions seen in
    the whole capture: only one process can say it as it is."""
    captures = _fixture_captures()
    capture, keys = _merge(tmp_path, captures, "fixtures")
    lines = keys.read_bytes().splitlines(keepends=True)
    first_random = lines[0].split()[1]
    partial = tmp_path / "partial.keys"
    partial.write_bytes(b"".join(line for line in lines if first_random not in line))
    loaded = load_keys(capture, [partial])
    assert _shares.triage_in_shares(capture, loaded, slow_handshake=1.0, jobs=2, progress=None) is None
    one, _ = triage_capture(capture, load_keys(capture, [partial]), jobs=1)
    two, _ = triage_capture(capture, load_keys(capture, [partial]), jobs=2)
    assert _json(two) == _json(one)
    undecryptable = [v for r in _json(one) for v in r["verdicts"] if v["code"] == "undecryptable"]
    assert any("no_key" in v["detail"] or "no secrets" in v["detail"] for v in undecryptable), undecryptable


def test_triage_scenarios_merged_are_the_same_in_shares(tmp_path: Path) -> None:
    """Every verdict the triage captures show (alerts, resets, premature closes, certificate
    problems, gaps, ...), in one file: one process or two, the same reports."""
    capture, keys = _merge(tmp_path, sorted(TRIAGE.glob("*.pcap")), "scenarios")
    one, _ = triage_capture(capture, load_keys(capture, [keys]), jobs=1)
    two, _ = triage_capture(capture, load_keys(capture, [keys]), jobs=2)
    assert len(one) >= 20
    assert _json(two) == _json(one)


def test_a_failed_share_makes_the_shares_give_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    capture, keys = _merge(tmp_path, _fixture_captures()[:6], "few")
    real = _shares._share

    def failing(capture: Path, keys: Any, slow: float, k: int, n: int, progress: Any, *limits: int) -> Any:
        if k == 1:
            raise RuntimeError("this share fails (in the forked process)")
        return real(capture, keys, slow, k, n, progress, *limits)

    monkeypatch.setattr(_shares, "_share", failing)
    loaded = load_keys(capture, [keys])
    assert _shares.triage_in_shares(capture, loaded, slow_handshake=1.0, jobs=2, progress=None) is None


def test_command_line_jobs(tmp_path: Path) -> None:
    capture, keys = _merge(tmp_path, _fixture_captures(), "fixtures")
    outputs = []
    for jobs in ("1", "2"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from capdebug.cli.app import main; main(sys.argv[1:])",
                "triage",
                "--json",
                "--jobs",
                jobs,
                "--no-env",
                "--keylog",
                str(keys),
                str(capture),
            ],
            capture_output=True,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]["connections"]) >= 20


def test_small_captures_and_explicit_jobs(tmp_path: Path) -> None:
    small = FIXTURES / "tls13-aes128gcm.pcap"
    assert _shares.auto_jobs(small, 0) == 1
    assert _shares.auto_jobs(small, 3) == 3
    assert _shares.auto_jobs(tmp_path / "missing.pcap", 0) == 1
