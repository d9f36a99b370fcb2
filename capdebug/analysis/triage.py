"""Verdicts: what went wrong on each connection, in plain words.

Triage reads the decoder's events (never the packets again) and keeps a small summary per
connection (:class:`_Conn`): the hellos, the certificate, alerts, close_notify and TCP closes of
each side, data counts. At the end, :func:`verdicts` applies the rules of the catalog
(:data:`CATALOG`) to each summary. Every verdict has a stable ``code``, a ``severity``, the side
it is about (``by``), the frame that shows it, and a sentence.

Without keys, TLS 1.3 hides alerts inside application_data records. A protected record of
exactly 19 bytes (2-byte alert, 1-byte content type, 16-byte AEAD tag) that is the last record a
side sends before its FIN is almost always close_notify; triage says "likely close_notify
(encrypted, 19 bytes)" rather than calling it a premature close.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..crypto.x509 import CertSummary, hostname_matches
from ..wire.constants import CipherSuite, NamedGroup, ProtocolVersion, name_of, version_name
from ..wire.handshake import Certificate, ClientHello, EncryptedExtensions, ServerHello
from .events import (
    AlertEvent,
    AppDataEvent,
    ConnectionEvent,
    DecodeEvent,
    GapEvent,
    HandshakeEvent,
    Reason,
    TcpEvent,
    UndecryptableEvent,
)
from .messages import (
    alpn,
    certificates,
    early_data,
    hrr_group,
    negotiated_version,
    offered_groups,
    offered_versions,
    psk_selected,
    server_name,
)

TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3

__all__ = ["CATALOG", "ConnectionReport", "TriageShare", "Verdict", "merge_shares", "triage"]

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}

CATALOG: dict[str, tuple[str, str]] = {
    # code: (what it usually means, what to check next)
    "clean_close": (
        "Both sides sent close_notify: the TLS session ended cleanly.",
        "Nothing; if the application still reports an error, look above TLS.",
    ),
    "premature_close": (
        "A side closed TCP (FIN) without close_notify while the session was open. The peer's TLS "
        "stack reads this as a truncation: OpenSSL reports SSL_ERROR_SYSCALL / 'unexpected eof "
        "while reading', s2n a premature close.",
        "Check that the closing side calls SSL_shutdown/close_notify before close(); look for "
        "timeouts, crashes or a proxy in between that closes idle connections.",
    ),
    "close_notify_unanswered": (
        "The peer sent close_notify and this side then closed TCP without its own. Common and "
        "acceptable (RFC 8446 6.1 lets the receiver close at once).",
        "Nothing, unless this side still had data to send.",
    ),
    "half_close": (
        "One side sent close_notify and the other kept sending before ending normally (TLS 1.3 half-close).",
        "Nothing; the application used a write shutdown.",
    ),
    "data_after_close_notify": (
        "A side sent application data after its own close_notify: a protocol violation the peer "
        "will reject or ignore.",
        "The sending application writes after shutdown; check its close path and threading.",
    ),
    "reset": (
        "A side reset the TCP connection (RST) while the TLS session was still open.",
        "An RST right after data usually means the application closed with unread data, crashed, "
        "or a firewall/load balancer killed the connection; check the resetting host's logs.",
    ),
    "benign_reset": (
        "RST after the TLS session was already over: the kernel answering data that arrived on a "
        "closed socket.",
        "Nothing; this is normal for many stacks.",
    ),
    "handshake_alert": (
        "A fatal alert ended the handshake.",
        "See the detail: the alert and the hellos usually name the cause.",
    ),
    "alert": (
        "An alert after the handshake.",
        "A fatal alert after the handshake usually means a record failed authentication "
        "(bad_record_mac), a protocol error, or a client certificate rejected late (TLS 1.3).",
    ),
    "handshake_incomplete": (
        "The handshake did not finish before the connection closed or the capture ended.",
        "Look at the last message of each side: the other side never answered it.",
    ),
    "certificate_problem": (
        "The server's certificate is likely to be rejected.",
        "Renew or reissue the certificate, add the name to its SANs, or send the full chain.",
    ),
    "undecryptable": (
        "Records could not be decrypted, so their contents are unknown.",
        "Provide the key log of this session (SSLKEYLOGFILE on the client or server) or check "
        "that it belongs to this capture.",
    ),
    "capture_incomplete": (
        "The capture does not hold the whole connection (started mid-connection, lost segments, "
        "or packets cut by the snaplen).",
        "Capture earlier, with a larger buffer (-B) or snaplen 0.",
    ),
    "hello_retry_request": (
        "The server asked for another key share (HelloRetryRequest): one extra round trip.",
        "Offer the server's preferred group in the first key_share to save the round trip.",
    ),
    "resumed": ("The session was resumed (PSK or session ID/ticket).", "Nothing."),
    "early_data": ("The client sent 0-RTT early data.", "Whether the server accepted it is in the detail."),
    "key_update": ("A side updated its traffic keys (KeyUpdate).", "Nothing."),
    "slow_handshake": (
        "The handshake took long compared with the network round trip.",
        "Look for slow certificate checks (OCSP, CRL), slow key operations, or a busy server.",
    ),
    "likely_close_notify": (
        "An encrypted 19-byte record right before FIN: almost certainly close_notify.",
        "Provide keys to confirm.",
    ),
    "tcp_only": (
        "A TCP connection with no TLS data: refused, reset, or closed before the ClientHello.",
        "An RST answering the SYN means nothing listens on that port (or a firewall rejects).",
    ),
}

_ALERT_CAUSES: dict[str, str] = {
    "handshake_failure": "no cipher suite, group or signature algorithm both sides support",
    "protocol_version": "the versions offered do not overlap with what the peer accepts",
    "unknown_ca": "the trust store of the side that sent it does not accept the certificate chain",
    "bad_certificate": "the certificate was rejected (bad signature, wrong usage, or malformed)",
    "certificate_expired": "a certificate in the chain is expired (or the rejecting side's clock is wrong)",
    "certificate_unknown": "the certificate was rejected for a reason the stack does not name",
    "certificate_required": "the server requires a client certificate and the client sent none",
    "decrypt_error": "a signature or Finished check failed: often a key/certificate mismatch",
    "illegal_parameter": "a field had a value the peer considers invalid (e.g. a group or extension)",
    "unrecognized_name": "the server does not serve the name in the SNI",
    "no_application_protocol": "no common ALPN protocol (e.g. the server only speaks http/1.1)",
    "decode_error": "a message could not be parsed: a bug or a middlebox altering bytes",
    "internal_error": "the side that sent it failed internally (check its logs)",
    "insufficient_security": "the offered parameters are weaker than the peer requires",
    "inappropriate_fallback": "the client retried with a lower version than it supports (TLS_FALLBACK_SCSV)",
    "bad_record_mac": "a record failed authentication: corruption on the path, or a key mismatch",
    "unexpected_message": "a message arrived out of order: a state machine bug or an interfering middlebox",
    "access_denied": "the peer refused the connection by policy (e.g. client certificate not allowed)",
    "missing_extension": "a mandatory extension was not sent",
    "unsupported_extension": "an extension was sent that the peer did not offer",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    code: str
    severity: str
    by: str | None
    frame: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "by": self.by,
            "frame": self.frame,
            "detail": self.detail,
        }


@dataclass(slots=True)
class _Side:
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
    undecryptable: list[UndecryptableEvent] = field(default_factory=list)
    protected_records: int = 0


@dataclass(slots=True)
class _Conn:
    number: int
    client: str
    server: str
    first_frame: int
    roles_from: str
    first_ts: int | None = None
    last_ts: int | None = None
    last_frame: int = 0
    sides: tuple[_Side, _Side] = field(default_factory=lambda: (_Side(), _Side()))
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


_WHO = {"client": 0, "server": 1}
_NAMES = ("client", "server")


class Triage:
    """Accumulates events; :meth:`reports` gives the verdicts."""

    def __init__(self, *, slow_handshake_s: float = 1.0) -> None:
        self.conns: dict[int, _Conn] = {}
        self.slow_handshake_s = slow_handshake_s

    def add(self, ev: DecodeEvent) -> None:
        if type(ev) is AppDataEvent:
            # Most events of a capture; the general path below, unrolled for them.
            c = self.conns.get(ev.conn)
            if c is None:
                return
            if c.first_ts is None:
                c.first_ts = ev.ts_ns
            c.last_ts = ev.ts_ns
            if ev.frame > c.last_frame:
                c.last_frame = ev.frame
            sides = c.sides
            if ev.from_ == "server":
                self._app_data(c, sides[1], sides[0], ev)
            else:
                self._app_data(c, sides[0], sides[1], ev)
            return
        c = self.conns.get(ev.conn)
        if isinstance(ev, ConnectionEvent):
            self.conns[ev.conn] = _Conn(ev.conn, ev.client, ev.server, ev.first_frame, ev.roles_from)
            return
        if c is None:
            return
        ts = getattr(ev, "ts_ns", None)
        if ts is not None:
            if c.first_ts is None:
                c.first_ts = ts
            c.last_ts = ts
        frame = getattr(ev, "frame", 0)
        c.last_frame = max(c.last_frame, frame)
        who = _WHO.get(getattr(ev, "from_", ""), 0)
        side = c.sides[who]
        peer = c.sides[1 - who]
        if isinstance(ev, TcpEvent):
            at = (ev.frame, ev.ts_ns)
            if ev.flag == "SYN" and side.syn is None:
                side.syn = at
            elif ev.flag == "FIN" and side.fin is None:
                side.fin = at
            elif ev.flag == "RST" and side.rst is None:
                side.rst = at
        elif isinstance(ev, HandshakeEvent):
            c.tls_seen = True
            self._handshake(c, side, ev)
        elif isinstance(ev, AlertEvent):
            c.tls_seen = True
            side.alerts.append(ev)
            side.likely_close = ev.frame if ev.description is None else None
            if ev.description == 0:
                if side.close_notify is None:
                    side.close_notify = (ev.frame, ev.ts_ns)
            elif ev.level == 2 or (ev.level is None and ev.description is not None):
                if side.fatal_alert is None:
                    side.fatal_alert = ev
        elif isinstance(ev, AppDataEvent):
            self._app_data(c, side, peer, ev)
        elif isinstance(ev, GapEvent):
            side.gaps += 1
            side.gap_bytes += ev.size
            if ev.cause == "snaplen":
                side.snaplen_gaps += 1
        elif isinstance(ev, UndecryptableEvent):
            side.undecryptable.append(ev)

    @staticmethod
    def _app_data(c: _Conn, side: _Side, peer: _Side, ev: AppDataEvent) -> None:
        c.tls_seen = True
        if ev.early:
            c.early_records += 1
        side.app_records += 1
        side.app_bytes += ev.length
        # 19 bytes: 2-byte alert + content type + 16-byte tag (every TLS 1.3 AEAD suite).
        tls13_alert_size = not ev.decrypted and ev.length == 19 and c.version == TLS13
        side.likely_close = ev.frame if tls13_alert_size else None
        if not ev.decrypted:
            side.protected_records += 1
        at = (ev.frame, ev.ts_ns)
        if side.first_app is None:
            side.first_app = at
        side.last_app = at
        if side.close_notify is not None and side.app_after_own_close is None:
            side.app_after_own_close = at
        if peer.close_notify is not None:
            side.app_after_peer_close += 1

    def _handshake(self, c: _Conn, side: _Side, ev: HandshakeEvent) -> None:
        msg = ev.message
        side.last_handshake = ev.name
        side.likely_close = None
        name = ev.name
        if name == "client_hello" and c.client_hello is None:
            c.client_hello = ev
            hello = msg if isinstance(msg, ClientHello) else None
            c.sni = server_name(hello) if hello else None
            c.early_data_offered = early_data(hello) if hello else False
        elif name == "hello_retry_request":
            c.hrr = ev
        elif name == "server_hello":
            c.server_hello = ev
            sh = msg if isinstance(msg, ServerHello) else None
            c.version = negotiated_version(sh) if sh else None
            c.cipher_suite = sh.cipher_suite if sh else None
            chosen = alpn(sh) if sh else None
            if chosen is not None:
                c.alpn = chosen
            if sh is not None and psk_selected(sh) is not None:
                c.resumed = True
            elif c.version == TLS12 and c.client_hello is not None:
                # TLS 1.2 resumption: the server echoes the client's session ID (RFC 5246 7.4.1.3).
                c.resumed = False  # decided at the server's next message
        elif name == "encrypted_extensions":
            c.encrypted_extensions = ev
            ee = msg if isinstance(msg, EncryptedExtensions) else None
            chosen = alpn(ee) if ee else None
            if chosen is not None:
                c.alpn = chosen
            if c.early_data_offered:
                c.early_data_accepted = early_data(ee) if ee else False
        elif name == "certificate" and ev.from_ == "server" and c.certificate is None:
            c.certificate = ev
        elif name == "finished":
            if side.finished is None:
                side.finished = (ev.frame, ev.ts_ns)
            if (
                c.version == TLS12
                and ev.from_ == "server"
                and c.certificate is None
                and c.sides[0].finished is None
            ):
                c.resumed = True  # abbreviated handshake: the server's Finished comes first
        elif name == "key_update":
            side.key_updates += 1
        elif name == "encrypted_handshake" and c.version == TLS12 and side.finished is None:
            side.finished = (ev.frame, ev.ts_ns)  # the first protected handshake message is Finished

    def reports(self) -> list[ConnectionReport]:
        return [self._report(c) for c in sorted(self.conns.values(), key=lambda c: c.number)]

    def report(self, conn: int) -> ConnectionReport | None:
        """One connection's verdicts as of now (e.g. when it closes during a live capture)."""
        c = self.conns.get(conn)
        return None if c is None else self._report(c)

    def _report(self, c: _Conn) -> ConnectionReport:
        duration = (
            (c.last_ts - c.first_ts) / 1e9 if c.first_ts is not None and c.last_ts is not None else None
        )
        return ConnectionReport(
            c.number,
            c.client,
            c.server,
            c.first_frame,
            c.sni,
            None if c.version is None else version_name(c.version),
            None if c.cipher_suite is None else name_of(CipherSuite, c.cipher_suite),
            c.alpn,
            duration,
            c.sides[0].app_bytes,
            c.sides[1].app_bytes,
            verdicts(c, slow_handshake_s=self.slow_handshake_s),
        )


@dataclass(slots=True)
class TriageShare:
    """What triaging one share of a capture gave (see ``DecodeOptions.partition``)."""

    reports: list[ConnectionReport]
    first_frames: list[int]
    """The first frame of each connection of the share, by its number within the share."""
    dependent: bool
    """The decoder said something that depends on the other shares' connections."""
    warnings: list[str]


def merge_shares(shares: Sequence[TriageShare]) -> list[ConnectionReport]:
    """The reports of a capture triaged in shares, numbered as one decoder numbers them: by
    the order of every TCP connection's first frame, whichever share followed it."""
    rank = {frame: n for n, frame in enumerate(sorted(f for s in shares for f in s.first_frames), 1)}
    merged = [replace(r, conn=rank[s.first_frames[r.conn - 1]]) for s in shares for r in s.reports]
    merged.sort(key=lambda r: r.conn)
    return merged


def _after_peer_eof(peer: _Side, alert: AlertEvent) -> bool:
    """Was the alert sent after the peer closed TCP without close_notify? (OpenSSL answers
    such an EOF with decode_error: a reaction, not the cause.)"""
    return peer.fin is not None and peer.fin[0] < alert.frame and peer.close_notify is None


def triage(events: Iterable[DecodeEvent], *, slow_handshake_s: float = 1.0) -> list[ConnectionReport]:
    t = Triage(slow_handshake_s=slow_handshake_s)
    for ev in events:
        t.add(ev)
    return t.reports()


# -- rules ------------------------------------------------------------------------------------


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _handshake_done(c: _Conn) -> bool | None:
    """True when the handshake finished; None when that cannot be seen (TLS 1.3, no keys)."""
    client, server = c.sides
    if c.client_hello is None and c.server_hello is None:
        return None  # picked up mid-connection: the handshake is not in the capture
    if c.version == TLS12:
        return (client.finished is not None and server.finished is not None) or (
            # Encrypted Finished messages without keys: both sides sent CCS + a protected record.
            client.protected_records > 0 and server.protected_records > 0
        )
    if client.finished is not None:
        return True
    if c.server_hello is not None and client.protected_records and server.protected_records:
        # TLS 1.3 without handshake keys: both sides sent protected records after the hellos.
        return None
    return False


def _likely_close_notify(c: _Conn, side: _Side) -> bool:
    """Without keys: the side's last record was probably an alert (see :class:`_Side`)."""
    return side.likely_close is not None and side.close_notify is None


def verdicts(c: _Conn, *, slow_handshake_s: float = 1.0) -> list[Verdict]:
    out: list[Verdict] = []
    client, server = c.sides
    sides = (client, server)

    if not c.tls_seen:
        rst = next(((i, s.rst) for i, s in enumerate(sides) if s.rst is not None), None)
        if rst is not None and client.syn is not None and server.syn is None and rst[0] == 1:
            out.append(
                Verdict(
                    "tcp_only",
                    "error",
                    "server",
                    rst[1][0],
                    f"connection refused: {c.server} answered the SYN with RST",
                )
            )
        else:
            out.append(Verdict("tcp_only", "info", None, c.first_frame, "no TLS data on this TCP connection"))
        return out

    # Facts first (info).
    if c.hrr is not None:
        hrr = c.hrr.message
        asked = hrr_group(hrr) if isinstance(hrr, ServerHello) else None
        group = None if asked is None else name_of(NamedGroup, asked)
        out.append(
            Verdict(
                "hello_retry_request",
                "info",
                "server",
                c.hrr.frame,
                f"the server asked for another key share{f' ({group})' if group else ''}",
            )
        )
    if c.resumed:
        frame = c.server_hello.frame if c.server_hello else None
        out.append(Verdict("resumed", "info", None, frame, "session resumed"))
    if c.early_data_offered:
        state = {True: "accepted", False: "rejected", None: "acceptance not visible without keys"}[
            c.early_data_accepted
        ]
        frame = c.client_hello.frame if c.client_hello else None
        out.append(
            Verdict(
                "early_data",
                "info",
                "client",
                frame,
                f"0-RTT early data offered ({c.early_records} records): {state}",
            )
        )
    for i, s in enumerate(sides):
        if s.key_updates:
            out.append(
                Verdict("key_update", "info", _NAMES[i], None, f"{s.key_updates} KeyUpdate message(s)")
            )

    # Capture completeness.
    if c.roles_from != "syn" and c.client_hello is None:
        out.append(
            Verdict(
                "capture_incomplete",
                "warning",
                None,
                c.first_frame,
                "the capture started mid-connection: the handshake is missing",
            )
        )
    for i, s in enumerate(sides):
        if not s.gaps:
            continue
        if s.snaplen_gaps:
            detail = (
                f"the snaplen cut {s.snaplen_gaps} packet(s) sent by the {_NAMES[i]} short "
                f"({s.gap_bytes} bytes not captured): capture with -s 0 to keep whole records"
            )
        else:
            detail = (
                f"{s.gap_bytes} bytes sent by the {_NAMES[i]} are missing from the capture "
                f"({s.gaps} gap(s)): packets lost by the capture, not necessarily by the network"
            )
        out.append(Verdict("capture_incomplete", "warning", _NAMES[i], None, detail))

    # Decryption.
    for i, s in enumerate(sides):
        for u in s.undecryptable:
            if u.reason == Reason.LATE_SECRETS:
                continue
            out.append(Verdict("undecryptable", "warning", _NAMES[i], u.frame, f"[{u.reason}] {u.message}"))
            break

    # Certificates.
    out.extend(_certificate_verdicts(c))

    # Handshake outcome.
    done = _handshake_done(c)
    fatal = [(i, s.fatal_alert) for i, s in enumerate(sides) if s.fatal_alert is not None]
    fatal.sort(key=lambda x: x[1].frame)
    hs_alert = None
    reaction = None
    if fatal and (done is False or (c.sides[0].finished and fatal[0][1].frame <= c.sides[0].finished[0])):
        i, a = fatal[0]
        hs_alert = a
        peer = sides[1 - i]
        if _after_peer_eof(peer, a):
            # The peer closed TCP first; OpenSSL answers that EOF with decode_error.
            reaction = a
            out.append(
                Verdict(
                    "alert",
                    "warning",
                    _NAMES[i],
                    a.frame,
                    _alert_detail(c, i, a, handshake=True)
                    + f"; sent after the {_NAMES[1 - i]} closed TCP during the handshake, in reaction to it",
                )
            )
        else:
            out.append(
                Verdict(
                    "handshake_alert", "error", _NAMES[i], a.frame, _alert_detail(c, i, a, handshake=True)
                )
            )
    for i, a in fatal:
        if a is hs_alert:
            continue
        peer = sides[1 - i]
        detail = _alert_detail(c, i, a, handshake=False)
        severity = "error"
        if _after_peer_eof(peer, a):
            # OpenSSL answers an unexpected EOF with decode_error: a consequence, not the cause.
            severity = "warning"
            detail += (
                f"; sent after the {_NAMES[1 - i]} closed TCP without close_notify, in reaction "
                "to that premature close"
            )
        out.append(Verdict("alert", severity, _NAMES[i], a.frame, detail))
    for i, s in enumerate(sides):
        for a in s.alerts:
            if a.description not in (None, 0) and a.level == 1:
                out.append(
                    Verdict(
                        "alert", "warning", _NAMES[i], a.frame, f"warning alert {a.name} ({a.description})"
                    )
                )
            elif a.description is None and a.frame != s.likely_close:
                out.append(
                    Verdict(
                        "alert",
                        "warning",
                        _NAMES[i],
                        a.frame,
                        "an encrypted alert (no keys to read it): close_notify or a fatal alert",
                    )
                )

    ended = any(s.fin or s.rst for s in sides)
    if (
        done is False
        and (hs_alert is None or hs_alert is reaction)
        and not any(s.rst and (s.fin is None or s.rst[0] < s.fin[0]) for s in sides)
    ):
        last = ", ".join(f"{_NAMES[i]}: {s.last_handshake or 'nothing'}" for i, s in enumerate(sides))
        how = "the connection closed" if ended else "the capture ended"
        out.append(
            Verdict(
                "handshake_incomplete",
                "error",
                None,
                c.last_frame,
                f"{how} during the handshake; last message from {last}",
            )
        )

    # Closing.
    out.extend(_close_verdicts(c, done))

    # Timing.
    if c.client_hello is not None and done is not False:
        end = client.finished or server.finished
        if end is not None and c.client_hello.ts_ns is not None:
            took = end[1] - c.client_hello.ts_ns
            rtt = server.syn[1] - client.syn[1] if client.syn and server.syn else None
            if took > slow_handshake_s * 1e9:
                extra = f" (network round trip {_ms(rtt)})" if rtt is not None else ""
                out.append(
                    Verdict("slow_handshake", "info", None, end[0], f"the handshake took {_ms(took)}{extra}")
                )
    return out


def _close_verdicts(c: _Conn, done: bool | None) -> list[Verdict]:
    out: list[Verdict] = []
    sides = c.sides
    names = _NAMES
    for i, s in enumerate(sides):
        if s.app_after_own_close is not None:
            out.append(
                Verdict(
                    "data_after_close_notify",
                    "error",
                    names[i],
                    s.app_after_own_close[0],
                    f"the {names[i]} sent application data after its own close_notify",
                )
            )
    c0, c1 = sides[0].close_notify, sides[1].close_notify
    if c0 is not None and c1 is not None:
        first, first_at = (0, c0) if c0[0] <= c1[0] else (1, c1)
        other = sides[1 - first]
        if other.app_after_peer_close:
            out.append(
                Verdict(
                    "half_close",
                    "info",
                    names[first],
                    first_at[0],
                    f"the {names[first]} sent close_notify while the {names[1 - first]} kept sending "
                    f"({other.app_after_peer_close} records) before its own",
                )
            )
        elif not any(s.app_after_own_close for s in sides):
            out.append(
                Verdict("clean_close", "info", None, max(c0[0], c1[0]), "close_notify from both sides")
            )

    tcp_only = any(v.code == "tcp_only" for v in out)
    for i, s in enumerate(sides):
        if s.fin is not None and (s.rst is None or s.fin[0] < s.rst[0]):
            verdict = _fin_verdict(c, i, done)
            if verdict is not None:
                out.append(verdict)
        if s.rst is not None and not tcp_only:
            out.append(_rst_verdict(c, i, done))
    return out


def _fin_verdict(c: _Conn, i: int, done: bool | None) -> Verdict | None:
    """A side sent FIN: did it end the TLS session properly first?"""
    s, peer = c.sides[i], c.sides[1 - i]
    me, other = _NAMES[i], _NAMES[1 - i]
    assert s.fin is not None
    fin = s.fin[0]
    if s.close_notify is not None or (s.fatal_alert is not None and s.fatal_alert.frame <= fin):
        return None
    if _likely_close_notify(c, s):
        what = "encrypted, 19 bytes" if c.version == TLS13 else "an encrypted alert"
        return Verdict(
            "likely_close_notify",
            "info",
            me,
            s.likely_close,
            f"likely close_notify from the {me} ({what}) before its FIN; keys would confirm it",
        )
    if peer.close_notify is not None and peer.close_notify[0] <= fin:
        return Verdict(
            "close_notify_unanswered",
            "info",
            me,
            fin,
            f"the {other} sent close_notify; the {me} closed TCP without its own",
        )
    if _likely_close_notify(c, peer) and peer.likely_close is not None and peer.likely_close <= fin:
        return Verdict(
            "close_notify_unanswered",
            "info",
            me,
            fin,
            f"the {other} sent what is likely close_notify (no keys to confirm); the {me} closed TCP "
            "without its own",
        )
    if peer.fatal_alert is not None and peer.fatal_alert.frame <= fin:
        return None  # the peer ended the session with its alert first
    if done is False:
        return None  # reported as handshake_incomplete
    return Verdict(
        "premature_close",
        "error",
        me,
        fin,
        f"the {me} closed TCP (FIN) without close_notify while the session was open: the {other}'s "
        "TLS stack sees a truncated connection (OpenSSL: 'unexpected eof while reading' / "
        "SSL_ERROR_SYSCALL; s2n: premature close)",
    )


def _rst_verdict(c: _Conn, i: int, done: bool | None) -> Verdict:
    """A side sent RST: was the TLS session already over?"""
    s, peer = c.sides[i], c.sides[1 - i]
    me, other = _NAMES[i], _NAMES[1 - i]
    assert s.rst is not None
    rst = s.rst[0]
    over = (
        s.close_notify is not None
        or s.fatal_alert is not None
        or peer.close_notify is not None
        or peer.fatal_alert is not None
        or (s.fin is not None and s.fin[0] < rst)
        or _likely_close_notify(c, peer)
        or _likely_close_notify(c, s)
    )
    if over:
        return Verdict(
            "benign_reset",
            "info",
            me,
            rst,
            f"the {me} reset the connection after the TLS session was over "
            "(its kernel answering data that arrived after it closed the socket)",
        )
    phase = "during the handshake" if done is False else "after the handshake"
    pending = ""
    if peer.last_app is not None and (s.last_app is None or peer.last_app[0] > s.last_app[0]):
        pending = f"; the {other}'s last data (frame {peer.last_app[0]}) may have been unread"
    elif s.last_app is not None or peer.last_app is not None:
        pending = "; data was in flight"
    since = ""
    last_hs = s.finished or peer.finished
    if last_hs is not None:
        since = f", {_ms(s.rst[1] - last_hs[1])} after the Finished"
    return Verdict(
        "reset",
        "error",
        me,
        rst,
        f"the {me} reset the connection {phase}{since} without close_notify or alert{pending}",
    )


def _alert_detail(c: _Conn, i: int, a: AlertEvent, *, handshake: bool) -> str:
    who = _NAMES[i]
    if a.description is None:
        return f"the {who} sent an encrypted alert (no keys to read it)"
    cause = _ALERT_CAUSES.get(a.name)
    detail = f"the {who} sent fatal alert {a.name} ({a.description})"
    if handshake:
        last = c.sides[1 - i].last_handshake
        if last:
            detail += f" after the {_NAMES[1 - i]}'s {last}"
    if cause:
        detail += f": usually {cause}"
    ch = c.client_hello.message if c.client_hello else None
    hello = ch if isinstance(ch, ClientHello) else None
    if a.name == "handshake_failure" and c.client_hello is not None:
        offered = [name_of(CipherSuite, s) for s in hello.cipher_suites] if hello else []
        groups = [name_of(NamedGroup, g) for g in (offered_groups(hello) if hello else None) or ()]
        detail += f". Client offered {len(offered)} suites ({', '.join(offered[:4])}"
        detail += f"{', ...' if len(offered) > 4 else ''}) and groups {', '.join(groups[:5])}"
        if c.server_hello is not None:
            sh = c.server_hello.message
            chosen = name_of(CipherSuite, sh.cipher_suite) if isinstance(sh, ServerHello) else None
            detail += f"; server chose {chosen}"
    elif a.name == "protocol_version" and c.client_hello is not None:
        versions: list[int | None] = list((offered_versions(hello) if hello else None) or ()) or [
            hello.legacy_version if hello else None
        ]
        detail += f". Client offered {', '.join('None' if v is None else version_name(v) for v in versions)}"
    elif (
        a.name in ("unknown_ca", "bad_certificate", "certificate_unknown", "certificate_expired")
        and c.certificate
    ):
        names = [f"{x.subject} (issuer {x.issuer})" for x in _chain(c.certificate) if not isinstance(x, str)]
        if names:
            detail += ". Chain sent: " + " <- ".join(names)
    return detail


def _chain(ev: HandshakeEvent) -> tuple[CertSummary | str, ...]:
    return certificates(ev.message) if isinstance(ev.message, Certificate) else ()


def _certificate_verdicts(c: _Conn) -> list[Verdict]:
    if c.certificate is None:
        return []
    chain = _chain(c.certificate)
    if not chain or isinstance(chain[0], str):
        return []
    leaf = chain[0]
    frame = c.certificate.frame
    at = datetime.fromtimestamp(c.certificate.ts_ns / 1e9, UTC)
    out: list[Verdict] = []
    nb, na = leaf.not_before, leaf.not_after
    if at > na:
        out.append(
            Verdict(
                "certificate_problem",
                "error",
                "server",
                frame,
                f"the server certificate expired on {na.date()} (captured {at.date()})",
            )
        )
    if at < nb:
        out.append(
            Verdict(
                "certificate_problem",
                "error",
                "server",
                frame,
                f"the server certificate is not valid before {nb.isoformat()} "
                f"(captured {at.isoformat()}): check clocks",
            )
        )
    if c.sni and not hostname_matches(leaf, c.sni):
        out.append(
            Verdict(
                "certificate_problem",
                "error",
                "server",
                frame,
                f"the SNI {c.sni} is not among the certificate's names "
                f"({', '.join(leaf.sans) or leaf.subject})",
            )
        )
    if leaf.self_signed:
        out.append(
            Verdict(
                "certificate_problem",
                "warning",
                "server",
                frame,
                f"the server certificate is self-signed ({leaf.subject})",
            )
        )
    if leaf.key_type.startswith("RSA ") and 0 < leaf.key_bits < 2048:
        out.append(Verdict("certificate_problem", "warning", "server", frame, f"weak key: {leaf.key_type}"))
    return out
