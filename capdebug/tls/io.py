"""Socket wrappers around the sans-IO :class:`~capdebug.tls.connection.Connection`: the only
place the engine does I/O.

:class:`TLSSocket` works in both modes of the socket it is given:

* blocking: ``negotiate()``, ``send()``, ``recv()`` and ``shutdown()`` return when done;
* non-blocking: when the socket would block they raise :class:`BlockedError` (a
  :class:`~capdebug.errors.TLSError` of kind ``BLOCKED``) whose ``blocked`` attribute says
  what to wait for, ``"read"`` or ``"write"``; call again when ``select`` says so. Nothing is
  lost: encrypted bytes not yet written stay queued inside the wrapper.

``send()`` reports partial writes the way ``socket.send`` does: it returns how many bytes of
the plaintext were accepted (encrypted and queued for the socket). In blocking mode that is
all of them; in non-blocking mode it can be fewer, and the caller sends the rest later.

Close semantics follow s2n and OpenSSL: ``recv()`` returns ``b""`` once the peer's
close_notify arrived (end of data); a TCP EOF without close_notify raises ``ERR_PREMATURE_CLOSE``
(kind CLOSED). ``shutdown()`` sends close_notify and waits for the peer's; ``shutdown_send()``
only half-closes (TLS 1.3 allows the other direction to go on, RFC 8446 6.1).

SIGPIPE never kills the process: writes use ``MSG_NOSIGNAL`` where the platform has it, and
Python itself ignores SIGPIPE at start-up, so a peer that has gone away is an ``IO`` error.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Literal

from ..errors import ErrorKind, TLSError
from .connection import Connection
from .events import (
    ApplicationData,
    CloseNotifyReceived,
    Event,
    HandshakeComplete,
    KeyUpdateReceived,
    NewSessionTicketReceived,
)
from .faults import Faults

__all__ = ["BlockedError", "TLSSocket"]

_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_READ_SIZE = 65536
# Stop encrypting more plaintext while this much ciphertext waits for the socket: bounds the
# memory a non-blocking writer can pile up, and makes send() report a partial write.
_MAX_QUEUED = 256 * 1024


class BlockedError(TLSError):
    """The socket would block; ``blocked`` says on what."""

    def __init__(self, blocked: Literal["read", "write"]) -> None:
        super().__init__("ERR_BLOCKED", ErrorKind.BLOCKED, f"the socket would block on {blocked}")
        self.blocked: Literal["read", "write"] = blocked


class TLSSocket:
    """A TLS connection over a connected stream socket."""

    def __init__(self, sock: socket.socket, conn: Connection, faults: Faults | None = None) -> None:
        self.sock = sock
        self.conn = conn
        self.faults = faults
        self.handshake: HandshakeComplete | None = None
        """The handshake result once ``negotiate()`` has returned."""
        self.tickets: list[NewSessionTicketReceived] = []
        self.events: list[Event] = []
        """Every event the engine produced, in order (for diagnostics and tests)."""
        self._out = bytearray()
        self._plain = bytearray()
        self._plain_pos = 0
        self._peer_closed = False
        self._eof = False

    # -- plumbing --------------------------------------------------------------------------

    @property
    def blocking(self) -> bool:
        return self.sock.gettimeout() != 0.0

    def fileno(self) -> int:
        return self.sock.fileno()

    def _flush(self) -> None:
        """Write queued ciphertext; BLOCKED(write) if the socket cannot take all of it."""
        self._out += self.conn.data_to_send()
        if self._out and self.faults is not None and self.faults.delay_first_byte > 0:
            delay, self.faults.delay_first_byte = self.faults.delay_first_byte, 0.0
            self.faults.fired.append("delay_first_byte")
            time.sleep(delay)
        while self._out:
            if self.faults is not None and self.faults.delay_before_send > 0:
                time.sleep(self.faults.delay_before_send)
            try:
                n = self.sock.send(self._out, _MSG_NOSIGNAL)
            except BlockingIOError:
                raise BlockedError("write") from None
            except OSError as exc:
                raise TLSError("ERR_IO", ErrorKind.IO, f"socket write failed: {exc}") from exc
            del self._out[:n]
        if self.faults is not None and self.faults.take_fin():
            self._shut_write()  # fault: a truncated record was just written; FIN now

    def _shut_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise TLSError("ERR_IO", ErrorKind.IO, f"shutdown(SHUT_WR) failed: {exc}") from exc

    # -- fault hooks (faults.py): transport-level faults act here ----------------------------

    def _fault_instead_of_answer(self) -> None:
        """The peer's handshake bytes arrived: abort with RST instead of answering them."""
        if self.faults is None or not self.faults.rst_during_handshake:
            return
        self.faults.rst_during_handshake = False
        self.faults.rst_instead_of_fin = True
        self.close()
        raise TLSError("ERR_INJECTED_RESET", ErrorKind.CLOSED, "fault injection: reset during the handshake")

    def _fault_after_handshake(self) -> None:
        f = self.faults
        if f is None:
            return
        for _ in range(f.key_update_storm):
            self.conn.key_update(request=False)
        if f.key_update_storm:
            f.fired.append(f"key_update_storm:{f.key_update_storm}")
            f.key_update_storm = 0
            self._flush()
        if f.half_close_after_handshake:
            f.half_close_after_handshake = False
            f.fired.append("half_close")
            self.shutdown_send()

    def _fault_stall(self) -> None:
        f = self.faults
        if f is not None and f.stall_s > 0 and self.handshake is not None:
            stall, f.stall_s = f.stall_s, 0.0
            f.fired.append("stall")
            time.sleep(stall)

    def _read_some(self) -> None:
        """One socket read fed to the engine, then its events handled."""
        if self.faults is not None:
            self._fault_stall()
        try:
            data = self.sock.recv(_READ_SIZE)
        except BlockingIOError:
            raise BlockedError("read") from None
        except ConnectionResetError as exc:
            # An RST is a truncation too; say so in the same terms as a bare FIN.
            self._eof = True
            self.conn.receive_eof()
            self._drain_events()
            raise TLSError(
                "ERR_PREMATURE_CLOSE", ErrorKind.CLOSED, f"connection reset by peer: {exc}"
            ) from exc
        except OSError as exc:
            raise TLSError("ERR_IO", ErrorKind.IO, f"socket read failed: {exc}") from exc
        if data:
            self.conn.receive_data(data)
            if self.faults is not None and self.handshake is None:
                self._fault_instead_of_answer()
        else:
            self._eof = True
            self.conn.receive_eof()
        try:
            self._drain_events()
        finally:
            # Alerts queued by a failure, KeyUpdate replies: send them even when raising.
            try:
                self._flush()
            except TLSError:
                pass

    def _drain_events(self) -> None:
        while (event := self.conn.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ApplicationData):
                self._plain += event.data
            elif isinstance(event, HandshakeComplete):
                self.handshake = event
            elif isinstance(event, CloseNotifyReceived):
                self._peer_closed = True
            elif isinstance(event, NewSessionTicketReceived):
                self.tickets.append(event)
            elif isinstance(event, KeyUpdateReceived):
                pass  # the engine already queued our answer; _flush sends it

    # -- handshake -------------------------------------------------------------------------

    def negotiate(self) -> HandshakeComplete:
        """Run the handshake to completion (or to BLOCKED in non-blocking mode)."""
        self.conn.start_handshake()
        while True:
            self._flush()
            if self.handshake is not None:
                self._fault_after_handshake()
                return self.handshake
            if self._eof:
                raise TLSError("ERR_PREMATURE_CLOSE", ErrorKind.CLOSED, "peer closed during the handshake")
            self._read_some()

    # -- data ------------------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt and write ``data``; returns how many bytes were accepted (see module doc)."""
        view = memoryview(data)
        if self.blocking:
            # Bound the ciphertext held in memory for a large write, as in non-blocking mode.
            step = _MAX_QUEUED // 2
            for i in range(0, len(view), step):
                self.conn.send_application_data(view[i : i + step])
                self._flush()
            if not view:
                self._flush()
            return len(view)
        try:
            self._flush()
        except BlockedError:
            if len(self._out) >= _MAX_QUEUED:
                raise
        room = _MAX_QUEUED - len(self._out)
        if room <= 0:
            raise BlockedError("write")
        take = min(room, len(view))
        self.conn.send_application_data(view[:take])
        try:
            self._flush()
        except BlockedError:
            pass  # accepted and queued; the next send()/flush() writes it
        return take

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            try:
                sent += self.send(view[sent:])
            except BlockedError as exc:
                self._wait(exc.blocked)
        while self._out:
            try:
                self._flush()
            except BlockedError as exc:
                self._wait(exc.blocked)

    def flush(self) -> None:
        """Write everything queued (BLOCKED(write) in non-blocking mode if it cannot)."""
        self._flush()

    def _wait(self, what: Literal["read", "write"], timeout: float | None = None) -> None:
        if what == "read":
            select.select([self.sock], [], [], timeout)
        else:
            select.select([], [self.sock], [], timeout)

    def pending(self) -> int:
        """Decrypted bytes ready to be read without touching the socket."""
        return len(self._plain) - self._plain_pos

    def _fill(self) -> bool:
        """Make plaintext available; False at end of data (peer's close_notify)."""
        while self.pending() == 0:
            if self._peer_closed:
                return False
            if self._eof:
                # receive_eof() already raised ERR_PREMATURE_CLOSE through next_event if the
                # close was not clean; reaching here means the engine accepted the EOF.
                return False
            self._read_some()
        return True

    def recv(self, n: int = _READ_SIZE) -> bytes:
        """Up to ``n`` decrypted bytes; ``b""`` once the peer sent close_notify."""
        if not self._fill():
            return b""
        start = self._plain_pos
        out = bytes(self._plain[start : start + n])
        self._plain_pos = start + len(out)
        if self._plain_pos == len(self._plain):
            # Compact only when fully read: reading small pieces stays O(bytes read).
            self._plain.clear()
            self._plain_pos = 0
        elif self._plain_pos > _READ_SIZE * 4:
            del self._plain[: self._plain_pos]
            self._plain_pos = 0
        return out

    def peek(self, n: int = _READ_SIZE) -> bytes:
        """Like ``recv`` but leaves the bytes to be read again."""
        if not self._fill():
            return b""
        return bytes(self._plain[self._plain_pos : self._plain_pos + n])

    def recv_all(self) -> bytes:
        """Everything until the peer's close_notify (blocking mode)."""
        chunks = []
        while chunk := self.recv():
            chunks.append(chunk)
        return b"".join(chunks)

    # -- closing ---------------------------------------------------------------------------

    def key_update(self, request: bool = False) -> None:
        self.conn.key_update(request)
        self._flush()

    def shutdown_send(self) -> None:
        """Send close_notify and half-close TCP; the peer may go on sending (RFC 8446 6.1)."""
        self.conn.shutdown_send()
        self._flush()
        self._shut_write()

    def shutdown(self) -> None:
        """Send close_notify (if not yet) and wait for the peer's; received data is discarded.
        After a failure there is nothing to close: the alert already went out."""
        if self.conn.error is not None:
            return
        self.conn.close()
        self._flush()
        while not self._peer_closed:
            if self._eof:
                break
            self._read_some()
        self._plain.clear()
        self._plain_pos = 0

    def close(self) -> None:
        """Close the socket (no TLS closure: call ``shutdown`` first for a clean close)."""
        if self.sock.fileno() < 0:
            return  # closed already (a fault aborted the connection)
        if self.faults is not None and self.faults.rst_instead_of_fin:
            # SO_LINGER on with timeout 0: close() aborts the connection with an RST.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.faults.fired.append("rst_instead_of_fin")
        self.sock.close()

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
