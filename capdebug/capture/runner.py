"""Run tcpdump on one or many hosts, stream the packets home into pcapng files, stop cleanly.

Theory of operation. Each host gets a :class:`_Source`: the wrapper of
:mod:`capdebug.capture.command` started through its transport (``sh`` locally, ``ssh`` remotely)
with three pipes. Standard output carries tcpdump's classic pcap stream (``-U -w -``); standard
error carries ssh's, sudo's and tcpdump's messages; standard input carries nothing and is the
stop signal: closing it makes the wrapper send tcpdump SIGINT, on the remote host, even when the
reason it closed is that capdebug or the SSH connection died.

One thread multiplexes every pipe with a selector. Bytes from a pcap stream are pushed into an
incremental parser; every complete packet is written to that host's pcapng file at once, and the
file is flushed after each read, so it is a valid pcapng ending with a complete packet at any
moment (a stream cut mid-packet loses only that packet). A capture stops when every tcpdump has
exited: by itself (``-c``), or after capdebug closed the stdin pipes (duration, a stop event set
by SIGINT, or a failure elsewhere). A source that has not exited ``grace_s`` after that is killed.

The children run in their own process group: the terminal's Ctrl-C reaches only capdebug, which
then stops them in order instead of having ssh die under it and lose the tail of the capture.

With several hosts, each gets its own file and, when all have finished, the files are merged
into one pcapng with one interface per host (``if_description`` = host), ordered by timestamp.
"""

from __future__ import annotations

import errno
import heapq
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType
from typing import BinaryIO

from ..errors import CapdebugError, CaptureError, UsageError
from ..pcap.model import Packet
from ..pcap.open import open_capture
from ..pcap.pcapng import PcapngWriter
from .command import (
    CaptureInterface,
    TcpdumpOptions,
    TcpdumpStats,
    interfaces_argv,
    parse_interface_list,
    parse_tcpdump_stats,
    wrapper_argv,
)
from .stream import PcapStreamParser
from .transport import SshTransport, Transport, classify_failure, run_checked, run_command

__all__ = [
    "CaptureResult",
    "HostResult",
    "Progress",
    "fetch_keylog",
    "host_output_path",
    "list_interfaces",
    "merge_captures",
    "run_capture",
    "split_keylog_spec",
    "stop_on_sigint",
]

_READ_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Progress:
    """Totals over all hosts so far, for a live progress line."""

    packets: int
    bytes: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class HostResult:
    """What one host's capture produced."""

    label: str
    path: str | None
    """The pcapng file, or None when not a single byte of capture arrived."""
    packets: int
    bytes: int
    """Bytes on the wire of the captured packets (original lengths)."""
    stats: TcpdumpStats
    error: str | None = None
    """One line when this host failed (the file still holds what arrived)."""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CaptureResult:
    hosts: tuple[HostResult, ...]
    output: str | None
    """The file to open: the only host's file, or the merged file."""
    stopped_by: str
    """"count", "duration", "signal", "exit" (tcpdump ended by itself) or "error"."""
    elapsed_s: float

    @property
    def packets(self) -> int:
        return sum(h.packets for h in self.hosts)

    @property
    def errors(self) -> list[str]:
        return [h.error for h in self.hosts if h.error is not None]

    def raise_for_errors(self) -> None:
        """Raise :class:`CaptureError` naming every failed host (after the files were closed)."""
        errors = self.errors
        if errors:
            raise CaptureError("; ".join(errors))


_SAFE_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def host_output_path(output: str, label: str) -> str:
    """``out.pcapng`` + ``web1:2222`` -> ``out.web1_2222.pcapng`` (the per-host file beside it)."""
    root, ext = os.path.splitext(output)
    return f"{root}.{_SAFE_LABEL.sub('_', label).strip('_') or 'host'}{ext or '.pcapng'}"


class _Source:
    """One running capture: process, parser and output file."""

    def __init__(self, transport: Transport, opts: TcpdumpOptions, path: str) -> None:
        self.label = transport.label
        self.path = path
        self.count = opts.count
        self.parser = PcapStreamParser(name=opts.interface, description=self.label)
        self.file: BinaryIO | None = None
        self.writer: PcapngWriter | None = None
        self.packets = 0
        self.bytes = 0
        self.stderr = bytearray()
        self.open_fds = 0
        self.error: str | None = None
        self.warnings: list[str] = []
        self.stop_sent_at: float | None = None
        self.killed = False
        argv = transport.argv(wrapper_argv(opts, sudo=transport.sudo))
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
            )
        except FileNotFoundError as exc:
            raise CaptureError(f"cannot run {argv[0]!r}: not installed or not on PATH") from exc

    def request_stop(self, now: float) -> None:
        if self.stop_sent_at is not None:
            return
        self.stop_sent_at = now
        stdin = self.proc.stdin
        if stdin is not None:
            try:
                stdin.close()
            except OSError:
                pass  # the process is gone already: nothing to stop

    def kill(self) -> None:
        self.killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def on_packets(self, packets: list[Packet]) -> None:
        if self.file is None:
            iface = self.parser.interface
            if iface is None:
                return
            self.file = open(self.path, "wb")
            self.writer = PcapngWriter(self.file)
            self.writer.add_interface(iface)
        writer = self.writer
        assert writer is not None
        if self.count is not None and self.packets + len(packets) > self.count:
            packets = packets[: max(0, self.count - self.packets)]
        for pkt in packets:
            writer.write_packet(pkt, 0)
            self.bytes += pkt.orig_len
        self.packets += len(packets)
        self.file.flush()

    def close_file(self) -> None:
        f, self.file = self.file, None
        if f is not None:
            f.close()


def run_capture(
    targets: Sequence[Transport],
    opts: TcpdumpOptions,
    output: str,
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval_s: float = 0.5,
    grace_s: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> CaptureResult:
    """Capture on every target until count, duration, ``stop`` or the end of every tcpdump.

    Returns what was captured; a failed host is reported in its :class:`HostResult` (call
    :meth:`CaptureResult.raise_for_errors`), after its file was closed valid.
    """
    if not targets:
        raise UsageError("nothing to capture on")
    if duration_s is not None and duration_s <= 0:
        raise UsageError("--duration must be positive")
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise UsageError(f"the same host is given twice: {', '.join(labels)}")
    single = len(targets) == 1
    paths = [output] if single else [host_output_path(output, t.label) for t in targets]
    start = clock()
    sources: list[_Source] = []
    sel = selectors.DefaultSelector()
    stopped_by = "exit"
    fatal: str | None = None
    try:
        for transport, path in zip(targets, paths, strict=True):
            src = _Source(transport, opts, path)
            sources.append(src)
            for pipe in (src.proc.stdout, src.proc.stderr):
                assert pipe is not None
                sel.register(pipe.fileno(), selectors.EVENT_READ, (src, pipe is src.proc.stdout))
                src.open_fds += 1
        next_progress = start + progress_interval_s
        while any(s.open_fds for s in sources):
            now = clock()
            if stopped_by == "exit":
                reason = None
                if stop is not None and stop.is_set():
                    reason = "signal"
                elif duration_s is not None and now - start >= duration_s:
                    reason = "duration"
                elif fatal is not None:
                    reason = "error"
                if reason is not None:
                    stopped_by = reason
                    for s in sources:
                        s.request_stop(now)
            for s in sources:
                if s.stop_sent_at is not None and not s.killed and now - s.stop_sent_at > grace_s:
                    s.kill()
                    s.error = f"tcpdump on {s.label} did not stop within {grace_s:g} s and was killed"
            timeout = 0.1
            if duration_s is not None and stopped_by == "exit":
                timeout = max(0.0, min(timeout, start + duration_s - now))
            for key, _ in sel.select(timeout):
                src, is_pcap = key.data
                fd = key.fd
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(fd)
                    src.open_fds -= 1
                    continue
                if not is_pcap:
                    src.stderr += chunk
                    continue
                if src.error is not None and src.file is None:
                    continue
                try:
                    src.on_packets(src.parser.feed(chunk))
                except CapdebugError as exc:
                    src.error = f"{src.label}: {exc}"
                    src.request_stop(clock())
                except OSError as exc:
                    fatal = _write_error(src.path, exc, src.packets)
                    src.error = fatal
                    _abandon(src)
                if src.count is not None and src.packets >= src.count:
                    src.request_stop(clock())
            if on_progress is not None and now >= next_progress:
                next_progress = now + progress_interval_s
                on_progress(
                    Progress(sum(s.packets for s in sources), sum(s.bytes for s in sources), now - start)
                )
        if fatal is not None:
            stopped_by = "error"
        elif opts.count is not None and all(s.packets >= opts.count for s in sources):
            stopped_by = "count"
    finally:
        sel.close()
        for s in sources:
            if s.proc.poll() is None:
                s.request_stop(clock())
                try:
                    s.proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    s.kill()
            s.proc.wait()
            for pipe in (s.proc.stdin, s.proc.stdout, s.proc.stderr):
                if pipe is not None:
                    pipe.close()
            try:
                s.close_file()
            except OSError as exc:
                s.error = s.error or _write_error(s.path, exc, s.packets)
    results = [_host_result(s) for s in sources]
    out: str | None = results[0].path if single else None
    if not single:
        parts = [(r.label, r.path) for r in results if r.path is not None]
        if parts:
            try:
                merge_captures(parts, output)
                out = output
            except OSError as exc:
                results[0] = replace(results[0], error=results[0].error or _write_error(output, exc, 0))
    return CaptureResult(tuple(results), out, stopped_by, clock() - start)


def _abandon(src: _Source) -> None:
    """Stop a source whose output cannot be written; keep what the file already holds."""
    src.request_stop(time.monotonic())
    try:
        src.close_file()
    except OSError:
        pass  # the same error again (ENOSPC on the final flush): already reported


def _write_error(path: str, exc: OSError, packets: int) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full writing {path} after {packets} packets: free space and capture again"
    return f"cannot write {path}: {exc.strerror or exc}"


def _host_result(s: _Source) -> HostResult:
    stderr = s.stderr.decode(errors="replace")
    stats = parse_tcpdump_stats(stderr)
    rc = s.proc.returncode
    error = s.error
    if error is None and rc != 0 and not s.killed:
        error = classify_failure(s.label, rc, stderr)
        if s.packets:
            error += f"; kept the {s.packets} packets that arrived in {s.path}"
    warnings = list(s.warnings)
    if s.parser.pending:
        warnings.append(
            f"{s.label}: the stream ended inside a packet; its {s.parser.pending} bytes were dropped"
        )
    return HostResult(
        label=s.label,
        path=s.path if s.parser.interface is not None and os.path.exists(s.path) else None,
        packets=s.packets,
        bytes=s.bytes,
        stats=stats,
        error=error,
        warnings=tuple(warnings),
    )


def merge_captures(parts: Sequence[tuple[str, str]], output: str) -> None:
    """Merge per-host pcapng files into ``output``: one interface per (host, interface), with
    ``if_description`` = host, packets ordered by timestamp (stable for equal timestamps)."""
    readers = [open_capture(path) for _, path in parts]
    try:
        with open(output, "wb") as f:
            writer = PcapngWriter(f)
            mapping: dict[tuple[int, int], int] = {}

            def items(i: int) -> Iterator[tuple[int, int, int, int, Packet]]:
                reader = readers[i]
                n = 0
                for item in reader:
                    if isinstance(item, Packet):
                        key = (i, item.interface)
                        if key not in mapping:
                            iface = reader.interfaces[item.interface]
                            mapping[key] = writer.add_interface(replace(iface, description=parts[i][0]))
                        n += 1
                        # (ts, host, n) is unique: heapq.merge never compares two Packets.
                        yield item.ts_ns, i, n, mapping[key], item

            for _, _, _, index, pkt in heapq.merge(*(items(i) for i in range(len(readers)))):
                writer.write_packet(pkt, index)
    finally:
        for r in readers:
            r.close()


# -- stopping on Ctrl-C ------------------------------------------------------------------------


@contextmanager
def stop_on_sigint(event: threading.Event) -> Iterator[threading.Event]:
    """While active, the first SIGINT sets ``event`` (a clean stop); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


# -- short remote operations -------------------------------------------------------------------


def list_interfaces(transport: Transport, tcpdump_path: str = "tcpdump") -> list[CaptureInterface]:
    """``tcpdump -D`` on the host, parsed."""
    out = run_checked(transport, interfaces_argv(tcpdump_path), timeout=60.0, what="tcpdump -D")
    return parse_interface_list(out.decode(errors="replace"))


_REMOTE_PATH = re.compile(r"^((?:[^@/:\s]+@)?(?:\[[0-9A-Fa-f:.%]+\]|[^/:\s\[\]]+)):(.+)$")


def split_keylog_spec(spec: str) -> tuple[str | None, str]:
    """``HOST:PATH`` -> (host, path); a local path -> (None, path). A path that exists locally,
    or starts with ``/`` or ``.``, is local even if it contains a colon."""
    if os.path.exists(spec) or spec.startswith(("/", ".", "~")):
        return None, spec
    m = _REMOTE_PATH.match(spec)
    if m is None:
        return None, spec
    return m.group(1), m.group(2)


def fetch_keylog(spec: str, *, ssh_for: Callable[[str], SshTransport] | None = None) -> str:
    """Read a key log: a local path, or ``HOST:PATH`` read with ``ssh HOST cat -- PATH``.

    ``ssh_for`` builds the transport for a host spec (with the capture's ssh options).
    """
    host, path = split_keylog_spec(spec)
    if host is None:
        try:
            with open(os.path.expanduser(path), "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError as exc:
            raise CaptureError(f"key log {path} not found: check the path given to --keylog") from exc
        except OSError as exc:
            raise CaptureError(f"cannot read key log {path}: {exc.strerror or exc}") from exc
    if ssh_for is None:
        from .transport import parse_remote

        transport: SshTransport = parse_remote(host)
    else:
        transport = ssh_for(host)
    rc, out, err = run_command(transport, ["cat", "--", path], timeout=60.0, what="reading the key log")
    if rc == 0:
        return out.decode(errors="replace")
    if rc != 255 and "No such file" in err:
        raise CaptureError(f"key log {path} not found on {transport.label}: check the path given to --keylog")
    if rc != 255 and ("Permission denied" in err or "Is a directory" in err):
        detail = err.strip().splitlines()[-1] if err.strip() else "unreadable"
        raise CaptureError(f"cannot read key log {path} on {transport.label}: {detail}")
    raise CaptureError(classify_failure(transport.label, rc, err, what="reading the key log"))
