"""Short TLS connections for the NAT port-reuse topology, run with ``ip netns exec``:

    python -m tests.tcp.peers server --addr A --port P --cert C --key K
    python -m tests.tcp.peers client --addr A --port P --count N

    python -m tests.tcp.peers idle-client --addr A --port P --idle S --timeout T --keylog K

The idle client talks to the echo server of tests/correlate/peers.py: a first exchange, then
``idle`` seconds of silence, then a second request whose answer it waits ``timeout`` seconds for
(a path that dropped the idle flow never brings it); it prints one JSON line.

The server prints ``ready`` once it listens, then serves connections one at a time until
killed: it reads a request, answers and closes first, so that its side of every 4-tuple waits
in TIME-WAIT (where a reused port's SYN meets it). The client makes ``count`` connections one
after the other and prints one JSON line: how many completed.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def _server(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    with socket.create_server((args.addr, args.port), backlog=64) as srv:
        print("ready", flush=True)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_serve_one, args=(ctx, conn), daemon=True).start()


def _serve_one(ctx: ssl.SSLContext, conn: socket.socket) -> None:
    conn.settimeout(5)
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            if tls.recv(1024):
                tls.sendall(b"pong")
            # FIN first (no close_notify: shutdown drops the TLS layer), then wait for
            # the client's: this side is the active closer, left in TIME-WAIT.
            tls.shutdown(socket.SHUT_WR)
            while tls.recv(1024):
                pass
    except (OSError, ssl.SSLError):
        pass  # the client's count says what failed; nothing reads this process's stderr


def _client(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    results: list[bool] = []

    def one() -> None:
        try:
            with socket.create_connection((args.addr, args.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="capdbg.test") as tls:
                    tls.sendall(b"ping")
                    while tls.recv(1024):
                        pass
            results.append(True)
        except (OSError, ssl.SSLError):
            results.append(False)

    # A SYN meeting TIME-WAIT costs its connection a 1 s retransmission: run several at once.
    with ThreadPoolExecutor(args.parallel) as pool:
        for _ in range(args.count):
            pool.submit(one)
    print(json.dumps({"done": results.count(True), "failed": results.count(False)}), flush=True)


def _idle_client(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.keylog_filename = args.keylog
    status: dict[str, object] = {"first": False, "second": False, "error": None}
    try:
        with (
            socket.create_connection((args.addr, args.port), timeout=args.timeout) as raw,
            ctx.wrap_socket(raw, server_hostname="capdbg.test") as tls,
        ):
            tls.sendall(b"ping")
            status["first"] = tls.recv(1024) == b"ping"
            print("idle", flush=True)  # the caller may now make the path forget the flow
            time.sleep(args.idle)
            tls.sendall(b"y" * 1000)
            status["second"] = bool(tls.recv(1024))
    except (OSError, ssl.SSLError) as exc:
        status["error"] = type(exc).__name__
    print(json.dumps(status), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    server = sub.add_parser("server")
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    client = sub.add_parser("client")
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--parallel", type=int, default=8)
    idle = sub.add_parser("idle-client")
    idle.add_argument("--idle", type=float, required=True)
    idle.add_argument("--timeout", type=float, required=True)
    idle.add_argument("--keylog", required=True)
    for p in (server, client, idle):
        p.add_argument("--addr", required=True)
        p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    {"server": _server, "client": _client, "idle-client": _idle_client}[args.cmd](args)


if __name__ == "__main__":
    main()
