"""Real peers for interop tests: an openssl process driven through its stdin/stdout, and the
engine's own server running in a thread on an ephemeral loopback port."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from capdebug.tls.config import TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.faults import Faults
from capdebug.tls.io import TLSSocket

from ._pki import NOW

TIMEOUT = 10.0


class Proc:
    """A child process whose merged stdout/stderr is collected line by line."""

    def __init__(self, argv: list[str], **kw: Any) -> None:
        self.argv = argv
        self.p = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for raw in iter(self.p.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] == "<EOF>"):
                    raise AssertionError(
                        f"{pattern!r} not seen in output of {self.argv[:2]}:\n" + self.output
                    )
                self._cond.wait(left)

    def write(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        return self.p.wait(timeout)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        # The reader sees EOF once the process is gone; closing stdout under it would crash it.
        self._reader.join(5)
        if self.p.stdin is not None:
            try:
                self.p.stdin.close()
            except BrokenPipeError:
                pass
        if self.p.stdout is not None:
            self.p.stdout.close()


def openssl_server(args: list[str], cwd: str) -> tuple[Proc, int]:
    proc = Proc(["openssl", "s_server", "-accept", "127.0.0.1:0", "-tls1_3", *args], cwd=cwd)
    port = int(proc.wait_for(r"ACCEPT 127\.0\.0\.1:(\d+)").group(1))
    return proc, port


def engine_client(
    port: int, config: TLSConfig, faults: Faults | None = None, blocking: bool = True
) -> TLSSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT if blocking else None)
    if not blocking:
        sock.setblocking(False)
    return TLSSocket(sock, Connection(config, is_client=True, now=NOW, faults=faults), faults)


class EngineServer:
    """One connection served by the engine in a thread; ``handler(tls)`` runs after accept."""

    def __init__(
        self, config: TLSConfig, handler: Callable[[TLSSocket], object], faults: Faults | None = None
    ) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.config = config
        self.handler = handler
        self.faults = faults
        self.result: object = None
        self.error: BaseException | None = None
        self.tls: TLSSocket | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
            sock.settimeout(TIMEOUT)
            self.tls = TLSSocket(
                sock, Connection(self.config, is_client=False, now=NOW, faults=self.faults), self.faults
            )
            try:
                self.result = self.handler(self.tls)
            finally:
                self.tls.close()
        except BaseException as exc:
            self.error = exc
        finally:
            self.listener.close()

    def join(self) -> object:
        self.thread.join(TIMEOUT * 2)
        assert not self.thread.is_alive(), "engine server thread hung"
        if self.error is not None:
            raise self.error
        return self.result
