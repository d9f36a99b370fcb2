"""Every file that may hold a secret is 0600 from its first byte and never written through a
symlink: each writer in three cases (a new file, an existing 0644 file, a symlink at the path
whose target must stay untouched)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capdebug._files import atomic_output, open_private
from capdebug.cli.app import app
from capdebug.crypto.keylog import write_keylog_file
from tests.capture.conftest import REPO, cli_argv, cli_env
from tests.tools import require, require_root

FIXTURES = REPO / "tests" / "fixtures"
CASES = ["new", "existing-0644", "symlink"]
TARGET_TEXT = b"the link's target: must stay as it is\n"
LINE = "CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48


def _prepare(path: Path, case: str, tmp_path: Path) -> Path | None:
    """Set up ``case`` at ``path``; returns the symlink's target (outside the folder) if any."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if case == "existing-0644":
        path.write_bytes(b"old\n")
        path.chmod(0o644)
    elif case == "symlink":
        target = tmp_path / "elsewhere" / "target"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(TARGET_TEXT)
        target.chmod(0o644)
        path.symlink_to(target)
        return target
    return None


def _check(path: Path, target: Path | None) -> None:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} must be a regular file, not a link"
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    if target is not None:
        assert target.read_bytes() == TARGET_TEXT
        assert stat.S_IMODE(target.stat().st_mode) == 0o644


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _keylog(path: Path) -> None:  # what serve/connect --key-log call for each line
    write_keylog_file(path, [LINE], append=True)


def _certs_make(path: Path) -> None:
    _cli("certs", "make", str(path.parent), "--only", "server-ecdsa")


def _decrypt_export(path: Path) -> None:
    pcap, keys = FIXTURES / "tls13-aes128gcm.pcap", FIXTURES / "tls13-aes128gcm.keys"
    _cli("decrypt", str(pcap), "--keylog", str(keys), "--export", str(path.parent))


def _embed(path: Path) -> None:
    _cli(
        "embed",
        str(FIXTURES / "tls13-aes128gcm.pcap"),
        str(FIXTURES / "tls13-aes128gcm.keys"),
        "-o",
        str(path),
    )


def _keys_extract(path: Path) -> None:
    embedded = path.parent.parent / "embedded.pcapng"
    _cli(
        "embed",
        str(FIXTURES / "tls13-aes128gcm.pcap"),
        str(FIXTURES / "tls13-aes128gcm.keys"),
        "-o",
        str(embedded),
    )
    _cli("keys", "extract", str(embedded), "-o", str(path))


def _open_private(path: Path) -> None:
    with open_private(path) as f:
        f.write(b"secret")


def _atomic_private(path: Path) -> None:
    with atomic_output(path, private=True) as f:
        f.write(b"secret")


WRITERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "keylog-append": (_keylog, "keys.log"),
    "certs-make-key": (_certs_make, "server-ecdsa.key"),
    "decrypt-export": (_decrypt_export, "conn1-client.bin"),
    "embed": (_embed, "with-keys.pcapng"),
    "keys-extract": (_keys_extract, "keys.log"),
    "open_private": (_open_private, "out.bin"),
    "atomic_output": (_atomic_private, "out.bin"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_writer_makes_a_private_file(writer: str, case: str, tmp_path: Path) -> None:
    write, name = WRITERS[writer]
    path = tmp_path / "out" / name
    target = _prepare(path, case, tmp_path)
    write(path)
    _check(path, target)
    assert path.stat().st_size > 0


def test_keylog_append_keeps_earlier_lines_and_a_private_file_is_appended_in_place(tmp_path: Path) -> None:
    path = tmp_path / "keys.log"
    path.write_text("CLIENT_RANDOM " + "01" * 32 + " " + "02" * 48 + "\n")
    path.chmod(0o644)
    _keylog(path)  # the public file is replaced by a private copy, then appended to
    inode = path.stat().st_ino
    _keylog(path)  # already private: appended in place (no copy per line)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines[1:] == [LINE, LINE]
    assert path.stat().st_ino == inode
    _check(path, None)


def test_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(path, private=True) as f:
        f.write(b"half")
        raise RuntimeError
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


# -- capture: the file tcpdump's packets go into, while the capture runs ---------------------------


def _capture_mode_while_running(out: Path, keylog: Path, extra: list[str]) -> int:
    before = os.lstat(out).st_ino if os.path.lexists(out) else None
    proc = subprocess.Popen(
        cli_argv("capture", "-i", "lo", "--duration", "20s", "--keylog", str(keylog), *extra, "-o", str(out)),
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = os.lstat(out) if os.path.lexists(out) else None
            if st is not None and st.st_ino != before and stat.S_ISREG(st.st_mode) and st.st_size > 0:
                break
            time.sleep(0.02)
        st = os.lstat(out)
        assert stat.S_ISREG(st.st_mode)
        mode = stat.S_IMODE(st.st_mode)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    return mode


@pytest.mark.parametrize("case", CASES)
def test_capture_file_is_private_while_tcpdump_runs(case: str, tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    out, keylog = tmp_path / "out" / "cap.pcapng", tmp_path / "in.log"
    keylog.write_text(LINE + "\n")
    target = _prepare(out, case, tmp_path)
    assert _capture_mode_while_running(out, keylog, []) == 0o600
    _check(out, target)


@pytest.mark.parametrize("case", CASES)
def test_capture_no_embed_keylog_copy_is_private(case: str, tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    out, keylog = tmp_path / "out" / "cap.pcapng", tmp_path / "in.log"
    keylog.write_text(LINE + "\n")
    copy = tmp_path / "out" / "cap.keylog"
    target = _prepare(copy, case, tmp_path)
    assert _capture_mode_while_running(out, keylog, ["--no-embed"]) == 0o600
    _check(copy, target)
    assert copy.read_text() == LINE + "\n"


def test_a_device_at_the_path_is_written_not_replaced(tmp_path: Path) -> None:
    # Renaming over /dev/null (as root) would destroy the device node: it is written to.
    before = os.stat("/dev/null")
    with open_private("/dev/null") as f:
        f.write(b"x")
    with atomic_output("/dev/null", private=True) as g:
        g.write(b"x")
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    with open_private(fifo) as f:
        f.write(b"through the pipe")
    assert os.read(reader, 100) == b"through the pipe"
    os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
