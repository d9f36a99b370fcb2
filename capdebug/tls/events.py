"""Events the sans-IO engine hands to its user through ``Connection.next_event()``.

A fatal error is not an event: ``next_event()`` raises the :class:`~capdebug.errors.TLSError`
at the point in the event stream where it happened, after the events that came before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.constants import AlertDescription, CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme
from .session import Session

__all__ = [
    "AlertReceived",
    "ApplicationData",
    "CloseNotifyReceived",
    "EarlyDataReceived",
    "Event",
    "HandshakeComplete",
    "HelloRetryRequestReceived",
    "HelloRetryRequestSent",
    "KeyUpdateReceived",
    "NewSessionTicketReceived",
    "RenegotiationRefused",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every engine event."""


@dataclass(frozen=True, slots=True)
class HelloRetryRequestReceived(Event):
    """Client side: the server asked for a key share in another group (RFC 8446 4.1.4)."""

    group: NamedGroup | None
    """The group the server selected; None for an HRR that only carries a cookie."""


@dataclass(frozen=True, slots=True)
class HelloRetryRequestSent(Event):
    """Server side: no acceptable key share in the first ClientHello, HRR sent (RFC 8446 4.1.4)."""

    group: NamedGroup


@dataclass(frozen=True, slots=True)
class HandshakeComplete(Event):
    """Both Finished messages are verified (client) or the client's Finished is (server)."""

    cipher_suite: CipherSuite
    group: NamedGroup | None
    """The (EC)DHE group of the key exchange; None for the TLS 1.2 static-RSA key exchange."""
    alpn: str | None
    """The negotiated application protocol, if any (RFC 7301)."""
    server_name: str | None
    """SNI sent (client) or received (server)."""
    signature_scheme: SignatureScheme | None
    """The scheme of the server's CertificateVerify (TLS 1.3) or ServerKeyExchange signature
    (TLS 1.2); None for the TLS 1.2 static-RSA key exchange, which has no server signature."""
    peer_certificates: tuple[bytes, ...] = field(repr=False)
    """The peer's certificate chain (DER), leaf first; empty when it sent none."""
    hello_retry: bool
    """A HelloRetryRequest happened on the way."""
    version: ProtocolVersion = ProtocolVersion.TLS1_3
    extended_master_secret: bool = False
    """TLS 1.2: the master secret is bound to the handshake (RFC 7627)."""
    encrypt_then_mac: bool = False
    """TLS 1.2 CBC: records are encrypt-then-MAC (RFC 7366)."""
    resumed: bool = False
    """TLS 1.3: authenticated by a PSK from an earlier session's ticket (no certificates)."""
    early_data: bool | None = None
    """TLS 1.3 0-RTT: None when not offered; True accepted; False rejected (the data was lost)."""


@dataclass(frozen=True, slots=True)
class ApplicationData(Event):
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CloseNotifyReceived(Event):
    """The peer sent close_notify: it will send nothing more (end of data, RFC 8446 6.1).

    The connection may still send until it calls ``close()``/``shutdown_send()`` itself.
    """


@dataclass(frozen=True, slots=True)
class AlertReceived(Event):
    """An alert arrived. Fatal ones are followed by a ``TLSError`` (``ERR_PEER_ALERT``) from the
    next ``next_event()`` call; close_notify is reported as :class:`CloseNotifyReceived` as well."""

    level: int
    description: AlertDescription | int


@dataclass(frozen=True, slots=True)
class KeyUpdateReceived(Event):
    """The peer moved to its next traffic secret (RFC 8446 4.6.3); when it requested an update,
    our own KeyUpdate has already been queued."""

    update_requested: bool


@dataclass(frozen=True, slots=True)
class NewSessionTicketReceived(Event):
    """A ticket for resumption (RFC 8446 4.6.1)."""

    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes = field(repr=False)
    resumption_secret: bytes = field(repr=False)
    """The PSK for this ticket: HKDF-Expand-Label(resumption_master_secret, "resumption", nonce)."""
    session: Session | None = field(default=None, repr=False)
    """The session to resume with (``Connection(..., session=...)``), serialisable."""


@dataclass(frozen=True, slots=True)
class RenegotiationRefused(Event):
    """TLS 1.2: the peer tried to renegotiate (a HelloRequest to a client, a ClientHello to a
    server after the handshake); we answered with a warning no_renegotiation (RFC 5246 7.2.2,
    RFC 5746 4.2, 4.4) and the connection goes on."""

    by_client: bool
    """The client asked (ClientHello) rather than the server (HelloRequest)."""


@dataclass(frozen=True, slots=True)
class EarlyDataReceived(Event):
    """Server: 0-RTT application data (RFC 8446 2.3). It can be a replay by an attacker unless
    the ticket is single use (ours are): act on it only if that is acceptable."""

    data: bytes = field(repr=False)
