"""TLS 1.3 post-handshake client authentication (RFC 8446 4.6.2) between real Python/OpenSSL
peers: the server's CertificateRequest and the client's Certificate, CertificateVerify and
Finished travel under the application keys, change no keys, and the client's records keep
decrypting afterwards.

tshark 4.0 is not the oracle here: with the same key log it leaves the client's first record
after its post-handshake Finished encrypted (observed with 4.0.17: it switches keys at that
Finished as if it ended a handshake), so the sequence numbers are checked by hand from the
records themselves (test_sequence_numbers_by_hand)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from capdebug.analysis.decode import DecodeOptions
from capdebug.analysis.events import AppDataEvent, HandshakeEvent, UndecryptableEvent
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.crypto.keylog import KeyLog
from capdebug.crypto.protection import Tls13Protection
from capdebug.crypto.suites import SUITES
from capdebug.pcap.open import open_capture
from tests.support.peers import self_signed_localhost
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

TIMEOUT = 10.0


def _session(folder: Path) -> tuple[Path, Path]:
    (folder / "s").mkdir()
    (folder / "c").mkdir()
    server_cert, server_key = self_signed_localhost(folder / "s", ec.generate_private_key(ec.SECP256R1()))
    client_cert, client_key = self_signed_localhost(folder / "c", ec.generate_private_key(ec.SECP256R1()))
    keylog = folder / "client.keys"
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.minimum_version = ssl.TLSVersion.TLSv1_3
    sctx.load_cert_chain(server_cert, server_key)
    sctx.load_verify_locations(client_cert)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.post_handshake_auth = True  # no certificate asked for in the handshake itself
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(server_cert)
    cctx.load_cert_chain(client_cert, client_key)
    cctx.post_handshake_auth = True
    cctx.keylog_filename = str(keylog)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    capture = folder / "pha.pcap"
    seen: list[bytes] = []

    def serve() -> None:
        raw, _ = listener.accept()
        with sctx.wrap_socket(raw, server_side=True) as tls:
            tls.settimeout(TIMEOUT)
            seen.append(tls.recv(100))  # "before"
            tls.verify_client_post_handshake()
            tls.sendall(b"ok")  # carries the CertificateRequest
            seen.append(tls.recv(100))  # "after", behind the client's authentication
            seen.append(b"peer" if tls.getpeercert() else b"")
            tls.sendall(b"bye")

    with tcpdump(capture, port):
        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), TIMEOUT) as raw:
            with cctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"before")
                assert tls.recv(100) == b"ok"
                tls.sendall(b"after")
                assert tls.recv(100) == b"bye"
        thread.join(TIMEOUT)
    listener.close()
    assert seen == [b"before", b"after", b"peer"]
    return capture, keylog


def test_client_records_decrypt_after_post_handshake_auth(tmp_path: Path) -> None:
    require("tcpdump")
    require_root()
    capture, keylog = _session(tmp_path)
    keys = load_keys(capture, [keylog], use_env=False)
    plain: list[tuple[str, bytes]] = []
    options = DecodeOptions(app_data_sink=lambda conn, who, data: plain.append((who, data)))
    with open_capture(capture) as reader:
        events = list(iter_events(reader, keys.keylog, options))
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    post = [
        (e.from_, e.name, e.encrypted)
        for e in events
        if isinstance(e, HandshakeEvent)
        and e.name in ("certificate_request", "certificate", "certificate_verify")
    ]
    # The server's own Certificate/CertificateVerify in the handshake, then the exchange.
    assert ("server", "certificate_request", True) in post
    assert ("client", "certificate", True) in post and ("client", "certificate_verify", True) in post
    client_finished = [
        e for e in events if isinstance(e, HandshakeEvent) and e.name == "finished" and e.from_ == "client"
    ]
    assert len(client_finished) == 2  # the handshake's, and the post-handshake one
    assert ("client", b"after") in plain and ("server", b"bye") in plain
    assert [e.from_ for e in events if isinstance(e, AppDataEvent)].count("client") == 2


def test_sequence_numbers_by_hand(tmp_path: Path) -> None:
    """Independently of the decoder: open the client's application-key records one by one with
    CLIENT_TRAFFIC_SECRET_0 and a sequence number that only counts up (no reset at the
    post-handshake Finished). Every record must open, and 'after' must be among them."""
    require("tcpdump", "tshark")
    require_root()
    capture, keylog = _session(tmp_path)
    log = KeyLog.from_file(keylog)
    (cr,) = log.client_randoms()
    secret = log.get(cr, "CLIENT_TRAFFIC_SECRET_0")
    assert secret is not None
    stream = _client_stream(capture)
    records = []
    pos = 0
    while pos + 5 <= len(stream):
        length = int.from_bytes(stream[pos + 3 : pos + 5], "big")
        records.append(stream[pos : pos + 5 + length])
        pos += 5 + length
    # ClientHello, ChangeCipherSpec, the handshake-key Finished, then application-key records.
    protected = [r for r in records if r[0] == 23]
    app_records = protected[1:]
    suites = [p for p in SUITES.values() if p.version == "1.3" and p.hash_len == len(secret)]
    opened: list[tuple[int, bytes]] = []
    for params in suites:
        prot = Tls13Protection(params, secret)
        try:
            opened = [_open(prot, r, seq) for seq, r in enumerate(app_records)]
        except Exception:
            continue
        break
    assert opened, "no suite opened the client's application records with sequence numbers 0, 1, ..."
    types = [t for t, _ in opened]
    assert 22 in types  # the client's Certificate, CertificateVerify and Finished
    assert (23, b"after") in opened


def _open(prot: Tls13Protection, record: bytes, seq: int) -> tuple[int, bytes]:
    inner = prot.open_record(record[:5], record[5:], seq)
    content = inner.rstrip(b"\x00")
    return content[-1], content[:-1]


def _client_stream(capture: Path) -> bytes:
    """The client's TCP payload in order, as tshark's ``follow,tcp,raw`` gives it (the client's
    lines unindented, the server's indented with a tab)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-q", "-z", "follow,tcp,raw,0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("Node 1:")) + 1
    hexdigits = set("0123456789abcdef")
    client = [
        line.strip()
        for line in lines[start:]
        if line and not line.startswith(("\t", "=")) and set(line.strip()) <= hexdigits
    ]
    return bytes.fromhex("".join(client))
