"""Local captures with the real tcpdump, driven through the CLI (CliRunner and a subprocess)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from capdebug.capture.command import TcpdumpOptions
from capdebug.capture.runner import run_capture
from capdebug.capture.transport import LocalTransport
from capdebug.cli.capture import parse_duration, register
from capdebug.errors import CaptureError, UsageError
from capdebug.pcap.model import Packet
from capdebug.pcap.open import open_capture
from tests.capture.conftest import (
    REPO,
    TlsEchoServer,
    cli_env,
    interrupt_capture,
    keep_sending,
    tcpdump_alive,
    tls_roundtrip,
    tshark_count,
)
from tests.tools import require, require_root

pytestmark = pytest.mark.tools


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _packets(path: Path) -> list[Packet]:
    with open_capture(path) as reader:
        return [p for p in reader if isinstance(p, Packet)]


def _capinfos_ok(path: Path) -> None:
    proc = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_stop_by_count(tls_server: TlsEchoServer, tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark", "capinfos")
    out = tmp_path / "count.pcapng"
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop)
    try:
        result = CliRunner().invoke(
            _app(),
            [
                "capture",
                "-i",
                "lo",
                "--port",
                str(tls_server.port),
                "--count",
                "12",
                "--duration",
                "20s",
                "-o",
                str(out),
            ],
        )
    finally:
        stop.set()
    assert result.exit_code == 0, result.output
    assert "local: 12 packets" in result.output
    assert "stopped by count" in result.output
    _capinfos_ok(out)
    assert len(_packets(out)) == 12
    assert tshark_count(out, f"tcp.port == {tls_server.port}") == 12


def test_stop_by_duration_keeps_tls(tls_server: TlsEchoServer, tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark", "capinfos")
    out = tmp_path / "duration.pcapng"
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop)
    t0 = time.monotonic()
    try:
        result = CliRunner().invoke(
            _app(),
            ["capture", "-i", "lo", "--port", str(tls_server.port), "--duration", "1.5s", "-o", str(out)],
        )
    finally:
        stop.set()
    elapsed = time.monotonic() - t0
    assert result.exit_code == 0, result.output
    assert "stopped by duration" in result.output
    assert 1.4 < elapsed < 8
    _capinfos_ok(out)
    as_tls = ("-d", f"tcp.port=={tls_server.port},tls")
    assert tshark_count(out, "tls.handshake.type == 1", *as_tls) >= 2  # ClientHellos
    assert tshark_count(out, "tls.record.opaque_type == 23", *as_tls) >= 2  # application data
    ts = [p.ts_ns for p in _packets(out)]
    assert ts == sorted(ts)


def test_sigint_stops_cleanly(tls_server: TlsEchoServer, tmp_path: Path) -> None:
    """The real command in a subprocess, interrupted like Ctrl-C; tcpdump must not survive."""
    require_root()
    require("tcpdump", "tshark", "capinfos")
    out = tmp_path / "sigint.pcapng"
    marker = f"tcp port {tls_server.port}"
    rc, stdout, stderr = interrupt_capture(["-i", "lo", "--filter", marker], out, tls_server.port, 2000)
    assert rc == 0, stderr
    assert "stopped by signal" in stdout
    _capinfos_ok(out)
    assert tshark_count(out, "tls.handshake.type == 1") >= 1
    assert not tcpdump_alive(marker)


def test_embedded_keylog_decrypts(tls_server: TlsEchoServer, tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark")
    out, keylog = tmp_path / "keys.pcapng", tmp_path / "keys.log"
    done = threading.Event()

    def traffic() -> None:
        time.sleep(0.8)
        for _ in range(3):
            tls_roundtrip("127.0.0.1", tls_server.port, keylog=keylog)
        done.set()

    threading.Thread(target=traffic, daemon=True).start()
    result = CliRunner().invoke(
        _app(),
        ["capture", "-i", "lo", "--port", str(tls_server.port), "--duration", "2.5s",
         "--keylog", str(keylog), "-o", str(out)],
    )  # fmt: skip
    assert done.is_set()
    assert result.exit_code == 0, result.output
    assert "key log embedded" in result.output
    # TLS 1.3 Finished messages are encrypted: tshark sees them only with the embedded secrets.
    as_tls = ("-d", f"tcp.port=={tls_server.port},tls")
    assert tshark_count(out, "tls.handshake.type == 20", *as_tls) >= 6


def test_no_embed_saves_keylog_apart(tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    out, keylog = tmp_path / "k.pcapng", tmp_path / "in.log"
    keylog.write_text("CLIENT_RANDOM " + "00" * 32 + " " + "11" * 48 + "\n")
    result = CliRunner().invoke(
        _app(),
        ["capture", "-i", "lo", "--duration", "0.3s", "--keylog", str(keylog), "--no-embed", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    saved = tmp_path / "k.keylog"
    assert saved.read_text() == keylog.read_text()
    assert saved.stat().st_mode & 0o077 == 0


def test_missing_local_keylog(tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    result = CliRunner().invoke(
        _app(), ["capture", "-i", "lo", "--duration", "0.2s", "--keylog", str(tmp_path / "nope.log"),
                 "-o", str(tmp_path / "o.pcapng")],
    )  # fmt: skip
    assert isinstance(result.exception, CaptureError)
    assert "key log" in str(result.exception) and "not found" in str(result.exception)


def test_missing_tcpdump_locally(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="tcpdump is not installed on local"):
        run_capture(
            [LocalTransport()], TcpdumpOptions(tcpdump_path=str(tmp_path / "no" / "tcpdump")),
            str(tmp_path / "o.pcapng"), duration_s=5,
        ).raise_for_errors()  # fmt: skip
    assert not (tmp_path / "o.pcapng").exists()


@pytest.mark.parametrize("field", ["interface", "filter", "tcpdump_path"])
def test_local_injection_creates_nothing(field: str, tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    target = tmp_path / "pwned"
    evil = f"'; touch {target}; '"
    opts = TcpdumpOptions(**{"interface": "lo", field: evil})  # type: ignore[arg-type]
    result = run_capture([LocalTransport()], opts, str(tmp_path / "o.pcapng"), duration_s=5)
    assert result.errors, "tcpdump should refuse the value"
    time.sleep(0.2)
    assert not target.exists()


def test_disk_full(tls_server: TlsEchoServer) -> None:
    require_root()
    require("tcpdump")
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop, every=0.02)
    try:
        t0 = time.monotonic()
        result = run_capture(
            [LocalTransport()],
            TcpdumpOptions(interface="lo", ports=(tls_server.port,)),
            "/dev/full",
            duration_s=20,
        )
    finally:
        stop.set()
    assert time.monotonic() - t0 < 15
    assert result.stopped_by == "error"
    (error,) = result.errors
    assert error.startswith("disk full writing /dev/full")


def test_interfaces_local() -> None:
    require("tcpdump")
    result = CliRunner().invoke(_app(), ["interfaces"])
    assert result.exit_code == 0, result.output
    assert any(line.split()[0] == "lo" for line in result.output.splitlines())


def test_parse_duration() -> None:
    assert parse_duration("30s") == 30 and parse_duration("2m") == 120 and parse_duration("1.5") == 1.5
    assert parse_duration("250ms") == 0.25
    for bad in ["", "0s", "-1s", "5x"]:
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_sigint_env_is_clean() -> None:
    # The subprocess tests rely on the repository being importable from cli_env().
    assert str(REPO) in cli_env()["PYTHONPATH"].split(os.pathsep)


def test_local_filter_starting_with_a_dash_is_an_expression(tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    target = tmp_path / "written-by-tcpdump"
    t0 = time.monotonic()
    result = run_capture(
        [LocalTransport()], TcpdumpOptions(interface="lo", filter=f"-w{target}"), str(tmp_path / "o.pcapng"),
        duration_s=10,
    )  # fmt: skip
    assert time.monotonic() - t0 < 8
    (error,) = result.errors
    assert "rejected the filter" in error, error
    time.sleep(0.2)
    assert not target.exists()
