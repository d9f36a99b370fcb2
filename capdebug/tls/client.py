"""The client's handshake handlers (RFC 8446 sections 4.1-4.6, client side).

Each handler runs after the transition table of ``state.py`` allowed its message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..crypto import x509 as cx509
from ..crypto.record import RecordDirection
from ..crypto.schedule13 import Transcript, resumption_psk
from ..crypto.suites import SUITES
from ..errors import CryptoError, DecodeError, ErrorKind
from ..wire import extensions as wx
from ..wire.constants import (
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
    name_of,
)
from ..wire.handshake import (
    HRR_RANDOM,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    HandshakeMessage,
    KeyUpdate,
    NewSessionTicket,
    ServerHello,
)
from . import auth, client12, early, keyupdate, psk, records
from ._common import AD, LEGACY_VERSION, TLS12, TLS13, err, is_ip
from .config import TLS12_ONLY_SCHEMES
from .events import HelloRetryRequestReceived, NewSessionTicketReceived
from .state import Branch

if TYPE_CHECKING:
    from .connection import Connection


def offered_versions(conn: Connection) -> tuple[int, ...]:
    """The versions we offer, highest first: those allowed that have a suite configured."""
    cfg = conn.config
    return tuple(v for v in (TLS13, TLS12) if cfg.allows(v) and cfg.suites_for(v))


def build_client_hello(conn: Connection) -> ClientHello:
    cfg = conn.config
    versions = offered_versions(conn)
    tls13, tls12 = TLS13 in versions, TLS12 in versions
    suites: list[int] = []
    if tls13:
        suites += cfg.suites_for(TLS13)
    if tls12:
        suites += cfg.suites_for(TLS12)
        if cfg.send_fallback_scsv:
            suites.append(CipherSuite.TLS_FALLBACK_SCSV)  # RFC 7507 4: last
    schemes = conn._offered_schemes
    if not tls12:
        schemes = tuple(s for s in schemes if s not in TLS12_ONLY_SCHEMES)
    exts: list[wx.Extension] = []
    if cfg.server_name and not is_ip(cfg.server_name):
        # RFC 6066 3: literal IP addresses are not permitted in server_name.
        exts.append(wx.Extension(ExtensionType.server_name, wx.push_server_name_list((cfg.server_name,))))
    if tls13:
        # A TLS 1.2-only client sends no supported_versions: legacy_version says it all.
        exts.append(wx.Extension(ExtensionType.supported_versions, wx.push_supported_versions(versions)))
    exts += [
        wx.Extension(ExtensionType.supported_groups, wx.push_supported_groups(tuple(cfg.groups))),
        wx.Extension(ExtensionType.signature_algorithms, wx.push_signature_schemes(schemes)),
    ]
    if tls13:
        shares = tuple(
            wx.KeyShareEntry(g, public_share(conn, g)) for g in cfg.groups if g in conn._key_shares
        )
        exts += [
            wx.Extension(ExtensionType.key_share, wx.push_key_share_client(shares)),
            # Without psk_key_exchange_modes servers send no NewSessionTicket (RFC 8446 4.2.9).
            wx.Extension(
                ExtensionType.psk_key_exchange_modes,
                wx.push_psk_key_exchange_modes((PskKeyExchangeMode.psk_dhe_ke,)),
            ),
        ]
    if tls12:
        # RFC 8422 5.1.2 (uncompressed points only), RFC 5746 3.4 (secure renegotiation, the
        # extension form rather than the SCSV), RFC 7627 (EMS), RFC 7366 (EtM, for CBC suites).
        exts += [
            wx.Extension(ExtensionType.ec_point_formats, wx.push_ec_point_formats((0,))),
            wx.Extension(ExtensionType.renegotiation_info, wx.push_renegotiation_info(b"")),
        ]
        if cfg.extended_master_secret:
            exts.append(wx.Extension(ExtensionType.extended_master_secret, wx.push_empty()))
        if cfg.encrypt_then_mac and any(not SUITES[s].is_aead for s in cfg.suites_for(TLS12)):
            exts.append(wx.Extension(ExtensionType.encrypt_then_mac, wx.push_empty()))
    if tls12:
        # RFC 5077 3.2: empty asks for a ticket; non-empty offers one to resume.
        s = conn._session
        ticket = s.ticket if s is not None and s.version == TLS12 else b""
        exts.append(wx.Extension(ExtensionType.session_ticket, ticket))
    if cfg.alpn_protocols:
        exts.append(
            wx.Extension(
                ExtensionType.application_layer_protocol_negotiation,
                wx.push_alpn_protocols(tuple(p.encode() for p in cfg.alpn_protocols)),
            )
        )
    if conn._cookie is not None:
        exts.append(wx.Extension(ExtensionType.cookie, wx.push_cookie(conn._cookie)))
    hello = ClientHello(
        legacy_version=LEGACY_VERSION,
        random=conn.client_random,
        legacy_session_id=conn._session_id,
        cipher_suites=tuple(suites),
        legacy_compression_methods=b"\x00",
        extensions=tuple(exts),
    )
    if tls13 and conn._session is not None and conn._session.version == TLS13:
        if early.wants_early_data(conn):
            conn._offered_early_data = True
            hello = ClientHello(
                hello.legacy_version,
                hello.random,
                hello.legacy_session_id,
                hello.cipher_suites,
                hello.legacy_compression_methods,
                (*hello.extensions, wx.Extension(ExtensionType.early_data, wx.push_early_data(None))),
            )
        hello = psk.offer(conn, hello)  # pre_shared_key: the last extension (RFC 8446 4.2.11)
    return hello


def public_share(conn: Connection, group: int) -> bytes:
    # generate_key_share returns the public bytes with the key; keep both.
    return conn._public_shares[group]


def on_server_hello(conn: Connection, msg: ServerHello, raw: bytes) -> None:
    hrr = msg.random == HRR_RANDOM
    version_data = wx.ext(msg, ExtensionType.supported_versions)
    if version_data is None:
        if hrr:
            raise err(
                "ERR_ILLEGAL_PARAMETER", "HelloRetryRequest without supported_versions", AD.illegal_parameter
            )
        client12.on_server_hello(conn, msg, raw)
        return
    try:
        version = wx.pull_selected_version(version_data)
    except DecodeError as exc:
        raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    if version != TLS13 or TLS13 not in offered_versions(conn):
        # RFC 8446 4.2.1: a version we did not offer, or one below TLS 1.3, is illegal_parameter.
        raise err(
            "ERR_NO_SHARED_VERSION", f"the server selected version 0x{version:04x}", AD.illegal_parameter
        )
    if msg.legacy_version != LEGACY_VERSION:
        raise err("ERR_PROTOCOL_VERSION", "ServerHello.legacy_version is not 0x0303", AD.protocol_version)
    if msg.legacy_session_id_echo != conn._session_id:
        raise err("ERR_ILLEGAL_PARAMETER", "legacy_session_id_echo differs from ours", AD.illegal_parameter)
    if msg.cipher_suite not in conn.config.suites_for(TLS13):
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"the server chose cipher suite {name_of(CipherSuite, msg.cipher_suite)} we did not offer",
            AD.illegal_parameter,
        )
    if msg.legacy_compression_method != 0:
        raise err("ERR_ILLEGAL_PARAMETER", "non-null compression method", AD.illegal_parameter)
    if conn._hrr_suite is not None and msg.cipher_suite != conn._hrr_suite:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            "ServerHello cipher suite differs from the HelloRetryRequest's",
            AD.illegal_parameter,
        )
    key_share = wx.ext(msg, ExtensionType.key_share)
    conn.version = TLS13
    conn.suite = SUITES[msg.cipher_suite]
    conn.cipher_suite = CipherSuite(msg.cipher_suite)
    if hrr:
        conn._transition(HandshakeType.server_hello, Branch.HELLO_RETRY_REQUEST)
        on_hello_retry_request(conn, msg, raw, key_share)
        return
    if key_share is None:
        raise err(
            "ERR_MISSING_EXTENSION",
            "no key_share (PSK-only modes are not offered)",
            AD.missing_extension,
        )
    try:
        share = wx.pull_key_share_server(key_share)
    except DecodeError as exc:
        raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    private = conn._key_shares.get(share.group)
    if private is None:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"server key share for {name_of(NamedGroup, share.group)}, for which we sent none",
            AD.illegal_parameter,
        )
    try:
        shared = cx509.shared_secret(share.group, private, share.key_exchange)
    except CryptoError as exc:
        raise err("ERR_ILLEGAL_PARAMETER", f"bad server key share: {exc}", AD.illegal_parameter) from exc
    conn.group = NamedGroup(share.group)
    selected = wx.ext(msg, ExtensionType.pre_shared_key)
    if selected is not None:
        try:
            index = wx.pull_selected_identity(selected)
        except DecodeError as exc:
            raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
        session = conn._session
        # RFC 8446 4.2.11: an index we did not offer, or a suite whose hash is not the PSK's.
        if session is None or index != 0 or SUITES[session.cipher_suite].hash_name != conn.suite.hash_name:
            raise err(
                "ERR_ILLEGAL_PARAMETER", f"the server selected PSK {index}, not offered", AD.illegal_parameter
            )
        conn._psk = session.psk
    if conn._transcript is None:
        conn._transcript = Transcript(conn.suite.hash_name)
        conn._transcript.update(conn._client_hello_bytes)
    conn._transcript.update(raw)
    conn._derive_handshake_secrets(shared)
    conn._key_shares.clear()
    records.set_read_key(conn, conn._server_hs_secret, "handshake")
    # Install our handshake key now, not at our Finished: an alert about the server's
    # flight must already be encrypted (RFC 8446 6, 7.3). With 0-RTT in flight, the early key
    # stays until EncryptedExtensions says whether it was accepted (RFC 8446 4.2.10).
    if not conn._offered_early_data:
        records.set_write_key(conn, conn._client_hs_secret, "handshake")
    conn._transition(HandshakeType.server_hello)


def on_hello_retry_request(conn: Connection, msg: ServerHello, raw: bytes, key_share: bytes | None) -> None:
    assert conn.suite is not None
    group: int | None = None
    if key_share is not None:
        try:
            group = wx.pull_key_share_hrr(key_share)
        except DecodeError as exc:
            raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
        # RFC 8446 4.1.4: the group must be one we support and not one we already sent.
        if group not in conn.config.groups or group in conn._key_shares:
            raise err(
                "ERR_ILLEGAL_PARAMETER",
                f"HelloRetryRequest asks for {name_of(NamedGroup, group)}, which we "
                + ("already sent" if group in conn._key_shares else "do not support"),
                AD.illegal_parameter,
            )
    cookie = wx.ext(msg, ExtensionType.cookie)
    if cookie is not None:
        try:
            conn._cookie = wx.pull_cookie(cookie)
        except DecodeError as exc:
            raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    if group is None and cookie is None:
        # RFC 8446 4.1.4: an HRR that would not change the ClientHello is illegal.
        raise err("ERR_ILLEGAL_PARAMETER", "HelloRetryRequest asks for no change", AD.illegal_parameter)
    conn.hello_retry = True
    conn._hrr_suite = msg.cipher_suite
    if conn._offered_early_data:
        # RFC 8446 4.2.10: an HRR rejects 0-RTT; the second ClientHello goes in the clear.
        conn._early_accepted = False
        conn._offered_early_data = False
        conn._tx = RecordDirection()
    conn._transcript = Transcript(conn.suite.hash_name)
    conn._transcript.update(conn._client_hello_bytes)
    conn._transcript.hello_retry_request()
    conn._transcript.update(raw)
    conn._events.append(HelloRetryRequestReceived(NamedGroup(group) if group is not None else None))
    if group is not None:
        # A key_share in the HRR replaces our shares by one for its group (4.1.2);
        # without one (a cookie-only HRR) the shares stay as they were.
        conn._key_shares.clear()
        conn._public_shares.clear()
        new_key_share(conn, group)
    # RFC 8446 D.4 allows our CCS before the second ClientHello or before our first
    # encrypted flight; the latter (see _set_write_key) also suits servers that keep no
    # state across the HRR (openssl s_server -stateless fails on a CCS before ClientHello2).
    hello = build_client_hello(conn)
    conn._client_hello = hello
    conn._client_hello_bytes = conn._send_handshake(hello)


def new_key_share(conn: Connection, group: int) -> None:
    private, public = cx509.generate_key_share(group)
    conn._key_shares[group] = private
    conn._public_shares[group] = public


def on_encrypted_extensions(conn: Connection, msg: EncryptedExtensions, raw: bytes) -> None:
    assert conn._transcript is not None
    alpn = wx.ext(msg, ExtensionType.application_layer_protocol_negotiation)
    if alpn is not None:
        try:
            names = wx.pull_alpn_protocols(alpn)
        except DecodeError as exc:
            raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
        offered = [p.encode() for p in conn.config.alpn_protocols]
        if len(names) != 1 or names[0] not in offered:
            raise err("ERR_ILLEGAL_PARAMETER", f"server ALPN {names!r} was not offered", AD.illegal_parameter)
        conn.alpn = names[0].decode("latin-1")
    early_ext = wx.ext(msg, ExtensionType.early_data)
    if early_ext is not None and not conn._offered_early_data:
        raise err("ERR_UNSUPPORTED_EXTENSION", "early_data we did not offer", AD.unsupported_extension)
    if conn._offered_early_data:
        conn._early_accepted = early_ext is not None
        if not conn._early_accepted:
            records.set_write_key(conn, conn._client_hs_secret, "handshake")
    for forbidden in (
        ExtensionType.key_share,
        ExtensionType.supported_versions,
        ExtensionType.pre_shared_key,
    ):
        if wx.ext(msg, forbidden) is not None:
            raise err(
                "ERR_ILLEGAL_PARAMETER",
                f"{name_of(ExtensionType, forbidden)} is not allowed in EncryptedExtensions",
                AD.illegal_parameter,
            )
    conn._transcript.update(raw)
    conn._transition(HandshakeType.encrypted_extensions, Branch.PSK if conn._psk else None)


def on_certificate_request(conn: Connection, msg: CertificateRequest, raw: bytes) -> None:
    assert conn._transcript is not None
    if msg.certificate_request_context:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            "non-empty certificate_request_context in the handshake",
            AD.illegal_parameter,
        )
    algs = wx.ext(msg, ExtensionType.signature_algorithms)
    if algs is None:
        raise err(
            "ERR_MISSING_EXTENSION",
            "CertificateRequest without signature_algorithms",
            AD.missing_extension,
        )
    try:
        conn._peer_schemes = wx.pull_signature_schemes(algs)
    except DecodeError as exc:
        raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    conn._cert_requested = msg
    conn._transcript.update(raw)
    conn._transition(HandshakeType.certificate_request)


def on_finished(conn: Connection, msg: Finished, raw: bytes) -> None:
    assert conn._transcript is not None and conn.suite is not None
    auth.check_finished(conn, msg, conn._server_hs_secret, "server")
    conn._transcript.update(raw)
    conn._derive_application_secrets()
    records.set_read_key(conn, conn._server_ap_secret, "application")
    if conn._early_accepted:
        early.send_end_of_early_data(conn)  # RFC 8446 4.5, still under the early key
        records.set_write_key(conn, conn._client_hs_secret, "handshake")
    # Our second flight, under the client handshake key (RFC 8446 4.4).
    if conn._cert_requested is not None:
        auth.send_certificate_and_verify(conn, conn._cert_requested.certificate_request_context)
    auth.send_finished(conn, conn._client_hs_secret)
    conn._flush_handshake()
    auth.schedule_resumption(conn)
    records.set_write_key(conn, conn._client_ap_secret, "application")
    conn._transition(HandshakeType.finished)
    auth.complete(conn)


def on_new_session_ticket(conn: Connection, msg: NewSessionTicket) -> None:
    assert conn.suite is not None
    secret = resumption_psk(conn.suite.hash_name, conn._resumption_secret, msg.ticket_nonce)
    conn._transition(HandshakeType.new_session_ticket)
    session = psk.session_from_ticket(conn, msg, secret)
    conn._events.append(
        NewSessionTicketReceived(
            msg.ticket_lifetime, msg.ticket_age_add, msg.ticket_nonce, msg.ticket, secret, session
        )
    )


def dispatch(conn: Connection, msg: HandshakeMessage, raw: bytes) -> None:
    """A TLS 1.3 (or not yet negotiated) message the table allowed, to its handler."""
    if isinstance(msg, ServerHello):
        on_server_hello(conn, msg, raw)
    elif isinstance(msg, EncryptedExtensions):
        on_encrypted_extensions(conn, msg, raw)
    elif isinstance(msg, CertificateRequest):
        on_certificate_request(conn, msg, raw)
    elif isinstance(msg, Certificate):
        auth.on_certificate(conn, msg, raw)
    elif isinstance(msg, CertificateVerify):
        auth.on_certificate_verify(conn, msg, raw)
    elif isinstance(msg, Finished):
        on_finished(conn, msg, raw)
    elif isinstance(msg, NewSessionTicket):
        on_new_session_ticket(conn, msg)
    elif isinstance(msg, KeyUpdate):
        keyupdate.on_key_update(conn, msg)
    else:  # the table allowed the type, so this is a codec/engine mismatch
        raise err(
            "ERR_INTERNAL", f"no handler for {type(msg).__name__}", AD.internal_error, ErrorKind.INTERNAL
        )
