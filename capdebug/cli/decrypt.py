"""``capdebug decrypt``: every TLS event of every connection, decrypted where keys exist."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from .._text import escape_terminal
from ..analysis.events import ConnectionEvent, DecodeEvent, GapEvent
from ..analysis.report import Timeline, TimelineLine
from ..api import DEFAULT_MAX_CONNECTIONS, PlaintextExporter, decode_capture
from ..errors import UsageError
from ._common import KEYLOG_OPTION, RSA_KEY_OPTION, clear_progress, echo_err, load_cli_keys, progress_printer

_STYLES: dict[str, dict[str, bool | str]] = {
    "header": {"bold": True},
    "alert": {"fg": "red", "bold": True},
    "reset": {"fg": "red"},
    "close": {"fg": "yellow"},
    "warn": {"fg": "magenta"},
    "dim": {"dim": True},
}


def register(app: typer.Typer) -> None:
    app.command("decrypt")(decrypt)


class _Shown:
    """Counts the connections shown. The decoder itself drops the connections not chosen (by
    number, host or port), so that neither their events nor their plaintext (``--export``)
    come out."""

    def __init__(self) -> None:
        self.shown: set[int] = set()
        self.given_up: list[GapEvent] = []  # holes given up past --max-out-of-order

    def accept(self, ev: DecodeEvent) -> bool:
        if isinstance(ev, ConnectionEvent):
            self.shown.add(ev.conn)
        elif type(ev) is GapEvent and ev.cause == "out_of_order":
            self.given_up.append(ev)
        return True


def decrypt(
    capture: Path = typer.Argument(..., help="pcap or pcapng file (gzip is fine)."),
    keylog: list[Path] = KEYLOG_OPTION,
    rsa_key: list[str] = RSA_KEY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="JSON Lines, one event per line (see README)."),
    export: Path | None = typer.Option(
        None, "--export", help="Write decrypted application data to DIR/connN-client.bin and -server.bin."
    ),
    conn: list[int] = typer.Option([], "--conn", help="Only this connection number; repeatable."),
    host: str | None = typer.Option(None, "--host", help="Only connections to or from this address."),
    port: int | None = typer.Option(None, "--port", help="Only connections on this port."),
    records: bool = typer.Option(False, "--records", help="One line per application-data record."),
    no_env: bool = typer.Option(False, "--no-env", help="Ignore $SSLKEYLOGFILE."),
    max_out_of_order: int = typer.Option(
        16,
        "--max-out-of-order",
        min=1,
        help="MiB per direction held behind a missing TCP segment waiting for its retransmission;"
        " past it the bytes are given up (a gap, cause out_of_order).",
    ),
    max_connections: int = typer.Option(
        DEFAULT_MAX_CONNECTIONS,
        "--max-connections",
        min=1,
        help="TCP connections followed at once, an eighth of them without data; past either the oldest"
        " without data (else the oldest)"
        " is dropped, with an 'evicted' event and a warning (bounded memory under a SYN flood).",
    ),
) -> None:
    """Show each TLS connection's messages, alerts, closes and data, decrypted where keys exist.

    Every handshake message, alert, close_notify, change_cipher_spec, application-data record
    and TCP SYN/FIN/RST, per connection and in order.

    Keys come from --keylog files, from secrets embedded in a pcapng, and from $SSLKEYLOGFILE
    when nothing else is given. A record that cannot be decrypted is shown with the reason.

    Examples:

      capdebug decrypt case.pcapng

      capdebug decrypt case.pcap --keylog keys.log --conn 3

      capdebug decrypt case.pcap -k keys.log --json | jq 'select(.event=="alert")'

      capdebug decrypt case.pcap -k keys.log --export plaintext/
    """
    keys = load_cli_keys(capture, keylog, no_env=no_env, rsa_keys=rsa_key)
    if keys.late_blocks:
        echo_err(
            f"capdebug: note: {keys.late_blocks} secrets block(s) come after packets they may unlock; "
            "decrypting with them anyway"
        )
    if export is not None and export.exists() and not export.is_dir():
        raise UsageError(f"--export {export} exists and is not a folder")
    exporter = PlaintextExporter(export) if export is not None else None
    filt = _Shown()
    progress = progress_printer(f"decoding {capture.name}")
    try:
        with decode_capture(
            capture,
            keys,
            decrypt_app_data=True,
            app_data_sink=exporter,
            conns=conn,
            host=host,
            port=port,
            progress=progress,
            max_out_of_order=max_out_of_order << 20,
            max_connections=max_connections,
        ) as decoding:
            events = (ev for ev in decoding if filt.accept(ev))
            if as_json:
                _write_json(events)
            else:
                _write_text(events, collapse=not records)
        warnings = decoding.warnings
        contents = decoding.contents()
    finally:
        if progress is not None:
            clear_progress()
        if exporter is not None:
            exporter.close()
    for w in warnings:
        echo_err(f"capdebug: warning: {w}")
    if filt.given_up:
        where = ", ".join(f"conn {g.conn} {g.from_} frame {g.frame}" for g in filt.given_up[:5])
        echo_err(
            f"capdebug: warning: {len(filt.given_up)} hole(s) given up ({where}): more than "
            f"{max_out_of_order} MiB out of order waited behind each; the bytes may be later in the "
            "capture (--max-out-of-order raises the limit)"
        )
    if not filt.shown:
        echo_err(
            "no TLS connection found"
            + (" matching the filter" if conn or host is not None or port is not None else "")
            + f": {contents}"
        )


def _write_json(events: Iterator[DecodeEvent]) -> None:
    out = sys.stdout
    batch: list[str] = []
    for ev in events:
        batch.append(ev.to_json_line())
        if len(batch) >= 512:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()


def _write_text(events: Iterator[DecodeEvent], *, collapse: bool) -> None:
    """Per-connection blocks in connection order; lines are kept (not events), so memory
    stays proportional to what will be printed."""
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    timelines: dict[int, Timeline] = {}
    lines: dict[int, list[TimelineLine]] = {}
    for ev in events:
        tl = timelines.get(ev.conn)
        if tl is None:
            tl = timelines[ev.conn] = Timeline(collapse=collapse)
            lines[ev.conn] = []
        lines[ev.conn].extend(tl.add(ev))
    first = True
    for number in sorted(lines):
        block = lines[number] + timelines[number].close()
        if not first:
            typer.echo("")
        first = False
        for line, style in block:
            text = escape_terminal(line)  # lines quote SNI, ALPN, certificate names
            typer.echo(typer.style(text, **_STYLES[style]) if color and style in _STYLES else text)  # type: ignore[arg-type]
