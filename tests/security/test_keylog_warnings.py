"""A key-log warning never quotes a field that may hold a secret (a line pasted in the wrong
order puts the secret where the label belongs)."""

from __future__ import annotations

import secrets
from pathlib import Path

from typer.testing import CliRunner

from capdebug.cli.app import app
from capdebug.crypto.keylog import KeyLog
from tests.capture.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures"


def _swapped_line() -> tuple[str, str]:
    secret = secrets.token_hex(32)
    return secret, f"{secret} {secrets.token_hex(32)} CLIENT_TRAFFIC_SECRET_0"


def test_unknown_label_is_described_not_quoted() -> None:
    secret, line = _swapped_line()
    log = KeyLog.parse("# header\n\n" + line + "\n")
    (issue,) = log.issues
    assert str(issue) == "<keylog>: line 3: unknown label (64 characters)"
    for n in (8, 10, 20):  # no run of the secret's digits, from any offset
        assert not any(secret[i : i + n] in str(issue) for i in range(len(secret) - n + 1))


def test_cli_warning_does_not_print_the_secret(tmp_path: Path) -> None:
    secret, line = _swapped_line()
    keys = tmp_path / "keys.log"
    keys.write_text((FIXTURES / "tls13-aes128gcm.keys").read_text() + line + "\n")
    result = CliRunner().invoke(
        app, ["triage", str(FIXTURES / "tls13-aes128gcm.pcap"), "--keylog", str(keys)]
    )
    assert result.exit_code in (0, 1), result.output
    assert "unknown label (64 characters)" in result.output
    assert secret[:8] not in result.output
