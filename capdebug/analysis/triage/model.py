"""What triage keeps per connection while it reads events (:class:`Conn`, one :class:`Side`
each for client and server), and the report it gives (:class:`ConnectionReport`). Typed facts
only: versions and suites as ints, the hello and certificate events with their parsed messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...wire.constants import ProtocolVersion
from ..app import AppFact
from ..events import (
    AlertEvent,
    EvictedEvent,
    HandshakeEvent,
    OverlapEvent,
    PlaintextEvent,
    RecoveredEvent,
    TcpHealthEvent,
    UndecryptableEvent,
    UpgradeEvent,
)
from .catalog import SEVERITY_RANK, Verdict

__all__ = [
    "KEPT_PROTECTED",
    "NAMES",
    "TLS12",
    "TLS13",
    "WHO",
    "AppSummary",
    "Bare",
    "Conn",
    "ConnectionReport",
    "Side",
    "matters",
]

KEPT_PROTECTED = 8
"""Unreadable records kept per side (:attr:`Side.protected`): a handshake and its answer."""


@dataclass(slots=True)
class Side:
    """What one side did."""

    syn: tuple[int, int] | None = None  # (frame, ts)
    fin: tuple[int, int] | None = None
    rst: tuple[int, int] | None = None
    close_notify: tuple[int, int] | None = None
    fatal_alert: AlertEvent | None = None
    alerts: list[AlertEvent] = field(default_factory=list)
    app_records: int = 0
    app_bytes: int = 0
    first_app: tuple[int, int] | None = None
    last_app: tuple[int, int] | None = None
    app_after_own_close: tuple[int, int] | None = None
    app_after_peer_close: int = 0
    app_after_peer_end: tuple[int, int] | None = None
    """(frame, ts) of this side's first data record sent after the peer's close_notify or FIN:
    on a connection the peer had already closed (a stale keep-alive connection reused)."""
    last_data: tuple[int, int] | None = None
    """(frame, ts) of this side's last data record, not counting a 19-byte likely alert."""
    last_unread: bool = False
    """This side's last record was protected and not opened (no key)."""
    likely_close: int | None = None
    """Frame of this side's last record when it was an unreadable alert: a 19-byte protected
    TLS 1.3 record or an encrypted TLS 1.2 alert (reset by any later record)."""
    last_handshake: str | None = None
    finished: tuple[int, int] | None = None
    key_updates: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    snaplen_gaps: int = 0
    """Packets the snaplen cut short (one gap per packet, or per run of packets with no
    captured payload between them)."""
    snaplen_bytes: int = 0
    capture_gaps: int = 0
    """Gaps whose bytes the receiver acknowledged: the capture lost them."""
    network_gaps: int = 0
    """Gaps never acknowledged while the sender retransmitted: the network lost them."""
    out_of_order_gaps: int = 0
    """Holes given up because more data than the reassembly limit waited behind them (their
    bytes may well be in the capture, later)."""
    undecryptable: list[UndecryptableEvent] = field(default_factory=list)
    protected_records: int = 0
    protected: list[tuple[int, int, int]] = field(default_factory=list)
    """(frame, ts, length) of this side's first :data:`KEPT_PROTECTED` records that could not
    be read (no keys): enough to see how a TLS 1.3 handshake ended without keys."""
    after_peer_finished: int | None = None
    """Frame of this side's first handshake message or data record after the peer's Finished
    (a server's NewSessionTicket or response): the peer's last flight was accepted."""


KEPT_EVENTS = 50
"""Application events listed per connection (the summary counts them all)."""
KEPT_APP = 32
"""Application facts kept per connection in full (:attr:`Conn.app`); past them only the ones
that can explain a close or an error (see :meth:`Conn.note_app`); all are counted."""


@dataclass(slots=True)
class AppSummary:
    """The application layer of one connection, as far as triage read it."""

    protocol: str | None = None
    """"HTTP/1.x" or "HTTP/2"."""
    requests: int = 0
    responses: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    unknown: int = 0
    """Requests and responses whose header block could not be read (HPACK state lost)."""
    goaways: list[str] = field(default_factory=list)
    rst_streams: int = 0
    lost: tuple[str | None, str | None] = (None, None)
    """Why HTTP/2 header blocks could not be read from some point on (client, server)."""
    unread_records: int = 0
    """Application records triage counted without opening them. HTTP/1.x is read only from
    the records triage opens (the first ones, small ones), so its counts are a lower bound
    then; HTTP/2's records left unread lie inside DATA frames, its counts are complete unless
    ``lost`` says otherwise."""
    events: list[tuple[int, int, AppFact]] = field(default_factory=list)
    """(frame, side, fact) of the frames and messages that matter (:func:`matters`), the first
    :data:`KEPT_EVENTS`."""

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "requests": self.requests,
            "responses": self.responses,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "unreadable_headers": self.unknown,
            "goaway": self.goaways,
            "rst_stream": self.rst_streams,
            "headers_lost": {n: why for n, why in zip(NAMES, self.lost, strict=True) if why is not None},
            "unread_records": self.unread_records,
            "complete": self.complete,
            "events": [
                {"frame": frame, "from": NAMES[side], "kind": f.kind, "code": f.code, "text": f.text}
                for frame, side, f in self.events
            ],
        }

    @property
    def complete(self) -> bool:
        """Every request and response of the connection is counted."""
        if self.protocol == "HTTP/2":
            return self.lost == (None, None) and not self.unknown
        return self.unread_records == 0

    def text(self) -> str:
        parts = [self.protocol or "application"]
        parts.append(f"{self.requests} request{'s' if self.requests != 1 else ''}")
        statuses = ", ".join(f"{k} x{v}" if v > 1 else str(k) for k, v in sorted(self.statuses.items()))
        parts.append(
            f"{self.responses} response{'s' if self.responses != 1 else ''}"
            + (f" ({statuses})" if statuses else "")
        )
        if self.unknown:
            parts.append(f"{self.unknown} header block(s) unreadable")
        parts.extend(self.goaways)
        if self.rst_streams:
            parts.append(f"{self.rst_streams} RST_STREAM")
        parts.extend(
            f"{n}'s headers cannot be read: {why}" for n, why in zip(NAMES, self.lost, strict=True) if why
        )
        if not self.complete and self.protocol != "HTTP/2":
            parts.append(f"counted from the records triage opened ({self.unread_records} left unread)")
        return "; ".join(parts)


def matters(fact: AppFact) -> bool:
    """Kept past :data:`KEPT_APP`: what can explain a close or an error."""
    return (
        fact.closes
        or fact.kind in ("goaway", "rst_stream")
        or fact.unreadable
        or (fact.kind == "response" and fact.code is not None and fact.code >= 500)
    )


@dataclass(slots=True)
class Conn:
    number: int
    client: str
    server: str
    first_frame: int
    roles_from: str
    first_ts: int | None = None
    last_ts: int | None = None
    last_frame: int = 0
    sides: tuple[Side, Side] = field(default_factory=lambda: (Side(), Side()))
    client_hello: HandshakeEvent | None = None
    server_hello: HandshakeEvent | None = None
    hrr: HandshakeEvent | None = None
    recovered: RecoveredEvent | None = None
    """Its handshake was not seen (picked up mid-stream, or the ServerHello lost) and a key-log
    traffic secret opened its records: TLS 1.3, with the suite that authenticated them."""
    certificate: HandshakeEvent | None = None
    client_certificate: HandshakeEvent | None = None
    certificate_request: int | None = None
    """Frame of the server's CertificateRequest (mutual TLS), when readable."""
    encrypted_extensions: HandshakeEvent | None = None
    sni: str | None = None
    alpn: str | None = None
    version: int | None = None
    """The negotiated ProtocolVersion (supported_versions, else legacy_version)."""
    cipher_suite: int | None = None
    resumed: bool = False
    resumed_how: str | None = None
    """session ID, session ticket, PSK (see :mod:`.resumption`)."""
    resumed_from: int | None = None
    """First frame of the earlier connection that issued the resumed session, when seen."""
    psk_index: int | None = None
    last_handshake_from: int | None = None
    """0 (client) or 1 (server): who sent the last handshake message (whose turn it then was)."""
    early_data_offered: bool = False
    early_data_accepted: bool | None = None
    early_records: int = 0
    tls_seen: bool = False
    upgrades: list[UpgradeEvent] = field(default_factory=list)
    """The plaintext prelude's upgrade commands and their replies (see analysis/prelude.py)."""
    plaintext: list[PlaintextEvent] = field(default_factory=list)
    h2: bool = False
    """HTTP/2 seen by content (a connection preface) when no ALPN was negotiated."""
    app: list[tuple[int, int, AppFact, int]] = field(default_factory=list)
    """(frame, side, fact, ts) from the decrypted records triage opened (see :mod:`..app`):
    the first :data:`KEPT_APP`, then those that matter."""
    app_summary: AppSummary = field(default_factory=AppSummary)
    last_request: tuple[int, AppFact] | None = None
    """(frame, fact) of the client's latest request."""
    health: TcpHealthEvent | None = None
    """What TCP did, when it had trouble (net/health.py; triage/tcp.py reads it)."""
    evicted: EvictedEvent | None = None
    """It was dropped from the decoder's full connection table (net/flow.py)."""
    overlap: OverlapEvent | None = None
    """The first retransmission that repeated stream bytes with other content (net/reassembly.py)."""
    overlaps: int = 0

    def note_app(self, frame: int, side: int, fact: AppFact, ts: int) -> None:
        summary = self.app_summary
        kind = fact.kind
        if kind == "request":
            summary.requests += 1
            self.last_request = (frame, fact)
        elif kind == "response":
            summary.responses += 1
            if fact.code is not None:
                summary.statuses[fact.code] = summary.statuses.get(fact.code, 0) + 1
        elif kind == "goaway":
            summary.goaways.append(f"{NAMES[side]} {fact.text}")
        elif kind == "rst_stream":
            summary.rst_streams += 1
        if fact.unreadable:
            summary.unknown += 1
        if summary.protocol is None:
            summary.protocol = "HTTP/2" if self.h2 or self.alpn == "h2" else "HTTP/1.x"
        if len(self.app) < KEPT_APP or matters(fact):
            self.app.append((frame, side, fact, ts))


class Bare:
    """A connection that so far carried nothing but TCP flags (a SYN, a FIN, a RST), the TCP
    health of its handshake and its eviction from a full table: what a SYN flood or a port scan
    leaves, tens of thousands of times. Kept in this small record (about a tenth of a
    :class:`Conn` with its two :class:`Side`) until anything else comes for it; the rules read
    the :class:`Conn` :meth:`expand` makes, so the verdicts are those of a full summary."""

    __slots__ = (
        "client",
        "evicted",
        "first_frame",
        "first_ts",
        "health",
        "last_frame",
        "last_ts",
        "number",
        "roles_from",
        "server",
        "tcp",
    )

    def __init__(self, number: int, client: str, server: str, first_frame: int, roles_from: str) -> None:
        self.number = number
        self.client = client
        self.server = server
        self.first_frame = first_frame
        self.roles_from = roles_from
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.last_frame = 0
        self.tcp: tuple[tuple[int, str, int, int], ...] = ()
        """(side, flag, frame, ts) of each side's first SYN, FIN and RST, in arrival order."""
        self.health: TcpHealthEvent | None = None
        self.evicted: EvictedEvent | None = None

    def expand(self) -> Conn:
        """The full summary these facts make (as if every event had been read into one)."""
        c = Conn(self.number, self.client, self.server, self.first_frame, self.roles_from)
        c.first_ts, c.last_ts, c.last_frame = self.first_ts, self.last_ts, self.last_frame
        for who, flag, frame, ts in self.tcp:
            setattr(c.sides[who], flag, (frame, ts))
        c.health, c.evicted = self.health, self.evicted
        return c


@dataclass(slots=True)
class ConnectionReport:
    """One connection's summary and verdicts (``triage --json``'s objects)."""

    conn: int
    client: str
    server: str
    first_frame: int
    sni: str | None
    version: str | None
    cipher_suite: str | None
    alpn: str | None
    duration: float | None
    bytes_client: int
    bytes_server: int
    verdicts: list[Verdict]
    resume_key: tuple[str, bytes] | None = None
    """For a resumed session: its session ID or ticket (to find its issuer across shares of a
    capture); not part of the JSON."""
    app: AppSummary | None = None
    """The application layer (HTTP), when triage read any of it."""

    @property
    def worst(self) -> Verdict | None:
        return max(self.verdicts, key=lambda v: SEVERITY_RANK[v.severity], default=None)

    @property
    def has_error(self) -> bool:
        return any(v.severity == "error" for v in self.verdicts)

    def to_json(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "conn": self.conn,
            "client": self.client,
            "server": self.server,
            "first_frame": self.first_frame,
            "sni": self.sni,
            "version": self.version,
            "cipher_suite": self.cipher_suite,
            "alpn": self.alpn,
            "duration": self.duration,
            "bytes": {"client": self.bytes_client, "server": self.bytes_server},
            "worst": worst.code if worst else None,
            "verdicts": [v.to_json() for v in self.verdicts],
            "app": None if self.app is None else self.app.to_json(),
        }


WHO = {"client": 0, "server": 1}
NAMES = ("client", "server")


TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3
