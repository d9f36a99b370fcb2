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

from dataclasses import dataclass
from typing import Any, Final

from ..wire.handshake import HandshakeMessage
from .describe import handshake_fields
from .event_base import PLAIN_FROM, DecodeEvent, Reason, encode_json
from .tcp_events import EvictedEvent, GapEvent, OverlapEvent, TcpEvent, TcpHealthEvent

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


@dataclass(slots=True, init=False, unsafe_hash=True)
class ConnectionEvent(DecodeEvent):
    conn: Final[int]
    client: Final[str]
    server: Final[str]
    first_frame: Final[int]
    roles_from: Final[str]
    """How the roles were decided: "syn", "client_hello", "server_hello", "keys" (a traffic
    secret of one role opened its records) or "guess" (port numbers)."""
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
        if self.early or self.from_ not in PLAIN_FROM:
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
