"""tshark as the independent oracle for decoding: what it shows per frame, with the same keys."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from capdebug.analysis.describe import handshake_fields
from capdebug.analysis.events import AlertEvent, AppDataEvent, ConnectionEvent, DecodeEvent, HandshakeEvent
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.pcap.open import open_capture

Row = tuple[int, int, str, str, int]
"""(frame, conn, from, kind, value): kind is "hs" (handshake type), "alert" (description) or
"app" (one application-data record; value 0)."""


def tshark_rows(capture: Path, keylog: Path | None) -> list[Row]:
    cmd = ["tshark", "-n", "-r", str(capture), "-Y", "tls", "-T", "fields", "-E", "separator=|"]
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    for f in (
        "frame.number",
        "tcp.stream",
        "tcp.srcport",
        "tls.record.content_type",
        "tls.handshake.type",
        "tls.alert_message.desc",
        "tls.record.opaque_type",
    ):
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ports = _client_ports(capture)
    rows: list[Row] = []
    for line in out.splitlines():
        frame_s, stream_s, sport_s, ctypes, hstypes, alerts, opaque = line.split("|")
        conn = int(stream_s) + 1
        who = "client" if ports.get(conn) == int(sport_s) else "server"
        frame = int(frame_s)
        for t in filter(None, hstypes.split(",")):
            rows.append((frame, conn, who, "hs", int(t)))
        for a in filter(None, alerts.split(",")):
            rows.append((frame, conn, who, "alert", int(a)))
        # Decrypted (or TLS 1.2) records show their content type; TLS 1.3 records show their
        # opaque (outer) type too, and only that when they could not be decrypted.
        types = ctypes if keylog is not None else ctypes + "," + opaque
        for c in filter(None, types.split(",")):
            if int(c) == 23:
                rows.append((frame, conn, who, "app", 0))
    return rows


def _client_ports(capture: Path) -> dict[int, int]:
    """tcp.stream + 1 -> the client's port (the sender of the first SYN)."""
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(capture),
        "-Y",
        "tcp.flags.syn==1 && tcp.flags.ack==0",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.srcport",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ports: dict[int, int] = {}
    for line in out.splitlines():
        stream, port = line.split("\t")
        ports.setdefault(int(stream) + 1, int(port))
    return ports


def capdebug_events(capture: Path, keylog: Path | None) -> list[DecodeEvent]:
    keys = load_keys(capture, [keylog] if keylog else [], use_env=False)
    with open_capture(capture) as reader:
        return list(iter_events(reader, keys.keylog))


def capdebug_rows(events: Iterable[DecodeEvent]) -> list[Row]:
    rows: list[Row] = []
    tls13: set[int] = set()
    for ev in events:
        if isinstance(ev, HandshakeEvent) and ev.type == 2:
            if handshake_fields(ev).get("version") == "TLS 1.3":
                tls13.add(ev.conn)
        if isinstance(ev, HandshakeEvent) and ev.type >= 0:
            rows.append((ev.frame, ev.conn, ev.from_, "hs", ev.type))
        elif isinstance(ev, HandshakeEvent) and ev.type == -1 and ev.conn in tls13:
            # A TLS 1.3 record capdebug knows is handshake by where it stands: its outer
            # type, all tshark shows without keys, is application_data (RFC 8446 5.2).
            rows.append((ev.frame, ev.conn, ev.from_, "app", 0))
        elif isinstance(ev, AlertEvent) and ev.description is not None:
            rows.append((ev.frame, ev.conn, ev.from_, "alert", ev.description))
        elif isinstance(ev, AppDataEvent):
            rows.append((ev.frame, ev.conn, ev.from_, "app", 0))
        elif isinstance(ev, ConnectionEvent):
            pass
    return rows


def by_frame(rows: list[Row]) -> list[Row]:
    """Stable order for comparison: by frame, then kind, keeping the order within a kind."""
    order = {"hs": 0, "alert": 1, "app": 2}
    return sorted(rows, key=lambda r: (r[0], order[r[3]]))
