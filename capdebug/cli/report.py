"""``capdebug report``: one self-contained HTML file to attach to a ticket."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from .._files import atomic_output

# analysis.html (and the stdlib html module) is imported by the command itself, so the
# other commands start without it; the api is loaded by triage anyway.
from ..api import CaptureKeys, triage_capture
from ._common import KEYLOG_OPTION, RSA_KEY_OPTION, clear_progress, echo_err, load_cli_keys, progress_printer


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def describe_keys(keys: CaptureKeys) -> str:
    """Where the secrets came from, for the report's header."""
    where: list[str] = []
    if keys.files:
        where.append("key log " + ", ".join(os.path.basename(f) for f in keys.files))
    if keys.embedded_blocks:
        where.append(f"{keys.embedded_blocks} Decryption Secrets Block(s) embedded in the capture")
    if keys.from_env:
        where.append(f"$SSLKEYLOGFILE ({os.path.basename(keys.from_env)})")
    rsa = len(keys.keylog.rsa_keys)
    if rsa:
        where.append(f"{rsa} RSA private key{'s' if rsa != 1 else ''} (TLS 1.2 RSA key exchange only)")
    if not where:
        return "none: no key log or RSA key given, so encrypted records stay encrypted"
    n = keys.keylog.sessions  # sessions, not lines: a TLS 1.3 session logs five lines
    return f"{'; '.join(where)} ({n} session{'s' if n != 1 else ''} with secrets)"


def report(
    capture: Path = typer.Argument(..., help="pcap or pcapng file (gzip is fine)."),
    keylog: list[Path] = KEYLOG_OPTION,
    rsa_key: list[str] = RSA_KEY_OPTION,
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write ('-' for stdout)."),
    slow_handshake: float = typer.Option(
        1.0, "--slow-handshake", help="Seconds above which a handshake is slow."
    ),
    no_env: bool = typer.Option(False, "--no-env", help="Ignore $SSLKEYLOGFILE."),
) -> int:
    """Write one self-contained HTML report (no network access needed to open it): the summary
    table of connections with their worst verdict, and per connection a ladder diagram client <->
    server with every handshake message, alert, close_notify, FIN and RST, and the verdicts.

    Exit code 0 when the report was written (whatever it found), 2 on bad usage or unreadable input.

    Examples:

      capdebug report case.pcapng -o case.html

      capdebug report case.pcap --keylog keys.log -o case.html
    """
    from ..analysis.html import LadderCollector, ReportMeta, render_report

    keys = load_cli_keys(capture, keylog, no_env=no_env, rsa_keys=rsa_key)
    ladders = LadderCollector()
    progress = progress_printer(f"triaging {capture.name}")
    try:
        reports, warning_list = triage_capture(
            capture, keys, slow_handshake=slow_handshake, also=ladders.add, progress=progress
        )
    finally:
        if progress is not None:
            clear_progress()
    warnings = tuple(warning_list)
    for w in warnings:
        echo_err(f"capdebug: warning: {w}")
    page = render_report(ReportMeta(capture.name, describe_keys(keys), warnings), reports, ladders)
    if str(output) == "-":
        sys.stdout.write(page)
    else:
        with atomic_output(output) as stream:  # replaces a symlink at the path, never follows it
            stream.write(page.encode("utf-8"))
        errors = sum(1 for r in reports if r.has_error)
        echo_err(f"wrote {output}: {len(reports)} connections, {errors} with errors")
    return 0
