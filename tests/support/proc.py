"""Real child processes (openssl, gnutls, ...) whose output the caller waits on line by line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

TIMEOUT = 15.0


class ToolError(RuntimeError):
    """A tool is missing, failed, or did not print what the caller waited for."""


def tool(name: str) -> str:
    """The path of an installed tool (``/usr/sbin`` included, which is not on every user's PATH)."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        raise ToolError(f"{name} is not installed (run `make system-deps`)")
    return path


class Proc:
    """A child process whose output (stdout and stderr merged) is collected line by line by a
    reader thread, so that a chatty tool never blocks on a full pipe."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name or " ".join(self.argv[:2])
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.p = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for raw in iter(self.p.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def _not_seen(self, what: str) -> ToolError:
        state = "exited" if self._eof else "timeout"
        return ToolError(f"{self.name}: {what} not seen ({state}); output:\n" + "\n".join(self.lines[-40:]))

    def wait_for(self, text: str, timeout: float = TIMEOUT, count: int = 1) -> None:
        """Wait until ``count`` lines contain ``text``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(text in line for line in self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise self._not_seen(repr(text))
                self._cond.wait(min(left, 0.1))

    def wait_match(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The first line (from the start of the output) that matches the regex ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := rx.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise self._not_seen(f"/{pattern}/")
                self._cond.wait(min(left, 0.1))

    def send(self, data: bytes) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def write(self, text: str) -> None:
        self.send(text.encode())

    def close_stdin(self) -> None:
        assert self.p.stdin is not None
        with suppress(BrokenPipeError):
            self.p.stdin.close()

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        return self.p.wait(timeout)

    def finish(self, ok: Sequence[int] | None = (0,), timeout: float = TIMEOUT) -> int:
        """Wait for the exit; an exit code outside ``ok`` (unless None) is an error."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ToolError(f"{self.name} did not exit; output:\n{self.output()}") from None
        self._release()
        if ok is not None and rc not in ok:
            raise ToolError(f"{self.name} exited with {rc}; argv {self.argv}; output:\n{self.output()}")
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self._release()

    def close(self) -> None:
        """Stop the process politely (SIGTERM), then by force, and release its pipes."""
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._release()

    def _release(self) -> None:
        # The reader sees EOF once the process is gone; closing stdout under it would crash it.
        self._reader.join(TIMEOUT)
        self.close_stdin()
        assert self.p.stdout is not None
        self.p.stdout.close()
