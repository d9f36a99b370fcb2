"""Follow a key log while the capture runs, locally or on a remote host.

TLS libraries append a key-log line as soon as they derive a secret, so following the file is
how a capture learns the keys of each session while it is still running.

* Local: the file is polled (it may not exist yet: many libraries create it at the first
  connection). A file that shrinks was truncated or replaced and is read again from the start.
* Remote: ``tail -c +1 -F -- PATH`` runs through the capture's transport (``ssh``), under the
  same stdin-watching wrapper as tcpdump, so closing the pipe (or losing the connection) ends
  the remote ``tail``: nothing is left running on the host. The path reaches the remote shell
  as a positional parameter, never as shell syntax.

:meth:`KeylogTail.read` never blocks: it returns whatever arrived since the last call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from .command import WRAPPER_NAME
from .transport import LocalTransport, SshTransport, Transport, start_command

__all__ = ["TAIL_SCRIPT", "KeylogTail"]

# Same pattern as command.WRAPPER_SCRIPT: the follower runs in the background, the original
# stdin (kept on fd 3) is watched, and its end stops the follower.
TAIL_SCRIPT = r"""exec 3<&0
tail -c +1 -F -- "$1" </dev/null 3<&- &
tp=$!
{ read -r _ <&3; kill "$tp"; } >/dev/null 2>&1 &
wp=$!
exec 3<&-
wait "$tp"; rc=$?
kill "$wp" 2>/dev/null
exit "$rc"
"""

_READ = 1 << 16
_MAX_PENDING = 64 << 20
"""A key log larger than this between two reads is not a key log."""


class KeylogTail:
    """Follows ``path`` on ``transport`` (see the module docstring). Thread-safe."""

    def __init__(self, transport: Transport, path: str) -> None:
        self.transport = transport
        self.path = path
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._pos = 0
        self._inode: tuple[int, int] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.total = 0
        """Bytes received so far."""

    @property
    def local(self) -> bool:
        return isinstance(self.transport, LocalTransport)

    def start(self) -> None:
        if isinstance(self.transport, SshTransport):
            # tail's complaints (a file not there yet) are not errors while following; the fetch
            # after the capture reports a path that never appeared.
            self._proc = start_command(
                self.transport, ["sh", "-c", TAIL_SCRIPT, WRAPPER_NAME, self.path], stderr=subprocess.DEVNULL
            )
            self._thread = threading.Thread(target=self._pump, name="capdebug-keylog-tail", daemon=True)
            self._thread.start()

    def _pump(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, _READ)
            except OSError:
                chunk = b""
            if not chunk:
                return
            with self._lock:
                if len(self._pending) < _MAX_PENDING:
                    self._pending += chunk
                self.total += len(chunk)

    def read(self) -> bytes:
        """What arrived since the last call (possibly ending inside a line)."""
        with self._lock:
            if self.local:
                self._poll_local()
            data = bytes(self._pending)
            self._pending.clear()
            return data

    def _poll_local(self) -> None:
        try:
            with open(os.path.expanduser(self.path), "rb") as f:
                st = os.fstat(f.fileno())
                ident = (st.st_dev, st.st_ino)
                if ident != self._inode or st.st_size < self._pos:
                    self._inode, self._pos = ident, 0  # replaced or truncated: read it again
                if st.st_size == self._pos:
                    return
                f.seek(self._pos)
                data = f.read(min(st.st_size - self._pos, _MAX_PENDING))
        except OSError:
            return  # not there yet, or unreadable for now: the final fetch reports it
        self._pos += len(data)
        self.total += len(data)
        self._pending += data

    def close(self, timeout: float = 5.0) -> None:
        """Stop following (ends the remote ``tail``)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()
        except OSError:
            pass  # already gone
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()
