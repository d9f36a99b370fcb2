"""Fuzz targets shared by ``scripts/fuzz.py`` (atheris campaigns) and ``tests/fuzz/`` (bounded
hypothesis runs in the normal suite).

Each target takes arbitrary bytes and checks one invariant: the code under test either goes on
or fails with the error its contract names (``CaptureFormatError`` for a capture that is not
one, ``TLSError`` for a peer's bytes...); any other exception escaping is a bug.

Targets
-------
capture         capture readers (pcap, pcapng, gzip) over arbitrary file contents
keylog          the NSS key-log parser (never raises on content)
decode          the decode pipeline end to end: decrypt (JSON of every event), triage, the
                text timeline and the HTML ladder, on arbitrary capture bytes (seeded with the
                fixtures and their key logs)
server, client  the engine fed arbitrary bytes as its first flight
server-hs       the server after a real ClientHello, fed records sealed with the client's real
                handshake keys (reaches Certificate/CertificateVerify/Finished parsing)
client-hs       the client after a real ServerHello, fed records sealed with the server's real
                handshake keys (EncryptedExtensions, CertificateRequest, Certificate...)
server-app      a connected server fed records sealed with the client's application keys
client-app      a connected client fed records sealed with the server's application keys
                (KeyUpdate, NewSessionTicket, alerts, application data)

The ``*-hs``/``*-app`` targets read the fuzz input as records: ``type(1) length(2) content``,
repeated; each content is sealed by :class:`~capdebug.crypto.record.RecordDirection` with the
peer's real secret (taken from the key log the peer wrote), so the fuzzer gets past the AEAD.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
from collections.abc import Callable
from pathlib import Path

from capdebug.analysis.html import LadderCollector
from capdebug.analysis.report import Timeline
from capdebug.analysis.triage.collect import Triage
from capdebug.api import decode_capture
from capdebug.crypto.keylog import KeyLog
from capdebug.crypto.record import RecordDirection
from capdebug.crypto.suites import SUITES
from capdebug.crypto.testpki import LeafOptions, make_ca, make_leaf
from capdebug.crypto.x509_engine import load_private_key
from capdebug.errors import CaptureFormatError, TLSError
from capdebug.pcap.open import open_capture
from capdebug.tls.config import Credential, TLSConfig
from capdebug.tls.connection import Connection

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


# ---------------------------------------------------------------- passive side


def target_capture(data: bytes) -> None:
    try:
        with open_capture(io.BytesIO(data)) as reader:
            for _ in reader:
                pass
    except CaptureFormatError:
        pass


def target_keylog(data: bytes) -> None:
    log = KeyLog.parse(data)
    said = "\n".join(str(issue) for issue in log.issues).lower()
    for entry in log.entries():
        assert len(entry.secret) < 16 or entry.secret.hex() not in said  # secrets never echoed


@functools.cache
def fixture_keys() -> KeyLog:
    log = KeyLog()
    for path in sorted(FIXTURES.glob("*.keys")):
        log.merge(KeyLog.from_file(path))
    return log


def seed_captures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*.pcap*"))]


def target_decode(data: bytes) -> None:
    keys = fixture_keys()
    triage = Triage(slow_handshake_s=1.0)
    timeline = Timeline()
    ladder = LadderCollector()
    try:
        with decode_capture(io.BytesIO(data), keys) as decoding:
            for ev in decoding:
                json.dumps(ev.to_json())
                triage.add(ev)
                timeline.add(ev)
                ladder.add(ev)
            timeline.close()
    except CaptureFormatError:
        return
    for report in triage.reports():
        json.dumps(report.to_json())


# ---------------------------------------------------------------- engine


class _Pki:
    def __init__(self) -> None:
        ca = make_ca(NOW)
        leaf = make_leaf(ca, NOW, LeafOptions())
        client = make_leaf(ca, NOW, LeafOptions(hostnames=("capdebug client",), client=True))
        self.ca = ca.cert_der
        self.server = Credential((leaf.cert_der, ca.cert_der), load_private_key(leaf.key_pem))
        self.client = Credential((client.cert_der, ca.cert_der), load_private_key(client.key_pem))


@functools.cache
def _pki() -> _Pki:
    return _Pki()


class _Secrets:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def direction(self, label: str, conn: Connection) -> RecordDirection:
        for line in self.lines:
            name, _, secret = line.split()
            if name == label:
                assert conn.cipher_suite is not None
                return RecordDirection.tls13(SUITES[conn.cipher_suite], bytes.fromhex(secret), "fuzz")
        raise AssertionError(f"no {label} logged")


def _server(log: _Secrets | None = None, client_auth: str = "optional") -> Connection:
    from capdebug.tls.config import ClientAuth

    pki = _pki()
    config = TLSConfig(
        credential=pki.server,
        trust_roots=(pki.ca,),
        client_auth=ClientAuth(client_auth),
        key_log_callback=log,
        key_log_update_lines=True,
    )
    return Connection(config, is_client=False, now=NOW)


def _client(log: _Secrets | None = None) -> Connection:
    pki = _pki()
    config = TLSConfig(
        trust_roots=(pki.ca,),
        server_name="localhost",
        credential=pki.client,
        key_log_callback=log,
        key_log_update_lines=True,
    )
    return Connection(config, is_client=True, now=NOW)


def _drain(conn: Connection, discard: bool = True) -> None:
    """Events until none or the connection's TLSError; what it has to send (an alert, a
    KeyUpdate) must then be ready without raising."""
    try:
        while conn.next_event() is not None:
            pass
    except TLSError:
        assert conn.error is not None
    if discard:
        conn.data_to_send()


def records_from(data: bytes) -> list[tuple[int, bytes]]:
    """``type(1) length(2) content`` repeated; a short tail is the last content."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        content_type = data[i]
        length = int.from_bytes(data[i + 1 : i + 3], "big") % (1 << 14)
        out.append((content_type, data[i + 3 : i + 3 + length]))
        i += 3 + length
    return out


def _feed_sealed(conn: Connection, sealer: RecordDirection, data: bytes) -> Connection:
    for content_type, content in records_from(data):
        if content_type == 0:
            continue  # 0 cannot end a TLSInnerPlaintext (RFC 8446 5.4): not sealable
        conn.receive_data(sealer.seal(content_type, content))
        _drain(conn)
        if conn.error is not None:
            break
    return conn


def target_server(data: bytes) -> None:
    server = _server()
    server.receive_data(data)
    _drain(server)
    server.receive_eof()
    _drain(server)


def target_client(data: bytes) -> None:
    client = _client()
    client.start_handshake()
    client.data_to_send()
    client.receive_data(data)
    _drain(client)


def target_server_hs(data: bytes) -> Connection:
    """The server has sent its flight; the client's handshake-key records are fuzzed."""
    log = _Secrets()
    client, server = _client(), _server(log)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    _drain(server)
    server.data_to_send()
    return _feed_sealed(server, log.direction("CLIENT_HANDSHAKE_TRAFFIC_SECRET", server), data)


def _server_hello_record(flight: bytes) -> tuple[bytes, bytes]:
    length = int.from_bytes(flight[3:5], "big")
    return flight[: 5 + length], flight[5 + length :]


def target_client_hs(data: bytes) -> Connection:
    """The client has the ServerHello; the server's handshake-key records are fuzzed."""
    log = _Secrets()
    client, server = _client(), _server(log)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    hello, _rest = _server_hello_record(server.data_to_send())
    client.receive_data(hello)
    _drain(client)
    return _feed_sealed(client, log.direction("SERVER_HANDSHAKE_TRAFFIC_SECRET", client), data)


def _connected() -> tuple[Connection, Connection, _Secrets]:
    log = _Secrets()
    client, server = _client(log), _server()
    client.start_handshake()
    for _ in range(6):
        a = client.data_to_send()
        if a:
            server.receive_data(a)
        b = server.data_to_send()
        if b:
            client.receive_data(b)
        _drain(client, discard=False)
        _drain(server, discard=False)
    assert client.handshake_complete and server.handshake_complete
    return client, server, log


def target_server_app(data: bytes) -> Connection:
    client, server, log = _connected()
    sealer = log.direction("CLIENT_TRAFFIC_SECRET_0", server)
    sealer.seq = client._tx.seq  # records the client already sent under these keys
    return _feed_sealed(server, sealer, data)


def target_client_app(data: bytes) -> Connection:
    client, server, log = _connected()
    sealer = log.direction("SERVER_TRAFFIC_SECRET_0", client)
    sealer.seq = server._tx.seq  # the NewSessionTickets already sent under these keys
    return _feed_sealed(client, sealer, data)


TARGETS: dict[str, Callable[[bytes], object]] = {
    "capture": target_capture,
    "keylog": target_keylog,
    "decode": target_decode,
    "server": target_server,
    "client": target_client,
    "server-hs": target_server_hs,
    "client-hs": target_client_hs,
    "server-app": target_server_app,
    "client-app": target_client_app,
}
