"""Real peers for interop tests: an openssl process driven through its stdin/stdout
(:class:`tests.support.proc.Proc`), and the engine's own server running in a thread on an
ephemeral loopback port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from capdebug.tls.config import TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.faults import Faults
from capdebug.tls.io import TLSSocket
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc

from ._pki import NOW

TIMEOUT = 10.0


def openssl_server(args: list[str], cwd: str) -> tuple[Proc, int]:
    return openssl_s_server(["-tls1_3", *args], cwd)


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
