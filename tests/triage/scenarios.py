"""Real captures for the triage tests: one scenario per verdict code.

Every scenario runs real TLS stacks (Python's ``ssl`` with ``keylog_filename``, OpenSSL's
``s_server``/``s_client``) over loopback, on its own ephemeral port, captured by a real
``tcpdump -i lo --immediate-mode -B 65536 -U -w FILE 'tcp port P'`` that is listening before the
first packet and is stopped with SIGINT after a short sleep. A scenario writes ``NAME.pcap`` and,
when the stacks logged secrets, ``NAME.keys`` (NSS key log).

One scenario cannot be made by a real stack alone: no TLS library lets the application write
after it sent close_notify. ``data_after_close_notify`` therefore takes a real Python ssl
connection, lets the client send its close_notify, and then writes one more TLS 1.3
application_data record straight onto the client's TCP socket, sealed by
:class:`capdebug.crypto.protection.Tls13Protection` with the client's logged application traffic
secret and the next sequence number. The packet on the wire comes from the real kernel; only the
record's bytes are ours.

``scripts/make_triage_captures.py`` runs all scenarios into ``tests/fixtures/triage/``; the
tests read those committed captures (and regenerate one live to keep this module honest).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from capdebug.crypto import testpki
from capdebug.crypto.protection import Tls13Protection
from capdebug.crypto.suites import SUITES
from tests.support.proc import TIMEOUT, Proc, ToolError, tool
from tests.support.tcpdump import tcpdump


class ScenarioError(ToolError):
    """A tool failed or the conversation did not go as the scenario needs."""


@dataclass(frozen=True, slots=True)
class Capture:
    name: str
    pcap: Path
    keys: Path | None
    port: int
    method: str
    """How the capture was made (which stacks, what they did)."""


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(TIMEOUT)
    return s


# -- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    good: tuple[Path, Path]
    expired: tuple[Path, Path]
    not_yet_valid: tuple[Path, Path]
    wrong_host: tuple[Path, Path]
    self_signed: tuple[Path, Path]
    rsa1024: tuple[Path, Path]
    client_unknown: tuple[Path, Path]
    """A client certificate from another CA (the server does not trust it)."""


def make_pki(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    paths = testpki.make_test_pki(
        directory,
        now,
        only=(
            "server-ecdsa",
            "server-expired",
            "server-not-yet-valid",
            "server-wrong-host",
            "server-self-signed",
        ),
    )
    other = directory / "other"
    other_paths = testpki.make_test_pki(other, now, only=("client-ecdsa",))

    # RSA 1024: testpki has no such key type; cryptography still generates it.
    ca = testpki.Issued(
        x509.load_pem_x509_certificate(paths["ca"].read_bytes()).public_bytes(serialization.Encoding.DER),
        paths["ca.key"].read_bytes(),
        "capdebug test CA",
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    ca_cert = x509.load_der_x509_certificate(ca.cert_der)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca.private_key(), hashes.SHA256())
    )
    rsa_pem = directory / "server-rsa1024.pem"
    rsa_key = directory / "server-rsa1024.key"
    rsa_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + paths["ca"].read_bytes())
    rsa_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

    def pair(n: str, p: dict[str, Path] = paths) -> tuple[Path, Path]:
        return p[n], p[f"{n}.key"]

    return Pki(
        ca=paths["ca"],
        good=pair("server-ecdsa"),
        expired=pair("server-expired"),
        not_yet_valid=pair("server-not-yet-valid"),
        wrong_host=pair("server-wrong-host"),
        self_signed=pair("server-self-signed"),
        rsa1024=(rsa_pem, rsa_key),
        client_unknown=pair("client-ecdsa", other_paths),
    )


# -- Python ssl conversations ---------------------------------------------------------------


def _server_ctx(
    cert: tuple[Path, Path], keys: Path, *, tls13: bool = True, seclevel0: bool = False
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.keylog_filename = str(keys)
    return ctx


def _client_ctx(keys: Path | None, *, verify: Path | None = None, seclevel0: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if verify is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(str(verify))
    if keys is not None:
        ctx.keylog_filename = str(keys)
    return ctx


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ScenarioError(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def _send_close_notify_only(s: ssl.SSLSocket) -> None:
    """Send close_notify without waiting for the peer's (a TLS 1.3 write shutdown).

    ``unwrap()`` runs SSL_shutdown, which sends close_notify and then, called again, waits for
    the peer's. On a non-blocking socket the wait is an SSLWantReadError: the close_notify is out.
    """
    s.setblocking(False)
    try:
        s.unwrap()
    except ssl.SSLWantReadError:
        pass
    finally:
        s.setblocking(True)
        s.settimeout(TIMEOUT)


def _linger0(s: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


_opened = threading.local()
"""The TLS sockets a server thread made (wrap_socket detaches the TCP socket it was given)."""


def _accept_tls(
    ctx: ssl.SSLContext, conn: socket.socket, *, suppress_ragged_eofs: bool = True
) -> ssl.SSLSocket:
    s = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=suppress_ragged_eofs)
    _opened.sockets.append(s)
    return s


ServerFn = Callable[[socket.socket], None]
ClientFn = Callable[[int], None]


def _python_pair(
    out: Path,
    name: str,
    server: ServerFn,
    client: ClientFn,
    *,
    accepts: int = 1,
    method: str,
    keys: Path | None,
    snaplen: int | None = None,
) -> Capture:
    """Run ``server`` (per accepted raw socket) in a thread and ``client(port)`` here, captured."""
    lsock = _listener()
    port = lsock.getsockname()[1]
    pcap = out / f"{name}.pcap"
    errors: list[BaseException] = []

    def serve() -> None:
        _opened.sockets = []
        try:
            for _ in range(accepts):
                conn, _addr = lsock.accept()
                conn.settimeout(TIMEOUT)
                try:
                    server(conn)
                finally:
                    conn.close()
                    for tls in _opened.sockets:
                        tls.close()
                    _opened.sockets.clear()
        except BaseException as exc:
            errors.append(exc)

    with tcpdump(pcap, port, snaplen=snaplen):
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            client(port)
        finally:
            t.join(TIMEOUT)
            lsock.close()
    if errors:
        raise ScenarioError(f"{name}: server failed: {errors[0]!r}") from errors[0]
    if t.is_alive():
        raise ScenarioError(f"{name}: server did not finish")
    return Capture(name, pcap, keys if keys is not None and keys.exists() else None, port, method)


def _connect(
    port: int, ctx: ssl.SSLContext, sni: str | None = "localhost", session: ssl.SSLSession | None = None
) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname=sni, session=session)


def _exchange_then_unwrap(server_ctx: ssl.SSLContext) -> ServerFn:
    """Server: echo one 5-byte request, then answer the client's close_notify with its own."""

    def server(conn: socket.socket) -> None:
        s = _accept_tls(server_ctx, conn)
        s.sendall(b"hello" + _recv_exactly(s, 5))
        if s.recv(1) != b"":
            raise ScenarioError("expected close_notify")
        s.unwrap()

    return server


def _client_exchange_unwrap(ctx: ssl.SSLContext, sni: str | None = "localhost") -> ClientFn:
    def client(port: int) -> None:
        c = _connect(port, ctx, sni)
        c.sendall(b"ping!")
        _recv_exactly(c, 10)
        c.unwrap().close()

    return client


def clean_close(out: Path, pki: Pki) -> Capture:
    keys = out / "clean_close.keys"
    return _python_pair(
        out,
        "clean_close",
        _exchange_then_unwrap(_server_ctx(pki.good, keys)),
        _client_exchange_unwrap(_client_ctx(keys, verify=pki.ca)),
        keys=keys,
        method="Python ssl TLS 1.3: one request and answer, then unwrap() on both sides",
    )


def clean_close_tls12(out: Path, pki: Pki) -> Capture:
    keys = out / "clean_close_tls12.keys"
    return _python_pair(
        out,
        "clean_close_tls12",
        _exchange_then_unwrap(_server_ctx(pki.good, keys, tls13=False)),
        _client_exchange_unwrap(_client_ctx(keys, verify=pki.ca)),
        keys=keys,
        method="Python ssl TLS 1.2: one request and answer, then unwrap() on both sides",
    )


def premature_close(out: Path, pki: Pki) -> Capture:
    keys = out / "premature_close.keys"
    sctx = _server_ctx(pki.good, keys)

    def server(conn: socket.socket) -> None:
        s = _accept_tls(sctx, conn, suppress_ragged_eofs=False)
        s.sendall(b"hello" + _recv_exactly(s, 5))
        try:
            s.recv(1)
        except ssl.SSLEOFError:
            pass  # OpenSSL: "EOF occurred in violation of protocol": the truncation
        else:
            raise ScenarioError("the server should have seen a premature EOF")
        # The server then waits for the client to be gone before closing: only the client's FIN
        # is the premature close.
        time.sleep(0.1)

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))
        c.sendall(b"ping!")
        _recv_exactly(c, 10)
        c.close()  # no unwrap(): FIN without close_notify

    return _python_pair(
        out,
        "premature_close",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3: after one exchange the client closes the socket without unwrap()",
    )


def close_notify_unanswered(out: Path, pki: Pki) -> Capture:
    keys = out / "close_notify_unanswered.keys"
    sctx = _server_ctx(pki.good, keys)

    def server(conn: socket.socket) -> None:
        s = _accept_tls(sctx, conn)
        s.sendall(b"hello" + _recv_exactly(s, 5))
        _send_close_notify_only(s)
        # The client closes TCP without answering; our read sees the EOF.
        with suppress(ssl.SSLError, OSError):
            s.recv(1)

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))
        c.sendall(b"ping!")
        _recv_exactly(c, 10)
        if c.recv(1) != b"":
            raise ScenarioError("expected the server's close_notify")
        c.close()  # FIN, no close_notify of its own

    return _python_pair(
        out,
        "close_notify_unanswered",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3: the server sends close_notify; the client reads it and closes TCP",
    )


def half_close(out: Path, pki: Pki) -> Capture:
    keys = out / "half_close.keys"
    sctx = _server_ctx(pki.good, keys)

    def server(conn: socket.socket) -> None:
        s = _accept_tls(sctx, conn)
        _recv_exactly(s, 5)
        if s.recv(1) != b"":
            raise ScenarioError("expected the client's close_notify")
        time.sleep(0.1)  # the client's unwrap() must be done before data arrives (else it fails)
        for i in range(3):  # TLS 1.3: writing after the peer's close_notify is allowed
            s.sendall(b"more %d" % i)
            time.sleep(0.01)
        s.unwrap()

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))
        c.sendall(b"ping!")
        _send_close_notify_only(c)
        # OpenSSL refuses to read application data after its own close_notify
        # (APPLICATION_DATA_AFTER_CLOSE_NOTIFY), so the client drains the TCP socket itself: the
        # server's three records and its close_notify, until the server's FIN.
        raw = socket.socket(fileno=os.dup(c.fileno()))
        raw.settimeout(TIMEOUT)
        total = 0
        while chunk := raw.recv(4096):
            total += len(chunk)
        raw.close()
        if total < 4 * 22:
            raise ScenarioError(f"half_close: only {total} bytes after close_notify")
        c.close()

    return _python_pair(
        out,
        "half_close",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3: the client sends close_notify (non-blocking unwrap) and keeps "
        "reading the TCP socket; the server sends three more records, then unwrap()",
    )


_SECRET_LINE = re.compile(r"^CLIENT_TRAFFIC_SECRET_0 ([0-9a-fA-F]{64}) ([0-9a-fA-F]+)$", re.M)


def data_after_close_notify(out: Path, pki: Pki) -> Capture:
    keys = out / "data_after_close_notify.keys"
    sctx = _server_ctx(pki.good, keys)

    def server(conn: socket.socket) -> None:
        s = _accept_tls(sctx, conn)
        _recv_exactly(s, 5)
        with suppress(ssl.SSLError, OSError):
            s.recv(1)  # close_notify (b""); the record after it is never read by OpenSSL
        time.sleep(0.2)  # let the extra record arrive before this side closes
        with suppress(ssl.SSLError, OSError):
            s.unwrap()

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))
        c.sendall(b"ping!")  # application record seq 0
        name = c.cipher()
        assert name is not None
        _send_close_notify_only(c)  # close_notify: seq 1
        params = next(p for p in SUITES.values() if p.name == name[0] and p.version == "1.3")
        m = _SECRET_LINE.search(keys.read_text())
        if m is None:
            raise ScenarioError("no CLIENT_TRAFFIC_SECRET_0 in the key log")
        seal = Tls13Protection(params, bytes.fromhex(m.group(2)))
        # TLSInnerPlaintext: content, then the real content type application_data (23).
        record = seal.seal(b"after close_notify" + b"\x17", 2)
        # The SSL object refuses to write after shutdown: write on the TCP socket itself.
        raw = socket.socket(fileno=os.dup(c.fileno()))
        raw.sendall(record)
        raw.close()
        time.sleep(0.3)
        c.close()

    return _python_pair(
        out,
        "data_after_close_notify",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3 client sends close_notify; then one application_data record sealed "
        "with capdebug.crypto.protection (client traffic secret 0 from the key log, seq 2) is written "
        "on its TCP socket",
    )


def reset(out: Path, pki: Pki) -> Capture:
    keys = out / "reset.keys"
    sctx = _server_ctx(pki.good, keys)

    def server(conn: socket.socket) -> None:
        s = _accept_tls(sctx, conn)
        _recv_exactly(s, 5)
        s.sendall(b"partial")
        time.sleep(0.05)  # the client's second request arrives and stays unread
        _linger0(s)
        s.close()

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))
        c.sendall(b"ping!")
        _recv_exactly(c, 7)
        c.sendall(b"second request")
        with suppress(ssl.SSLError, OSError):
            c.recv(1)
        c.close()

    return _python_pair(
        out,
        "reset",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3: after an exchange the server closes with SO_LINGER 0 (RST) while "
        "the client's second request is unread",
    )


def benign_reset(out: Path, pki: Pki) -> Capture:
    keys = out / "benign_reset.keys"
    sctx = _server_ctx(pki.good, keys)
    closed = threading.Event()

    def server(conn: socket.socket) -> None:
        s = _accept_tls(sctx, conn)
        _recv_exactly(s, 5)
        _send_close_notify_only(s)
        s.close()
        closed.set()

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))
        c.sendall(b"ping!")
        closed.wait(TIMEOUT)
        time.sleep(0.05)
        # The server's socket is closed: its kernel answers this record with RST.
        with suppress(ssl.SSLError, OSError):
            c.sendall(b"too late")
        time.sleep(0.05)
        c.close()

    return _python_pair(
        out,
        "benign_reset",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3: the server sends close_notify and closes; the client then writes "
        "and the server's kernel answers with RST",
    )


def handshake_alert_protocol_version(out: Path, pki: Pki) -> Capture:
    keys = out / "handshake_alert.keys"
    sctx = _server_ctx(pki.good, keys)
    sctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def server(conn: socket.socket) -> None:
        with suppress(ssl.SSLError):
            _accept_tls(sctx, conn)
            raise ScenarioError("the handshake should have failed")

    def client(port: int) -> None:
        ctx = _client_ctx(keys, verify=pki.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            _connect(port, ctx).close()
        except ssl.SSLError:
            pass
        else:
            raise ScenarioError("the handshake should have failed")

    return _python_pair(
        out,
        "handshake_alert",
        server,
        client,
        keys=keys,
        method="Python ssl: client offers at most TLS 1.2, server requires TLS 1.3 and sends "
        "protocol_version",
    )


def alert_certificate_required(out: Path, pki: Pki) -> Capture:
    keys = out / "alert.keys"
    sctx = _server_ctx(pki.good, keys)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(str(pki.ca))

    def server(conn: socket.socket) -> None:
        try:
            _accept_tls(sctx, conn)
        except ssl.SSLError:
            return
        raise ScenarioError("the server should have rejected the client")

    def client(port: int) -> None:
        c = _connect(port, _client_ctx(keys, verify=pki.ca))  # TLS 1.3: done before the server's verdict
        try:
            c.recv(1)
        except ssl.SSLError:
            pass
        else:
            raise ScenarioError("the client should have received an alert")
        c.close()

    return _python_pair(
        out,
        "alert",
        server,
        client,
        keys=keys,
        method="Python ssl TLS 1.3 mTLS: the server requires a client certificate, the client has "
        "none; the server's certificate_required comes after the client's Finished",
    )


def handshake_incomplete(out: Path, pki: Pki) -> Capture:
    """The server never answers the ClientHello; the capture ends while both wait."""
    lsock = _listener()
    port = lsock.getsockname()[1]
    pcap = out / "handshake_incomplete.pcap"
    got_hello = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        with suppress(OSError):
            conn, _ = lsock.accept()
            held.append(conn)
            conn.recv(4096)
            got_hello.set()

    def connect() -> None:
        with suppress(ssl.SSLError, OSError):
            _connect(port, _client_ctx(None, verify=pki.ca)).close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    c = threading.Thread(target=connect, daemon=True)
    with tcpdump(pcap, port):
        c.start()
        got_hello.wait(TIMEOUT)
    for conn in held:  # the capture is over: now let the client go
        _linger0(conn)
        conn.close()
    c.join(TIMEOUT)
    t.join(TIMEOUT)
    lsock.close()
    return Capture(
        "handshake_incomplete",
        pcap,
        None,
        port,
        "Python ssl client against a plain TCP server that reads the ClientHello and never "
        "answers; the capture stops while both wait",
    )


def handshake_server_fin(out: Path, pki: Pki) -> Capture:
    keys = out / "handshake_server_fin.keys"

    def server(conn: socket.socket) -> None:
        conn.recv(4096)  # the ClientHello, never answered
        time.sleep(0.1)
        conn.shutdown(socket.SHUT_WR)
        with suppress(OSError):
            conn.recv(1)

    def client(port: int) -> None:
        try:
            _connect(port, _client_ctx(keys, verify=pki.ca)).close()
        except (ssl.SSLError, OSError):
            pass

    return _python_pair(
        out,
        "handshake_server_fin",
        server,
        client,
        keys=None,
        method="Python ssl client against a plain TCP server that reads the ClientHello and closes "
        "(FIN); OpenSSL's client answers the EOF with a decode_error alert",
    )


def _cert_scenario(
    name: str, cert_attr: str, *, sni: str = "localhost", seclevel0: bool = False
) -> Callable[[Path, Pki], Capture]:
    def run(out: Path, pki: Pki) -> Capture:
        keys = out / f"{name}.keys"
        cert: tuple[Path, Path] = getattr(pki, cert_attr)
        return _python_pair(
            out,
            name,
            _exchange_then_unwrap(_server_ctx(cert, keys, seclevel0=seclevel0)),
            _client_exchange_unwrap(_client_ctx(keys, seclevel0=seclevel0), sni=sni),
            keys=keys,
            method=f"Python ssl TLS 1.3 with the server certificate {cert[0].name} (client does not "
            f"verify), SNI {sni}, clean close",
        )

    return run


def capture_incomplete_midstream(out: Path, pki: Pki) -> Capture:
    """The capture starts after the handshake."""
    keys = out / "capture_incomplete.keys"
    lsock = _listener()
    port = lsock.getsockname()[1]
    pcap = out / "capture_incomplete.pcap"
    sctx = _server_ctx(pki.good, keys)
    ready = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = lsock.accept()
            conn.settimeout(TIMEOUT)
            s = sctx.wrap_socket(conn, server_side=True)
            ready.wait(TIMEOUT)
            _exchange_then_unwrap_body(s)
            s.close()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    c = _connect(port, _client_ctx(keys, verify=pki.ca))
    with tcpdump(pcap, port):
        ready.set()
        c.sendall(b"ping!")
        _recv_exactly(c, 10)
        c.unwrap().close()
        t.join(TIMEOUT)
    lsock.close()
    if errors:
        raise ScenarioError(f"capture_incomplete: {errors[0]!r}") from errors[0]
    return Capture(
        "capture_incomplete",
        pcap,
        keys,
        port,
        "Python ssl TLS 1.3: tcpdump starts after the handshake, then one exchange and unwrap() both",
    )


def capture_snaplen(out: Path, pki: Pki) -> Capture:
    keys = out / "capture_snaplen.keys"
    return _python_pair(
        out,
        "capture_snaplen",
        _exchange_then_unwrap(_server_ctx(pki.good, keys)),
        _client_exchange_unwrap(_client_ctx(keys, verify=pki.ca)),
        keys=keys,
        snaplen=200,
        method="Python ssl TLS 1.3 clean exchange captured with tcpdump -s 200 (packets cut)",
    )


def _exchange_then_unwrap_body(s: ssl.SSLSocket) -> None:
    s.sendall(b"hello" + _recv_exactly(s, 5))
    if s.recv(1) != b"":
        raise ScenarioError("expected close_notify")
    s.unwrap()


def resumed(out: Path, pki: Pki) -> Capture:
    keys = out / "resumed.keys"
    sctx = _server_ctx(pki.good, keys)
    cctx = _client_ctx(keys, verify=pki.ca)

    def server(conn: socket.socket) -> None:
        _exchange_then_unwrap_body(_accept_tls(sctx, conn))

    def client(port: int) -> None:
        c = _connect(port, cctx)
        c.sendall(b"ping!")
        _recv_exactly(c, 10)  # the NewSessionTicket arrives with the answer
        session = c.session
        c.unwrap().close()
        c2 = _connect(port, cctx, session=session)
        if not c2.session_reused:
            raise ScenarioError("the second connection was not resumed")
        c2.sendall(b"ping!")
        _recv_exactly(c2, 10)
        c2.unwrap().close()

    return _python_pair(
        out,
        "resumed",
        server,
        client,
        accepts=2,
        keys=keys,
        method="Python ssl TLS 1.3: a full handshake, then a second connection resuming with its ticket",
    )


def slow_handshake(out: Path, pki: Pki) -> Capture:
    keys = out / "slow_handshake.keys"
    sctx = _server_ctx(pki.good, keys)

    def slow_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
        time.sleep(0.5)  # a server stalled in its handshake (think OCSP fetch)

    sctx.sni_callback = slow_sni
    return _python_pair(
        out,
        "slow_handshake",
        _exchange_then_unwrap(sctx),
        _client_exchange_unwrap(_client_ctx(keys, verify=pki.ca)),
        keys=keys,
        method="Python ssl TLS 1.3: the server's SNI callback sleeps 0.5 s before the ServerHello",
    )


def tcp_only_refused(out: Path, pki: Pki) -> Capture:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # bound, never listening: the kernel refuses with RST
    pcap = out / "tcp_only.pcap"
    with tcpdump(pcap, port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        except ConnectionRefusedError:
            pass
        else:
            raise ScenarioError("the connection should have been refused")
    s.close()
    return Capture("tcp_only", pcap, None, port, "a TCP connect to a bound port nobody listens on")


# -- OpenSSL s_server / s_client ------------------------------------------------------------


def _openssl_pair(
    out: Path,
    name: str,
    pki: Pki,
    server_args: Sequence[str],
    converse: Callable[[int, Path], None],
    method: str,
) -> Capture:
    keys = out / f"{name}.keys"
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    lsock.close()
    server = Proc(
        [
            tool("openssl"), "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pki.good[0]),
            "-key", str(pki.good[1]), "-keylogfile", str(keys), "-naccept", "4", *server_args,
        ]
    )  # fmt: skip
    pcap = out / f"{name}.pcap"
    try:
        server.wait_for("ACCEPT")
        with tcpdump(pcap, port):
            converse(port, keys)
    finally:
        server.kill()
    return Capture(name, pcap, keys, port, method)


def _s_client(port: int, *args: str) -> Proc:
    return Proc(
        [tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args]
    )


def hello_retry_request(out: Path, pki: Pki) -> Capture:
    def converse(port: int, keys: Path) -> None:
        c = _s_client(port, "-groups", "X25519:P-384", "-tls1_3")
        c.wait_for("Verify return code")
        c.send(b"hi\n")
        time.sleep(0.1)
        c.close_stdin()
        c.finish(ok=None)

    return _openssl_pair(
        out,
        "hello_retry_request",
        pki,
        ["-groups", "P-384"],
        converse,
        "openssl s_client offers an X25519 key share; s_server only accepts P-384 (HRR)",
    )


def key_update(out: Path, pki: Pki) -> Capture:
    def converse(port: int, keys: Path) -> None:
        c = _s_client(port, "-tls1_3")
        c.wait_for("Verify return code")
        c.send(b"k\n")  # s_client command: KeyUpdate (update_requested)
        time.sleep(0.1)
        c.send(b"after\n")
        time.sleep(0.1)
        c.close_stdin()
        c.finish(ok=None)

    return _openssl_pair(
        out, "key_update", pki, [], converse, "openssl s_client sends a KeyUpdate ('k' command) to s_server"
    )


def early_data(out: Path, pki: Pki) -> Capture:
    def converse(port: int, keys: Path) -> None:
        sess = out / "early_data.sess"
        c = _s_client(port, "-tls1_3", "-sess_out", str(sess))
        c.wait_for("Verify return code")
        c.send(b"first\n")
        time.sleep(0.2)  # the ticket arrives
        c.close_stdin()
        c.finish(ok=None)
        ed = out / "early_data.txt"
        ed.write_bytes(b"GET / early\n")
        c2 = _s_client(port, "-tls1_3", "-sess_in", str(sess), "-early_data", str(ed))
        c2.wait_for("Verify return code")
        time.sleep(0.1)
        c2.close_stdin()
        c2.finish(ok=None)
        sess.unlink()
        ed.unlink()

    return _openssl_pair(
        out,
        "early_data",
        pki,
        ["-early_data"],
        converse,
        "openssl s_server -early_data; s_client resumes with -sess_in and sends 0-RTT -early_data",
    )


SCENARIOS: dict[str, Callable[[Path, Pki], Capture]] = {
    "clean_close": clean_close,
    "clean_close_tls12": clean_close_tls12,
    "premature_close": premature_close,
    "close_notify_unanswered": close_notify_unanswered,
    "half_close": half_close,
    "data_after_close_notify": data_after_close_notify,
    "reset": reset,
    "benign_reset": benign_reset,
    "handshake_alert": handshake_alert_protocol_version,
    "alert": alert_certificate_required,
    "handshake_incomplete": handshake_incomplete,
    "handshake_server_fin": handshake_server_fin,
    "cert_expired": _cert_scenario("cert_expired", "expired"),
    "cert_not_yet_valid": _cert_scenario("cert_not_yet_valid", "not_yet_valid"),
    "cert_wrong_host": _cert_scenario("cert_wrong_host", "wrong_host"),
    "cert_self_signed": _cert_scenario("cert_self_signed", "self_signed"),
    "cert_rsa1024": _cert_scenario("cert_rsa1024", "rsa1024", seclevel0=True),
    "capture_incomplete": capture_incomplete_midstream,
    "capture_snaplen": capture_snaplen,
    "hello_retry_request": hello_retry_request,
    "resumed": resumed,
    "early_data": early_data,
    "key_update": key_update,
    "slow_handshake": slow_handshake,
    "tcp_only": tcp_only_refused,
}


def run(name: str, out: Path, pki: Pki) -> Capture:
    out.mkdir(parents=True, exist_ok=True)
    return SCENARIOS[name](out, pki)
