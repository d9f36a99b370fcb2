"""The installed ``capdebug`` command: help that teaches, one-line errors, exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("capdebug")
    cmd = [exe, *args] if exe else [sys.executable, "-c", "from capdebug.cli.app import main; main()", *args]
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("capdebug: error: ")
    assert "Traceback" not in done.stderr
    for w in words:
        assert w in lines[0]


def test_help_lists_commands_with_examples() -> None:
    done = run("--help")
    assert done.returncode == 0
    for cmd in ("decrypt", "triage", "embed", "export", "keys"):
        assert cmd in done.stdout
    for cmd in (["decrypt"], ["triage"], ["embed"], ["export"], ["keys", "extract"], ["keys", "check"]):
        sub = run(*cmd, "--help")
        assert sub.returncode == 0
        assert "capdebug " + cmd[0] in sub.stdout, cmd  # an example line


def test_missing_capture(tmp_path: Path) -> None:
    done = run("decrypt", str(tmp_path / "nope.pcap"))
    assert_one_line_error(done, 2, "nope.pcap")


def test_not_a_capture(tmp_path: Path) -> None:
    bad = tmp_path / "page.html"
    bad.write_text("<html><body>not a capture</body></html>")
    for cmd in ("decrypt", "triage"):
        done = run(cmd, str(bad))
        assert_one_line_error(done, 2, "not a pcap or pcapng file", "offset 0")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "page.html"
    bad.write_text("<html>")
    done = run("--debug", "decrypt", str(bad))
    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert "CaptureFormatError" in done.stderr


def test_missing_keylog(tmp_path: Path) -> None:
    done = run("decrypt", str(FIXTURES / "tls13-aes128gcm.pcap"), "--keylog", str(tmp_path / "k.log"))
    assert_one_line_error(done, 2, "k.log")


def test_truncated_capture_is_a_warning_not_an_error(tmp_path: Path) -> None:
    data = (FIXTURES / "tls13-aes128gcm.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 7])
    done = run("decrypt", str(cut), "--keylog", str(FIXTURES / "tls13-aes128gcm.keys"), "--json")
    assert done.returncode == 0, done.stderr
    assert "truncated" in done.stderr
    assert '"name":"client_hello"' in done.stdout


def test_bad_keylog_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    keys = (FIXTURES / "tls13-aes128gcm.keys").read_text().splitlines()
    keys.insert(1, "CLIENT_RANDOM nothex nothex")
    k = tmp_path / "k.log"
    k.write_text("\n".join(keys) + "\n")
    done = run("decrypt", str(FIXTURES / "tls13-aes128gcm.pcap"), "--keylog", str(k), "--json")
    assert done.returncode == 0
    assert "line 2" in done.stderr
    assert '"decrypted":true' in done.stdout


def test_triage_exit_codes(tmp_path: Path) -> None:
    clean = run(
        "triage", str(FIXTURES / "tls13-aes128gcm.pcap"), "-k", str(FIXTURES / "tls13-aes128gcm.keys")
    )
    assert clean.returncode == 0, clean.stdout
    broken = run(
        "triage",
        str(FIXTURES / "tls13-premature-close.pcap"),
        "-k",
        str(FIXTURES / "tls13-premature-close.keys"),
    )
    assert broken.returncode == 1
    assert "premature_close" in broken.stdout
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\x00" * 64)
    assert run("triage", str(bad)).returncode == 2


def test_usage_error_exit_code_2() -> None:
    done = run("decrypt")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("out_name", ["same"])
def test_output_cannot_overwrite_input(tmp_path: Path, out_name: str) -> None:
    src = tmp_path / "in.pcap"
    shutil.copy(FIXTURES / "tls13-aes128gcm.pcap", src)
    done = run("embed", str(src), str(FIXTURES / "tls13-aes128gcm.keys"), "-o", str(src))
    assert_one_line_error(done, 2, "is the input capture")
    assert src.read_bytes() == (FIXTURES / "tls13-aes128gcm.pcap").read_bytes()


def test_empty_and_gzip_garbage_are_named_correctly(tmp_path: Path) -> None:
    import gzip

    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    done = run("triage", str(empty))
    assert_one_line_error(done, 2, "empty")
    assert "gunzip" not in done.stderr
    packed = tmp_path / "notes.txt.gz"
    packed.write_bytes(gzip.compress(b"just some notes, not a capture"))
    done = run("triage", str(packed))
    assert_one_line_error(done, 2, "after gunzip")
