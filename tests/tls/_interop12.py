"""What the TLS 1.2 interop tests share: the suites with the names each peer gives them, the
certificate each needs, and a loopback proxy that rewrites the first ClientHello (to play the
downgrading attacker of RFC 8446 4.1.3)."""

from __future__ import annotations

import socket
import threading

from capdebug._buffer import Buffer
from capdebug.tls.config import OPENSSL_CIPHER_NAMES
from capdebug.wire.constants import CipherSuite, ExtensionType
from capdebug.wire.handshake import ClientHello, encode_handshake, pull_handshake

from ._peers import TIMEOUT

CS = CipherSuite
SUITES12 = [
    CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    CS.TLS_RSA_WITH_AES_128_GCM_SHA256,
]
CBC = [s for s in SUITES12 if s.name.endswith("_CBC_SHA")]


def leaf_for(suite: CipherSuite) -> str:
    return "ecdsa" if "_ECDSA_" in suite.name else "rsa"


def openssl_name(suite: CipherSuite) -> str:
    return OPENSSL_CIPHER_NAMES[suite]


def gnutls_priority(suite: CipherSuite, etm: bool = True) -> str:
    """A GnuTLS priority string allowing exactly ``suite`` over TLS 1.2."""
    cipher = {
        "AES_128_GCM": "AES-128-GCM",
        "AES_256_GCM": "AES-256-GCM",
        "CHACHA20_POLY1305": "CHACHA20-POLY1305",
    }
    cipher |= {"AES_128_CBC": "AES-128-CBC", "AES_256_CBC": "AES-256-CBC"}
    name = suite.name.split("_WITH_", 1)[1]
    c = next(v for k, v in cipher.items() if name.startswith(k))
    mac = "SHA1" if name.endswith("_CBC_SHA") else "AEAD"
    kx = {"TLS_ECDHE_ECDSA": "ECDHE-ECDSA", "TLS_ECDHE_RSA": "ECDHE-RSA", "TLS_RSA": "RSA"}[
        suite.name.split("_WITH_", 1)[0]
    ]
    extra = "" if etm else ":%NO_ETM"
    return f"NONE:+VERS-TLS1.2:+{c}:+{mac}:+{kx}:+COMP-NULL:+SIGN-ALL:+CURVE-ALL:+CTYPE-X509{extra}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StripVersionsProxy:
    """Forwards one connection to ``target``, removing supported_versions from the first
    ClientHello, as an attacker who wants TLS 1.2 would. Everything else passes unchanged."""

    def __init__(self, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.target = target
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.listener:
            client, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target), timeout=TIMEOUT)
        client.settimeout(TIMEOUT)
        with client, upstream:
            first = b""
            while len(first) < 5 or len(first) < 5 + int.from_bytes(first[3:5], "big"):
                chunk = client.recv(65536)
                if not chunk:
                    return
                first += chunk
            length = int.from_bytes(first[3:5], "big")
            record, rest = first[5 : 5 + length], first[5 + length :]
            hello = pull_handshake(Buffer(record))
            assert isinstance(hello, ClientHello)
            stripped = ClientHello(
                hello.legacy_version,
                hello.random,
                hello.legacy_session_id,
                hello.cipher_suites,
                hello.legacy_compression_methods,
                tuple(e for e in hello.extensions if e.type != ExtensionType.supported_versions),
            )
            body = encode_handshake(stripped)
            upstream.sendall(first[:3] + len(body).to_bytes(2, "big") + body + rest)
            pump = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
            pump.start()
            _copy(client, upstream)
            pump.join(TIMEOUT)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
