"""The public event model of ``capdebug decrypt --json`` (see ARCHITECTURE.md, "Contracts").

Every event is a dataclass of typed facts (frozen for mypy, see ``_event``) whose
:meth:`to_json` gives exactly the JSON object of the contract. Field names follow the
contract; ``from_`` is spelled ``from`` in JSON.
A handshake event carries the parsed message itself (:mod:`capdebug.wire.handshake`); the
fields shown for it are named at render time by :mod:`capdebug.analysis.describe`, the one
place that turns typed facts into strings, so the decoder's per-record path builds no text.
Additions beyond the contract (``gap``, ``summary``) are documented in the README.
"""

from __future__ import annotations

import json
from dataclasses import field
from typing import Any, Final

from ..net.health import DirectionHealth
from ..wire.handshake import HandshakeMessage
from ._eventdef import _event
from .describe import handshake_fields

#: The encoder of ``decrypt --json`` lines: compact, UTF-8 kept as is (the C encoder).
encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Values a template may write without JSON escaping; anything else takes the generic path.
_PLAIN_FROM = frozenset(("client", "server"))
_PLAIN_FLAGS = frozenset(("SYN", "FIN", "RST"))

__all__ = [
    "AlertEvent",
    "AppDataEvent",
    "CcsEvent",
    "ConnectionEvent",
    "DecodeEvent",
    "EvictedEvent",
    "GapEvent",
    "HandshakeEvent",
    "HeartbeatEvent",
    "OverlapEvent",
    "PlaintextEvent",
    "Reason",
    "RecoveredEvent",
    "TcpEvent",
    "TcpHealthEvent",
    "UndecryptableEvent",
    "UpgradeEvent",
]


class Reason:
    """Stable reason codes of ``undecryptable`` events."""

    NO_KEY: Final = "no_key"
    """No secrets for this session's client_random in any key log."""
    KEYLOG_OTHER_SESSIONS: Final = "keylog_other_sessions"
    """No secrets for this session, and none of the key log's sessions are in the capture."""
    MISSING_LABELS: Final = "missing_labels"
    """Secrets exist for this client_random but not the ones this version needs."""
    SECRET_LENGTH: Final = "secret_length"
    """The secret's length does not fit the negotiated suite's hash."""
    NO_HANDSHAKE: Final = "no_handshake"
    """The handshake is not in the capture and no key log secret decrypts the records."""
    STREAM_GAP: Final = "stream_gap"
    """Bytes are missing from the TCP stream; records after the gap cannot be placed."""
    BAD_TAG: Final = "bad_tag"
    """Authentication failed: the secret is wrong (another session's, or corrupt)."""
    UNSUPPORTED_SUITE: Final = "unsupported_suite"
    """capdebug cannot decrypt the negotiated cipher suite."""
    LATE_SECRETS: Final = "late_secrets"
    """The Decryption Secrets Block comes after the packets it unlocks (decrypted anyway)."""
    RSA_KEY_EXCHANGE: Final = "rsa_no_master_secret"
    """TLS 1.2 session with no CLIENT_RANDOM line (an RSA private key would be needed)."""
    SSLV2: Final = "sslv2"
    """SSLv2-compatible ClientHello: nothing after it is decoded."""
    NOT_TLS: Final = "not_tls"
    """The stream stopped looking like TLS (corrupt records)."""
    OVERSIZED_HANDSHAKE: Final = "oversized_handshake"
    """A handshake message declared a length beyond the decoder's bound (a hello declaring
    16 MB): it is not buffered, and the keys that depend on it cannot be found."""


@_event
class DecodeEvent:
    conn: int
    """1-based connection number in order of first appearance."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json_line(self) -> str:
        """:meth:`to_json` encoded as one ``decrypt --json`` line (no newline). The frequent
        events override it with a template giving the same bytes (tests/decode compares both
        on every fixture): building the dict and encoding it cost ~5 us an event, the template
        under 2."""
        return encode_json(self.to_json())


@_event
class ConnectionEvent(DecodeEvent):
    client: str
    server: str
    first_frame: int
    roles_from: str = "syn"
    """How the roles were decided: "syn", "client_hello" or "guess" (port numbers)."""
    interface: str | None = None
    """With a capture of several interfaces: the one its first frame came from (pcapng
    ``if_name``, else "interface N"); None (and absent from JSON) with one interface."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "event": "connection",
            "conn": self.conn,
            "client": self.client,
            "server": self.server,
            "first_frame": self.first_frame,
            "roles_from": self.roles_from,
        }
        if self.interface is not None:
            out["interface"] = self.interface
        return out


@_event
class TcpEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    flag: str
    """"SYN" | "FIN" | "RST"."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "tcp",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "flag": self.flag,
        }

    def to_json_line(self) -> str:
        if self.from_ not in _PLAIN_FROM or self.flag not in _PLAIN_FLAGS:
            return encode_json(self.to_json())
        # repr(float) is what the JSON encoder writes for a finite float.
        return (
            f'{{"event":"tcp","conn":{self.conn:d},"frame":{self.frame:d},"ts":{self.ts_ns / 1e9!r},'
            f'"from":"{self.from_}","flag":"{self.flag}"}}'
        )


@_event
class TcpHealthEvent(DecodeEvent):
    """What TCP did on a connection that had trouble (retransmissions, SYN retries, a zero
    window, a RST out of its sender's TTL profile, a SYN never answered): emitted when the
    connection ends, only for such connections (net/health.py)."""

    frame: int
    ts_ns: int
    client: DirectionHealth
    server: DirectionHealth
    connect_ns: int | None
    """First SYN to the SYN+ACK."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "tcp_health",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "connect": None if self.connect_ns is None else self.connect_ns / 1e9,
            "client": _health_json(self.client),
            "server": _health_json(self.server),
        }


def _health_json(h: DirectionHealth) -> dict[str, Any]:
    stuck = h.stuck
    return {
        "retransmissions": h.retransmissions,
        "retransmitted_bytes": h.retransmitted_bytes,
        "retransmission_time": h.retransmission_ns / 1e9,
        "rto_stalls": h.rto_stalls,
        "syns": h.syns,
        "zero_windows": h.zero_windows,
        "ttls": list(h.ttls),
        "rst_ttl": h.rst_ttl,
        "stuck": None
        if stuck is None
        else {"seq": stuck.seq, "size": stuck.size, "transmissions": stuck.transmissions},
    }


@_event
class GapEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    size: int
    """Bytes missing from the stream."""
    cause: str = "lost"
    """"snaplen" when the capture cut the packet short; "capture" when the receiver
    acknowledged the missing bytes (it got them: the capture lost them); "network" when the
    receiver never acknowledged them and the sender retransmitted (they never arrived: the
    network lost them, the retransmissions too); "out_of_order" when more than the reassembly
    limit (``--max-out-of-order``) waited behind the hole, which was given up although its
    bytes may be later in the capture; else "lost" (not captured, cause unknown)."""
    cut_frames: tuple[int, ...] = ()
    """With cause "snaplen": the frames the snaplen cut whose missing ends make up the gap
    (``frame`` is where the gap was decided, usually the next frame of that side). In JSON
    as ``cut_frames`` only then."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "gap",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "size": self.size,
            "cause": self.cause,
        } | ({"cut_frames": list(self.cut_frames)} if self.cut_frames else {})


@_event
class OverlapEvent(DecodeEvent):
    """A retransmitted segment repeated stream bytes with other content (net/reassembly.py,
    "Copies that differ"): the copy that arrived first was used, this one's bytes dropped. A
    sign of injection (a forged segment racing the real one) or of a broken middlebox."""

    frame: int
    """Frame of the later copy (dropped)."""
    ts_ns: int
    from_: str
    offset: int
    """Stream offset (from the first byte of the direction) of the first byte that differs."""
    size: int
    """Bytes compared with the first copy."""
    differ: int
    """Bytes among them that differ."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "overlap_conflict",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "offset": self.offset,
            "size": self.size,
            "differ": self.differ,
            "kept": "first",
        }


@_event
class EvictedEvent(DecodeEvent):
    """The connection was pushed out of the decoder's full connection table (net/flow.py,
    "Bounded state"): nothing after ``frame`` is analysed as part of it; a later segment of
    its 4-tuple starts a new connection."""

    frame: int
    """The frame whose new connection pushed it out."""
    ts_ns: int
    limit: int
    """The table's limit (``--max-connections``)."""
    carried_data: bool
    """It had carried data (else it was a half-open attempt, dropped first)."""
    bound: str = "connections"
    """Which limit ``limit`` is: "connections" (open connections, ``--max-connections``) or
    "half_open" (connections that have not carried data, an eighth of it)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "evicted",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "limit": self.limit,
            "bound": self.bound,
            "carried_data": self.carried_data,
        }


@_event
class HandshakeEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    type: int
    name: str
    encrypted: bool
    message: HandshakeMessage | None = field(default=None, compare=False)
    """The parsed message; None when it could not be read (``encrypted_handshake``, SSLv2, or
    malformed: see :attr:`error`)."""
    length: int = 0
    """Length of the message body."""
    error: str | None = None
    """Why the message did not decode."""
    sslv2: bool = False
    """An SSLv2-compatible ClientHello (not parsed)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "handshake",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "type": self.type,
            "name": self.name,
            "encrypted": self.encrypted,
        }
        out.update(handshake_fields(self))
        return out


@_event
class CcsEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "ccs",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
        }


@_event
class AlertEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    level: int | None
    description: int | None
    """None when the alert is encrypted and could not be decrypted."""
    name: str
    encrypted: bool
    record_length: int = 0
    """Length of the protected record (fragment) that carried it, when it was not decrypted."""
    likely: bool = False
    """True when the alert was inferred from an undecrypted TLS 1.3 record's size."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "alert",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "level": self.level,
            "description": self.description,
            "name": self.name,
            "encrypted": self.encrypted,
        }
        if self.likely:
            out["likely"] = True
        return out


@_event
class AppDataEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    length: int
    """Plaintext length when decrypted, else the record length."""
    decrypted: bool
    early: bool = False
    """0-RTT early data (TLS 1.3)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "app_data",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "length": self.length,
            "decrypted": self.decrypted,
        }
        if self.early:
            out["early_data"] = True
        return out

    def to_json_line(self) -> str:
        if self.early or self.from_ not in _PLAIN_FROM:
            return encode_json(self.to_json())
        return (
            f'{{"event":"app_data","conn":{self.conn:d},"frame":{self.frame:d},'
            f'"ts":{self.ts_ns / 1e9!r},"from":"{self.from_}","length":{self.length:d},'
            f'"decrypted":{"true" if self.decrypted else "false"}}}'
        )


@_event
class HeartbeatEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    type: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "heartbeat",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "type": self.type,
        }


@_event
class RecoveredEvent(DecodeEvent):
    """A connection picked up mid-stream whose records a key-log secret proved to decrypt."""

    frame: int
    ts_ns: int
    from_: str
    label: str
    """The key-log label that worked, e.g. CLIENT_TRAFFIC_SECRET_0."""
    cipher_suite: str
    seq: int
    """The record sequence number at which it authenticated."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "recovered",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "label": self.label,
            "cipher_suite": self.cipher_suite,
            "seq": self.seq,
        }


@_event
class UndecryptableEvent(DecodeEvent):
    frame: int
    ts_ns: int
    from_: str
    reason: str
    """A stable code from :class:`Reason`."""
    message: str
    """One sentence for a person."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "undecryptable",
            "conn": self.conn,
            "frame": self.frame,
            "from": self.from_,
            "reason": {"code": self.reason, "message": self.message},
        }


@_event
class UpgradeEvent(DecodeEvent):
    """A plaintext protocol asked to start TLS (see :mod:`capdebug.analysis.prelude`)."""

    frame: int
    """The reply's frame (for ``unknown``: the frame where the ClientHello was found)."""
    ts_ns: int
    protocol: str
    """"smtp", "imap", "pop3", "ftp", "nntp", "managesieve", "ldap", "xmpp", "postgresql",
    "mysql", "http-connect", or "unknown" (a ClientHello found after plaintext)."""
    command: str
    command_frame: int
    reply: str
    accepted: bool
    from_: str = "server"
    """Who decided it: the server's reply; the client when there is none (MySQL's SSL
    request, a ClientHello found after plaintext)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "upgrade",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "protocol": self.protocol,
            "command": self.command,
            "command_frame": self.command_frame,
            "reply": self.reply,
            "accepted": self.accepted,
        }


@_event
class PlaintextEvent(DecodeEvent):
    """A direction's first bytes were not TLS where TLS was expected (or before an upgrade)."""

    frame: int
    ts_ns: int
    from_: str
    kind: str
    """What they look like (:func:`capdebug.analysis.prelude.classify`)."""
    text: str
    """The first bytes as text, control bytes escaped."""

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "plaintext",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "kind": self.kind,
            "text": self.text,
        }
