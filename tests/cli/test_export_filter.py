"""`decrypt --export` writes the plaintext of the connections shown, and only those: --conn,
--host and --port filter the decoder itself (a review found other connections' plaintext
written to the export folder with --conn)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from capdebug.cli.app import app

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPTURE = FIXTURES / "tls12-resumption-ticket.pcap"  # two connections, 36734 and 36736
KEYS = FIXTURES / "tls12-resumption-ticket.keys"
runner = CliRunner()


def _export(tmp_path: Path, *args: str) -> tuple[int, str, set[str]]:
    out = tmp_path / "plain"
    result = runner.invoke(
        app, ["decrypt", str(CAPTURE), "-k", str(KEYS), "--no-env", "--export", str(out), *args]
    )
    files = {p.name for p in out.iterdir()} if out.exists() else set()
    return result.exit_code, result.output, files


def test_export_everything_without_a_filter(tmp_path: Path) -> None:
    code, _, files = _export(tmp_path)
    assert code == 0
    assert {"conn1-client.bin", "conn1-server.bin", "conn2-client.bin", "conn2-server.bin"} <= files


def test_export_only_the_chosen_connection(tmp_path: Path) -> None:
    code, output, files = _export(tmp_path, "--conn", "2")
    assert code == 0
    assert files and all(name.startswith("conn2-") for name in files), files
    assert "36736" in output and "36734" not in output


def test_export_by_port_and_host(tmp_path: Path) -> None:
    code, output, files = _export(tmp_path, "--port", "36734", "--host", "::ffff:127.0.0.1")
    # 127.0.0.1 spelled as an IPv4-mapped IPv6 address is another address: nothing matches.
    assert code == 0 and files == set()
    assert "no TLS connection found matching the filter" in output
    code, output, files = _export(tmp_path, "--port", "36734", "--host", "127.0.0.1")
    assert code == 0
    assert files and all(name.startswith("conn1-") for name in files), files


def test_host_that_is_not_an_address_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    cmd = ["capdebug", "decrypt", str(CAPTURE), "-k", str(KEYS), "--export", str(out)]
    result = subprocess.run([*cmd, "--host", "example.com"], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "not an IP address" in result.stderr
    assert not out.exists() or not any(out.iterdir())
