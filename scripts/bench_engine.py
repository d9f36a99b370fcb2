#!/usr/bin/env python3
"""Benchmark the capdebug TLS engine against Python's ssl (OpenSSL) in one run.

Both stacks run client and server in one process over in-memory transports (the engine's
sans-IO API; ssl's MemoryBIO), so the numbers compare TLS work, not socket syscalls:

* full TLS 1.3 and TLS 1.2 handshakes per second (x25519, ECDSA P-256 certificate,
  verification on; TLS 1.2 with the extended master secret and, for CBC, encrypt_then_mac);
* bulk throughput in MB/s: the client encrypts, the server decrypts, 16 KiB writes.

Usage: ``python scripts/bench_engine.py [--seconds 2] [--mb 64] [--suite TLS_AES_256_GCM_SHA384]
[--suites12 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,...]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from capdebug.crypto.testpki import make_ca, make_leaf
from capdebug.crypto.x509_engine import load_private_key
from capdebug.tls.config import OPENSSL_CIPHER_NAMES, Credential, TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import ApplicationData
from capdebug.wire.constants import CipherSuite, NamedGroup

CHUNK = 16384


def _rate(fn: Callable[[], None], seconds: float) -> float:
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


# ---------------------------------------------------------------- engine


def _engine_pair(ccfg: TLSConfig, scfg: TLSConfig, now: dt.datetime) -> tuple[Connection, Connection]:
    client = Connection(ccfg, is_client=True, now=now)
    server = Connection(scfg, is_client=False, now=now)
    client.start_handshake()
    while True:
        a = client.data_to_send()
        if a:
            server.receive_data(a)
        b = server.data_to_send()
        if b:
            client.receive_data(b)
        if not a and not b:
            break
    assert client.handshake_complete and server.handshake_complete
    while client.next_event() is not None:
        pass
    while server.next_event() is not None:
        pass
    return client, server


def _engine_bulk(client: Connection, server: Connection, total: int) -> float:
    block = bytes(CHUNK)
    received = 0
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        client.send_application_data(block)
        server.receive_data(client.data_to_send())
        while (event := server.next_event()) is not None:
            if isinstance(event, ApplicationData):
                received += len(event.data)
    elapsed = time.perf_counter() - start
    assert received == total // CHUNK * CHUNK
    return received / elapsed / 1e6


# ---------------------------------------------------------------- Python ssl (OpenSSL)


def _ssl_pair(
    cctx: ssl.SSLContext, sctx: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = cctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    c_done = s_done = False
    while not (c_done and s_done):
        if not c_done:
            try:
                client.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not s_done:
            try:
                server.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
    # Let the client take the server's NewSessionTicket, as the engine does.
    try:
        client.read(1)
    except ssl.SSLWantReadError:
        pass
    return client, server, [c_in, c_out, s_in, s_out]


def _ssl_bulk(client: ssl.SSLObject, server: ssl.SSLObject, bios: list[ssl.MemoryBIO], total: int) -> float:
    _c_in, c_out, s_in, _s_out = bios
    block = bytes(CHUNK)
    received = 0
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        client.write(block)
        s_in.write(c_out.read())
        while True:
            try:
                received += len(server.read(65536))
            except ssl.SSLWantReadError:
                break
    elapsed = time.perf_counter() - start
    assert received == total // CHUNK * CHUNK
    return received / elapsed / 1e6


def _contexts(folder: Path, tls12: str | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    cctx = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    for ctx in (sctx, cctx):
        if tls12 is None:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        else:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(tls12)
    # x25519 for the key exchange, as in the engine configs. A TLS 1.2 OpenSSL server wants its
    # ECDSA certificate's curve in the client's list too (RFC 4492 5.1), so the client keeps its
    # default list there; the server's choice is what decides the group.
    sctx.set_ecdh_curve("X25519")
    if tls12 is None:
        cctx.set_ecdh_curve("X25519")
    return cctx, sctx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per handshake measurement")
    parser.add_argument("--mb", type=int, default=64, help="megabytes per bulk measurement")
    # OpenSSL's first TLS 1.3 choice, which Python's ssl cannot change: same work on both sides.
    parser.add_argument("--suite", default="TLS_AES_256_GCM_SHA384")
    parser.add_argument(
        "--suites12",
        default="TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        help="TLS 1.2 suites to measure (CBC ones with encrypt_then_mac, both stacks' default)",
    )
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now)
    leaf = make_leaf(ca, now)
    credential = Credential((leaf.cert_der, ca.cert_der), load_private_key(leaf.key_pem))
    rows: list[tuple[str, CipherSuite, str | None]] = [("TLS 1.3", CipherSuite[args.suite], None)]
    for name in filter(None, args.suites12.split(",")):
        suite12 = CipherSuite[name.strip()]
        rows.append(("TLS 1.2", suite12, OPENSSL_CIPHER_NAMES[suite12]))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "ca.pem").write_bytes(ca.cert_pem)
        (folder / "leaf.pem").write_bytes(leaf.cert_pem + ca.cert_pem)
        (folder / "leaf.key").write_bytes(leaf.key_pem)
        contexts = [_contexts(folder, openssl) for _, _, openssl in rows]

    print(f"{'':44}{'capdebug':>12}{'python ssl':>14}{'ratio':>9}")
    for (version, suite, _), (cctx, sctx) in zip(rows, contexts, strict=True):
        ccfg = TLSConfig(
            cipher_suites=(suite,),
            groups=(NamedGroup.x25519,),
            trust_roots=(ca.cert_der,),
            server_name="localhost",
        )
        scfg = TLSConfig(cipher_suites=(suite,), groups=(NamedGroup.x25519,), credential=credential)
        # ssl cannot pin TLS 1.3 suites from Python: the suite it got is printed with the numbers.
        ssl_suite = _ssl_pair(cctx, sctx)[0].cipher()
        hs_engine = _rate(lambda: _engine_pair(ccfg, scfg, now) and None, args.seconds)  # noqa: B023
        hs_ssl = _rate(lambda: _ssl_pair(cctx, sctx) and None, args.seconds)  # noqa: B023
        total = args.mb * 1_000_000
        bulk_engine = _engine_bulk(*_engine_pair(ccfg, scfg, now), total)
        c, s, bios = _ssl_pair(cctx, sctx)
        bulk_ssl = _ssl_bulk(c, s, bios, total)
        label = f"{version} {suite.name}"
        print(f"{label} (ssl: {ssl_suite[0] if ssl_suite else '?'})")
        print(f"{'  handshakes/s':44}{hs_engine:12.1f}{hs_ssl:14.1f}{hs_engine / hs_ssl:9.3f}")
        print(f"{'  bulk MB/s':44}{bulk_engine:12.1f}{bulk_ssl:14.1f}{bulk_engine / bulk_ssl:9.3f}")


if __name__ == "__main__":
    main()
