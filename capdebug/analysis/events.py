"""The public event model of ``capdebug decrypt --json`` (see ARCHITECTURE.md, "Contracts").

Every event is a dataclass of typed facts (immutable for mypy, see :class:`DecodeEvent`) whose
:meth:`to_json` gives exactly the JSON object of the contract. Field names follow the
contract; ``from_`` is spelled ``from`` in JSON.
A handshake event carries the parsed message itself (:mod:`capdebug.wire.handshake`); the
fields shown for it are named at render time by :mod:`capdebug.analysis.describe`, the one
place that turns typed facts into strings, so the decoder's per-record path builds no text.
Additions beyond the contract (``gap``, ``summary``) are documented in the README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Final

from ..net.health import DirectionHealth
from ..wire.handshake import HandshakeMessage
from .describe import handshake_fields

#: The encoder of ``decrypt --json`` lines: compact, UTF-8 kept as is (the C encoder).
encode_json: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Values a template may write without JSON escaping; anything else takes the generic path.
_PLAIN_FROM: Final = frozenset(("client", "server"))
_PLAIN_FLAGS: Final = frozenset(("SYN", "FIN", "RST"))

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


class DecodeEvent:
    """The base of the events. Each event is a slotted dataclass whose fields are ``Final``
    (mypy rejects any assignment to an event outside its ``__init__``), with an explicit
    ``__init__``: with the generated one (or a decorator of ours, or ``frozen=True``) mypyc
    would keep the events interpreted classes, built through a Python-level ``__init__`` on
    the per-record path (README, "Compiled build"). The pure-Python cost is the same as the
    generated slotted ``__init__``; a frozen dataclass costs ~9,000 more instructions per event
    (cachegrind, 7 fields: each field set through ``object.__setattr__``). Equality and hash
    are the dataclass's (all fields but a handshake event's message)."""

    __slots__ = ()

    @property
    def conn(self) -> int:
        """1-based connection number in order of first appearance."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[type[DecodeEvent], tuple[object, ...]]:
        # A compiled event is built by its __init__ only (mypyc), so pickle its fields as the
        # arguments of the class (they are in __init__'s order).
        return type(self), tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json_line(self) -> str:
        """:meth:`to_json` encoded as one ``decrypt --json`` line (no newline). The frequent
        events override it with a template giving the same bytes (tests/decode compares both
        on every fixture): building the dict and encoding it cost ~5 us an event, the template
        under 2."""
        return encode_json(self.to_json())


@dataclass(slots=True, init=False, unsafe_hash=True)
class ConnectionEvent(DecodeEvent):
    conn: Final[int]
    client: Final[str]
    server: Final[str]
    first_frame: Final[int]
    roles_from: Final[str]
    """How the roles were decided: "syn", "client_hello" or "guess" (port numbers)."""
    interface: Final[str | None]
    """With a capture of several interfaces: the one its first frame came from (pcapng
    ``if_name``, else "interface N"); None (and absent from JSON) with one interface."""

    def __init__(
        self,
        conn: int,
        client: str,
        server: str,
        first_frame: int,
        roles_from: str = "syn",
        interface: str | None = None,
    ) -> None:
        self.conn = conn
        self.client = client
        self.server = server
        self.first_frame = first_frame
        self.roles_from = roles_from
        self.interface = interface

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class TcpEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    flag: Final[str]
    """"SYN" | "FIN" | "RST"."""

    def __init__(self, conn: int, frame: int, ts_ns: int, from_: str, flag: str) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.flag = flag

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class TcpHealthEvent(DecodeEvent):
    """What TCP did on a connection that had trouble (retransmissions, SYN retries, a zero
    window, a RST out of its sender's TTL profile, a SYN never answered): emitted when the
    connection ends, only for such connections (net/health.py)."""

    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    client: Final[DirectionHealth]
    server: Final[DirectionHealth]
    connect_ns: Final[int | None]
    """First SYN to the SYN+ACK."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        client: DirectionHealth,
        server: DirectionHealth,
        connect_ns: int | None,
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.client = client
        self.server = server
        self.connect_ns = connect_ns

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class GapEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    size: Final[int]
    """Bytes missing from the stream."""
    cause: Final[str]
    """"snaplen" when the capture cut the packet short; "capture" when the receiver
    acknowledged the missing bytes (it got them: the capture lost them); "network" when the
    receiver never acknowledged them and the sender retransmitted (they never arrived: the
    network lost them, the retransmissions too); "out_of_order" when more than the reassembly
    limit (``--max-out-of-order``) waited behind the hole, which was given up although its
    bytes may be later in the capture; else "lost" (not captured, cause unknown)."""
    cut_frames: Final[tuple[int, ...]]
    """With cause "snaplen": the frames the snaplen cut whose missing ends make up the gap
    (``frame`` is where the gap was decided, usually the next frame of that side). In JSON
    as ``cut_frames`` only then."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        from_: str,
        size: int,
        cause: str = "lost",
        cut_frames: tuple[int, ...] = (),
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.size = size
        self.cause = cause
        self.cut_frames = cut_frames

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class OverlapEvent(DecodeEvent):
    """A retransmitted segment repeated stream bytes with other content (net/reassembly.py,
    "Copies that differ"): the copy that arrived first was used, this one's bytes dropped. A
    sign of injection (a forged segment racing the real one) or of a broken middlebox."""

    conn: Final[int]
    frame: Final[int]
    """Frame of the later copy (dropped)."""
    ts_ns: Final[int]
    from_: Final[str]
    offset: Final[int]
    """Stream offset (from the first byte of the direction) of the first byte that differs."""
    size: Final[int]
    """Bytes compared with the first copy."""
    differ: Final[int]
    """Bytes among them that differ."""

    def __init__(
        self, conn: int, frame: int, ts_ns: int, from_: str, offset: int, size: int, differ: int
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.offset = offset
        self.size = size
        self.differ = differ

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class EvictedEvent(DecodeEvent):
    """The connection was pushed out of the decoder's full connection table (net/flow.py,
    "Bounded state"): nothing after ``frame`` is analysed as part of it; a later segment of
    its 4-tuple starts a new connection."""

    conn: Final[int]
    frame: Final[int]
    """The frame whose new connection pushed it out."""
    ts_ns: Final[int]
    limit: Final[int]
    """The table's limit (``--max-connections``)."""
    carried_data: Final[bool]
    """It had carried data (else it was a half-open attempt, dropped first)."""
    bound: Final[str]
    """Which limit ``limit`` is: "connections" (open connections, ``--max-connections``) or
    "half_open" (connections that have not carried data, an eighth of it)."""

    def __init__(
        self, conn: int, frame: int, ts_ns: int, limit: int, carried_data: bool, bound: str = "connections"
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.limit = limit
        self.carried_data = carried_data
        self.bound = bound

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


@dataclass(slots=True, init=False, eq=False)
class HandshakeEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    type: Final[int]
    name: Final[str]
    encrypted: Final[bool]
    message: Final[HandshakeMessage | None]
    """The parsed message; None when it could not be read (``encrypted_handshake``, SSLv2, or
    malformed: see :attr:`error`)."""
    length: Final[int]
    """Length of the message body."""
    error: Final[str | None]
    """Why the message did not decode."""
    sslv2: Final[bool]
    """An SSLv2-compatible ClientHello (not parsed)."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        from_: str,
        type: int,
        name: str,
        encrypted: bool,
        message: HandshakeMessage | None = None,
        length: int = 0,
        error: str | None = None,
        sslv2: bool = False,
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.type = type
        self.name = name
        self.encrypted = encrypted
        self.message = message
        self.length = length
        self.error = error
        self.sslv2 = sslv2

    def __eq__(self, other: object) -> bool:
        # The dataclass's equality but for the message (compared through its fields).
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, HandshakeEvent)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (
            self.conn,
            self.frame,
            self.ts_ns,
            self.from_,
            self.type,
            self.name,
            self.encrypted,
            self.length,
            self.error,
            self.sslv2,
        )

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class CcsEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]

    def __init__(self, conn: int, frame: int, ts_ns: int, from_: str) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "ccs",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
        }


@dataclass(slots=True, init=False, unsafe_hash=True)
class AlertEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    level: Final[int | None]
    description: Final[int | None]
    """None when the alert is encrypted and could not be decrypted."""
    name: Final[str]
    encrypted: Final[bool]
    record_length: Final[int]
    """Length of the protected record (fragment) that carried it, when it was not decrypted."""
    likely: Final[bool]
    """True when the alert was inferred from an undecrypted TLS 1.3 record's size."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        from_: str,
        level: int | None,
        description: int | None,
        name: str,
        encrypted: bool,
        record_length: int = 0,
        likely: bool = False,
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.level = level
        self.description = description
        self.name = name
        self.encrypted = encrypted
        self.record_length = record_length
        self.likely = likely

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class AppDataEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    length: Final[int]
    """Plaintext length when decrypted, else the record length."""
    decrypted: Final[bool]
    early: Final[bool]
    """0-RTT early data (TLS 1.3)."""

    def __init__(
        self, conn: int, frame: int, ts_ns: int, from_: str, length: int, decrypted: bool, early: bool = False
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.length = length
        self.decrypted = decrypted
        self.early = early

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class HeartbeatEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    type: Final[int | None]

    def __init__(self, conn: int, frame: int, ts_ns: int, from_: str, type: int | None) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.type = type

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "heartbeat",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "type": self.type,
        }


@dataclass(slots=True, init=False, unsafe_hash=True)
class RecoveredEvent(DecodeEvent):
    """A connection picked up mid-stream (or whose hellos were lost, or that the key log names
    by another client_random) whose records a key-log secret proved to decrypt."""

    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    label: Final[str]
    """The key-log label that worked, e.g. CLIENT_TRAFFIC_SECRET_0."""
    cipher_suite: Final[str]
    seq: Final[int]
    """The record sequence number at which it authenticated."""
    client_random: Final[str | None]
    """Hex: the key log's client_random for the session when it is not the ClientHello's on the
    wire (Encrypted Client Hello: the inner ClientHello's); else None (not in the JSON)."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        from_: str,
        label: str,
        cipher_suite: str,
        seq: int,
        client_random: str | None = None,
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.label = label
        self.cipher_suite = cipher_suite
        self.seq = seq
        self.client_random = client_random

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": "recovered",
            "conn": self.conn,
            "frame": self.frame,
            "ts": self.ts_ns / 1e9,
            "from": self.from_,
            "label": self.label,
            "cipher_suite": self.cipher_suite,
            "seq": self.seq,
        }
        if self.client_random is not None:
            out["client_random"] = self.client_random
        return out


@dataclass(slots=True, init=False, unsafe_hash=True)
class UndecryptableEvent(DecodeEvent):
    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    reason: Final[str]
    """A stable code from :class:`Reason`."""
    message: Final[str]
    """One sentence for a person."""

    def __init__(self, conn: int, frame: int, ts_ns: int, from_: str, reason: str, message: str) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.reason = reason
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "undecryptable",
            "conn": self.conn,
            "frame": self.frame,
            "from": self.from_,
            "reason": {"code": self.reason, "message": self.message},
        }


@dataclass(slots=True, init=False, unsafe_hash=True)
class UpgradeEvent(DecodeEvent):
    """A plaintext protocol asked to start TLS (see :mod:`capdebug.analysis.prelude`)."""

    conn: Final[int]
    frame: Final[int]
    """The reply's frame (for ``unknown``: the frame where the ClientHello was found)."""
    ts_ns: Final[int]
    protocol: Final[str]
    """"smtp", "imap", "pop3", "ftp", "nntp", "managesieve", "ldap", "xmpp", "postgresql",
    "mysql", "http-connect", or "unknown" (a ClientHello found after plaintext)."""
    command: Final[str]
    command_frame: Final[int]
    reply: Final[str]
    accepted: Final[bool]
    from_: Final[str]
    """Who decided it: the server's reply; the client when there is none (MySQL's SSL
    request, a ClientHello found after plaintext)."""

    def __init__(
        self,
        conn: int,
        frame: int,
        ts_ns: int,
        protocol: str,
        command: str,
        command_frame: int,
        reply: str,
        accepted: bool,
        from_: str = "server",
    ) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.protocol = protocol
        self.command = command
        self.command_frame = command_frame
        self.reply = reply
        self.accepted = accepted
        self.from_ = from_

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class PlaintextEvent(DecodeEvent):
    """A direction's first bytes were not TLS where TLS was expected (or before an upgrade)."""

    conn: Final[int]
    frame: Final[int]
    ts_ns: Final[int]
    from_: Final[str]
    kind: Final[str]
    """What they look like (:func:`capdebug.analysis.prelude.classify`)."""
    text: Final[str]
    """The first bytes as text, control bytes escaped."""

    def __init__(self, conn: int, frame: int, ts_ns: int, from_: str, kind: str, text: str) -> None:
        self.conn = conn
        self.frame = frame
        self.ts_ns = ts_ns
        self.from_ = from_
        self.kind = kind
        self.text = text

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
