"""TLS peers for the correlation topologies, run inside a namespace with ``ip netns exec``:

    python -m tests.correlate.peers server --addr A --port P --cert C --key K [--hold S]
    python -m tests.correlate.peers client --addr A --port P --sni N --send BYTES [--abort]

The server prints ``ready`` once it listens, serves one connection (echo, or read and keep
silent for ``--hold`` seconds) and exits. The client does one request and prints one JSON line
saying how far it got. Both write their TLS secrets to ``--keylog``.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import time


def _server(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.keylog_filename = args.keylog
    with socket.create_server((args.addr, args.port)) as srv:
        print("ready", flush=True)
        srv.settimeout(args.timeout)
        conn, _ = srv.accept()
        conn.settimeout(args.timeout)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = tls.recv(65536)
                if args.hold:
                    time.sleep(args.hold)
                    return
                while data:
                    tls.sendall(data)
                    data = tls.recv(65536)  # b"" on the client's close_notify
                tls.unwrap()
        except (OSError, ssl.SSLError) as exc:
            print(f"server: {type(exc).__name__}: {exc}", file=sys.stderr)


def _client(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.keylog_filename = args.keylog
    status: dict[str, object] = {"handshake": False, "received": 0, "error": None}
    raw = socket.create_connection((args.addr, args.port), timeout=args.timeout)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=args.sni)
        status["handshake"] = True
        tls.sendall(b"x" * args.send)
        got = 0
        while got < args.send:
            chunk = tls.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        status["received"] = got
        if args.abort:
            tls.close()  # no close_notify: TCP FIN only
        else:
            tls.unwrap()
            tls.close()
    except (OSError, ssl.SSLError) as exc:
        status["error"] = type(exc).__name__
    finally:
        raw.close()
    if args.probe_after:
        # One more connection attempt later, so that the captures show they were still running.
        time.sleep(args.probe_after)
        try:
            socket.create_connection((args.addr, args.port), timeout=1).close()
        except OSError:
            pass
    print(json.dumps(status), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--addr", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--keylog", required=True)
    p.add_argument("--sni", default="capdbg.test")
    p.add_argument("--send", type=int, default=100)
    p.add_argument("--hold", type=float, default=0.0)
    p.add_argument("--abort", action="store_true")
    p.add_argument("--probe-after", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args()
    _server(args) if args.role == "server" else _client(args)


if __name__ == "__main__":
    main()
