"""embed, keys extract/strip/check and export, with Wireshark's tools as the other side."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capdebug.api import PlaintextExporter
from capdebug.cli.app import app
from capdebug.crypto.keylog import KeyLog
from capdebug.errors import UsageError
from capdebug.pcap import SecretsBlock, open_capture
from tests.tools import require

FIXTURES = Path(__file__).parent.parent / "fixtures"
runner = CliRunner()


def tshark_handshake_types(capture: Path, *extra: str) -> list[int]:
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(capture),
            *extra,
            "-Y",
            "tls.handshake",
            "-T",
            "fields",
            "-e",
            "tls.handshake.type",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(t) for line in out.split() for t in line.split(",")]


def packets(capture: Path) -> list[tuple[int, bytes]]:
    with open_capture(capture) as r:
        return [(p.ts_ns, p.data) for p in r if not isinstance(p, SecretsBlock)]


def secrets(capture: Path) -> list[SecretsBlock]:
    with open_capture(capture) as r:
        return [p for p in r if isinstance(p, SecretsBlock)]


def other_session_line() -> str:
    return "CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48


@pytest.mark.tools
def test_embed_decrypts_in_tshark_without_keylog(tmp_path: Path) -> None:
    require("tshark")
    src = FIXTURES / "tls13-aes128gcm.pcap"
    keys = tmp_path / "keys.log"
    keys.write_text((FIXTURES / "tls13-aes128gcm.keys").read_text() + other_session_line() + "\n")
    out = tmp_path / "out.pcapng"
    res = runner.invoke(app, ["embed", str(src), str(keys), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 lines for other sessions left out" in res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # Without the secrets tshark sees only the clear part; with the embedded ones, all of it.
    assert 8 not in tshark_handshake_types(src)
    types = tshark_handshake_types(out)
    for t in (1, 2, 8, 11, 15, 20):
        assert t in types
    embedded = KeyLog.parse(b"".join(b.data for b in secrets(out)))
    assert embedded.client_randoms() == KeyLog.from_file(FIXTURES / "tls13-aes128gcm.keys").client_randoms()
    assert packets(out) == packets(src)


def test_embed_all_keys_keeps_other_sessions(tmp_path: Path) -> None:
    keys = tmp_path / "keys.log"
    keys.write_text((FIXTURES / "tls13-aes128gcm.keys").read_text() + other_session_line() + "\n")
    out = tmp_path / "out.pcapng"
    res = runner.invoke(
        app, ["embed", str(FIXTURES / "tls13-aes128gcm.pcap"), str(keys), "-o", str(out), "--all-keys"]
    )
    assert res.exit_code == 0, res.output
    assert bytes.fromhex("ab" * 32) in KeyLog.parse(secrets(out)[0].data)


@pytest.mark.tools
def test_keys_extract_reads_editcap_injected_secrets(tmp_path: Path) -> None:
    require("editcap")
    keys = FIXTURES / "tls12-ecdhe-aes128gcm.keys"
    injected = tmp_path / "inj.pcapng"
    subprocess.run(
        [
            "editcap",
            "--inject-secrets",
            f"tls,{keys}",
            str(FIXTURES / "tls12-ecdhe-aes128gcm.pcap"),
            str(injected),
        ],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "extracted.log"
    res = runner.invoke(app, ["keys", "extract", str(injected), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes() == keys.read_bytes()


@pytest.mark.tools
def test_keys_strip_removes_every_secrets_block(tmp_path: Path) -> None:
    require("tshark", "capinfos")
    embedded = tmp_path / "e.pcapng"
    assert (
        runner.invoke(
            app,
            [
                "embed",
                str(FIXTURES / "tls13-hrr.pcap"),
                str(FIXTURES / "tls13-hrr.keys"),
                "-o",
                str(embedded),
            ],
        ).exit_code
        == 0
    )
    stripped = tmp_path / "s.pcapng"
    res = runner.invoke(app, ["keys", "strip", str(embedded), "-o", str(stripped)])
    assert res.exit_code == 0, res.output
    assert "1 secrets block(s) removed" in res.output
    assert secrets(stripped) == []
    assert packets(stripped) == packets(embedded)
    count = subprocess.run(
        ["capinfos", "-c", "-M", str(stripped)], capture_output=True, text=True, check=True
    ).stdout
    assert f"{len(packets(embedded))}" in count
    assert 8 not in tshark_handshake_types(stripped)  # tshark finds no secrets either
    assert 8 in tshark_handshake_types(embedded)


def test_keys_check_reports_present_and_missing(tmp_path: Path) -> None:
    src = FIXTURES / "tls13-resumption.pcap"
    full = runner.invoke(
        app, ["keys", "check", str(src), "-k", str(FIXTURES / "tls13-resumption.keys"), "--json"]
    )
    assert full.exit_code == 0, full.output
    rows = [json.loads(line) for line in full.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    # Keep only the first connection's application secrets: the handshake ones are missing.
    log = KeyLog.from_file(FIXTURES / "tls13-resumption.keys")
    first = bytes.fromhex(rows[0]["client_random"])
    partial = tmp_path / "partial.log"
    partial.write_text("\n".join(line for line in log.lines([first]) if "HANDSHAKE" not in line) + "\n")
    res = runner.invoke(app, ["keys", "check", str(src), "-k", str(partial), "--json"])
    assert res.exit_code == 1
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["status"] == "missing_labels"
    assert set(rows[0]["missing"]) == {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"}
    assert rows[1]["status"] == "no_keys"


@pytest.mark.tools
def test_export_one_connection_with_only_its_secrets(tmp_path: Path) -> None:
    require("tshark")
    src = FIXTURES / "tls13-resumption.pcap"
    keys = FIXTURES / "tls13-resumption.keys"
    out = tmp_path / "conn2.pcapng"
    res = runner.invoke(app, ["export", str(src), "--conn", "2", "-k", str(keys), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    check = runner.invoke(app, ["keys", "check", str(out), "--json"])
    rows = [json.loads(line) for line in check.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    embedded = KeyLog.parse(secrets(out)[0].data)
    assert len(embedded.client_randoms()) == 1
    assert not [e for e in embedded.entries() if "EXPORTER" in e.label]
    assert 20 in tshark_handshake_types(out)  # decrypts on its own
    assert len(packets(out)) < len(packets(src))


def test_export_needs_a_selection(tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", str(FIXTURES / "tls13-hrr.pcap"), "-o", str(tmp_path / "x.pcapng")])
    # CliRunner sees the library's error; the console script turns it into exit code 2.
    assert isinstance(res.exception, UsageError)
    assert res.exception.exit_code == 2
    assert not (tmp_path / "x.pcapng").exists()


def test_decrypt_export_writes_plaintext_per_direction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--export writes each direction's plaintext (0600); files closed to stay under the open
    file limit are reopened for appending, never truncated."""
    src, keys = FIXTURES / "tls13-resumption.pcap", FIXTURES / "tls13-resumption.keys"
    big, small = tmp_path / "big", tmp_path / "small"
    assert runner.invoke(app, ["decrypt", str(src), "-k", str(keys), "--export", str(big)]).exit_code == 0
    monkeypatch.setattr(PlaintextExporter, "MAX_OPEN", 1)
    assert runner.invoke(app, ["decrypt", str(src), "-k", str(keys), "--export", str(small)]).exit_code == 0
    names = sorted(p.name for p in big.iterdir())
    assert names == ["conn1-client.bin", "conn1-server.bin", "conn2-client.bin", "conn2-server.bin"]
    for name in names:
        assert (small / name).read_bytes() == (big / name).read_bytes()
        assert stat.S_IMODE((big / name).stat().st_mode) == 0o600
    assert sum((big / n).stat().st_size for n in names) > 0
