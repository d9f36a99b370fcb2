"""``capdebug triage``: what went wrong, per connection, in plain words."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._text import escape_terminal
from ..analysis.report import format_size
from ..analysis.triage import CATALOG, ConnectionReport
from ..api import DEFAULT_MAX_CONNECTIONS, auto_jobs, triage_capture
from ._common import KEYLOG_OPTION, RSA_KEY_OPTION, clear_progress, echo_err, load_cli_keys, progress_printer

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "green"}


def register(app: typer.Typer) -> None:
    app.command("triage")(triage)


def triage(
    capture: Path = typer.Argument(..., help="pcap or pcapng file (gzip is fine)."),
    keylog: list[Path] = KEYLOG_OPTION,
    rsa_key: list[str] = RSA_KEY_OPTION,
    as_json: bool = typer.Option(
        False, "--json", help='One JSON object {"connections": [...]} (see README).'
    ),
    show_all: bool = typer.Option(
        False, "--all", help="Details for every connection, not only those with problems."
    ),
    slow_handshake: float = typer.Option(
        1.0, "--slow-handshake", help="Seconds above which a handshake is slow."
    ),
    conn: list[int] = typer.Option([], "--conn", help="Only this connection number; repeatable."),
    host: str | None = typer.Option(None, "--host", help="Only connections to or from this address."),
    port: int | None = typer.Option(None, "--port", help="Only connections on this port."),
    no_env: bool = typer.Option(False, "--no-env", help="Ignore $SSLKEYLOGFILE."),
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        min=0,
        help="Processes sharing the work (0: two for captures over 64 MB when the machine has "
        "two cores; 1: one). The result is the same either way.",
    ),
    max_connections: int = typer.Option(
        DEFAULT_MAX_CONNECTIONS,
        "--max-connections",
        min=1,
        help="TCP connections followed at once, an eighth of them without data; past either the oldest"
        " without data (else the oldest)"
        " is dropped, with a connection_table_full verdict and a warning (bounded memory under a SYN flood).",
    ),
) -> int:
    """Say in plain words what went wrong on each TLS connection.

    Alerts and who sent them, premature closes, resets, incomplete handshakes, certificate
    problems, and why records could not be decrypted.

    Exit code 0 when no verdict is an error, 1 otherwise, 2 on bad usage or unreadable input.

    Examples:

      capdebug triage case.pcapng

      capdebug triage case.pcap --keylog keys.log --all

      capdebug triage case.pcap --conn 3 --conn 5

      capdebug triage case.pcap --host 10.0.0.5 --port 443

      capdebug triage case.pcap --json | jq '.connections[] | select(.worst != null)'
    """
    keys = load_cli_keys(capture, keylog, no_env=no_env, rsa_keys=rsa_key)
    progress = progress_printer(f"triaging {capture.name}")
    try:
        result = triage_capture(
            capture,
            keys,
            slow_handshake=slow_handshake,
            jobs=auto_jobs(capture, jobs),
            progress=progress,
            conns=conn or None,
            host=host,
            port=port,
            max_connections=max_connections,
        )
    finally:
        if progress is not None:
            clear_progress()
    reports, warnings, contents = result.reports, result.warnings, result.contents
    for w in warnings:
        echo_err(f"capdebug: warning: {w}")
    if as_json:
        error, count = _write_json(reports)
        if not count:
            echo_err(f"no TLS connection found: {contents}")
        return 1 if error else 0
    _render(reports, show_all=show_all, contents=contents)
    return 1 if any(r.has_error for r in reports) else 0


def _write_json(reports: Sequence[ConnectionReport]) -> tuple[bool, int]:
    """Write ``{"connections": [...]}`` one connection at a time (a SYN flood's hundreds of
    thousands of reports are made as they are written, never held as one document); (whether
    a verdict is an error, how many connections)."""
    # dumps per connection, not dump: only the one-shot encoder is the C one (dump streams in
    # Python); writes are gathered into chunks of about 64 KB.
    out = sys.stdout.write
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    error = False
    chunk: list[str] = []
    size = 0
    count = 0
    out('{"connections":[')
    for n, r in enumerate(reports):
        count += 1
        text = dumps(r.to_json())
        chunk.append("," + text if n else text)
        size += len(text)
        error = error or r.has_error
        if size > 1 << 16:
            out("".join(chunk))
            chunk.clear()
            size = 0
    out("".join(chunk) + "]}\n")
    return error, count


def escape_rich(text: str) -> str:
    """Peer-controlled text (SNI, certificate names, ALPN, details quoting them) as literal
    rich text: no markup (``[/]``, ``[link=...]``), no control characters."""
    return escape(escape_terminal(text))


def _render(reports: Sequence[ConnectionReport], *, show_all: bool, contents: str = "") -> None:
    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    if not reports:
        console.print(
            f"no TLS connection found: {escape_rich(contents)}" if contents else "no TLS connection found"
        )
        return
    table = Table(title=None, show_lines=False, header_style="bold")
    for col in ("conn", "client → server", "SNI", "version", "suite", "time", "bytes C→S / S→C", "verdict"):
        table.add_column(col, overflow="fold")
    for r in reports:
        worst = r.worst
        verdict = "[green]ok[/]"
        if worst is not None and worst.severity != "info":
            verdict = f"[{_SEVERITY_STYLE[worst.severity]}]{worst.code}[/]"
        elif worst is not None:
            codes = sorted({v.code for v in r.verdicts})
            verdict = f"[green]{', '.join(codes)}[/]"
        table.add_row(
            str(r.conn),
            f"{r.client} → {r.server}",
            escape_rich(r.sni or ""),
            escape_rich((r.version or "").replace("TLS ", "")),
            escape_rich((r.cipher_suite or "").replace("TLS_", "")),
            f"{r.duration:.3f}s" if r.duration is not None else "",
            f"{format_size(r.bytes_client)} / {format_size(r.bytes_server)}",
            verdict,
        )
    console.print(table)
    detailed = [r for r in reports if show_all or any(v.severity != "info" for v in r.verdicts)]
    for r in detailed:
        console.print()
        sni = f"  ({escape_rich(r.sni)})" if r.sni else ""
        console.print(f"[bold]conn {r.conn}[/]  {r.client} → {r.server}{sni}")
        if r.app is not None:
            console.print(f"  [dim]app[/]     {escape_rich(r.app.text())}")
        for v in sorted(r.verdicts, key=lambda v: -["info", "warning", "error"].index(v.severity)):
            frame = f" #{v.frame}" if v.frame else ""
            sure = "" if v.confidence == "high" else f" [dim]({v.confidence} confidence)[/]"
            style, detail = _SEVERITY_STYLE[v.severity], escape_rich(v.detail)
            console.print(f"  [{style}]{v.severity:<7}[/] {v.code}{frame}{sure}: {detail}")
            if v.severity != "info":
                meaning = CATALOG.get(v.code)
                if meaning:
                    console.print(f"          [dim]next: {meaning[1]}[/]")
