"""The TLS 1.2 client's handshake handlers (RFC 5246 7.3, 7.4; RFC 8422 for ECDHE).

Reached when the ServerHello has no supported_versions extension. Each handler runs after the
transition table of ``state.py`` allowed its message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._buffer import Buffer
from ..crypto import kx12, x509_engine
from ..crypto import x509 as cx509
from ..crypto.schedule13 import Transcript
from ..crypto.suites import SUITES
from ..errors import CryptoError, DecodeError
from ..wire import extensions as wx
from ..wire.constants import CipherSuite, ExtensionType, HandshakeType, NamedGroup, SignatureScheme, name_of
from ..wire.handshake import (
    DOWNGRADE_TLS11,
    DOWNGRADE_TLS12,
    Certificate,
    CertificateEntry,
    CertificateRequest12,
    CertificateVerify,
    ClientKeyExchange,
    Finished,
    HandshakeMessage,
    HelloRequest,
    NewSessionTicket12,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
)
from ..wire.handshake12 import parse_ecdhe_server_key_exchange
from . import auth, hs12
from ._common import AD, TLS13, T, err
from .state import Branch

if TYPE_CHECKING:
    from .connection import Connection

TLS12 = hs12.TLS12
# Extensions a TLS 1.2 ServerHello may carry in answer to ours (RFC 5246 7.4.1.4: anything
# else is unsupported_extension).
_ANSWERABLE = frozenset(
    (
        ExtensionType.server_name,
        ExtensionType.renegotiation_info,
        ExtensionType.extended_master_secret,
        ExtensionType.encrypt_then_mac,
        ExtensionType.ec_point_formats,
        ExtensionType.application_layer_protocol_negotiation,
        ExtensionType.session_ticket,
    )
)


def on_server_hello(conn: Connection, msg: ServerHello, raw: bytes) -> None:
    cfg = conn.config
    if msg.legacy_version != TLS12 or not cfg.allows(TLS12) or not cfg.suites_for(TLS12):
        raise err(
            "ERR_NO_SHARED_VERSION",
            f"the server chose {name_of_version(msg.legacy_version)}; we allow "
            f"{name_of_version(cfg.min_version)} to {name_of_version(cfg.max_version)}",
            AD.protocol_version,
        )
    if TLS13 in offered_versions(conn) and msg.random[-8:] in (DOWNGRADE_TLS12, DOWNGRADE_TLS11):
        # RFC 8446 4.1.3: a TLS 1.3 server negotiating TLS 1.2 marks its random; a client that
        # offered TLS 1.3 and sees the mark is being downgraded by someone in the middle.
        raise err(
            "ERR_DOWNGRADE_DETECTED",
            "ServerHello.random carries the TLS 1.3 downgrade sentinel (RFC 8446 4.1.3)",
            AD.illegal_parameter,
        )
    if msg.cipher_suite not in cfg.suites_for(TLS12):
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"the server chose cipher suite {name_of(CipherSuite, msg.cipher_suite)} we did not offer",
            AD.illegal_parameter,
        )
    if msg.legacy_compression_method != 0:
        raise err("ERR_ILLEGAL_PARAMETER", "non-null compression method", AD.illegal_parameter)
    session = conn._session if conn._session is not None and conn._session.version == TLS12 else None
    resumed = bool(conn._session_id) and msg.legacy_session_id_echo == conn._session_id
    if resumed and session is None:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            "the server resumes a session we did not offer (our session id is a TLS 1.3 D.4 one)",
            AD.illegal_parameter,
        )
    if resumed and session is not None and msg.cipher_suite != session.cipher_suite:
        # RFC 5246 7.4.1.3: a resumed session keeps its cipher suite.
        raise err("ERR_ILLEGAL_PARAMETER", "resumed session with another cipher suite", AD.illegal_parameter)
    suite = SUITES[msg.cipher_suite]
    offered = {e.type for e in conn._client_hello.extensions} if conn._client_hello else set()
    for e in msg.extensions:
        if e.type not in offered or e.type not in _ANSWERABLE:
            raise err(
                "ERR_UNSUPPORTED_EXTENSION",
                f"ServerHello answers {name_of(ExtensionType, e.type)}, which we did not ask for",
                AD.unsupported_extension,
            )
    try:
        reneg = wx.ext(msg, ExtensionType.renegotiation_info)
        if reneg is not None and wx.pull_renegotiation_info(reneg):
            # RFC 5746 3.4: on the initial handshake the field must be empty.
            raise err("ERR_RENEGOTIATION_INFO", "non-empty renegotiation_info", AD.handshake_failure)
        ems = wx.ext(msg, ExtensionType.extended_master_secret)
        if ems is not None:
            wx.pull_empty(ems)
        etm = wx.ext(msg, ExtensionType.encrypt_then_mac)
        if etm is not None:
            wx.pull_empty(etm)
        ticket_ack = wx.ext(msg, ExtensionType.session_ticket)
        if ticket_ack is not None:
            wx.pull_empty(ticket_ack)  # RFC 5077 3.2: the server's is empty
        alpn = wx.ext(msg, ExtensionType.application_layer_protocol_negotiation)
        names = wx.pull_alpn_protocols(alpn) if alpn is not None else ()
    except DecodeError as exc:
        raise err("ERR_DECODE", f"ServerHello: {exc}", AD.decode_error) from exc
    if etm is not None and suite.is_aead:
        # RFC 7366 3: never answered for an AEAD suite.
        raise err("ERR_ILLEGAL_PARAMETER", "encrypt_then_mac with an AEAD suite", AD.illegal_parameter)
    if ems is None and cfg.require_extended_master_secret:
        raise err(
            "ERR_NO_EXTENDED_MASTER_SECRET",
            "the server does not use the extended master secret (RFC 7627 5.3)",
            AD.handshake_failure,
        )
    if reneg is None and conn._trace.mask & T.HANDSHAKE:
        conn._trace.emit(T.HANDSHAKE, "the server does not support secure renegotiation (RFC 5746)")
    if names:
        if len(names) != 1 or names[0] not in [p.encode() for p in cfg.alpn_protocols]:
            raise err("ERR_ILLEGAL_PARAMETER", f"server ALPN {names!r} was not offered", AD.illegal_parameter)
        conn.alpn = names[0].decode("latin-1")
    conn.version = TLS12
    conn.server_random = msg.random
    conn._secure_renegotiation = reneg is not None
    conn._ems = ems is not None
    conn._etm = etm is not None
    conn.suite = suite
    conn.cipher_suite = CipherSuite(msg.cipher_suite)
    conn._key_shares.clear()
    conn._ticket_expected = ticket_ack is not None
    conn._session_id = msg.legacy_session_id_echo
    conn._transcript = Transcript(suite.hash_name)
    hs12.add(conn, conn._client_hello_bytes)
    hs12.add(conn, raw)
    if resumed and session is not None:
        if session.extended_master_secret != conn._ems:
            # RFC 7627 5.3: a session and its resumption agree on the extended master secret.
            raise err(
                "ERR_NO_EXTENDED_MASTER_SECRET",
                "resumed session without the extended master secret it was made with",
                AD.handshake_failure,
            )
        conn._resumed12 = True
        hs12.install_master_secret(conn, session.master_secret)
        branch = Branch.TLS12_RESUMED_TICKET if conn._ticket_expected else Branch.TLS12_RESUMED
        conn._transition(HandshakeType.server_hello, branch)
        return
    conn._transition(HandshakeType.server_hello, Branch.TLS12)


def offered_versions(conn: Connection) -> tuple[int, ...]:
    from .client import offered_versions  # client.py imports this module

    return offered_versions(conn)


def name_of_version(v: int) -> str:
    return {
        0x0300: "SSL 3.0",
        0x0301: "TLS 1.0",
        0x0302: "TLS 1.1",
        0x0303: "TLS 1.2",
        0x0304: "TLS 1.3",
    }.get(v, f"version 0x{v:04x}")


def dispatch(conn: Connection, msg: HandshakeMessage, raw: bytes) -> None:
    if isinstance(msg, HelloRequest):
        # RFC 5246 7.4.1.1: ignored during a handshake, never hashed; after it, refused.
        if conn.state.connected:
            hs12.refuse_renegotiation(conn)
        conn._transition(HandshakeType.hello_request)
    elif isinstance(msg, Certificate):
        on_certificate(conn, msg, raw)
    elif isinstance(msg, ServerKeyExchange):
        on_server_key_exchange(conn, msg, raw)
    elif isinstance(msg, CertificateRequest12):
        hs12.add(conn, raw)
        conn._cert_request12 = msg
        conn._transition(HandshakeType.certificate_request)
    elif isinstance(msg, ServerHelloDone):
        on_server_hello_done(conn, raw)
    elif isinstance(msg, NewSessionTicket12):
        hs12.add(conn, raw)
        conn._ticket12 = (msg.ticket_lifetime_hint, msg.ticket)
        conn._transition(HandshakeType.new_session_ticket)
    elif isinstance(msg, Finished):
        hs12.check_finished(conn, msg)
        hs12.add(conn, raw)
        if conn._resumed12:
            hs12.send_ccs_and_finished(conn)  # abbreviated: ours come last (RFC 5246 7.3)
        conn._transition(HandshakeType.finished)
        hs12.complete(conn, conn.peer_signature_scheme)
    else:
        raise err("ERR_INTERNAL", f"no TLS 1.2 handler for {type(msg).__name__}", AD.internal_error)


def on_certificate(conn: Connection, msg: Certificate, raw: bytes) -> None:
    assert conn.suite is not None
    chain = msg.der_list
    hs12.add(conn, raw)
    if not chain:
        raise err("ERR_DECODE", "the server sent an empty Certificate", AD.decode_error)
    try:
        kind = kx12.certificate_key_kind(chain[0])
    except CryptoError as exc:
        raise err("ERR_CERT_INVALID", str(exc), AD.bad_certificate) from exc
    if kind != conn.suite.auth:
        # RFC 5246 7.4.2: the key must suit the cipher suite's key exchange.
        raise err(
            "ERR_CERT_KEY_MISMATCH",
            f"a {kind} certificate for {conn.suite.name}",
            AD.unsupported_certificate,
        )
    conn.peer_certificates = chain
    if conn.config.verify:
        auth.verify_peer_chain(conn, chain)
    elif conn._trace.mask & T.HANDSHAKE:
        conn._trace.emit(T.HANDSHAKE, "peer certificate NOT verified (verify=False)")
    branch = Branch.RSA_KEY_EXCHANGE if conn.suite.kx == "RSA" else None
    conn._transition(HandshakeType.certificate, branch)


def on_server_key_exchange(conn: Connection, msg: ServerKeyExchange, raw: bytes) -> None:
    try:
        params = parse_ecdhe_server_key_exchange(msg.body, tls12=True)
    except DecodeError as exc:
        raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    if params.named_curve not in conn.config.groups:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"ServerKeyExchange uses {name_of(NamedGroup, params.named_curve)}, which we did not offer",
            AD.illegal_parameter,
        )
    scheme = params.signature_algorithm
    if scheme is None or scheme not in conn._offered_schemes:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"ServerKeyExchange signed with {name_of(SignatureScheme, scheme or 0)}, which we did not offer",
            AD.illegal_parameter,
        )
    signed = conn.client_random + conn.server_random + params.params_raw
    try:
        cx509.verify_signature(
            conn.peer_certificates[0], scheme, signed, params.signature, strict_curve=False
        )
    except (CryptoError, DecodeError) as exc:  # DecodeError: a certificate that does not parse
        raise err("ERR_BAD_SIGNATURE", f"ServerKeyExchange does not verify: {exc}", AD.decrypt_error) from exc
    private, public = cx509.generate_key_share(params.named_curve)
    try:
        conn._premaster = cx509.shared_secret(params.named_curve, private, params.public)
    except CryptoError as exc:
        raise err("ERR_ILLEGAL_PARAMETER", f"bad server ECDH key: {exc}", AD.illegal_parameter) from exc
    conn._our_public = public
    conn.group = NamedGroup(params.named_curve)
    conn.peer_signature_scheme = SignatureScheme(scheme)
    hs12.add(conn, raw)
    conn._transition(HandshakeType.server_key_exchange)


def on_server_hello_done(conn: Connection, raw: bytes) -> None:
    """Our flight: [Certificate], ClientKeyExchange, [CertificateVerify], CCS, Finished."""
    assert conn.suite is not None
    hs12.add(conn, raw)
    conn._transition(
        HandshakeType.server_hello_done, Branch.TICKET_EXPECTED if conn._ticket_expected else None
    )
    cred = conn.config.credential
    scheme: int | None = None
    if conn._cert_request12 is not None:
        allowed = conn._cert_request12.supported_signature_algorithms or ()
        if cred is not None:
            scheme = next((s for s in _client_schemes(cred.private_key) if s in allowed), None)
        if scheme is not None and cred is not None:
            hs12.send(conn, Certificate(b"", tuple(CertificateEntry(d) for d in cred.chain), tls13=False))
        else:
            # RFC 5246 7.4.6: no suitable certificate, an empty list.
            hs12.send(conn, Certificate(b"", (), tls13=False))
    buf = Buffer()
    if conn.suite.kx == "RSA":
        premaster = TLS12.to_bytes(2, "big") + os.urandom(kx12.PREMASTER_LEN - 2)
        try:
            encrypted = kx12.rsa_encrypt_premaster(conn.peer_certificates[0], premaster)
        except CryptoError as exc:
            raise err("ERR_CERT_INVALID", str(exc), AD.bad_certificate) from exc
        buf.push_opaque(2, encrypted)
        conn._premaster = premaster
    else:
        buf.push_opaque(1, conn._our_public)  # RFC 8422 5.7
    hs12.send(conn, ClientKeyExchange(buf.data()))
    hs12.derive_keys(conn, conn._premaster)
    conn._premaster = b""
    if scheme is not None and cred is not None:
        try:
            signature = cx509.sign(cred.private_key, scheme, bytes(conn._hs_messages))
        except CryptoError as exc:
            raise err("ERR_INTERNAL", f"cannot sign CertificateVerify: {exc}", AD.internal_error) from exc
        hs12.send(conn, CertificateVerify(scheme, signature))
    hs12.send_ccs_and_finished(conn)


def _client_schemes(key: cx509.PrivateKey) -> tuple[int, ...]:
    ours = x509_engine.compatible_schemes(key)
    if kx12.private_key_kind(key) == "RSA":
        ours += (SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384)
    return ours
