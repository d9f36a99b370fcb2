"""Bulk TLS transfers both ways for the impaired-path tests, run with ``ip netns exec``:

    python -m tests.tcp.bulk server --addr A --port P --cert C --key K --keylog F --send N
    python -m tests.tcp.bulk client --addr A --port P --keylog F --send N --expect M [--tls 1.2]

The client sends ``N`` bytes, the server reads ``--expect`` bytes (the client's ``N``) and then
sends its own ``N``; both close with close_notify. What each side sends is seeded random data
(a splice, a repeat or a reordering of it changes its SHA-256). The server prints ``ready`` once
it listens; each prints one JSON line at the end: bytes and SHA-256 of what it sent and received.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import ssl

CHUNK = 1 << 16


def payload(side: str, size: int) -> bytes:
    """What ``side`` sends: the tests recompute it to compare digests."""
    return random.Random(f"capdebug-{side}").randbytes(size)


def _exchange(tls: ssl.SSLSocket, send: bytes, expect: int, first: bool) -> dict[str, object]:
    got = hashlib.sha256()
    received = 0

    def receive() -> None:
        nonlocal received
        while received < expect:
            chunk = tls.recv(CHUNK)
            if not chunk:
                break
            got.update(chunk)
            received += len(chunk)

    if not first:
        receive()
    tls.sendall(send)
    if first:
        receive()
    tls.unwrap()
    return {
        "sent": len(send),
        "sent_sha256": hashlib.sha256(send).hexdigest(),
        "received": received,
        "received_sha256": got.hexdigest(),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--addr", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--keylog", required=True)
    p.add_argument("--send", type=int, required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--tls", choices=("1.2", "1.3"), default="1.3")
    p.add_argument("--timeout", type=float, default=15.0)
    args = p.parse_args()
    version = ssl.TLSVersion.TLSv1_2 if args.tls == "1.2" else ssl.TLSVersion.TLSv1_3
    if args.role == "server":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
    ctx.keylog_filename = args.keylog
    status: dict[str, object] = {"error": None}
    try:
        if args.role == "server":
            with socket.create_server((args.addr, args.port)) as srv:
                print("ready", flush=True)
                srv.settimeout(args.timeout)
                conn, _ = srv.accept()
                conn.settimeout(args.timeout)
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    status |= _exchange(tls, payload("server", args.send), args.expect, first=False)
        else:
            raw = socket.create_connection((args.addr, args.port), timeout=args.timeout)
            with ctx.wrap_socket(raw, server_hostname="capdbg.test") as tls:
                status |= _exchange(tls, payload("client", args.send), args.expect, first=True)
    except (OSError, ssl.SSLError) as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(status), flush=True)


if __name__ == "__main__":
    main()
