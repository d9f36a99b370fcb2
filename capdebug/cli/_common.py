"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer

from ..api import CaptureKeys, load_keys
from ..crypto.keylog import KeyLog

KEYLOG_OPTION: list[Path] = typer.Option(
    [],
    "--keylog",
    "-k",
    help="NSS key log (SSLKEYLOGFILE format); repeatable. Secrets embedded in a pcapng are used "
    "too, and $SSLKEYLOGFILE when nothing else is given.",
)

_MAX_ISSUES_SHOWN = 5


def echo_err(message: str) -> None:
    """A status line for a person, on stderr (stdout stays clean for data)."""
    typer.echo(message, err=True)


def report_keylog_issues(keylog: KeyLog) -> None:
    """Say which key-log lines were skipped, and why (a bad line never discards the file)."""
    issues = keylog.issues
    for issue in issues[:_MAX_ISSUES_SHOWN]:
        echo_err(f"capdebug: warning: key log {issue}")
    if len(issues) > _MAX_ISSUES_SHOWN:
        echo_err(f"capdebug: warning: ... and {len(issues) - _MAX_ISSUES_SHOWN} more key-log problems")


def load_cli_keys(capture: Path, keylog: list[Path], *, no_env: bool = False) -> CaptureKeys:
    """The secrets for ``capture`` from the command's options; ``$SSLKEYLOGFILE`` is read here,
    at the edge (the library is handed its value), unless ``--no-env``. Skipped key-log lines
    are reported on stderr."""
    env = None if no_env else os.environ.get("SSLKEYLOGFILE")
    keys = load_keys(capture, keylog, env_keylog=env)
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
