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
    HandshakeEvent,
    PlaintextEvent,
    TcpHealthEvent,
    UndecryptableEvent,
    UpgradeEvent,
)
from .catalog import SEVERITY_RANK, Verdict

__all__ = ["KEPT_PROTECTED", "NAMES", "TLS12", "TLS13", "WHO", "Conn", "ConnectionReport", "Side"]

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
    likely_close: int | None = None
    """Frame of this side's last record when it was an unreadable alert: a 19-byte protected
    TLS 1.3 record or an encrypted TLS 1.2 alert (reset by any later record)."""
    last_handshake: str | None = None
    finished: tuple[int, int] | None = None
    key_updates: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    snaplen_gaps: int = 0
    capture_gaps: int = 0
    """Gaps whose bytes the receiver acknowledged: the capture lost them."""
    network_gaps: int = 0
    """Gaps never acknowledged while the sender retransmitted: the network lost them."""
    undecryptable: list[UndecryptableEvent] = field(default_factory=list)
    protected_records: int = 0
    protected: list[tuple[int, int, int]] = field(default_factory=list)
    """(frame, ts, length) of this side's first :data:`KEPT_PROTECTED` records that could not
    be read (no keys): enough to see how a TLS 1.3 handshake ended without keys."""
    after_peer_finished: int | None = None
    """Frame of this side's first handshake message or data record after the peer's Finished
    (a server's NewSessionTicket or response): the peer's last flight was accepted."""


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
    """(frame, side, fact, ts) from the decrypted records triage opened (see :mod:`..app`)."""
    health: TcpHealthEvent | None = None
    """What TCP did, when it had trouble (net/health.py; triage/tcp.py reads it)."""


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
        }


WHO = {"client": 0, "server": 1}
NAMES = ("client", "server")


TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3
