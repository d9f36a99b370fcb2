"""``capdebug serve`` with several clients at once, over real sockets: an idle connection does
not block a real ``openssl s_client``; the handshake deadline and the idle timeout close silent
connections; the connection cap refuses the next one with an alert and a line on stderr."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from capdebug.cli._serve import refusal_alert
from tests.support.proc import Proc

TIMEOUT = 20.0


def _engine(*args: str) -> list[str]:
    return [sys.executable, "-m", "capdebug.cli.engine", *args]


class Server:
    def __init__(self, *args: str) -> None:
        self.proc = Proc(_engine("serve", "--port", "0", *args))
        self.port = int(self.proc.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        self.ca = self.proc.wait_match(r"--ca (\S+)").group(1)

    def tcp(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        return sock

    def s_client(self, request: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{self.port}",
                "-CAfile",
                self.ca,
                "-servername",
                "localhost",
                "-quiet",
                "-verify_return_error",
            ],
            input=request,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    s = Server(*request.param)
    try:
        yield s
    finally:
        s.proc.close()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (EOF or RST), failing past ``seconds``."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


@pytest.mark.parametrize("server", [("--www",)], indirect=True)
def test_an_idle_connection_does_not_block_openssl(server: Server) -> None:
    idle = [server.tcp() for _ in range(3)]  # connected, never a byte: the old loop hung here
    try:
        done = server.s_client(b"GET / HTTP/1.0\r\n\r\n")
        assert done.returncode == 0, done.stderr
        assert b"HTTP/1.0 200 OK" in done.stdout
        assert b"capdebug engine" in done.stdout
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize("server", [("--www", "--handshake-timeout", "1")], indirect=True)
def test_the_handshake_deadline_closes_a_silent_connection(server: Server) -> None:
    with server.tcp() as sock:
        assert _closed_within(sock, TIMEOUT) < TIMEOUT / 2
    server.proc.wait_for("handshake not complete after 1 s")
    # The server goes on serving.
    assert b"200 OK" in server.s_client(b"GET / HTTP/1.0\r\n\r\n").stdout


@pytest.mark.parametrize("server", [("--www", "--handshake-timeout", "2")], indirect=True)
def test_the_handshake_deadline_holds_against_a_dribbling_client(server: Server) -> None:
    """One byte every 0.5 s would reset a per-read timeout forever; the deadline still ends it."""
    hello = bytes.fromhex("16030100ff")  # a record header announcing more than we will send
    with server.tcp() as sock:
        start = time.monotonic()
        sock.sendall(hello)
        closed = False
        while time.monotonic() - start < TIMEOUT / 2:
            try:
                sock.sendall(b"\x00")
            except OSError:
                closed = True
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
        assert closed
        assert time.monotonic() - start < 6
    server.proc.wait_for("handshake not complete after 2 s")


@pytest.mark.parametrize("server", [("--echo", "--idle-timeout", "1")], indirect=True)
def test_the_idle_timeout_closes_a_connection_after_its_handshake(server: Server) -> None:
    with subprocess.Popen(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-CAfile",
            server.ca,
            "-servername",
            "localhost",
            "-quiet",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as p:
        try:
            # stdin stays open and silent: only the server's idle timeout can end this.
            server.proc.wait_for("handshake complete")
            server.proc.wait_for("idle for 1 s", timeout=TIMEOUT / 2)
            p.wait(TIMEOUT / 2)  # the server closed: s_client exits on its own
        finally:
            p.kill()


@pytest.mark.parametrize("server", [("--www", "--max-connections", "2")], indirect=True)
def test_the_cap_refuses_one_more_with_an_alert(server: Server) -> None:
    held = [server.tcp(), server.tcp()]
    try:
        # The two are served (in threads, waiting for a ClientHello); the third is refused.
        time.sleep(0.3)
        with server.tcp() as third:
            third.settimeout(TIMEOUT)
            got = b""
            while len(got) < 7 and (more := third.recv(100)):
                got += more
            assert got == refusal_alert() == bytes.fromhex("15030300020250")
        server.proc.wait_for("refused: 2 connections already open (--max-connections)")
        done = server.s_client(b"GET / HTTP/1.0\r\n\r\n")
        assert done.returncode != 0
        assert b"internal error" in done.stderr
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, clients are served again.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done = server.s_client(b"GET / HTTP/1.0\r\n\r\n")
        if b"200 OK" in done.stdout:
            break
        time.sleep(0.2)
    assert b"200 OK" in done.stdout


@pytest.mark.parametrize("server", [("--www",)], indirect=True)
def test_www_answers_an_oversized_request_head_with_431(server: Server) -> None:
    done = server.s_client(b"GET / HTTP/1.0\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
    assert b"HTTP/1.0 431 Request Header Fields Too Large" in done.stdout
