"""The socket loop of ``capdebug serve``: many connections at once, each bounded in time and
memory, so that one idle or slow client cannot stop the others.

Why threads: the engine is sans-IO and each connection is independent, so the blocking
per-connection code (handshake, then ``--www``/``--echo``/print) runs unchanged in a thread of
its own, with socket timeouts giving the deadlines. A selector loop would have to turn each of
those modes into a state machine for the same result; the work per connection is CPU-bound
crypto either way (the GIL serialises it as a selector would), and the number of threads is
capped by ``max_connections``.

Limits (:class:`ServeLimits`):

* ``handshake_timeout``: the whole handshake must finish within it, however the client dribbles
  its bytes (a deadline, not a per-read timeout);
* ``idle_timeout``: after the handshake, a read or write that waits longer closes the connection;
* ``max_connections``: connections served at once; one more is refused at once with a fatal
  TLS alert (internal_error: RFC 8446 has no "busy" alert) and a line on stderr, never queued
  behind the others;
* memory: per connection the engine holds at most one partial record (about 16 KiB) and one
  handshake message (1 MiB, ``tls/connection.py``); ``--www`` reads at most
  :data:`MAX_HTTP_HEAD` bytes of request head (:class:`HttpHeadReader`).

The clock is a parameter (``clock``, monotonic seconds) so the deadlines can be tested.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..wire.constants import AlertDescription, AlertLevel, ContentType

__all__ = [
    "MAX_HTTP_HEAD",
    "HttpHeadReader",
    "ServeLimits",
    "TimedSocket",
    "refusal_alert",
    "serve_connections",
]

MAX_HTTP_HEAD = 16 * 1024
"""The most ``--www`` reads of a request head (request line and headers), like servers' 8-16 KiB."""

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ServeLimits:
    max_connections: int = 64
    """Connections served at once; the next one is refused."""
    handshake_timeout: float = 10.0
    """Seconds from accept to handshake complete."""
    idle_timeout: float = 60.0
    """Seconds a read or write may wait once the handshake is complete."""


class TimedSocket(socket.socket):
    """A connected socket whose every ``recv``/``send`` waits at most what the phase allows:
    before the handshake completes, until the handshake deadline; after, ``idle_timeout``.
    Running out raises ``TimeoutError`` with a message saying which limit it was."""

    def __init__(
        self, sock: socket.socket, limits: ServeLimits, clock: Clock, handshake_done: Callable[[], bool]
    ) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self._limits = limits
        self._clock = clock
        self._deadline = clock() + limits.handshake_timeout
        self.handshake_done = handshake_done

    def _arm(self) -> None:
        if self.handshake_done():
            super().settimeout(self._limits.idle_timeout)
            return
        left = self._deadline - self._clock()
        if left <= 0:
            raise self._why()
        super().settimeout(min(left, self._limits.idle_timeout))

    def _why(self) -> TimeoutError:
        if self.handshake_done():
            return TimeoutError(errno.ETIMEDOUT, f"idle for {self._limits.idle_timeout:g} s")
        return TimeoutError(
            errno.ETIMEDOUT, f"handshake not complete after {self._limits.handshake_timeout:g} s"
        )

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise self._why() from None

    def send(self, data: object, flags: int = 0) -> int:
        self._arm()
        try:
            return super().send(data, flags)  # type: ignore[arg-type]
        except TimeoutError:
            raise self._why() from None


class HttpHeadReader:
    """Collects an HTTP request head (up to the blank line) in O(bytes fed), bounded by
    ``limit``: each chunk is searched only from 3 bytes before its start, never the whole
    buffer again."""

    def __init__(self, limit: int = MAX_HTTP_HEAD) -> None:
        self.limit = limit
        self._buf = bytearray()
        self.scanned = 0
        """Bytes searched so far (the work, for tests)."""
        self.complete = False
        self.too_large = False

    def feed(self, chunk: bytes) -> bool:
        """Add ``chunk``; True once the head is complete or over the limit (stop reading)."""
        if self.complete or self.too_large:
            return True
        start = max(0, len(self._buf) - 3)
        self._buf += chunk[: self.limit + 1 - len(self._buf)]
        self.scanned += len(self._buf) - start
        if self._buf.find(b"\r\n\r\n", start) >= 0:
            self.complete = True
        elif len(self._buf) > self.limit:
            self.too_large = True
        return self.complete or self.too_large

    @property
    def head(self) -> bytes:
        return bytes(self._buf)


def refusal_alert() -> bytes:
    """A plaintext fatal internal_error alert record (RFC 8446 5.1, 6): what a refused client
    reads instead of a handshake."""
    return bytes((ContentType.alert, 3, 3, 0, 2, AlertLevel.fatal, AlertDescription.internal_error))


def _refuse(sock: socket.socket) -> None:
    try:
        sock.setblocking(False)
        try:
            sock.recv(65536)  # the ClientHello if here: unread data would turn close into RST
        except OSError:
            pass
        sock.send(refusal_alert())
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve_connections(
    listener: socket.socket,
    handle: Callable[[socket.socket, object], None],
    limits: ServeLimits,
    *,
    log: Callable[[str], None],
    clock: Clock = time.monotonic,
    once: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Accept on ``listener`` and run ``handle(sock, peer)`` for each connection in a thread of
    its own, at most ``limits.max_connections`` at once. ``handle`` gets a :class:`TimedSocket`
    bound to ``limits``; it builds the TLS connection and must set ``sock.handshake_done``.
    With ``once``, the first connection is served in this thread and the loop returns. ``stop``
    ends the loop (tests)."""
    active = threading.BoundedSemaphore(limits.max_connections)
    # Refused sockets wait here for the client to read the alert and close (or 2 s), so the
    # alert is not lost to an RST; capped so that refusals cannot pile up either.
    refused: dict[socket.socket, float] = {}
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    try:
        while stop is None or not stop.is_set():
            for key, _ in sel.select(timeout=0.5):
                if key.fileobj is listener:
                    sock, peer = listener.accept()
                    if once:
                        handle(TimedSocket(sock, limits, clock, lambda: False), peer)
                        return
                    if not active.acquire(blocking=False):
                        log(
                            f"{peer}: refused: {limits.max_connections} connections already open "
                            "(--max-connections)"
                        )
                        _refuse(sock)
                        if len(refused) >= 256:
                            sock.close()
                        else:
                            refused[sock] = clock() + 2.0
                            sel.register(sock, selectors.EVENT_READ)
                        continue
                    timed = TimedSocket(sock, limits, clock, lambda: False)
                    threading.Thread(target=_run, args=(handle, timed, peer, active), daemon=True).start()
                else:
                    done = key.fileobj
                    assert isinstance(done, socket.socket)
                    try:
                        more = done.recv(65536)
                    except OSError:
                        more = b""
                    if not more:
                        sel.unregister(done)
                        refused.pop(done, None)
                        done.close()
            now = clock()
            for sock, until in list(refused.items()):
                if until <= now:
                    sel.unregister(sock)
                    del refused[sock]
                    sock.close()
    finally:
        for sock in refused:
            sock.close()
        sel.close()


def _run(
    handle: Callable[[socket.socket, object], None],
    sock: socket.socket,
    peer: object,
    active: threading.BoundedSemaphore,
) -> None:
    try:
        handle(sock, peer)
    finally:
        sock.close()
        active.release()
