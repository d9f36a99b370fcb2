"""Real TLS peers for the crypto tests: openssl s_server and s_client talking through a TCP relay
in the test process that records the bytes in each direction, plus a minimal record and
handshake splitter (written here, independently of capdebug.wire, so the crypto tests do not
depend on the codecs).
"""

from __future__ import annotations

import selectors
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.peers import openssl_s_server, self_signed_localhost

REQUEST = b"GET / HTTP/1.0\r\n\r\n"
TIMEOUT = 15.0


@dataclass
class Record:
    type: int
    header: bytes
    fragment: bytes


@dataclass
class Session:
    client_to_server: bytes
    server_to_client: bytes
    keylog: dict[str, bytes]
    """label -> secret (one connection, so client_random is not needed as a key)."""
    client_random_in_keylog: bytes
    server_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)

    def client_records(self) -> list[Record]:
        return split_records(self.client_to_server)

    def server_records(self) -> list[Record]:
        return split_records(self.server_to_client)


def split_records(data: bytes) -> list[Record]:
    out = []
    pos = 0
    while pos + 5 <= len(data):
        ctype, _version, length = struct.unpack_from(">BHH", data, pos)
        if pos + 5 + length > len(data):
            break
        out.append(Record(ctype, data[pos : pos + 5], data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return out


def split_handshake(data: bytes) -> list[bytes]:
    """Complete handshake messages (header included) from concatenated handshake bytes."""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        out.append(data[pos : pos + 4 + length])
        pos += 4 + length
    assert pos == len(data), "trailing partial handshake message"
    return out


def extensions(hello: bytes) -> dict[int, bytes]:
    """Extensions of a ClientHello or ServerHello message (header included)."""
    pos = 4 + 2 + 32
    pos += 1 + hello[pos]  # legacy_session_id
    if hello[0] == 1:
        pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + hello[pos]  # legacy_compression_methods
    else:
        pos += 3  # cipher_suite, legacy_compression_method
    out: dict[int, bytes] = {}
    if pos >= len(hello):
        return out
    end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
    pos += 2
    while pos < end:
        etype, elen = struct.unpack_from(">HH", hello, pos)
        out[etype] = hello[pos + 4 : pos + 4 + elen]
        pos += 4 + elen
    return out


def server_hello_suite(server_hello: bytes) -> int:
    pos = 4 + 2 + 32
    pos += 1 + server_hello[pos]
    return int.from_bytes(server_hello[pos : pos + 2], "big")


def first_certificate(certificate: bytes, tls13: bool) -> bytes:
    """The leaf DER of a Certificate message (RFC 8446 section 4.4.2, RFC 5246 section 7.4.2)."""
    pos = 4
    if tls13:
        pos += 1 + certificate[pos]  # certificate_request_context
    pos += 3  # certificate_list length
    length = int.from_bytes(certificate[pos : pos + 3], "big")
    return certificate[pos + 3 : pos + 3 + length]


def hello_random(hello: bytes) -> bytes:
    return hello[6:38]


def make_rsa_identity(directory: Path) -> tuple[Path, Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert_path, key_path = self_signed_localhost(directory, key, "server.crt", "server.key")
    return cert_path, key_path, key


class Relay:
    """A one-connection TCP relay on 127.0.0.1 that records both directions."""

    def __init__(self, upstream_port: int) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._upstream = upstream_port
        self.c2s = bytearray()
        self.s2c = bytearray()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def snapshot(self) -> tuple[bytes, bytes]:
        with self._lock:
            return bytes(self.c2s), bytes(self.s2c)

    def wait_until(self, predicate: Callable[[bytes, bytes], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not predicate(*self.snapshot()):
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(f"relay: timed out waiting for {what}")
            time.sleep(0.01)

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "relay did not finish"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._listener.settimeout(TIMEOUT)
            client, _ = self._listener.accept()
            server = socket.create_connection(("127.0.0.1", self._upstream), timeout=TIMEOUT)
            peers = {client: (server, self.c2s), server: (client, self.s2c)}
            open_ = {client, server}
            with selectors.DefaultSelector() as sel:
                for s in open_:
                    sel.register(s, selectors.EVENT_READ)
                deadline = time.monotonic() + TIMEOUT
                while open_ and time.monotonic() < deadline:
                    for key, _ in sel.select(0.5):
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        other, log = peers[sock]
                        try:
                            data = sock.recv(65536)
                        except ConnectionResetError:
                            data = b""
                        if data:
                            with self._lock:
                                log += data
                            try:
                                other.sendall(data)
                            except OSError:
                                pass
                        else:
                            sel.unregister(sock)
                            open_.discard(sock)
                            try:
                                other.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
            client.close()
            server.close()
        except BaseException as exc:  # reported by join() in the test thread
            self.error = exc
        finally:
            self._listener.close()


def _read_keylog(path: Path) -> tuple[dict[str, bytes], bytes]:
    secrets: dict[str, bytes] = {}
    client_random = b""
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        label, cr, secret = line.split()
        secrets[label] = bytes.fromhex(secret)
        client_random = bytes.fromhex(cr)
    return secrets, client_random


def run_openssl(
    tmp_path: Path,
    server_args: list[str],
    client_args: list[str],
    *,
    key_update: bool = False,
    identity: bool = True,
) -> Session:
    """One connection between openssl s_client and s_server -www through a recording relay.

    The client sends :data:`REQUEST` (after a KeyUpdate with update_requested, when
    ``key_update``), the server answers with its status page and closes.
    """
    server_key = None
    if identity:
        cert, key_file, server_key = make_rsa_identity(tmp_path)
        server_args = ["-cert", str(cert), "-key", str(key_file), *server_args]
    server, port = openssl_s_server(["-naccept", "1", "-www", *server_args], tmp_path)
    relay = Relay(port)
    keylog = tmp_path / "keylog.txt"
    client = subprocess.Popen(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{relay.port}",
            "-keylogfile",
            str(keylog),
            *client_args,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert client.stdin is not None
    try:
        if key_update:
            # s_client reads a line starting with "K" as "send KeyUpdate(update_requested)" once
            # the handshake is done, i.e. once its Finished (an encrypted record) has left.
            relay.wait_until(lambda c2s, _: any(r.type == 23 for r in split_records(c2s)), "client Finished")
            before = len(relay.snapshot()[0])
            client.stdin.write(b"K\n")
            client.stdin.flush()
            relay.wait_until(lambda c2s, _: len(c2s) > before, "KeyUpdate")
        client.stdin.write(REQUEST)
        client.stdin.flush()
        relay.join()
        client.stdin.close()
        client.wait(TIMEOUT)
        server.wait_exit(TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        server.kill()
    secrets, client_random = _read_keylog(keylog)
    return Session(bytes(relay.c2s), bytes(relay.s2c), secrets, client_random, server_key)
