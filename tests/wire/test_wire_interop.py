"""Decode handshakes produced by real TLS stacks: Python's ssl (OpenSSL) over MemoryBIO, and
the first flight of the openssl and gnutls-cli command-line clients over a loopback socket."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from capdebug._buffer import Buffer
from capdebug.analysis.describe import message_fields
from capdebug.wire import handshake as hs
from capdebug.wire import handshake12 as hs12
from capdebug.wire import record as rec
from capdebug.wire.constants import ContentType, ExtensionType, NamedGroup
from capdebug.wire.extensions import (
    ext,
    pull_alpn_protocols,
    pull_key_share_client,
    pull_server_name_list,
    pull_supported_groups,
    pull_supported_versions,
)
from tests.tools import require

pytestmark = pytest.mark.tools

SNI = "interop.example.test"
ALPN = ["h2", "http/1.1"]


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require("openssl")
    d = tmp_path_factory.mktemp("cert")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost", "-days", "1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def _handshake_in_memory(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> tuple[bytes, bytes, ssl.SSLObject, ssl.SSLContext]:
    """Run a Python ssl client against a Python ssl server in memory; return both byte streams."""
    cert, key = cert_files
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    sctx.set_alpn_protocols(ALPN)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    cctx.set_alpn_protocols(ALPN)
    # Capping the client leaves a TLS 1.3-capable server, which must then mark its random
    # with the downgrade sentinel (RFC 8446 section 4.1.3).
    cctx.maximum_version = version
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(c_in, c_out, server_hostname=SNI)
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    c2s, s2c = bytearray(), bytearray()
    done = [False, False]
    for _ in range(20):
        for i, obj in enumerate((client, server)):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        out = c_out.read()
        c2s += out
        s_in.write(out)
        out = s_out.read()
        s2c += out
        c_in.write(out)
        if all(done) and not out:
            break
    assert all(done)
    return bytes(c2s), bytes(s2c), client, cctx


def _plaintext_handshake(stream: bytes, tls13: bool | None) -> list[hs.HandshakeMessage]:
    """The handshake messages before the first ChangeCipherSpec or protected record."""
    frames, consumed = rec.frame_records(stream)
    assert consumed == len(stream)
    data = bytearray()
    for ct, off, n in frames:
        if ct != ContentType.handshake:
            break
        data += stream[off + 5 : off + 5 + n]
    buf = Buffer(bytes(data))
    out = []
    while not buf.eof():
        out.append(hs.pull_handshake(buf, tls13))
    # Round trip: the parsed messages re-encode to exactly the wire bytes.
    assert b"".join(hs.encode_handshake(m) for m in out) == data
    return out


def _check_client_hello(ch: hs.HandshakeMessage) -> hs.ClientHello:
    assert isinstance(ch, hs.ClientHello)
    assert pull_server_name_list(ext(ch, ExtensionType.server_name) or b"") == (SNI,)
    assert pull_alpn_protocols(ext(ch, ExtensionType.application_layer_protocol_negotiation) or b"") == (
        b"h2",
        b"http/1.1",
    )
    versions = pull_supported_versions(ext(ch, ExtensionType.supported_versions) or b"")
    assert 0x0304 in versions and 0x0303 in versions
    groups = pull_supported_groups(ext(ch, ExtensionType.supported_groups) or b"")
    shares = pull_key_share_client(ext(ch, ExtensionType.key_share) or b"")
    assert shares and all(s.group in groups for s in shares)
    for share in shares:
        if share.group == NamedGroup.x25519:
            assert len(share.key_exchange) == 32
        if share.group == NamedGroup.secp256r1:
            assert len(share.key_exchange) == 65 and share.key_exchange[0] == 4
    s = message_fields(ch)
    assert s["sni"] == SNI and s["alpn"] == ALPN
    assert "TLS 1.3" in s["supported_versions"]  # type: ignore[operator]
    assert "malformed_extensions" not in s
    return ch


def _suite_id(ctx: ssl.SSLContext, openssl_name: str) -> int:
    (cipher,) = [c for c in ctx.get_ciphers() if c["name"] == openssl_name]
    return int(cipher["id"]) & 0xFFFF


def test_python_ssl_tls13(cert_files: tuple[Path, Path]) -> None:
    c2s, s2c, client, cctx = _handshake_in_memory(cert_files, ssl.TLSVersion.TLSv1_3)
    assert rec.looks_like_tls(c2s)
    ch, *_ = _plaintext_handshake(c2s, None)
    _check_client_hello(ch)
    sh, *rest = _plaintext_handshake(s2c, None)
    assert rest == []  # everything after the ServerHello is protected
    assert isinstance(sh, hs.ServerHello) and not sh.is_hello_retry_request
    assert client.version() == "TLSv1.3"
    cipher_name = client.cipher()[0]  # type: ignore[index]
    assert message_fields(sh)["cipher_suite"] == cipher_name  # OpenSSL uses the IANA names in 1.3
    assert sh.cipher_suite == _suite_id(cctx, cipher_name)
    assert message_fields(sh)["version"] == "TLS 1.3"
    assert sh.legacy_session_id_echo == ch.legacy_session_id  # type: ignore[union-attr]


def test_python_ssl_tls12(cert_files: tuple[Path, Path]) -> None:
    c2s, s2c, client, cctx = _handshake_in_memory(cert_files, ssl.TLSVersion.TLSv1_2)
    assert client.version() == "TLSv1.2"
    server_msgs = _plaintext_handshake(s2c, False)
    types = [type(m) for m in server_msgs]
    assert types[:4] == [hs.ServerHello, hs.Certificate, hs.ServerKeyExchange, hs.ServerHelloDone]
    sh, cert, ske, _ = server_msgs[:4]
    assert isinstance(sh, hs.ServerHello) and isinstance(cert, hs.Certificate)
    assert isinstance(ske, hs.ServerKeyExchange)
    assert sh.cipher_suite == _suite_id(cctx, client.cipher()[0])  # type: ignore[index]
    assert sh.downgrade_sentinel == 0x0303  # the server could do TLS 1.3
    s = message_fields(sh)
    assert s["alpn"] == client.selected_alpn_protocol() == "h2"
    assert not cert.tls13
    assert cert.der_list == (ssl.PEM_cert_to_DER_cert(cert_files[0].read_text()),)
    params = hs12.parse_ecdhe_server_key_exchange(ske.body, tls12=True)
    assert params == hs12.parse_ecdhe_server_key_exchange(ske.body)  # the guess agrees
    assert params.signature_algorithm is not None and params.signature
    client_msgs = _plaintext_handshake(c2s, False)
    assert isinstance(client_msgs[0], hs.ClientHello)
    cke = client_msgs[1]
    assert isinstance(cke, hs.ClientKeyExchange)
    point = hs12.pull_ecdh_client_public(cke.body)
    if params.named_curve == NamedGroup.x25519:
        assert len(point) == 32
    # The ticket (RFC 5077) is sent before the server's ChangeCipherSpec, in the clear.
    assert types[4:] == [hs.NewSessionTicket12]
    assert message_fields(server_msgs[4])["ticket_length"] == len(server_msgs[4].ticket)  # type: ignore[union-attr]
    # Read without saying which version it is, the flight decodes the same.
    assert _plaintext_handshake(s2c, None) == server_msgs


def _first_flight(argv: list[str], port_holder: socket.socket) -> bytes:
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        port_holder.settimeout(15)
        conn, _ = port_holder.accept()
        with conn:
            conn.settimeout(15)
            data = b""
            while True:
                frames, _ = rec.frame_records(data)
                if frames:
                    break
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return data


@pytest.mark.parametrize("tool", ["openssl", "gnutls-cli"])
def test_command_line_client_hello(tool: str) -> None:
    require(tool)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        if tool == "openssl":
            argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", SNI]
            argv += ["-alpn", ",".join(ALPN)]
        else:
            argv = ["gnutls-cli", "--insecure", "-p", str(port), f"--sni-hostname={SNI}", "127.0.0.1"]
            argv += [f"--alpn={p}" for p in ALPN]
        data = _first_flight(argv, listener)
    assert rec.looks_like_tls(data)
    frames, _ = rec.frame_records(data)
    ct, off, n = frames[0]
    assert ct == ContentType.handshake
    body = data[off + 5 : off + 5 + n]
    (msg_type, _, length), *_ = hs.frame_handshake(body)[0]
    assert msg_type == 1 and length + 4 == n
    ch = hs.pull_handshake(Buffer(body))
    _check_client_hello(ch)
    assert hs.encode_handshake(ch) == body
