"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer

from .._text import escape_terminal
from ..api import CaptureKeys, load_keys
from ..crypto.keylog import KeyLog

KEYLOG_OPTION: list[Path] = typer.Option(
    [],
    "--keylog",
    "-k",
    help="NSS key log (SSLKEYLOGFILE format); repeatable. Secrets embedded in a pcapng are used "
    "too, and $SSLKEYLOGFILE when nothing else is given.",
)

RSA_KEY_OPTION: list[str] = typer.Option(
    [],
    "--rsa-key",
    help="A server's RSA private key (PEM or DER), FILE or FILE@HOST:PORT to use it for that "
    "server only; repeatable. Decrypts TLS 1.2 sessions with RSA key exchange (not (EC)DHE or "
    "TLS 1.3, where the key only signs).",
)

_MAX_ISSUES_SHOWN = 5


def echo_err(message: str) -> None:
    """A status line for a person, on stderr (stdout stays clean for data). Warnings quote
    peer-controlled text: control characters are shown escaped, never sent to the terminal."""
    typer.echo(escape_terminal(message), err=True)


def report_keylog_issues(keylog: KeyLog) -> None:
    """Say which key-log lines were skipped, and why (a bad line never discards the file)."""
    issues = keylog.issues
    for issue in issues[:_MAX_ISSUES_SHOWN]:
        echo_err(f"capdebug: warning: key log {issue}")
    if len(issues) > _MAX_ISSUES_SHOWN:
        echo_err(f"capdebug: warning: ... and {len(issues) - _MAX_ISSUES_SHOWN} more key-log problems")


def load_cli_keys(
    capture: Path, keylog: list[Path], *, no_env: bool = False, rsa_keys: list[str] | None = None
) -> CaptureKeys:
    """The secrets for ``capture`` from the command's options; ``$SSLKEYLOGFILE`` is read here,
    at the edge (the library is handed its value), unless ``--no-env``. Skipped key-log lines
    are reported on stderr."""
    env = None if no_env else os.environ.get("SSLKEYLOGFILE")
    keys = load_keys(capture, keylog, env_keylog=env, rsa_keys=rsa_keys or ())
    report_keylog_issues(keys.keylog)
    return keys


def progress_printer(label: str, total_bytes: int | None = None) -> Callable[[int], None] | None:
    """A progress callback writing one updating line on stderr, or None when stderr is not a
    terminal (scripts and CI get clean output)."""
    if not sys.stderr.isatty():
        return None
    start = time.monotonic()
    last = [0.0]

    def show(frames: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2:
            return
        last[0] = now
        rate = frames / max(now - start, 1e-9)
        sys.stderr.write(f"\r{label}: {frames:,} frames ({rate:,.0f}/s)\x1b[K")
        sys.stderr.flush()

    return show


def clear_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
