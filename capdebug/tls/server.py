"""The server's handshake handlers (RFC 8446 sections 4.1-4.6, server side).

Each handler runs after the transition table of ``state.py`` allowed its message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..crypto import x509 as cx509
from ..crypto import x509_engine
from ..crypto.schedule13 import Transcript
from ..crypto.suites import SUITES
from ..errors import CryptoError, DecodeError, ErrorKind
from ..wire import extensions as wx
from ..wire.constants import CipherSuite, ExtensionType, HandshakeType, NamedGroup, name_of
from ..wire.handshake import (
    HRR_RANDOM,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    HandshakeMessage,
    KeyUpdate,
    ServerHello,
)
from . import auth, early, keyupdate, psk, records, server12
from ._common import AD, LEGACY_VERSION, TLS13, err, select_alpn
from .config import TLS12_ONLY_SCHEMES, ClientAuth
from .events import HelloRetryRequestSent
from .state import Branch, State

if TYPE_CHECKING:
    from .connection import Connection


def on_client_hello(conn: Connection, msg: ClientHello, raw: bytes) -> None:
    cfg = conn.config
    second = conn.state is State.SERVER_EXPECT_SECOND_CLIENT_HELLO
    conn._first_client_hello_seen = True
    version = negotiate_version(conn, msg)
    if second and version != TLS13:
        raise err("ERR_ILLEGAL_PARAMETER", "second ClientHello drops TLS 1.3", AD.illegal_parameter)
    if version == server12.TLS12:
        server12.on_client_hello(conn, msg, raw)
        return
    conn.version = TLS13
    if msg.legacy_compression_methods != b"\x00":
        raise err("ERR_ILLEGAL_PARAMETER", "compression methods other than null", AD.illegal_parameter)
    if second:
        # RFC 8446 4.1.2: the second ClientHello repeats the first but for listed changes.
        assert conn._client_hello is not None
        if msg.random != conn._client_hello.random or msg.legacy_session_id != conn._session_id:
            raise err(
                "ERR_ILLEGAL_PARAMETER",
                "second ClientHello changed random or session id",
                AD.illegal_parameter,
            )
    conn._client_hello = msg
    conn.client_random = msg.random
    conn._session_id = msg.legacy_session_id
    conn._want_ccs = cfg.middlebox_compat and bool(msg.legacy_session_id)
    # Cipher suite: ours first (server preference).
    suite_code = next((s for s in cfg.suites_for(TLS13) if s in msg.cipher_suites), None)
    if suite_code is None:
        offered = ", ".join(name_of(CipherSuite, s) for s in msg.cipher_suites)
        raise err(
            "ERR_NO_SHARED_CIPHER",
            f"no cipher suite in common (client offered {offered})",
            AD.handshake_failure,
        )
    if second and suite_code != conn._hrr_suite:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            "second ClientHello does not allow the HRR cipher suite",
            AD.illegal_parameter,
        )
    groups_data = wx.ext(msg, ExtensionType.supported_groups)
    shares_data = wx.ext(msg, ExtensionType.key_share)
    algs_data = wx.ext(msg, ExtensionType.signature_algorithms)
    for name, value in (
        ("supported_groups", groups_data),
        ("key_share", shares_data),
        ("signature_algorithms", algs_data),
    ):
        if value is None:
            # RFC 8446 9.2: a certificate-based handshake needs all three.
            raise err("ERR_MISSING_EXTENSION", f"ClientHello without {name}", AD.missing_extension)
    assert groups_data is not None and shares_data is not None and algs_data is not None
    try:
        client_groups = wx.pull_supported_groups(groups_data)
        shares = wx.pull_key_share_client(shares_data)
        conn._peer_schemes = wx.pull_signature_schemes(algs_data)
        sni_data = wx.ext(msg, ExtensionType.server_name)
        names = wx.pull_server_name_list(sni_data) if sni_data is not None else ()
        alpn_data = wx.ext(msg, ExtensionType.application_layer_protocol_negotiation)
        client_alpn = wx.pull_alpn_protocols(alpn_data) if alpn_data is not None else ()
    except DecodeError as exc:
        raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    share_groups = [s.group for s in shares]
    if len(set(share_groups)) != len(share_groups):
        raise err("ERR_ILLEGAL_PARAMETER", "two key shares for one group", AD.illegal_parameter)
    conn.server_name = names[0] if names else None
    # Our signature scheme: the first our key can make that the client accepts.
    assert cfg.credential is not None
    ours = x509_engine.compatible_schemes(cfg.credential.private_key)
    conn._our_scheme = next((s for s in ours if s in conn._peer_schemes), None)
    if conn._our_scheme is None:
        raise err(
            "ERR_NO_SHARED_SIGNATURE_SCHEME",
            "the client accepts no signature scheme our key can make",
            AD.handshake_failure,
        )
    if client_alpn and cfg.alpn_protocols:
        conn.alpn = select_alpn(cfg.alpn_protocols, client_alpn)
    # Group: a share we can use, else a HelloRetryRequest for a common group (4.1.1).
    share = next((s for g in cfg.groups for s in shares if s.group == g), None)
    conn.suite = SUITES[suite_code]
    conn.cipher_suite = CipherSuite(suite_code)
    if share is None:
        if second:
            raise err(
                "ERR_ILLEGAL_PARAMETER",
                "second ClientHello has no key share for the HRR group",
                AD.illegal_parameter,
            )
        group = next((g for g in cfg.groups if g in client_groups), None)
        if group is None:
            raise err("ERR_NO_SHARED_GROUP", "no supported group in common", AD.handshake_failure)
        send_hello_retry_request(conn, msg, raw, suite_code, group)
        return
    if second and share.group != conn._hrr_group:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            "second ClientHello key share is not for the HRR group",
            AD.illegal_parameter,
        )
    private, public = cx509.generate_key_share(share.group)
    try:
        shared = cx509.shared_secret(share.group, private, share.key_exchange)
    except CryptoError as exc:
        raise err("ERR_ILLEGAL_PARAMETER", f"bad client key share: {exc}", AD.illegal_parameter) from exc
    conn.group = NamedGroup(share.group)
    selected = psk.accept(conn, msg, raw, suite_code)
    accept_early = early.accept(conn, msg, selected, second)
    conn._early_accepted = accept_early if wx.ext(msg, ExtensionType.early_data) is not None else None
    if conn._transcript is None:
        conn._transcript = Transcript(conn.suite.hash_name)
    conn._transcript.update(raw)
    client_hello_hash = conn._transcript.digest()
    # RFC 8446 4.3.2: no CertificateRequest in a PSK handshake.
    branch = (
        Branch.CLIENT_AUTH_REQUESTED if cfg.client_auth is not ClientAuth.NONE and selected is None else None
    )
    extensions = [
        wx.Extension(ExtensionType.supported_versions, wx.push_selected_version(TLS13)),
        wx.Extension(
            ExtensionType.key_share, wx.push_key_share_server(wx.KeyShareEntry(share.group, public))
        ),
    ]
    if selected is not None:
        extensions.append(wx.Extension(ExtensionType.pre_shared_key, wx.push_selected_identity(selected)))
    server_hello = ServerHello(
        legacy_version=LEGACY_VERSION,
        random=os.urandom(32),
        legacy_session_id_echo=conn._session_id,
        cipher_suite=suite_code,
        legacy_compression_method=0,
        extensions=tuple(extensions),
    )
    conn._send_handshake(server_hello)
    conn._derive_handshake_secrets(shared)
    records.set_write_key(conn, conn._server_hs_secret, "handshake")
    if accept_early:
        early.install_early_read_key(conn, client_hello_hash)
        branch = Branch.EARLY_DATA
    else:
        records.set_read_key(conn, conn._client_hs_secret, "handshake")
    # EncryptedExtensions (RFC 8446 4.3.1)
    ee: list[wx.Extension] = []
    if accept_early:
        ee.append(wx.Extension(ExtensionType.early_data, wx.push_early_data(None)))
    if conn.server_name is not None:
        ee.append(wx.Extension(ExtensionType.server_name, b""))  # RFC 6066 3: acknowledged
    if conn.alpn is not None:
        ee.append(
            wx.Extension(
                ExtensionType.application_layer_protocol_negotiation,
                wx.push_alpn_protocols((conn.alpn.encode(),)),
            )
        )
    conn._send_handshake(EncryptedExtensions(tuple(ee)))
    if branch is Branch.CLIENT_AUTH_REQUESTED:
        conn._cert_requested = CertificateRequest(
            b"",
            (
                wx.Extension(
                    ExtensionType.signature_algorithms,
                    wx.push_signature_schemes(
                        tuple(x for x in conn._offered_schemes if x not in TLS12_ONLY_SCHEMES)
                    ),
                ),
            ),
        )
        conn._send_handshake(conn._cert_requested)
    if selected is None:
        auth.send_certificate_and_verify(conn, b"", server=True)
    auth.send_finished(conn, conn._server_hs_secret)
    conn._flush_handshake()
    conn._derive_application_secrets()
    records.set_write_key(conn, conn._server_ap_secret, "application")
    conn._transition(HandshakeType.client_hello, branch)


def negotiate_version(conn: Connection, msg: ClientHello) -> int:
    """The version to speak: the highest both allow (RFC 8446 4.2.1, RFC 5246 E.1), after the
    checks on legacy_version (RFC 8446 4.1.2, D.5) and TLS_FALLBACK_SCSV (RFC 7507 3)."""
    cfg = conn.config
    # A legacy_version above 0x0303 (even 0x0400) is tolerated: it means "TLS 1.2 or more"
    # (RFC 5246 E.1, RFC 8446 D.2); version-intolerant servers were the reason for D.5.
    if msg.legacy_version <= 0x0300:
        # RFC 8446 D.5: "Any endpoint receiving a Hello message with ClientHello.legacy_version
        # ... set to 0x0300 MUST abort the handshake with a protocol_version alert."
        raise err(
            "ERR_PROTOCOL_VERSION",
            f"ClientHello.legacy_version 0x{msg.legacy_version:04x} is not a TLS version",
            AD.protocol_version,
        )
    versions_data = wx.ext(msg, ExtensionType.supported_versions)
    if versions_data is not None:
        try:
            offered = wx.pull_supported_versions(versions_data)
        except DecodeError as exc:
            raise err("ERR_DECODE", str(exc), AD.decode_error) from exc
    else:
        # RFC 5246 E.1: legacy_version is the highest the client speaks (we speak none above 1.3).
        offered = (min(msg.legacy_version, LEGACY_VERSION),)
    usable = [v for v in offered if cfg.allows(v) and cfg.suites_for(v)]
    if not usable:
        names = ", ".join(f"0x{v:04x}" for v in offered)
        raise err(
            "ERR_NO_SHARED_VERSION",
            f"no protocol version in common: the client offers {names}; we accept "
            f"0x{cfg.min_version:04x} to 0x{cfg.max_version:04x}",
            AD.protocol_version,
        )
    version = max(usable)
    if CipherSuite.TLS_FALLBACK_SCSV in msg.cipher_suites and max(offered) < cfg.max_version:
        # RFC 7507 3: the client retries with less than it can do, but we can do more.
        raise err(
            "ERR_INAPPROPRIATE_FALLBACK",
            f"TLS_FALLBACK_SCSV with highest version 0x{max(offered):04x} below ours "
            f"(0x{cfg.max_version:04x})",
            AD.inappropriate_fallback,
        )
    return version


def send_hello_retry_request(
    conn: Connection, msg: ClientHello, raw: bytes, suite_code: int, group: int
) -> None:
    assert conn.suite is not None
    conn._hrr_suite = suite_code
    conn._hrr_group = group
    conn.hello_retry = True
    conn._transcript = Transcript(conn.suite.hash_name)
    conn._transcript.update(raw)
    conn._transcript.hello_retry_request()
    if wx.ext(msg, ExtensionType.early_data) is not None:
        # RFC 8446 4.2.10: after an HRR, skip the client's 0-RTT records.
        conn._skip_early = conn.config.max_early_data or early.REJECTED_BUDGET
    hrr = ServerHello(
        legacy_version=LEGACY_VERSION,
        random=HRR_RANDOM,
        legacy_session_id_echo=conn._session_id,
        cipher_suite=suite_code,
        legacy_compression_method=0,
        extensions=(
            wx.Extension(ExtensionType.supported_versions, wx.push_selected_version(TLS13)),
            wx.Extension(ExtensionType.key_share, wx.push_key_share_hrr(group)),
        ),
    )
    conn._send_handshake(hrr)
    conn._flush_handshake()
    if conn._want_ccs:
        records.send_ccs(conn)  # RFC 8446 D.4: after the server's first handshake message
    conn._events.append(HelloRetryRequestSent(NamedGroup(group)))
    conn._transition(HandshakeType.client_hello, Branch.HELLO_RETRY_REQUEST)


def on_finished(conn: Connection, msg: Finished, raw: bytes) -> None:
    assert conn._transcript is not None
    auth.check_finished(conn, msg, conn._client_hs_secret, "client")
    conn._transcript.update(raw)
    auth.schedule_resumption(conn)
    records.set_read_key(conn, conn._client_ap_secret, "application")
    conn._transition(HandshakeType.finished)
    auth.complete(conn)
    for _ in range(conn.config.session_tickets):
        send_new_session_ticket(conn)
    conn._flush_handshake()


def send_new_session_ticket(conn: Connection) -> None:
    """A ticket that resumes once on a server with our ticket key (psk.py)."""
    conn._send_handshake(psk.new_ticket(conn))


def dispatch(conn: Connection, msg: HandshakeMessage, raw: bytes) -> None:
    """A TLS 1.3 (or not yet negotiated) message the table allowed, to its handler."""
    if isinstance(msg, ClientHello):
        on_client_hello(conn, msg, raw)
    elif isinstance(msg, Certificate):
        auth.on_certificate(conn, msg, raw)
    elif isinstance(msg, CertificateVerify):
        auth.on_certificate_verify(conn, msg, raw)
    elif isinstance(msg, Finished):
        on_finished(conn, msg, raw)
    elif isinstance(msg, KeyUpdate):
        keyupdate.on_key_update(conn, msg)
    elif isinstance(msg, EndOfEarlyData):
        early.on_end_of_early_data(conn, msg, raw)
    else:  # the table allowed the type, so this is a codec/engine mismatch
        raise err(
            "ERR_INTERNAL", f"no handler for {type(msg).__name__}", AD.internal_error, ErrorKind.INTERNAL
        )
