"""What triage keeps per connection while it reads events (:class:`Conn`, one :class:`Side`
each for client and server), and the report it gives (:class:`ConnectionReport`). Typed facts
only: versions and suites as ints, the hello and certificate events with their parsed messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...wire.constants import ProtocolVersion
from ..events import AlertEvent, HandshakeEvent, TcpHealthEvent, UndecryptableEvent
from .catalog import SEVERITY_RANK, Verdict

__all__ = ["NAMES", "TLS12", "TLS13", "WHO", "Conn", "ConnectionReport", "Side"]


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
    encrypted_extensions: HandshakeEvent | None = None
    sni: str | None = None
    alpn: str | None = None
    version: int | None = None
    """The negotiated ProtocolVersion (supported_versions, else legacy_version)."""
    cipher_suite: int | None = None
    resumed: bool = False
    early_data_offered: bool = False
    early_data_accepted: bool | None = None
    early_records: int = 0
    tls_seen: bool = False
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
