"""A TLS server for the key-log tests: Python's ssl over loopback, many clients at once.

Each connection: optionally PostgreSQL's SSLRequest answered with ``S`` (psql's way into TLS),
the handshake, a short HTTP response, then close. Handshakes completed are counted."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.peers import self_signed_localhost

RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
_SSL_REQUEST = bytes.fromhex("0000000804d2162f")


@dataclass
class Server:
    port: int
    handshakes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _serve_one(conn: socket.socket, ctx: ssl.SSLContext, server: Server, postgres: bool) -> None:
    try:
        conn.settimeout(10)
        if postgres:
            if conn.recv(8, socket.MSG_WAITALL) != _SSL_REQUEST:
                return
            conn.sendall(b"S")
        with ctx.wrap_socket(conn, server_side=True) as tls:
            with server.lock:
                server.handshakes += 1
            tls.sendall(RESPONSE)
            # Read the client's request if it sends one (closing before it arrives would reset
            # the connection), but do not wait long for clients that only listen (s_client).
            tls.settimeout(0.5)
            try:
                tls.recv(4096)
            except (OSError, ssl.SSLError):
                pass
            try:
                tls.unwrap()
            except (OSError, ssl.SSLError):
                pass
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


@contextmanager
def tls_server(tmp: Path, *, postgres: bool = False, tls12: bool = False) -> Iterator[Server]:
    cert, key = self_signed_localhost(tmp, ec.generate_private_key(ec.SECP256R1()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    lsock = socket.create_server(("127.0.0.1", 0), backlog=256)
    server = Server(lsock.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=_serve_one, args=(conn, ctx, server, postgres), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield server
    finally:
        stop.set()
        lsock.close()
        t.join(5)
