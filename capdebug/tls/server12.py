"""The TLS 1.2 server's handshake handlers (RFC 5246 7.3, 7.4; RFC 8422 for ECDHE).

Reached when version negotiation in ``server.py`` picks TLS 1.2. Each handler runs after the
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
from ..crypto.tickets import open_ticket, seal_ticket
from ..errors import CryptoError, DecodeError, DecryptError
from ..wire import extensions as wx
from ..wire.constants import CipherSuite, ExtensionType, HandshakeType, NamedGroup, SignatureScheme, name_of
from ..wire.handshake import (
    DOWNGRADE_TLS12,
    Certificate,
    CertificateEntry,
    CertificateRequest12,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    Finished,
    HandshakeMessage,
    NewSessionTicket12,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
)
from ..wire.handshake12 import pull_ecdh_client_public, pull_encrypted_premaster
from . import auth, hs12
from ._common import AD, TLS13, T, err, select_alpn
from .config import ClientAuth
from .session import TicketState12
from .state import Branch

if TYPE_CHECKING:
    from .connection import Connection

TLS12 = hs12.TLS12
_UNCOMPRESSED = 0  # ECPointFormat (RFC 8422 5.1.2)
_NAMED_CURVE = 3  # ECCurveType (RFC 8422 5.4)
# RFC 5246 7.4.1.4.1: a client without signature_algorithms accepts SHA-1 signatures.
_DEFAULT_SCHEMES = (SignatureScheme.rsa_pkcs1_sha1, SignatureScheme.ecdsa_sha1)


def on_client_hello(conn: Connection, msg: ClientHello, raw: bytes) -> None:
    cfg = conn.config
    assert cfg.credential is not None
    if 0 not in msg.legacy_compression_methods:
        raise err("ERR_ILLEGAL_PARAMETER", "the null compression method is not offered", AD.illegal_parameter)
    try:
        groups_data = wx.ext(msg, ExtensionType.supported_groups)
        client_groups = wx.pull_supported_groups(groups_data) if groups_data is not None else None
        algs = wx.ext(msg, ExtensionType.signature_algorithms)
        client_schemes = wx.pull_signature_schemes(algs) if algs is not None else _DEFAULT_SCHEMES
        formats_data = wx.ext(msg, ExtensionType.ec_point_formats)
        formats = wx.pull_ec_point_formats(formats_data) if formats_data is not None else None
        reneg = wx.ext(msg, ExtensionType.renegotiation_info)
        reneg_value = wx.pull_renegotiation_info(reneg) if reneg is not None else b""
        sni = wx.ext(msg, ExtensionType.server_name)
        names = wx.pull_server_name_list(sni) if sni is not None else ()
        alpn_data = wx.ext(msg, ExtensionType.application_layer_protocol_negotiation)
        client_alpn = wx.pull_alpn_protocols(alpn_data) if alpn_data is not None else ()
        ems = wx.ext(msg, ExtensionType.extended_master_secret)
        if ems is not None:
            wx.pull_empty(ems)
        etm = wx.ext(msg, ExtensionType.encrypt_then_mac)
        if etm is not None:
            wx.pull_empty(etm)
    except DecodeError as exc:
        raise err("ERR_DECODE", f"ClientHello: {exc}", AD.decode_error) from exc
    if reneg_value:
        # RFC 5746 3.6: on an initial handshake the field must be empty.
        raise err("ERR_RENEGOTIATION_INFO", "non-empty renegotiation_info", AD.handshake_failure)
    if formats is not None and _UNCOMPRESSED not in formats:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            "ec_point_formats without uncompressed (RFC 8422 5.1.2)",
            AD.illegal_parameter,
        )
    key_kind = kx12.private_key_kind(cfg.credential.private_key)
    # RFC 8422 4: without supported_groups the client is assumed to take what we propose.
    group = next((g for g in cfg.groups if client_groups is None or g in client_groups), None)
    scheme = next((s for s in _server_schemes(cfg.credential.private_key) if s in client_schemes), None)
    suite_code = None
    for s in cfg.suites_for(TLS12):
        params = SUITES[s]
        if s not in msg.cipher_suites or params.auth != key_kind:
            continue
        if params.kx == "ECDHE" and (group is None or scheme is None):
            continue
        suite_code = s
        break
    if suite_code is None:
        offered = ", ".join(name_of(CipherSuite, s) for s in msg.cipher_suites)
        raise err(
            "ERR_NO_SHARED_CIPHER",
            f"no TLS 1.2 cipher suite in common for our {key_kind} key (client offered {offered})",
            AD.handshake_failure,
        )
    suite = SUITES[suite_code]
    use_ems = ems is not None and cfg.extended_master_secret
    if not use_ems and cfg.require_extended_master_secret:
        raise err(
            "ERR_NO_EXTENDED_MASTER_SECRET",
            "the client does not offer the extended master secret (RFC 7627 5.2)",
            AD.handshake_failure,
        )
    if client_alpn and cfg.alpn_protocols:
        conn.alpn = select_alpn(cfg.alpn_protocols, client_alpn)
    conn.version = TLS12
    conn._client_hello = msg
    conn.suite = suite
    conn.cipher_suite = CipherSuite(suite_code)
    conn.server_name = names[0] if names else None
    conn.client_random = msg.random
    conn._ems = use_ems
    conn._etm = etm is not None and cfg.encrypt_then_mac and not suite.is_aead
    conn._secure_renegotiation = reneg is not None or CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in (
        msg.cipher_suites
    )
    # RFC 8446 4.1.3: a server that could have done TLS 1.3 says it negotiates down.
    random = os.urandom(32)
    if cfg.allows(TLS13) and cfg.suites_for(TLS13):
        random = random[:24] + DOWNGRADE_TLS12
    conn.server_random = random
    exts: list[wx.Extension] = []
    if conn._secure_renegotiation:
        exts.append(wx.Extension(ExtensionType.renegotiation_info, wx.push_renegotiation_info(b"")))
    if conn._ems:
        exts.append(wx.Extension(ExtensionType.extended_master_secret, wx.push_empty()))
    if conn._etm:
        exts.append(wx.Extension(ExtensionType.encrypt_then_mac, wx.push_empty()))
    if names:
        exts.append(wx.Extension(ExtensionType.server_name, b""))  # RFC 6066 3
    if formats is not None and suite.kx == "ECDHE":
        exts.append(wx.Extension(ExtensionType.ec_point_formats, wx.push_ec_point_formats((_UNCOMPRESSED,))))
    if conn.alpn is not None:
        exts.append(
            wx.Extension(
                ExtensionType.application_layer_protocol_negotiation,
                wx.push_alpn_protocols((conn.alpn.encode(),)),
            )
        )
    ticket_ext = wx.ext(msg, ExtensionType.session_ticket)
    resumed = _resumable(conn, msg, ticket_ext)
    if resumed is not None and resumed.cipher_suite != suite_code:
        resumed = None  # the suite we would pick now: keeps EtM and the transcript hash simple
    conn._ticket_expected = ticket_ext is not None and cfg.session_tickets > 0 and resumed is None
    if conn._ticket_expected:
        exts.append(wx.Extension(ExtensionType.session_ticket, b""))  # RFC 5077 3.2
    conn._transcript = Transcript(suite.hash_name)
    hs12.add(conn, raw)
    if resumed is not None:
        _resume(conn, msg, resumed, random, exts)
        return
    conn._session_id = os.urandom(32)  # cached at completion (RFC 5246 7.4.1.3)
    hs12.send(conn, ServerHello(TLS12, random, conn._session_id, suite_code, 0, tuple(exts)))
    hs12.send(conn, Certificate(b"", tuple(CertificateEntry(d) for d in cfg.credential.chain), tls13=False))
    if suite.kx == "ECDHE":
        assert group is not None and scheme is not None
        _send_server_key_exchange(conn, group, scheme)
    branch = Branch.TLS12
    if cfg.client_auth is not ClientAuth.NONE:
        types = (1, 64)  # rsa_sign, ecdsa_sign (RFC 5246 7.4.4, RFC 8422 5.5)
        hs12.send(conn, CertificateRequest12(types, tuple(conn._offered_schemes), ()))
        branch = Branch.TLS12_CLIENT_AUTH
    hs12.send(conn, ServerHelloDone())
    conn._flush_handshake()
    conn._transition(HandshakeType.client_hello, branch)


def _resumable(conn: Connection, msg: ClientHello, ticket: bytes | None) -> TicketState12 | None:
    """The session the client asks to resume, if we have it and it still applies: by ticket
    (RFC 5077 3.4) or by session ID (RFC 5246 7.4.1.2); None for a full handshake."""
    cfg = conn.config
    state: TicketState12 | None = None
    if ticket:
        try:
            state = TicketState12.decode(open_ticket(cfg.ticket_key, ticket))
        except (DecryptError, DecodeError):
            state = None  # not ours or stale: a full handshake, with a new ticket
    elif msg.legacy_session_id:
        state = cfg.session_cache.get(msg.legacy_session_id)
    if state is None:
        return None
    if state.cipher_suite not in msg.cipher_suites:
        return None  # RFC 5246 7.4.1.2: the client must offer the session's suite
    now = conn._now_ms() or 0
    if now and state.issued_at_ms and now - state.issued_at_ms > state.lifetime * 1000:
        return None
    # RFC 7627 5.3: resume only if the extended master secret is used both times.
    if state.extended_master_secret != conn._ems:
        return None
    return state


def _resume(
    conn: Connection, msg: ClientHello, state: TicketState12, random: bytes, exts: list[wx.Extension]
) -> None:
    """The abbreviated handshake: ServerHello echoing the session ID, CCS, Finished (7.3)."""
    conn._resumed12 = True
    conn._session_id = msg.legacy_session_id
    if conn._trace.mask & T.HANDSHAKE:
        conn._trace.emit(T.HANDSHAKE, "resuming a TLS 1.2 session (abbreviated handshake)")
    hs12.send(conn, ServerHello(TLS12, random, msg.legacy_session_id, state.cipher_suite, 0, tuple(exts)))
    hs12.install_master_secret(conn, state.master_secret)
    hs12.send_ccs_and_finished(conn)
    conn._transition(HandshakeType.client_hello, Branch.TLS12_RESUMED)


def _server_schemes(key: cx509.PrivateKey) -> tuple[int, ...]:
    ours = x509_engine.compatible_schemes(key)
    if kx12.private_key_kind(key) == "RSA":
        ours += (
            SignatureScheme.rsa_pkcs1_sha256,
            SignatureScheme.rsa_pkcs1_sha384,
            SignatureScheme.rsa_pkcs1_sha512,
            SignatureScheme.rsa_pkcs1_sha1,
        )
    else:
        ours += (SignatureScheme.ecdsa_sha1,)
    return ours


def _send_server_key_exchange(conn: Connection, group: int, scheme: int) -> None:
    assert conn.config.credential is not None
    private, public = cx509.generate_key_share(group)
    conn._key_shares = {group: private}
    conn.group = NamedGroup(group)
    buf = Buffer()
    buf.push_uint8(_NAMED_CURVE)
    buf.push_uint16(group)
    buf.push_opaque(1, public)
    params = buf.data()
    try:
        signature = cx509.sign(
            conn.config.credential.private_key, scheme, conn.client_random + conn.server_random + params
        )
    except CryptoError as exc:
        raise err("ERR_INTERNAL", f"cannot sign ServerKeyExchange: {exc}", AD.internal_error) from exc
    conn._our_scheme = scheme
    tail = Buffer()
    tail.push_uint16(scheme)
    tail.push_opaque(2, signature)
    hs12.send(conn, ServerKeyExchange(params + tail.data()))


def dispatch(conn: Connection, msg: HandshakeMessage, raw: bytes) -> None:
    if isinstance(msg, ClientHello):
        # Only the connected state has a ClientHello in the table: a renegotiation attempt.
        hs12.refuse_renegotiation(conn)
        conn._transition(HandshakeType.client_hello)
    elif isinstance(msg, Certificate):
        on_certificate(conn, msg, raw)
    elif isinstance(msg, ClientKeyExchange):
        on_client_key_exchange(conn, msg, raw)
    elif isinstance(msg, CertificateVerify):
        on_certificate_verify(conn, msg, raw)
    elif isinstance(msg, Finished):
        hs12.check_finished(conn, msg)
        hs12.add(conn, raw)
        if conn._ticket_expected:
            state = hs12.state12(conn).encode()
            ticket = seal_ticket(conn.config.ticket_key, state)
            hs12.send(conn, NewSessionTicket12(conn.config.ticket_lifetime, ticket))
        if not conn._resumed12:
            hs12.send_ccs_and_finished(conn)
        conn._transition(HandshakeType.finished)
        hs12.complete(conn, conn._our_scheme)
    else:
        raise err("ERR_INTERNAL", f"no TLS 1.2 handler for {type(msg).__name__}", AD.internal_error)


def on_certificate(conn: Connection, msg: Certificate, raw: bytes) -> None:
    chain = msg.der_list
    hs12.add(conn, raw)
    if not chain:
        if conn.config.client_auth is ClientAuth.REQUIRED:
            # RFC 5246 7.4.6: the server may answer a missing certificate with handshake_failure.
            raise err("ERR_CERT_REQUIRED", "the client sent no certificate", AD.handshake_failure)
    else:
        conn.peer_certificates = chain
        if conn.config.verify:
            auth.verify_peer_chain(conn, chain)
        elif conn._trace.mask & T.HANDSHAKE:
            conn._trace.emit(T.HANDSHAKE, "client certificate NOT verified (verify=False)")
    conn._transition(HandshakeType.certificate)


def on_client_key_exchange(conn: Connection, msg: ClientKeyExchange, raw: bytes) -> None:
    suite = conn.suite
    cred = conn.config.credential
    assert suite is not None and cred is not None
    try:
        if suite.kx == "RSA":
            encrypted = pull_encrypted_premaster(msg.body)
            assert conn._client_hello is not None
            premaster = kx12.rsa_decrypt_premaster(
                cred.private_key, encrypted, conn._client_hello.legacy_version
            )
        else:
            assert conn.group is not None
            public = pull_ecdh_client_public(msg.body)
            private = conn._key_shares.pop(conn.group)
            try:
                premaster = cx509.shared_secret(conn.group, private, public)
            except CryptoError as exc:
                raise err(
                    "ERR_ILLEGAL_PARAMETER", f"bad client ECDH key: {exc}", AD.illegal_parameter
                ) from exc
    except DecodeError as exc:
        raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    hs12.add(conn, raw)
    hs12.derive_keys(conn, premaster)
    conn._transition(
        HandshakeType.client_key_exchange, Branch.CERTIFICATE_TO_VERIFY if conn.peer_certificates else None
    )


def on_certificate_verify(conn: Connection, msg: CertificateVerify, raw: bytes) -> None:
    scheme = msg.algorithm
    if scheme is None or scheme not in conn._offered_schemes:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"CertificateVerify uses {name_of(SignatureScheme, scheme or 0)}, which we did not offer",
            AD.illegal_parameter,
        )
    try:
        cx509.verify_signature(
            conn.peer_certificates[0], scheme, bytes(conn._hs_messages), msg.signature, strict_curve=False
        )
    except (CryptoError, DecodeError) as exc:  # DecodeError: a certificate that does not parse
        raise err("ERR_BAD_SIGNATURE", f"CertificateVerify does not verify: {exc}", AD.decrypt_error) from exc
    conn.peer_signature_scheme = SignatureScheme(scheme)
    hs12.add(conn, raw)
    conn._transition(HandshakeType.certificate_verify)
