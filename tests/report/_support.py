"""Shared helpers of the report tests: decode a fixture, craft captures, read the page back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from capdebug.analysis.decode import DecodeOptions
from capdebug.analysis.events import (
    AlertEvent,
    AppDataEvent,
    CcsEvent,
    DecodeEvent,
    HandshakeEvent,
    TcpEvent,
)
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.pcap import Packet, PcapWriter
from capdebug.pcap.model import LinkType
from capdebug.pcap.open import open_capture
from capdebug.wire.constants import CipherSuite, ExtensionType
from capdebug.wire.extensions import (
    Extension,
    push_selected_version,
    push_server_name_list,
    push_supported_versions,
)
from capdebug.wire.handshake import (
    Certificate,
    ClientHello,
    EncryptedExtensions,
    Finished,
    HandshakeMessage,
    ServerHello,
    encode_handshake,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_events(name: str, *, with_keys: bool = True) -> list[DecodeEvent]:
    """The decoder's events for a fixture, decoded as ``capdebug report`` decodes."""
    cap = FIXTURES / f"{name}.pcap"
    keys = load_keys(cap, [FIXTURES / f"{name}.keys"] if with_keys else [], use_env=False)
    with open_capture(cap) as reader:
        return list(
            iter_events(
                reader,
                keys.keylog,
                DecodeOptions(decrypt_app_data=False),
                late_secrets=keys.late_randoms,
            )
        )


def expected_labels(events: list[DecodeEvent], conn: int) -> list[str]:
    """The arrows a ladder must show, derived from the events independently of the renderer:
    one per TCP flag, handshake message, CCS and alert; one per run of application data."""
    out: list[str] = []
    app_from: str | None = None
    for ev in events:
        if ev.conn != conn:
            continue
        if isinstance(ev, AppDataEvent):
            if app_from != ev.from_:
                out.append("app data")
                app_from = ev.from_
            continue
        if isinstance(ev, TcpEvent):
            out.append("SYN+ACK" if ev.flag == "SYN" and ev.from_ == "server" else ev.flag)
        elif isinstance(ev, HandshakeEvent):
            out.append(ev.name)
        elif isinstance(ev, CcsEvent):
            out.append("change_cipher_spec")
        elif isinstance(ev, AlertEvent):
            out.append("close_notify" if ev.description == 0 else f"alert {ev.name}")
        else:
            continue
        app_from = None
    return out


def normalise(label: str) -> str:
    """An app-data arrow's label carries counts ("app data x3, 2620 B"): compare the kind only."""
    return "app data" if label.startswith("app data") else label


_DATA_RE = re.compile(r'<script type="application/json" id="capdebug-data">(.*?)</script>', re.S)


def report_data(page: str) -> dict[str, Any]:
    m = _DATA_RE.search(page)
    assert m is not None, "no data block"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def hostile_capture(path: Path, sni: str) -> None:
    """A TCP connection whose ClientHello names ``sni``, then the client's FIN: what a scanner
    (or an attacker who knows the report will be opened by support) can put on the wire."""
    hello = ClientHello(
        legacy_version=0x0303,
        random=bytes(range(32)),
        legacy_session_id=b"",
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        legacy_compression_methods=b"\x00",
        extensions=(Extension(ExtensionType.server_name, push_server_name_list((sni,))),),
    )
    body = encode_handshake(hello)
    record = bytes([22, 3, 1]) + len(body).to_bytes(2, "big") + body
    c, s = ("192.0.2.1", 40000), ("192.0.2.2", 443)

    def seg(
        src: tuple[str, int], dst: tuple[str, int], flags: str, seq: int, ack: int, data: bytes = b""
    ) -> bytes:
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src[0], dst=dst[0])
        pkt = pkt / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
        return bytes(pkt / data) if data else bytes(pkt)

    frames = [
        seg(c, s, "S", 1000, 0),
        seg(s, c, "SA", 5000, 1001),
        seg(c, s, "A", 1001, 5001),
        seg(c, s, "PA", 1001, 5001, record),
        seg(c, s, "FA", 1001 + len(record), 5001),
    ]
    with path.open("wb") as f:
        w = PcapWriter(f, LinkType.ETHERNET)
        for i, data in enumerate(frames):
            w.write_packet(
                Packet(
                    ts_ns=1_700_000_000_000_000_000 + i * 1_000_000,
                    interface=0,
                    data=data,
                    orig_len=len(data),
                )
            )


def synthetic_events(n: int) -> list[DecodeEvent]:
    """``n`` plausible TLS 1.3 connections, one in three ending cleanly, one in three with a
    premature close and a reset, one in three refused with handshake_failure."""
    from capdebug.analysis.events import ConnectionEvent

    out: list[DecodeEvent] = []
    t = 1_700_000_000_000_000_000
    frame = 0

    def at(step_ms: float = 0.2) -> tuple[int, int]:
        nonlocal t, frame
        t += int(step_ms * 1e6)
        frame += 1
        return frame, t

    for conn in range(1, n + 1):
        client, server = f"10.0.{conn // 250}.{conn % 250 + 1}:{40000 + conn % 20000}", "192.0.2.80:443"
        out.append(ConnectionEvent(conn, client, server, frame + 1))
        out.append(TcpEvent(conn, *at(), "client", "SYN"))
        out.append(TcpEvent(conn, *at(), "server", "SYN"))
        hello = ClientHello(
            0x0303,
            bytes(32),
            b"",
            (CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384),
            b"\x00",
            (
                Extension(ExtensionType.server_name, push_server_name_list((f"host{conn}.example.test",))),
                Extension(ExtensionType.supported_versions, push_supported_versions((0x0304, 0x0303))),
            ),
        )
        out.append(HandshakeEvent(conn, *at(), "client", 1, "client_hello", False, hello, 200))
        if conn % 3 == 2:
            out.append(AlertEvent(conn, *at(), "server", 2, 40, "handshake_failure", False, 7))
            out.append(TcpEvent(conn, *at(), "server", "FIN"))
            out.append(TcpEvent(conn, *at(), "client", "FIN"))
            continue
        sh = ServerHello(
            0x0303,
            bytes(32),
            b"",
            CipherSuite.TLS_AES_128_GCM_SHA256,
            0,
            (Extension(ExtensionType.supported_versions, push_selected_version(0x0304)),),
        )
        out.append(HandshakeEvent(conn, *at(), "server", 2, "server_hello", False, sh, 90))
        out.append(CcsEvent(conn, *at(0), "server"))
        server_flight: tuple[tuple[int, str, HandshakeMessage], ...] = (
            (8, "encrypted_extensions", EncryptedExtensions(())),
            (11, "certificate", Certificate(b"", (), True)),
            (20, "finished", Finished(bytes(32))),
        )
        for typ, name, msg in server_flight:
            out.append(HandshakeEvent(conn, *at(0), "server", typ, name, True, msg, 100))
        out.append(HandshakeEvent(conn, *at(), "client", 20, "finished", True, Finished(bytes(32)), 32))
        for i in range(6):
            out.append(AppDataEvent(conn, *at(), "client" if i < 2 else "server", 500 + i, False))
        if conn % 3 == 0:
            out.append(AlertEvent(conn, *at(), "client", 1, 0, "close_notify", True, 19))
            out.append(AlertEvent(conn, *at(), "server", 1, 0, "close_notify", True, 19))
            out.append(TcpEvent(conn, *at(), "client", "FIN"))
            out.append(TcpEvent(conn, *at(), "server", "FIN"))
        else:
            out.append(TcpEvent(conn, *at(30), "client", "FIN"))
            out.append(TcpEvent(conn, *at(), "server", "RST"))
    return out
