"""Engine configuration: one frozen object shared by every connection made with it.

Defaults are the safe ones: TLS 1.2 and 1.3 (``min_version``/``max_version``), the three TLS
1.3 AEAD suites (RFC 8446 section 9.1) then the TLS 1.2 ECDHE suites (AEAD first, CBC with
encrypt_then_mac last), the extended master secret (RFC 7627), x25519/secp256r1/secp384r1,
no legacy RSA key exchange unless its suite is named in ``cipher_suites``, and certificate
verification *on*
(chain to ``trust_roots``, host name against ``server_name``, validity period). Turning
verification off takes ``verify=False`` and every connection made with it says so on the trace
sink (stderr when no callback is set) at its first step, whatever the trace categories are:
a disabled check must never be silent.

Secrets leave the engine only through ``key_log_callback``, one NSS key-log line at a time
(RFC 9850), the moment each secret is derived.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..crypto.x509 import PrivateKey
from ..errors import UsageError
from ..wire.constants import CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme
from .session import SessionCache, TicketStore
from .trace import TraceCallback, TraceCategory

__all__ = [
    "DEFAULT_CIPHER_SUITES",
    "DEFAULT_GROUPS",
    "DEFAULT_SIGNATURE_SCHEMES",
    "LEGACY_RSA_SUITES",
    "OPENSSL_CIPHER_NAMES",
    "SUPPORTED_CIPHER_SUITES",
    "TLS12_CIPHER_SUITES",
    "TLS13_CIPHER_SUITES",
    "ClientAuth",
    "Credential",
    "TLSConfig",
]

_CS = CipherSuite
#: RFC 8446 section 9.1 mandatory suites first, then the other common one.
TLS13_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    _CS.TLS_AES_128_GCM_SHA256,
    _CS.TLS_AES_256_GCM_SHA384,
    _CS.TLS_CHACHA20_POLY1305_SHA256,
)
#: TLS 1.2 with forward secrecy: AEAD (RFC 5289, RFC 7905) first, legacy CBC (RFC 8422) last.
TLS12_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
)
#: The static-RSA key exchange (RFC 5246 7.4.7.1): no forward secrecy, so never on by default;
#: named in ``cipher_suites`` it is offered/accepted (the one case a server key decrypts).
LEGACY_RSA_SUITES: tuple[CipherSuite, ...] = (_CS.TLS_RSA_WITH_AES_128_GCM_SHA256,)
DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = TLS13_CIPHER_SUITES + TLS12_CIPHER_SUITES
#: OpenSSL's names of the TLS 1.2 suites (``openssl ciphers -stdname``); TLS 1.3 suites have none
#: of their own (OpenSSL uses the IANA names).
OPENSSL_CIPHER_NAMES: dict[CipherSuite, str] = {
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
    _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
    _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
    _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
    _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
    _CS.TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
}
SUPPORTED_CIPHER_SUITES: frozenset[CipherSuite] = frozenset(DEFAULT_CIPHER_SUITES + LEGACY_RSA_SUITES)
del _CS
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
DEFAULT_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.ed25519,
    # TLS 1.2 only (RFC 8446 4.2.3: offered for TLS 1.2 servers, never used in TLS 1.3).
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
)
#: Schemes a TLS 1.3 CertificateVerify must not use (RFC 8446 4.4.3).
TLS12_ONLY_SCHEMES: frozenset[int] = frozenset(
    (SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384, SignatureScheme.rsa_pkcs1_sha512)
)
VERSIONS: tuple[ProtocolVersion, ...] = (ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3)


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
    """In preference order, TLS 1.3 and TLS 1.2 suites in one list (each version uses its own).
    A server picks by its own order (RFC 8446 leaves it to the server)."""
    min_version: ProtocolVersion = ProtocolVersion.TLS1_2
    max_version: ProtocolVersion = ProtocolVersion.TLS1_3
    """The versions we offer (client) or accept (server); outside them is protocol_version."""
    extended_master_secret: bool = True
    """TLS 1.2: offer (client) / accept (server) the extended master secret (RFC 7627)."""
    require_extended_master_secret: bool = False
    """TLS 1.2: abort (handshake_failure) when the peer does not use it (RFC 7627 5.2, 5.3)."""
    encrypt_then_mac: bool = True
    """TLS 1.2 CBC suites: offer / accept encrypt_then_mac (RFC 7366)."""
    send_fallback_scsv: bool = False
    """Client: put TLS_FALLBACK_SCSV in the ClientHello (RFC 7507), as a client retrying with
    a lower maximum version after a failure does (``openssl s_client -fallback_scsv``)."""
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
    ticket_key: bytes = b""
    """Server: the AES-256-GCM key sealing its TLS 1.3 tickets (32 bytes); empty: a random
    one per config. Servers sharing a key resume each other's tickets."""
    ticket_store: TicketStore = field(default_factory=TicketStore, repr=False, compare=False)
    """Server: ids of tickets already used, so each resumes once (RFC 8446 8.1)."""
    session_cache: SessionCache = field(default_factory=SessionCache, repr=False, compare=False)
    """Server: TLS 1.2 sessions by session ID, for resumption (RFC 5246 7.4.1.2)."""
    max_early_data: int = 0
    """Server: 0-RTT bytes to accept per ticket (RFC 8446 4.2.10); 0 refuses early data."""
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
        if not self.ticket_key:
            object.__setattr__(self, "ticket_key", os.urandom(32))
        elif len(self.ticket_key) != 32:
            raise UsageError("TLSConfig: ticket_key must be 32 bytes")
        if not 0 <= self.ticket_lifetime <= 604800:
            raise UsageError("TLSConfig: ticket_lifetime is at most 7 days (RFC 8446 4.6.1)")
        supported = SUPPORTED_CIPHER_SUITES
        for s in self.cipher_suites:
            if s not in supported:
                raise UsageError(f"TLSConfig: cipher suite {s!r} is not supported by the engine")
        for v in (self.min_version, self.max_version):
            if v not in VERSIONS:
                raise UsageError(f"TLSConfig: version {v!r} is not supported by the engine (TLS 1.2, 1.3)")
        if self.min_version > self.max_version:
            raise UsageError("TLSConfig: min_version is above max_version")
        if not self.suites_for(self.min_version) and not self.suites_for(self.max_version):
            raise UsageError("TLSConfig: no cipher suite for the enabled versions")
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

    def suites_for(self, version: int) -> tuple[CipherSuite, ...]:
        """Our suites, in order, that version ``version`` can use."""
        tls13 = version == ProtocolVersion.TLS1_3
        return tuple(s for s in self.cipher_suites if (s in TLS13_CIPHER_SUITES) == tls13)

    def allows(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version

    @property
    def initial_key_share_groups(self) -> tuple[NamedGroup, ...]:
        return self.key_share_groups if self.key_share_groups is not None else self.groups[:1]
