"""KeyUpdate floods cost linear work: one reply answers every request received meanwhile
(RFC 8446 4.6.3), each update derives one secret and logs one line, and a key log of literal
``..._TRAFFIC_SECRET_N`` lines is numbered in O(1) per line. Work is counted, not timed."""

from __future__ import annotations

import os
import socket
import sys

from capdebug.crypto.keylog import KeyLog
from capdebug.tls.config import TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import KeyUpdateReceived
from capdebug.tls.io import TLSSocket
from tests.support.proc import Proc
from tests.tls._pki import NOW, Pki, client_config, drain, pump, server_config

N = 2000


def _connected(pki: Pki, server_log: list[str]) -> tuple[Connection, Connection]:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(
        server_config(pki, key_log_callback=server_log.append, key_log_update_lines=True),
        is_client=False,
        now=NOW,
    )
    client.start_handshake()
    pump(client, server)
    drain(client)
    drain(server)
    assert client.handshake_complete and server.handshake_complete
    return client, server


def test_one_reply_answers_many_requests(pki: Pki) -> None:
    lines: list[str] = []
    client, server = _connected(pki, lines)
    before = len(lines)
    for _ in range(N):
        client.key_update(request=True)
    server.receive_data(client.data_to_send())
    assert drain(server) == [KeyUpdateReceived(True)] * N
    reply = server.data_to_send()
    client.receive_data(reply)
    assert drain(client) == [KeyUpdateReceived(False)]  # one answer for N requests
    logged = lines[before:]
    assert len(logged) == N + 1  # N read generations and one write generation: linear
    assert sum(line.startswith("CLIENT_TRAFFIC_SECRET_") for line in logged) == N
    assert logged[-1].startswith("SERVER_TRAFFIC_SECRET_1 ")
    assert logged[-2].startswith(f"CLIENT_TRAFFIC_SECRET_{N} ")
    # Both still talk with the updated keys.
    server.send_application_data(b"after")
    client.receive_data(server.data_to_send())
    assert [e for e in drain(client)][-1].data == b"after"  # type: ignore[attr-defined]


def test_literal_n_lines_are_numbered_in_constant_work_each() -> None:
    client_random = os.urandom(32).hex()
    secrets = [os.urandom(32).hex() for _ in range(N)]
    text = "".join(f"SERVER_TRAFFIC_SECRET_N {client_random} {s}\n" for s in secrets)
    calls = 0

    # Count the labels tried: the old parser tried 1..k for line k (N*N/2 in all).
    class CountingDict(dict[str, object]):
        def __contains__(self, key: object) -> bool:
            nonlocal calls
            calls += 1
            return super().__contains__(key)

        def get(self, key: object, default: object = None) -> object:  # type: ignore[override]
            nonlocal calls
            calls += 1
            return super().get(key, default)  # type: ignore[call-overload]

    log = KeyLog()
    log._by_random[bytes.fromhex(client_random)] = CountingDict()  # type: ignore[assignment]
    log._feed(text, "<test>")
    assert [e.label for e in log.entries()] == [f"SERVER_TRAFFIC_SECRET_{i}" for i in range(1, N + 1)]
    assert calls <= 4 * N
    # A repeated line is still recognised as a duplicate.
    again = KeyLog.parse(text + text)
    assert len(again) == N


def test_a_key_update_flood_over_a_socket_gets_few_replies(tmp_path: object) -> None:
    keys = os.path.join(str(tmp_path), "server.keys")
    server = Proc(
        [
            sys.executable,
            "-m",
            "capdebug.cli.engine",
            "serve",
            "--port",
            "0",
            "--once",
            "--key-log",
            keys,
            "--key-log-updates",
        ]
    )
    try:
        port = int(server.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        tls = TLSSocket(sock, Connection(TLSConfig(verify=False), is_client=True, now=NOW))
        tls.negotiate()
        for _ in range(N):
            tls.conn.key_update(request=True)
        tls.flush()
        tls.shutdown_send()
        assert tls.recv_all() == b""
        replies = sum(isinstance(e, KeyUpdateReceived) for e in tls.events)
        # One reply per read of the server (64 KiB each: 27 bytes per KeyUpdate record).
        assert 1 <= replies <= N * 27 // 65536 + 2
        assert server.wait_exit() == 0
        tls.close()
    finally:
        server.close()
    logged = KeyLog.from_file(keys)
    assert sum(e.label.startswith("CLIENT_TRAFFIC_SECRET_") for e in logged.entries()) == N + 1
    assert sum(e.label.startswith("SERVER_TRAFFIC_SECRET_") for e in logged.entries()) == replies + 1
