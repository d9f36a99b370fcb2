"""A real tcpdump on the loopback for the duration of a ``with`` block."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .proc import TIMEOUT, ToolError, tool


@contextmanager
def tcpdump(
    path: Path, port: int, *, snaplen: int | None = None, settle: float = 0.3, extra: tuple[str, ...] = ()
) -> Iterator[None]:
    """Capture ``tcp port PORT`` on lo into the classic pcap ``path`` while the block runs.

    The block starts only once tcpdump said "listening on", and the capture stops (SIGINT)
    ``settle`` seconds after it, so that the last packets in flight (FIN, RST, the kernel's
    answers) are in the file. When the block ended normally, tcpdump must exit 0 with no packet
    dropped by the kernel and must have written at least one packet; otherwise ToolError.
    """
    # --immediate-mode: without it the kernel ring hands packets over only when a block fills or
    # its timeout (about 1 s) expires, and a SIGINT 0.3 s after the last packet loses them all.
    # -B 65536: in immediate mode every ring slot is snaplen-sized (256 KiB by default), so the
    # default 2 MiB buffer holds about 8 packets and a short stall drops packets.
    argv = [tool("tcpdump"), "-i", "lo", "--immediate-mode", "-B", "65536", "-U", "-w", str(path), *extra]
    if snaplen is not None:
        argv += ["-s", str(snaplen)]
    argv.append(f"tcp port {port}")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            seen.append(raw.decode("utf-8", "replace"))
            if "listening on" in seen[-1]:
                ready.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if not ready.wait(TIMEOUT):
        proc.kill()
        proc.wait()
        raise ToolError(f"tcpdump did not start: {''.join(seen)}")
    try:
        yield
    finally:
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        watcher.join(TIMEOUT)
        assert proc.stderr is not None
        proc.stderr.close()
    # Reached only when the block ended normally: then the capture itself must be sound.
    report = "".join(seen)
    if rc != 0:
        raise ToolError(f"tcpdump exited with {rc}: {report}")
    if not re.search(r"(?m)^0 packets dropped by kernel", report):
        raise ToolError(f"tcpdump dropped packets: {report}")
    if not path.exists() or path.stat().st_size <= 24:
        raise ToolError(f"tcpdump wrote nothing to {path}: {report}")
