"""Sessions for resumption: what a client keeps from a NewSessionTicket (RFC 8446 4.6.1), how
it is written to a file for a later process (``connect --sess-out/--sess-in``), and what a
server seals inside its tickets.

A :class:`Session` holds a secret (the resumption PSK): its ``repr`` hides it, and
:meth:`Session.to_bytes` is meant for a file created 0600 by the caller.

Server side, tickets are self-encrypting (:mod:`capdebug.crypto.tickets`): the state below is
sealed under ``TLSConfig.ticket_key``. Each ticket carries a random id; :class:`TicketStore`
remembers the ids already used so that a ticket resumes once (single use, RFC 8446 8.1), which
is also the anti-replay for 0-RTT.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from .._buffer import Buffer
from ..errors import DecodeError, NeedData, UsageError
from ..wire.constants import CipherSuite, ProtocolVersion

__all__ = ["Session", "SessionCache", "TicketState", "TicketState12", "TicketStore"]

_FORMAT = "capdebug-session-1"
_TAG13, _TAG12 = 0x13, 0x12


@dataclass(frozen=True, slots=True)
class Session:
    """A TLS 1.3 resumable session, as the client received it."""

    version: ProtocolVersion
    cipher_suite: CipherSuite
    ticket: bytes = field(repr=False)
    psk: bytes = field(repr=False)
    ticket_age_add: int
    ticket_lifetime: int
    """Seconds the server promised to accept the ticket for."""
    issued_at_ms: int | None
    """When it was received (ms since the epoch), from the ``now`` given to the connection;
    None when the connection had no clock (the ticket age is then sent as 0)."""
    max_early_data: int = 0
    """0-RTT bytes the server accepts with it (early_data in NewSessionTicket); 0: none."""
    server_name: str | None = None
    alpn: str | None = None
    # TLS 1.2 (RFC 5246 7.4.1.2 session IDs, RFC 5077 tickets)
    session_id: bytes = b""
    master_secret: bytes = field(default=b"", repr=False)
    extended_master_secret: bool = False

    def to_bytes(self) -> bytes:
        """JSON, secrets in hex: for a file created 0600."""
        data = {
            "format": _FORMAT,
            "version": int(self.version),
            "cipher_suite": int(self.cipher_suite),
            "ticket": self.ticket.hex(),
            "psk": self.psk.hex(),
            "ticket_age_add": self.ticket_age_add,
            "ticket_lifetime": self.ticket_lifetime,
            "issued_at_ms": self.issued_at_ms,
            "max_early_data": self.max_early_data,
            "server_name": self.server_name,
            "alpn": self.alpn,
            "session_id": self.session_id.hex(),
            "master_secret": self.master_secret.hex(),
            "extended_master_secret": self.extended_master_secret,
        }
        return json.dumps(data, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Session:
        try:
            raw = json.loads(data)
            if raw.get("format") != _FORMAT:
                raise ValueError(f"not a {_FORMAT} file")
            issued = raw["issued_at_ms"]
            return cls(
                ProtocolVersion(raw["version"]),
                CipherSuite(raw["cipher_suite"]),
                bytes.fromhex(raw["ticket"]),
                bytes.fromhex(raw["psk"]),
                int(raw["ticket_age_add"]),
                int(raw["ticket_lifetime"]),
                None if issued is None else int(issued),
                int(raw.get("max_early_data", 0)),
                raw.get("server_name"),
                raw.get("alpn"),
                bytes.fromhex(raw.get("session_id", "")),
                bytes.fromhex(raw.get("master_secret", "")),
                bool(raw.get("extended_master_secret", False)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"unreadable session file: {exc}") from exc


@dataclass(frozen=True, slots=True)
class TicketState:
    """What a server seals in a TLS 1.3 ticket."""

    ticket_id: bytes
    cipher_suite: int
    psk: bytes = field(repr=False)
    ticket_age_add: int
    issued_at_ms: int
    """0 when the server had no clock."""
    lifetime: int
    max_early_data: int
    alpn: str
    server_name: str

    def encode(self) -> bytes:
        buf = Buffer()
        buf.push_uint8(_TAG13)
        buf.push_opaque(1, self.ticket_id)
        buf.push_uint16(self.cipher_suite)
        buf.push_opaque(1, self.psk)
        buf.push_uint32(self.ticket_age_add)
        buf.push_uint64(self.issued_at_ms)
        buf.push_uint32(self.lifetime)
        buf.push_uint32(self.max_early_data)
        buf.push_opaque(1, self.alpn.encode())
        buf.push_opaque(2, self.server_name.encode())
        return buf.data()

    @classmethod
    def decode(cls, data: bytes) -> TicketState:
        buf = Buffer(data)
        try:
            if buf.pull_uint8() != _TAG13:
                raise DecodeError("not a TLS 1.3 ticket")
            state = cls(
                buf.pull_opaque(1),
                buf.pull_uint16(),
                buf.pull_opaque(1),
                buf.pull_uint32(),
                buf.pull_uint64(),
                buf.pull_uint32(),
                buf.pull_uint32(),
                buf.pull_opaque(1).decode("utf-8"),
                buf.pull_opaque(2).decode("utf-8"),
            )
        except (NeedData, UnicodeDecodeError) as exc:
            raise DecodeError(f"ticket state: {exc}") from exc
        if not buf.eof():
            raise DecodeError("ticket state: bytes left over")
        return state


class TicketStore:
    """Ticket ids already used (bounded; the oldest are forgotten first, which a server must
    accept as the limit of its anti-replay, RFC 8446 8). Thread-safe: one store serves every
    connection made with a config."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._used: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def use(self, ticket_id: bytes) -> bool:
        """Mark ``ticket_id`` used; False when it already was (a replay)."""
        with self._lock:
            if ticket_id in self._used:
                return False
            self._used[ticket_id] = None
            if len(self._used) > self.capacity:
                self._used.popitem(last=False)
            return True


@dataclass(frozen=True, slots=True)
class TicketState12:
    """What a TLS 1.2 server keeps of a session: in its cache by session ID, or sealed in a
    RFC 5077 ticket."""

    cipher_suite: int
    master_secret: bytes = field(repr=False)
    extended_master_secret: bool
    issued_at_ms: int
    lifetime: int

    def encode(self) -> bytes:
        buf = Buffer()
        buf.push_uint8(_TAG12)
        buf.push_uint16(self.cipher_suite)
        buf.push_opaque(1, self.master_secret)
        buf.push_uint8(int(self.extended_master_secret))
        buf.push_uint64(self.issued_at_ms)
        buf.push_uint32(self.lifetime)
        return buf.data()

    @classmethod
    def decode(cls, data: bytes) -> TicketState12:
        buf = Buffer(data)
        try:
            if buf.pull_uint8() != _TAG12:
                raise DecodeError("not a TLS 1.2 ticket")
            state = cls(
                buf.pull_uint16(),
                buf.pull_opaque(1),
                bool(buf.pull_uint8()),
                buf.pull_uint64(),
                buf.pull_uint32(),
            )
        except NeedData as exc:
            raise DecodeError(f"ticket state: {exc}") from exc
        if not buf.eof():
            raise DecodeError("ticket state: bytes left over")
        return state


class SessionCache:
    """A TLS 1.2 server's sessions by session ID (bounded, oldest out first; thread-safe)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, TicketState12] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session_id: bytes, state: TicketState12) -> None:
        with self._lock:
            self._entries[session_id] = state
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def get(self, session_id: bytes) -> TicketState12 | None:
        with self._lock:
            return self._entries.get(session_id)
