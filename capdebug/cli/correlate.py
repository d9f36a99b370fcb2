"""``capdebug correlate``: one incident captured at several points; which hop broke it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._common import KEYLOG_OPTION, echo_err, load_cli_keys

if TYPE_CHECKING:
    from ..analysis.correlate import CapturePoint, Correlation, MatchedConnection
    from ..pcap.model import Packet

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "green"}


def register(app: typer.Typer) -> None:
    app.command("correlate")(correlate)


def load_point(index: int, capture: Path, keylog: list[Path], *, no_env: bool = False) -> CapturePoint:
    """Decode one capture into a capture point: the library's decoder for the TLS events, and
    a pass of correlation's own over the packets for the TCP facts (sequence numbers, bytes,
    TTLs, retransmissions) the decoder does not keep."""
    from ..analysis.correlate import build_point, tcp_segments
    from ..api import decode_capture
    from ..pcap.model import Packet
    from ..pcap.open import open_capture

    keys = load_cli_keys(capture, keylog, no_env=no_env)
    # Triage mode: alerts and handshake decrypted, bulk data counted (sizes are enough).
    with decode_capture(capture, keys, decrypt_app_data=False) as decoding:
        events = list(decoding)
    for w in decoding.warnings:
        echo_err(f"capdebug: warning: {capture.name}: {w}")
    with open_capture(capture) as reader:

        def packets() -> Iterator[tuple[int, Packet, int]]:
            for item in reader:
                if isinstance(item, Packet):
                    yield reader.packets_read, item, int(reader.interfaces[item.interface].linktype)

        segments = tcp_segments(packets())
        frames = reader.packets_read
    return build_point(index, capture.name, events, segments, frames)


def correlate(
    captures: list[Path] = typer.Argument(..., help="Two or more pcap/pcapng files of one incident."),
    keylog: list[Path] = KEYLOG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="One JSON object (see README, `correlate --json`)."),
    no_env: bool = typer.Option(False, "--no-env", help="Ignore $SSLKEYLOGFILE."),
) -> int:
    """Explain captures of one incident taken at several points (client, NAT, proxy, server).

    Matches each connection across the captures (by TLS client_random; by TCP payload bytes
    through NAT; by server name and timing across a TLS-terminating proxy, marked weak),
    estimates the clock offset between captures, and says between which two capture points a
    RST/FIN/alert was injected, segments were lost, records were altered, a close_notify
    vanished, an MTU black hole lies, or a proxy closed one leg.

    Exit code 0 when no verdict is an error, 1 otherwise, 2 on bad usage or unreadable input.

    Examples:

      capdebug correlate client.pcapng server.pcapng --keylog keys.log

      capdebug correlate a.pcap b.pcap --json | jq '.connections[].verdicts'
    """
    from ..analysis.correlate import correlate as run
    from ..errors import UsageError

    if len(captures) < 2:
        raise UsageError("correlate needs at least two captures (one per capture point)")
    names = [c.name for c in captures]
    if len(set(names)) != len(names):
        raise UsageError("the captures need distinct file names: they name the capture points")
    points = [load_point(i, c, keylog, no_env=no_env) for i, c in enumerate(captures)]
    result = run(points)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
    else:
        _render(result)
    return 1 if result.has_error else 0


def _render(result: Correlation) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    for p in result.points:
        console.print(f"[bold]{_e(p.name)}[/]: {p.frames} frames, {len(p.legs)} TLS connection(s)")
    if not result.connections:
        console.print("\nno match: no connection appears in more than one capture")
    for n, c in enumerate(result.connections, 1):
        _render_connection(console, result, n, c)
    if result.unmatched and result.connections:
        console.print()
        console.print(f"[dim]{len(result.unmatched)} connection(s) seen at one point only[/]")


def _e(text: str) -> str:
    from rich.markup import escape

    # Control bytes from the wire (SNI, names) must not reach the terminal either.
    return escape("".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text))


def _render_connection(console: object, result: Correlation, n: int, c: MatchedConnection) -> None:
    from rich.console import Console
    from rich.table import Table

    assert isinstance(console, Console)
    names = [p.name for p in result.points]
    console.print()
    sni = next((leg.sni for leg in c.legs if leg.sni), None)
    console.print(
        f"[bold]connection {n}[/] ({c.kind}, {c.confidence} confidence)" + (f"  SNI {_e(sni)}" if sni else "")
    )
    for leg in c.legs:
        console.print(f"  {_e(names[leg.point])}: conn {leg.conn}  {leg.client} → {leg.server}")
    for h in c.hops:
        clock = "clock offset unknown"
        if h.clock is not None:
            clock = f"clock offset {h.clock.offset_ns / 1e6:+.3f} ms ± {h.clock.spread_ns / 1e6:.3f} ms"
            if h.clock.delay_ns is not None:
                clock += f", one-way {h.clock.delay_ns / 1e6:.3f} ms"
            clock += f" ({h.clock.samples} samples)"
        console.print(
            f"  hop {_e(names[h.near.point])} → {_e(names[h.far.point])}: {clock}; "
            f"which is nearer the client: {h.oriented_by}"
        )
    if c.verdicts:
        for v in c.verdicts:
            console.print(
                f"  [{_SEVERITY_STYLE[v.severity]}]{v.severity:<7}[/] {v.code} "
                f"({_e(v.between[0])} → {_e(v.between[1])}, {v.confidence}): {_e(v.detail)}"
            )
    else:
        console.print("  [green]no fault found between these points[/]")
    rows = result.timeline(c)
    if not rows:
        return
    table = Table(show_lines=False, header_style="bold", box=None)
    table.add_column("t (s)", justify="right")
    points = [leg.point for leg in c.legs]
    for p in points:
        table.add_column(_e(names[p]), overflow="fold")
    start = rows[0][0]
    for t, leg, ev in rows:
        cells = [""] * len(points)
        cells[points.index(leg.point)] = _e(_describe(ev.to_json()))
        table.add_row(f"{(t - start) / 1e9:.6f}", *cells)
    console.print(table)


def _describe(ev: dict[str, object]) -> str:
    kind = ev.get("event")
    who = ev.get("from", "")
    frame = f"#{ev.get('frame')}"
    if kind == "tcp":
        return f"{frame} {who} {ev.get('flag')}"
    if kind in ("handshake", "alert"):
        return f"{frame} {who} {kind} {ev.get('name')}"
    if kind == "app_data":
        return f"{frame} {who} data {ev.get('length')}"
    return f"{frame} {who} {kind}"
