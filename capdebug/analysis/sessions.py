"""Sessions of a capture and their secrets: load key logs, embed, strip, extract, export.

These are the building blocks of ``capdebug embed``, ``capdebug keys ...`` and
``capdebug export``. They find a capture's TLS sessions with the decoder itself (one parser),
and write captures through ``pcap``; files that carry secrets are created with mode 0600.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from .._files import atomic_output
from ..crypto.keylog import EXPORTER_LABELS, KeyLog
from ..crypto.rsa_kx import RsaKey
from ..errors import UsageError
from ..net.defrag import fragment_key
from ..net.tcp import TcpSegment, decode_tcp, format_endpoint
from ..pcap.model import SECRETS_TYPE_TLS_KEYLOG, LinkType, Packet, SecretsBlock
from ..pcap.open import CaptureReader, open_capture
from ..pcap.pcapng import PcapngWriter
from ..wire.constants import CipherSuite, name_of, version_name
from ..wire.handshake import ClientHello, ServerHello
from .decode import DecodeOptions, Decoder
from .events import ConnectionEvent, DecodeEvent, HandshakeEvent
from .messages import negotiated_version, server_name

__all__ = [
    "CaptureKeys",
    "EmbedResult",
    "SessionInfo",
    "embed_keylog",
    "export_connections",
    "extract_secrets",
    "iter_events",
    "load_keys",
    "run_decoder",
    "scan_sessions",
    "strip_secrets",
]

Progress = Callable[[int], None]


@dataclass(slots=True)
class CaptureKeys:
    """The secrets available for a capture, and where they came from."""

    keylog: KeyLog
    files: list[str] = field(default_factory=list)
    embedded_blocks: int = 0
    late_blocks: int = 0
    """Secrets blocks that come after some packets (they may unlock packets before them)."""
    late_randoms: dict[bytes, int] = field(default_factory=dict)
    """client_random -> packets before the (first) late block that holds its secrets."""
    from_env: str | None = None


def load_keys(
    capture: str | os.PathLike[str] | None,
    keylog_files: Iterable[str | os.PathLike[str]] = (),
    *,
    use_env: bool = True,
    env_keylog: str | None = None,
    rsa_keys: Iterable[str | os.PathLike[str]] = (),
) -> CaptureKeys:
    """Key-log files, then secrets embedded in ``capture`` (a pcapng's Decryption Secrets
    Blocks), then ``env_keylog`` (the value of ``$SSLKEYLOGFILE``, which the caller reads: this
    layer reads no environment) when nothing else was given and ``use_env``."""
    keylog = KeyLog()
    keys = CaptureKeys(keylog)
    for path in keylog_files:
        keylog.merge(KeyLog.from_file(path))
        keys.files.append(os.fspath(path))
    for spec in rsa_keys:
        keylog.rsa_keys.append(RsaKey.from_file(spec))
    if capture is not None:
        for block in _secrets_blocks(capture):
            parsed = KeyLog.parse(block.data, source=f"secrets block at byte {block.offset}")
            if block.packets_before:
                keys.late_blocks += 1
                for cr in parsed.client_randoms() - keylog.client_randoms():
                    keys.late_randoms.setdefault(cr, block.packets_before)
            keylog.merge(parsed)
            keys.embedded_blocks += 1
    env = env_keylog
    given = keys.files or keys.embedded_blocks or keylog.rsa_keys
    if use_env and env and not given and os.path.isfile(env):
        keylog.merge(KeyLog.from_file(env))
        keys.from_env = env
    return keys


def _secrets_blocks(capture: str | os.PathLike[str]) -> Iterator[SecretsBlock]:
    with open_capture(capture) as reader:
        if reader.format != "pcapng":
            return
        # Only the blocks are wanted: packets are walked over, never made into objects.
        reader.skip_frames(None, _take_any)
        for item in reader:
            if isinstance(item, SecretsBlock) and item.secrets_type == SECRETS_TYPE_TLS_KEYLOG:
                yield item


def _take_any(buf: bytes, start: int, stop: int, frame: int, ts_ns: int) -> bool:
    return True


def iter_events(
    reader: CaptureReader,
    keylog: KeyLog | None,
    options: DecodeOptions | None = None,
    *,
    late_secrets: dict[bytes, int] | None = None,
    progress: Progress | None = None,
) -> Iterator[DecodeEvent]:
    """Decode an open capture: events in capture order. Secrets blocks are not re-read here
    (``load_keys`` collected them before decoding started)."""
    return run_decoder(reader, Decoder(keylog, options, late_secrets=late_secrets), progress)


def run_decoder(
    reader: CaptureReader, decoder: Decoder, progress: Progress | None = None
) -> Iterator[DecodeEvent]:
    """:func:`iter_events` with a decoder of the caller's (to read its state afterwards)."""
    feed = decoder.feed_packet
    decoder.interfaces = reader.interfaces
    # Frames that would only move positions (bulk data counted unread, bare ACKs) are taken in
    # by the decoder's filter inside the reader, so frame numbers come from the reader.
    reader.skip_frames(LinkType.ETHERNET, decoder.frame_filter(), one_interface=True)
    interfaces = reader.interfaces
    linktypes: list[int] = []
    shown = 0
    for item in reader:
        if type(item) is SecretsBlock:
            continue
        assert isinstance(item, Packet)
        frame = reader.packets_read
        if progress is not None and frame - shown > 0x3FFF:
            shown = frame
            progress(frame)
        index = item.interface
        if index >= len(linktypes):
            linktypes = [i.linktype for i in interfaces]
        events = feed(frame, item, linktypes[index])
        if events:
            yield from events
    yield from decoder.finish(reader.packets_read)


@dataclass(slots=True)
class SessionInfo:
    """What identifies one TLS connection of a capture."""

    conn: int
    client: str
    server: str
    first_frame: int
    client_random: bytes | None = None
    version: str | None = None
    sni: str | None = None
    cipher_suite: str | None = None
    client_randoms: list[bytes] = field(default_factory=list)
    """Every ClientHello's random, the first one's first: a TLS 1.2 renegotiation is a new
    handshake with its own key-log line (seen only when the scan had the keys to decrypt it)."""


def scan_sessions(capture: str | os.PathLike[str], keylog: KeyLog | None = None) -> list[SessionInfo]:
    """Every TLS connection of ``capture`` with its client_random (from its ClientHello); with
    ``keylog``, the encrypted ClientHellos of renegotiations are decrypted and listed too."""
    sessions: dict[int, SessionInfo] = {}
    with open_capture(capture) as reader:
        for ev in iter_events(reader, keylog, DecodeOptions(decrypt_app_data=False)):
            if isinstance(ev, ConnectionEvent):
                sessions[ev.conn] = SessionInfo(ev.conn, ev.client, ev.server, ev.first_frame)
            elif isinstance(ev, HandshakeEvent):
                info = sessions.get(ev.conn)
                if info is None:
                    continue
                msg = ev.message
                if ev.name == "client_hello" and isinstance(msg, ClientHello):
                    if msg.random not in info.client_randoms:
                        info.client_randoms.append(msg.random)
                if ev.name == "client_hello" and info.client_random is None:
                    if isinstance(msg, ClientHello):
                        info.client_random = msg.random
                        info.sni = server_name(msg)
                    else:
                        info.sni = None
                elif ev.name == "server_hello" and not ev.encrypted:
                    if isinstance(msg, ServerHello):
                        info.version = _short_version(negotiated_version(msg))
                        info.cipher_suite = name_of(CipherSuite, msg.cipher_suite)
                    else:
                        info.version = info.cipher_suite = None
    return list(sessions.values())


def _short_version(value: int) -> str:
    version = version_name(value)
    if "1.3" in version:
        return "1.3"
    if "1.2" in version:
        return "1.2"
    return version


# -- writing captures -----------------------------------------------------------------------


class _Copier:
    """Copies packets of one reader into one writer, mapping interfaces lazily."""

    def __init__(self, reader: CaptureReader, writer: PcapngWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.map: dict[int, int] = {}
        self.packets = 0

    def packet(self, pkt: Packet) -> None:
        out = self.map.get(pkt.interface)
        if out is None:
            out = self.map[pkt.interface] = self.writer.add_interface(self.reader.interfaces[pkt.interface])
        self.writer.write_packet(pkt, out)
        self.packets += 1


@dataclass(slots=True)
class EmbedResult:
    sessions: int
    """TLS connections in the capture."""
    sessions_with_keys: int
    lines_embedded: int
    lines_dropped: int
    """Key-log lines left out because their session is not in the capture."""
    packets: int


def embed_keylog(
    capture: str | os.PathLike[str],
    keylog: KeyLog,
    out: str | os.PathLike[str],
    *,
    all_keys: bool = False,
) -> EmbedResult:
    """Write ``out``: ``capture`` as pcapng with a Decryption Secrets Block before the packets.

    By default only the lines of sessions in the capture are embedded."""
    _not_same(capture, out)
    sessions = scan_sessions(capture, keylog)
    randoms = {r for s in sessions for r in s.client_randoms}
    total = len(keylog.lines(None))
    lines = keylog.lines(None if all_keys else randoms)
    with_keys = sum(1 for r in randoms if r in keylog)
    with open_capture(capture) as reader, atomic_output(out, private=True) as stream:
        copier = _write(reader, stream, lines, keep_secrets=True)
    return EmbedResult(len(sessions), with_keys, len(lines), total - len(lines), copier.packets)


def _write(
    reader: CaptureReader,
    stream: BinaryIO,
    lines: list[str] | None,
    *,
    keep_secrets: bool,
    select: Callable[[int, Packet], bool] | None = None,
) -> _Copier:
    writer = PcapngWriter(stream)
    copier = _Copier(reader, writer)
    if lines:
        writer.write_secrets(SECRETS_TYPE_TLS_KEYLOG, ("\n".join(lines) + "\n").encode())
    frame = 0
    for item in reader:
        if isinstance(item, SecretsBlock):
            if keep_secrets:
                writer.write_secrets(item.secrets_type, item.data)
            continue
        frame += 1
        if select is None or select(frame, item):
            copier.packet(item)
    writer.flush()
    return copier


def strip_secrets(capture: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[int, int]:
    """Copy ``capture`` to ``out`` without any Decryption Secrets Block: (packets, blocks removed)."""
    _not_same(capture, out)
    removed = 0
    with open_capture(capture) as reader, atomic_output(out) as stream:
        writer = PcapngWriter(stream)
        copier = _Copier(reader, writer)
        for item in reader:
            if isinstance(item, SecretsBlock):
                removed += 1
                continue
            copier.packet(item)
        writer.flush()
    return copier.packets, removed


def extract_secrets(capture: str | os.PathLike[str]) -> tuple[bytes, int]:
    """The key-log text of every TLS secrets block in ``capture``: (text, blocks)."""
    parts: list[bytes] = []
    for block in _secrets_blocks(capture):
        data = block.data
        parts.append(data if data.endswith(b"\n") or not data else data + b"\n")
    return b"".join(parts), len(parts)


def export_connections(
    capture: str | os.PathLike[str],
    out: str | os.PathLike[str],
    keylog: KeyLog,
    *,
    conns: Collection[int] = (),
    host: str | None = None,
    port: int | None = None,
) -> tuple[list[SessionInfo], int, int]:
    """Write only the selected connections, with only their secrets (never exporter secrets).

    Returns (selected sessions, packets written, key-log lines embedded)."""
    _not_same(capture, out)
    if not conns and host is None and port is None:
        raise UsageError("say which connections to export: --conn N, --host H or --port P")
    sessions = scan_sessions(capture, keylog)
    chosen = [s for s in sessions if _matches(s, conns, host, port)]
    if not chosen:
        raise UsageError("no TLS connection in the capture matches the selection (see `capdebug triage`)")
    # A 4-tuple can carry several connections in turn (port reuse): each owns the frames from
    # its first frame until the next one's.
    starts: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for s in sessions:
        starts.setdefault(_pair(s.client, s.server), []).append((s.first_frame, s.conn))
    wanted = {s.conn for s in chosen}
    names: dict[tuple[bytes, int, bytes, int], tuple[str, str]] = {}

    fragments: set[tuple[int, bytes, bytes, int]] = set()
    """Datagrams whose first fragment belongs to a chosen connection: their other fragments
    (no TCP header of their own, and possibly captured before the first) go with it."""

    def select(frame: int, pkt: Packet) -> bool:
        linktype = linktypes[pkt.interface]
        seg = decode_tcp(linktype, pkt.data)
        if seg is None:
            return bool(fragments) and fragment_key(linktype, pkt.data) in fragments
        return owned(frame, seg)

    def owned(frame: int, seg: TcpSegment) -> bool:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        pair = names.get(key)
        if pair is None:
            pair = names[key] = _pair(
                format_endpoint(seg.src, seg.sport), format_endpoint(seg.dst, seg.dport)
            )
        owners = starts.get(pair)
        if not owners:
            return False
        owner = owners[0][1]
        for first, conn in owners:
            if first <= frame:
                owner = conn
        return owner in wanted

    randoms = [r for s in chosen for r in s.client_randoms]
    lines = keylog.lines(randoms, exclude_labels=EXPORTER_LABELS) if randoms else []
    with open_capture(capture) as reader:
        linktypes = _Linktypes(reader)
        frame = 0
        for item in reader:
            if not isinstance(item, Packet):
                continue
            frame += 1  # numbered as _write numbers them: packets only
            seg = decode_tcp(linktypes[item.interface], item.data)
            if seg is not None and seg.truncated and owned(frame, seg):
                key = fragment_key(linktypes[item.interface], item.data)
                if key is not None:
                    fragments.add(key)
    with open_capture(capture) as reader, atomic_output(out, private=bool(lines)) as stream:
        linktypes = _Linktypes(reader)
        copier = _write(reader, stream, lines, keep_secrets=False, select=select)
    return chosen, copier.packets, len(lines)


class _Linktypes:
    """interface index -> link type, reading the reader's growing interface list."""

    def __init__(self, reader: CaptureReader) -> None:
        self.reader = reader

    def __getitem__(self, index: int) -> int:
        return int(self.reader.interfaces[index].linktype)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _host_of(endpoint: str) -> str:
    host = endpoint.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


def _port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _matches(s: SessionInfo, conns: Collection[int], host: str | None, port: int | None) -> bool:
    if conns and s.conn not in conns:
        return False
    if host is not None and host not in (_host_of(s.client), _host_of(s.server), s.sni):
        return False
    return port is None or port in (_port_of(s.client), _port_of(s.server))


def _not_same(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise UsageError(f"the output {os.fspath(dst)} is the input capture; choose another name")
