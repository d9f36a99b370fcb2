"""Authentication messages both sides send and check: Certificate, CertificateVerify,
Finished (RFC 8446 section 4.4), and the HandshakeComplete event.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ..crypto import x509 as cx509
from ..crypto import x509_engine
from ..crypto.schedule13 import finished_verify_data
from ..errors import CryptoError, DecodeError, ErrorKind
from ..wire.constants import HandshakeType, SignatureScheme, name_of
from ..wire.handshake import Certificate, CertificateEntry, CertificateVerify, Finished
from ._common import AD, CV_CLIENT, CV_PAD, CV_SERVER, T, err
from .config import TLS12_ONLY_SCHEMES, ClientAuth
from .events import HandshakeComplete
from .state import Branch

if TYPE_CHECKING:
    from .connection import Connection


def schedule_resumption(conn: Connection) -> None:
    assert conn._schedule is not None and conn._transcript is not None
    conn._resumption_secret = conn._schedule.resumption_master_secret(conn._transcript.digest())
    if conn._trace.mask & T.KEYS:
        conn._trace.emit(T.KEYS, "derived resumption_master_secret")


def send_certificate_and_verify(conn: Connection, context: bytes, server: bool = False) -> None:
    cred = conn.config.credential
    if cred is None:
        # RFC 8446 4.4.2: a client without a certificate answers with an empty one.
        conn._send_handshake(Certificate(context, ()))
        return
    if server:
        scheme = conn._our_scheme
    else:
        ours = x509_engine.compatible_schemes(cred.private_key)
        scheme = next((s for s in ours if s in conn._peer_schemes), None)
        if scheme is None:
            # Nothing the server accepts: send no certificate and let it decide.
            conn._send_handshake(Certificate(context, ()))
            return
    assert scheme is not None and conn._transcript is not None
    conn._send_handshake(Certificate(context, tuple(CertificateEntry(der) for der in cred.chain)))
    content = CV_PAD + (CV_SERVER if server else CV_CLIENT) + conn._transcript.digest()
    try:
        signature = cx509.sign(cred.private_key, scheme, content)
    except CryptoError as exc:
        raise err(
            "ERR_INTERNAL",
            f"cannot sign CertificateVerify: {exc}",
            AD.internal_error,
            ErrorKind.INTERNAL,
        ) from exc
    conn._send_handshake(CertificateVerify(scheme, signature))


def send_finished(conn: Connection, base_key: bytes) -> None:
    assert conn.suite is not None and conn._transcript is not None
    verify_data = finished_verify_data(conn.suite.hash_name, base_key, conn._transcript.digest())
    conn._send_handshake(Finished(verify_data))


def check_finished(conn: Connection, msg: Finished, base_key: bytes, whose: str) -> None:
    assert conn.suite is not None and conn._transcript is not None
    if len(msg.verify_data) != conn.suite.hash_len:
        # RFC 8446 4.4.4: verify_data is Hash.length bytes; anything else does not parse.
        raise err(
            "ERR_DECODE",
            f"Finished of {len(msg.verify_data)} bytes (RFC 8446 4.4.4: {conn.suite.hash_len})",
            AD.decode_error,
        )
    expected = finished_verify_data(conn.suite.hash_name, base_key, conn._transcript.digest())
    if not hmac.compare_digest(expected, msg.verify_data):
        raise err("ERR_BAD_FINISHED", f"the {whose} Finished does not verify", AD.decrypt_error)


def verify_peer_chain(conn: Connection, chain: tuple[bytes, ...]) -> None:
    """``Connection._verify_peer_chain``, with a peer certificate whose names cryptography only
    fails to parse when they are read (a ValueError from crypto.x509's chain search) named as
    the bad certificate it is: a peer's bytes never escape as another exception."""
    try:
        conn._verify_peer_chain(chain)
    except ValueError as exc:
        raise err("ERR_CERT_INVALID", f"malformed certificate: {exc}", AD.bad_certificate) from exc


def on_certificate(conn: Connection, msg: Certificate, raw: bytes) -> None:
    assert conn._transcript is not None
    # RFC 8446 4.4.2: empty for the server's, and our in-handshake CertificateRequest always
    # has an empty context for the client to echo (no post-handshake authentication).
    if msg.certificate_request_context:
        raise err("ERR_ILLEGAL_PARAMETER", "certificate_request_context mismatch", AD.illegal_parameter)
    chain = msg.der_list
    conn._transcript.update(raw)
    if not chain:
        if conn.is_client:
            # RFC 8446 4.4.2.4: the server must send a certificate.
            raise err("ERR_DECODE", "the server sent an empty Certificate", AD.decode_error)
        if conn.config.client_auth is ClientAuth.REQUIRED:
            raise err("ERR_CERT_REQUIRED", "the client sent no certificate", AD.certificate_required)
        conn._transition(HandshakeType.certificate, Branch.EMPTY_CERTIFICATE)
        return
    conn.peer_certificates = chain
    if conn.config.verify:
        verify_peer_chain(conn, chain)
    elif conn._trace.mask & T.HANDSHAKE:
        conn._trace.emit(T.HANDSHAKE, "peer certificate NOT verified (verify=False)")
    conn._transition(HandshakeType.certificate)


def on_certificate_verify(conn: Connection, msg: CertificateVerify, raw: bytes) -> None:
    assert conn._transcript is not None
    scheme = msg.algorithm
    allowed = conn._offered_schemes
    # RFC 8446 4.4.3: RSASSA-PKCS1-v1_5 is offered for TLS 1.2 only, never a 1.3 CertificateVerify.
    if scheme is None or scheme not in allowed or scheme in TLS12_ONLY_SCHEMES:
        raise err(
            "ERR_ILLEGAL_PARAMETER",
            f"CertificateVerify uses {name_of(SignatureScheme, scheme or 0)}, which we did not offer",
            AD.illegal_parameter,
        )
    content = CV_PAD + (CV_SERVER if conn.is_client else CV_CLIENT) + conn._transcript.digest()
    try:
        cx509.verify_signature(conn.peer_certificates[0], scheme, content, msg.signature)
    except (CryptoError, DecodeError) as exc:  # DecodeError: a certificate that does not parse
        raise err("ERR_BAD_SIGNATURE", f"CertificateVerify does not verify: {exc}", AD.decrypt_error) from exc
    conn.peer_signature_scheme = SignatureScheme(scheme)
    conn._transcript.update(raw)
    conn._transition(HandshakeType.certificate_verify)


def complete(conn: Connection) -> None:
    assert conn.cipher_suite is not None and conn.group is not None
    scheme: SignatureScheme | None
    if conn._psk:
        scheme = None  # authenticated by the PSK (RFC 8446 2.2)
    elif conn.is_client:
        assert conn.peer_signature_scheme is not None
        scheme = conn.peer_signature_scheme
    else:
        assert conn._our_scheme is not None
        scheme = SignatureScheme(conn._our_scheme)
    conn._events.append(
        HandshakeComplete(
            cipher_suite=conn.cipher_suite,
            group=conn.group,
            alpn=conn.alpn,
            server_name=conn.server_name,
            signature_scheme=scheme,
            peer_certificates=conn.peer_certificates,
            hello_retry=conn.hello_retry,
            resumed=bool(conn._psk),
            early_data=conn._early_accepted,
        )
    )
