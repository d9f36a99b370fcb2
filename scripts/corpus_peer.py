#!/usr/bin/env python3
"""One side of the benchmark corpus conversations (run by scripts/make_corpus.py).

``make_corpus.py`` starts this program inside its network namespaces with ``ip netns exec``
(Python 3.11 has no ``os.setns``): one or more ``server`` processes in the server namespace,
sharing the listening port through SO_REUSEPORT, and several ``client`` processes in the client
namespace. Both read the same plan (JSON written by make_corpus.py), so the server knows from
the first line the client sends (``CONN <id>\\n``) how many bytes each round carries and how the
connection must end.

The conversation of one connection, all in TLS application data::

    client: "CONN <id>\\n" + round 1 request     server: round 1 response
    ...                                          ...
    client: round N request                     server: round N response
    client: "DONE\\n"        (only when the server is the closer, so that it knows the
                              client has read everything before it closes)
    closer: close_notify (unwrap) | FIN without close_notify | RST (SO_LINGER 0)
    peer:   answers close_notify with its own (``answered``) or just closes

Every byte is sent and received completely before the closing step, so each direction's
plaintext is fixed by the plan and both sides can hash it: the sender hashes what it wrote,
the receiver what it read, and make_corpus.py checks that they agree.

Clients write the NSS key log (``SSLContext.keylog_filename``), one file per process.
TLS 1.3 cipher suites cannot be restricted through Python's ssl module, so make_corpus.py runs
one client process per TLS 1.3 suite with ``OPENSSL_CONF`` pointing at a config whose
``system_default`` section sets ``Ciphersuites``; TLS 1.2 suites are set per connection with
``set_ciphers``.

Each side prints one JSON line per finished connection on stdout:
``{"id", "side", "sent_sha256", "recv_sha256", "sent", "received", "version", "cipher", "error"}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import random
import selectors
import socket
import ssl
import struct
import sys
import threading
from pathlib import Path
from typing import Any

TIMEOUT = 120.0
CHUNK = 64 * 1024
PATTERN_BYTES = 1 << 20

_print_lock = threading.Lock()


def pattern(seed: int) -> memoryview:
    """Pseudo-random payload source, doubled so that any window of PATTERN_BYTES is one slice."""
    block = random.Random(seed).randbytes(PATTERN_BYTES)
    return memoryview(block + block)


def offset_for(conn_id: int, direction: str) -> int:
    digest = hashlib.sha256(f"{conn_id}/{direction}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % PATTERN_BYTES


class Payload:
    """The bytes one direction of one connection carries, produced chunk by chunk."""

    def __init__(self, source: memoryview, conn_id: int, direction: str) -> None:
        self.source = source
        self.pos = offset_for(conn_id, direction)

    def chunks(self, n: int) -> Any:
        while n > 0:
            take = min(n, CHUNK)
            yield self.source[self.pos : self.pos + take]
            self.pos = (self.pos + take) % PATTERN_BYTES
            n -= take


class Side:
    """Hashing send/receive helpers over one TLS socket."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.sent = hashlib.sha256()
        self.recv = hashlib.sha256()
        self.n_sent = 0
        self.n_recv = 0

    def send(self, data: bytes | memoryview) -> None:
        self.sock.sendall(data)
        self.sent.update(data)
        self.n_sent += len(data)

    def send_payload(self, payload: Payload, n: int) -> None:
        for chunk in payload.chunks(n):
            self.send(chunk)

    def drain(self, n: int) -> None:
        while n > 0:
            data = self.sock.recv(min(n, 256 * 1024))
            if not data:
                raise ConnectionError(f"EOF with {n} bytes still expected")
            self.recv.update(data)
            self.n_recv += len(data)
            n -= len(data)

    def read_line(self) -> bytes:
        out = bytearray()
        while not out.endswith(b"\n"):
            data = self.sock.recv(1)
            if not data:
                raise ConnectionError("EOF before the end of the header line")
            out += data
        self.recv.update(out)
        self.n_recv += len(out)
        return bytes(out)

    def wait_peer_end(self) -> None:
        """Block until the peer ends the session: close_notify or EOF (b''), or a reset."""
        try:
            data = self.sock.recv(1)
        except (ssl.SSLError, ConnectionError, OSError):
            return
        if data:
            raise ConnectionError("unexpected data after the last round")


def close_as_closer(sock: ssl.SSLSocket, ending: str) -> None:
    if ending == "close_notify":
        try:
            # RFC 8446 6.1: send our close_notify; unwrap also waits for the peer's, which an
            # "unanswered" peer never sends (it closes TCP instead): that EOF is expected.
            raw = sock.unwrap()
            raw.close()
            return
        except (ssl.SSLError, OSError):
            pass
        sock.close()
    elif ending == "fin":
        sock.close()  # Python never sends close_notify on close(): a bare FIN
    elif ending == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    else:
        raise ValueError(ending)


def close_as_peer(sock: ssl.SSLSocket, ending: str, answered: bool) -> None:
    if ending == "close_notify" and answered:
        try:
            sock.unwrap().close()
            return
        except (ssl.SSLError, OSError):
            pass
    sock.close()


def report(record: dict[str, Any]) -> None:
    line = json.dumps(record)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def result(conn_id: int, side: str, s: Side | None, error: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": conn_id, "side": side, "error": error}
    if s is not None:
        cipher = s.sock.cipher() if s.sock.fileno() != -1 else None
        rec.update(
            sent_sha256=s.sent.hexdigest(),
            recv_sha256=s.recv.hexdigest(),
            sent=s.n_sent,
            received=s.n_recv,
        )
        if cipher:
            rec.update(cipher=cipher[0], version=cipher[1])
    return rec


# --- server -------------------------------------------------------------------------------------


def serve_one(raw: socket.socket, ctx: ssl.SSLContext, plan: dict[int, Any], source: memoryview) -> None:
    conn_id = -1
    s: Side | None = None
    cipher: tuple[str, str, int] | None = None
    try:
        raw.settimeout(TIMEOUT)
        sock = ctx.wrap_socket(raw, server_side=True)
        s = Side(sock)
        cipher = sock.cipher()
        header = s.read_line()
        conn_id = int(header.split()[1])
        c = plan[conn_id]
        payload = Payload(source, conn_id, "server")
        for req, resp in c["rounds"]:
            s.drain(req)
            s.send_payload(payload, resp)
        if c["closer"] == "server":
            s.drain(len(b"DONE\n"))
            rec = result(conn_id, "server", s, None)
            close_as_closer(sock, c["ending"])
        else:
            s.wait_peer_end()
            rec = result(conn_id, "server", s, None)
            close_as_peer(sock, c["ending"], c["answered"])
        if cipher:
            rec.update(cipher=cipher[0], version=cipher[1])
        report(rec)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        report(result(conn_id, "server", None, f"{type(exc).__name__}: {exc}"))
        raw.close()


def run_server(args: argparse.Namespace) -> None:
    plan_doc = json.loads(Path(args.plan).read_text())
    plan = {c["id"]: c for c in plan_doc["connections"]}
    source = pattern(plan_doc["payload_seed"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    sel = selectors.DefaultSelector()
    for addr, family in ((args.addr4, socket.AF_INET), (args.addr6, socket.AF_INET6)):
        if not addr:
            continue
        ls = socket.socket(family, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        ls.bind((addr, args.port))
        ls.listen(1024)
        sel.register(ls, selectors.EVENT_READ)
    # make_corpus.py waits for this line before starting clients.
    report({"ready": True})
    while True:
        for key, _ in sel.select():
            listener = key.fileobj
            assert isinstance(listener, socket.socket)
            try:
                raw, _addr = listener.accept()
            except BlockingIOError:
                continue
            threading.Thread(target=serve_one, args=(raw, ctx, plan, source), daemon=True).start()


# --- client -------------------------------------------------------------------------------------


def run_one_client(c: dict[str, Any], args: argparse.Namespace, source: memoryview) -> None:
    conn_id = c["id"]
    s: Side | None = None
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.keylog_filename = args.keylog
        if c["version"] == "TLSv1.2":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(c["suite"])
        else:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        family = socket.AF_INET6 if c["family"] == 6 else socket.AF_INET
        caddr, saddr = (
            (args.client6, args.server6) if family == socket.AF_INET6 else (args.client4, args.server4)
        )
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.settimeout(TIMEOUT)
        # A fixed, unique client port per connection: the manifest is keyed by it.
        raw.bind((caddr, c["client_port"]))
        raw.connect((saddr, args.port))
        sock = ctx.wrap_socket(raw, server_hostname="corpus.test")
        s = Side(sock)
        payload = Payload(source, conn_id, "client")
        s.send(f"CONN {conn_id}\n".encode())
        for req, resp in c["rounds"]:
            s.send_payload(payload, req)
            s.drain(resp)
        if c["closer"] == "server":
            s.send(b"DONE\n")
            rec = result(conn_id, "client", s, None)
            s.wait_peer_end()
            close_as_peer(sock, c["ending"], c["answered"])
        else:
            rec = result(conn_id, "client", s, None)
            close_as_closer(sock, c["ending"])
        report(rec)
    except (OSError, ValueError) as exc:
        rec = result(conn_id, "client", None, f"{type(exc).__name__}: {exc}")
        report(rec)


def run_client(args: argparse.Namespace) -> None:
    plan_doc = json.loads(Path(args.plan).read_text())
    wanted = {int(x) for x in Path(args.ids).read_text().split()}
    todo = [c for c in plan_doc["connections"] if c["id"] in wanted]
    source = pattern(plan_doc["payload_seed"])
    work: queue.Queue[dict[str, Any] | None] = queue.Queue()
    for c in todo:
        work.put(c)

    def worker() -> None:
        while True:
            try:
                c = work.get_nowait()
            except queue.Empty:
                return
            if c is not None:
                run_one_client(c, args, source)

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--plan", required=True)
    sv.add_argument("--cert", required=True)
    sv.add_argument("--key", required=True)
    sv.add_argument("--addr4", default="")
    sv.add_argument("--addr6", default="")
    sv.add_argument("--port", type=int, default=443)
    cl = sub.add_parser("client")
    cl.add_argument("--plan", required=True)
    cl.add_argument("--ids", required=True, help="file with the connection ids to run")
    cl.add_argument("--keylog", required=True)
    cl.add_argument("--threads", type=int, default=4)
    cl.add_argument("--client4", default="")
    cl.add_argument("--server4", default="")
    cl.add_argument("--client6", default="")
    cl.add_argument("--server6", default="")
    cl.add_argument("--port", type=int, default=443)
    args = p.parse_args(argv)
    if args.mode == "server":
        run_server(args)
    else:
        run_client(args)


if __name__ == "__main__":
    main()
