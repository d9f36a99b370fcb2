"""Engine configuration: one frozen object shared by every connection made with it.

Defaults are the safe ones: TLS 1.3 only, the three mandatory-to-implement AEAD suites
(RFC 8446 section 9.1), x25519/secp256r1/secp384r1, and certificate verification *on*
(chain to ``trust_roots``, host name against ``server_name``, validity period). Turning
verification off takes ``verify=False`` and every connection made with it says so on the trace
sink (stderr when no callback is set) at its first step, whatever the trace categories are:
a disabled check must never be silent.

Secrets leave the engine only through ``key_log_callback``, one NSS key-log line at a time
(RFC 9850), the moment each secret is derived.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from ..crypto.x509 import PrivateKey
from ..errors import UsageError
from ..wire.constants import CipherSuite, NamedGroup, SignatureScheme
from .trace import TraceCallback, TraceCategory

__all__ = [
    "DEFAULT_CIPHER_SUITES",
    "DEFAULT_GROUPS",
    "DEFAULT_SIGNATURE_SCHEMES",
    "ClientAuth",
    "Credential",
    "TLSConfig",
]

#: RFC 8446 section 9.1 mandatory suites first, then the other common one.
DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
DEFAULT_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.ed25519,
)


class ClientAuth(enum.Enum):
    """Does a server ask for a client certificate (RFC 8446 section 4.3.2)?"""

    NONE = "none"
    OPTIONAL = "optional"
    """Ask; accept an empty Certificate."""
    REQUIRED = "required"
    """Ask; an empty Certificate is a certificate_required alert."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate chain (DER, leaf first) and the private key of its leaf.

    ``private_key`` is a key object made by ``crypto/``
    (:func:`capdebug.crypto.x509_engine.load_private_key`), so that the key is parsed once, not
    per connection.
    """

    chain: tuple[bytes, ...]
    private_key: PrivateKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Everything that is the same for many connections."""

    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_CIPHER_SUITES
    """In preference order. A server picks by its own order (RFC 8446 leaves it to the server)."""
    groups: tuple[NamedGroup, ...] = DEFAULT_GROUPS
    """supported_groups, in preference order."""
    key_share_groups: tuple[NamedGroup, ...] | None = None
    """Client: groups to send key shares for in the first ClientHello (default: the first of
    ``groups``). A server that wants another group answers with a HelloRetryRequest."""
    signature_schemes: tuple[SignatureScheme, ...] = DEFAULT_SIGNATURE_SCHEMES
    credential: Credential | None = None
    """Our certificate and key: required for a server, optional for a client (mutual TLS)."""
    trust_roots: tuple[bytes, ...] = ()
    """DER certificates of the CAs we trust for the peer's chain."""
    verify: bool = True
    """Verify the peer's certificate chain, validity and name. Off only on explicit request."""
    server_name: str | None = None
    """Client: the SNI to send and the name to verify (host name or IP address)."""
    alpn_protocols: tuple[str, ...] = ()
    """Client: offered; server: accepted, in server preference order (RFC 7301)."""
    client_auth: ClientAuth = ClientAuth.NONE
    """Server: ask for a client certificate."""
    record_padding: int = 0
    """Pad each protected record's TLSInnerPlaintext up to a multiple of this many bytes
    (RFC 8446 section 5.4); 0 sends no padding."""
    max_fragment: int = 1 << 14
    """Largest plaintext per record we send (at most 2^14, RFC 8446 section 5.1)."""
    middlebox_compat: bool = True
    """RFC 8446 appendix D.4: a fake session id and a ChangeCipherSpec before our first
    encrypted flight, so that middleboxes see something like TLS 1.2 resumption."""
    session_tickets: int = 1
    """Server: NewSessionTicket messages to send after the handshake (RFC 8446 4.6.1)."""
    ticket_lifetime: int = 7200
    key_log_callback: Callable[[str], None] | None = None
    """Receives each NSS key log line (no newline) as soon as the secret exists."""
    key_log_update_lines: bool = False
    """Also log OpenSSL-style CLIENT_/SERVER_TRAFFIC_SECRET_N lines after each KeyUpdate."""
    trace_callback: TraceCallback | None = None
    trace: TraceCategory | None = None
    """Categories to trace; ``None`` reads ``CAPDEBUG_TRACE`` (all of them if only a callback
    is given)."""

    def __post_init__(self) -> None:
        if not self.cipher_suites:
            raise UsageError("TLSConfig: no cipher suites")
        supported = set(DEFAULT_CIPHER_SUITES)
        for s in self.cipher_suites:
            if s not in supported:
                raise UsageError(f"TLSConfig: cipher suite {s!r} is not supported by the engine")
        if not self.groups:
            raise UsageError("TLSConfig: no groups")
        for g in self.groups:
            if g not in DEFAULT_GROUPS:
                raise UsageError(f"TLSConfig: group {g!r} is not supported by the engine")
        if self.key_share_groups is not None:
            for g in self.key_share_groups:
                if g not in self.groups:
                    raise UsageError(f"TLSConfig: key share group {g!r} is not in groups")
        for sch in self.signature_schemes:
            if sch not in DEFAULT_SIGNATURE_SCHEMES:
                raise UsageError(f"TLSConfig: signature scheme {sch!r} is not supported by the engine")
        if not 0 <= self.record_padding <= 1 << 14:
            raise UsageError("TLSConfig: record_padding must be 0..16384")
        if not 1 <= self.max_fragment <= 1 << 14:
            raise UsageError("TLSConfig: max_fragment must be 1..16384")
        for p in self.alpn_protocols:
            if not 1 <= len(p.encode()) <= 255:
                raise UsageError(f"TLSConfig: ALPN protocol {p!r} must be 1..255 bytes")

    @property
    def initial_key_share_groups(self) -> tuple[NamedGroup, ...]:
        return self.key_share_groups if self.key_share_groups is not None else self.groups[:1]
