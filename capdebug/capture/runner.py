"""Run tcpdump on one or many hosts, stream the packets home into pcapng files, stop cleanly.

Theory of operation. Each host gets a :class:`_Source`: the wrapper of
:mod:`capdebug.capture.command` started through its transport (``sh`` locally, ``ssh`` remotely)
with three pipes. Standard output carries tcpdump's classic pcap stream (``-U -w -``); standard
error carries ssh's, sudo's and tcpdump's messages; standard input carries nothing and is the
stop signal: closing it makes the wrapper send tcpdump SIGINT, on the remote host, even when the
reason it closed is that capdebug or the SSH connection died.

One thread multiplexes every pipe with a selector and does nothing but ``os.read`` (1 MiB at a
time) and hand the chunks to the host's writer thread through a queue bounded in bytes. Reading
must never wait for the disk: while the reader is blocked, ssh stops draining the connection,
the remote tcpdump blocks on its output and the kernel drops packets once its capture buffer is
full. The writer thread takes everything queued at once, parses the pcap records in bulk, passes
the packets through the optional :class:`PacketFilter` (which may hold packets briefly and insert
Decryption Secrets Blocks before them) and writes the batch of blocks with one ``write`` and one
flush, so the file is a valid pcapng ending with a complete block at any moment (a stream cut
mid-packet loses only that packet). A capture stops when every tcpdump has
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
import io
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType
from typing import BinaryIO, Protocol

from .._files import atomic_output, open_private
from ..errors import CapdebugError, CaptureError, UsageError
from ..pcap.model import SECRETS_TYPE_TLS_KEYLOG, Interface, Packet, SecretsBlock
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
from .transport import (
    SshTransport,
    Transport,
    classify_failure,
    parse_remote,
    run_checked,
    run_command,
    start_command,
)

__all__ = [
    "CaptureResult",
    "FilterFactory",
    "HostResult",
    "PacketFilter",
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
_MAX_QUEUED = 256 << 20
"""Bytes read but not yet written after which the reader waits for the writer (a disk that
cannot keep up at all must slow the capture down, not exhaust memory)."""
_TICK_S = 0.1
"""How often a writer thread wakes without data, so that a filter can release held packets."""


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


class PacketFilter(Protocol):
    """Sits between one host's packet stream and its pcapng file (see ``run_capture``).

    Called from that host's writer thread only. ``feed`` gets the packets that just arrived (maybe
    none: it is also called about every 0.1 s so that held packets can be released on time) and
    returns what to write now, in order: packets, and secrets blocks to put before them.
    """

    def feed(self, packets: list[Packet], now: float) -> Iterable[Packet | SecretsBlock]: ...

    def finish(self, now: float) -> Iterable[Packet | SecretsBlock]:
        """The stream ended: everything still held."""
        ...


FilterFactory = Callable[[str, Interface], PacketFilter]
"""(host label, interface of its stream) -> the filter for that host's file."""


class _Source:
    """One running capture: process, parser, queue, writer thread and output file."""

    def __init__(
        self, transport: Transport, opts: TcpdumpOptions, path: str, filter_for: FilterFactory | None
    ) -> None:
        self.label = transport.label
        self.over_ssh = isinstance(transport, SshTransport)
        self.failure_reported = False
        self.path = path
        self.count = opts.count
        self.parser = PcapStreamParser(name=opts.interface, description=self.label)
        self.filter_for = filter_for
        self.filter: PacketFilter | None = None
        self.file: BinaryIO | None = None
        self.writer: PcapngWriter | None = None
        self.batch = io.BytesIO()
        """One batch of blocks, so that it reaches the file in one system call."""
        self.packets = 0
        self.bytes = 0
        self.stderr = bytearray()
        self.open_fds = 0
        self.error: str | None = None
        self.fatal: str | None = None
        """Set by the writer thread when the output cannot be written (stops every host)."""
        self.want_stop = False
        """Set by the writer thread: the stream is corrupt or the count is reached."""
        self.warnings: list[str] = []
        self.stop_sent_at: float | None = None
        self.killed = False
        # The queue between the reader (selector thread) and the writer thread.
        self._cond = threading.Condition()
        self._chunks: list[bytes] = []
        self._queued = 0
        self._eof = False
        self._thread: threading.Thread | None = None
        self.proc = start_command(transport, wrapper_argv(opts, sudo=transport.sudo), stderr=subprocess.PIPE)

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

    # -- reader side (selector thread) ------------------------------------------------------

    def put(self, chunk: bytes) -> None:
        """Queue a chunk of the pcap stream; waits only when the writer is ``_MAX_QUEUED`` behind."""
        with self._cond:
            while self._queued >= _MAX_QUEUED and self._thread is not None and self._thread.is_alive():
                self._cond.wait(0.5)
            self._chunks.append(chunk)
            self._queued += len(chunk)
            self._cond.notify_all()

    def start_writer(self, clock: Callable[[], float]) -> None:
        self._thread = threading.Thread(
            target=self._write_loop, args=(clock,), name=f"capdebug-writer-{self.label}", daemon=True
        )
        self._thread.start()

    def end_input(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def join_writer(self) -> None:
        self.end_input()
        if self._thread is not None:
            self._thread.join()

    # -- writer side (writer thread) --------------------------------------------------------

    def _write_loop(self, clock: Callable[[], float]) -> None:
        while True:
            with self._cond:
                if not self._chunks and not self._eof:
                    self._cond.wait(_TICK_S)
                chunks, self._chunks = self._chunks, []
                self._queued = 0
                eof = self._eof
                self._cond.notify_all()
            if self.error is None:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._process(data, clock(), eof)
            if eof:
                return

    def _process(self, data: bytes, now: float, eof: bool) -> None:
        try:
            packets = self.parser.feed(data) if data else []
            if self.count is not None and self.packets + len(packets) > self.count:
                packets = packets[: max(0, self.count - self.packets)]
            self.packets += len(packets)
            for pkt in packets:
                self.bytes += pkt.orig_len
            if self.count is not None and self.packets >= self.count:
                self.want_stop = True
            if self.file is None and not self._open():
                return
            items: Iterable[Packet | SecretsBlock] = packets
            if self.filter is not None:
                items = self.filter.feed(packets, now)
                if eof:
                    items = [*items, *self.filter.finish(now)]
            self._write(items)
        except CapdebugError as exc:
            self.error = f"{self.label}: {exc}"
            self.want_stop = True
            self._salvage(now)
        except OSError as exc:
            self.fatal = self.error = _write_error(self.path, exc, self.packets)
            self.want_stop = True
            try:
                self.close_file()
            except OSError:
                pass  # the same error again (ENOSPC on the final flush): already reported

    def _open(self) -> bool:
        iface = self.parser.interface
        if iface is None:
            return False
        # Secrets blocks go into this file as the capture runs: private from the first byte.
        self.file = open_private(self.path)
        self.writer = PcapngWriter(self.batch)
        self.writer.add_interface(iface)
        if self.filter_for is not None:
            self.filter = self.filter_for(self.label, iface)
        return True

    def _write(self, items: Iterable[Packet | SecretsBlock]) -> None:
        writer, f, batch = self.writer, self.file, self.batch
        assert writer is not None and f is not None
        write_packet = writer.write_packet
        for item in items:
            if type(item) is Packet:
                write_packet(item, 0)
            else:
                assert isinstance(item, SecretsBlock)
                writer.write_secrets(item.secrets_type, item.data)
        if batch.tell():
            try:
                with batch.getbuffer() as view:
                    f.write(view)
                f.flush()
            finally:
                batch.seek(0)
                batch.truncate()

    def _salvage(self, now: float) -> None:
        """The stream is corrupt: write what the filter still holds, then nothing more."""
        if self.filter is not None and self.file is not None:
            try:
                self._write(list(self.filter.finish(now)))
            except (CapdebugError, OSError):
                pass  # the error already reported is the one that matters
        self.filter = None

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
    filter_for: FilterFactory | None = None,
    on_host_failed: Callable[[str], None] | None = None,
) -> CaptureResult:
    """Capture on every target until count, duration, ``stop`` or the end of every tcpdump.

    ``on_host_failed(message)`` is called at once when one host of several fails while the
    others carry on (sudo wants a password, the connection dropped), not after ``duration_s``.

    ``filter_for(label, interface)`` builds, when a host's stream starts, a :class:`PacketFilter`
    through which that host's packets pass on their way to its file (live secrets, live decoding).

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
            src = _Source(transport, opts, path, filter_for)
            sources.append(src)
            src.start_writer(clock)
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
                if s.open_fds == 0 and not s.failure_reported and s.proc.poll() is not None:
                    s.failure_reported = True
                    failed = s.proc.returncode != 0 and not s.killed and stopped_by == "exit"
                    if failed and not single and on_host_failed is not None:
                        on_host_failed(_failure(s))
                if s.fatal is not None:
                    fatal = s.fatal
                if s.want_stop:
                    s.request_stop(now)
                if s.stop_sent_at is not None and not s.killed and now - s.stop_sent_at > grace_s:
                    s.kill()
                    s.error = s.error or (
                        f"tcpdump on {s.label} did not stop within {grace_s:g} s and was killed"
                    )
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
                    if is_pcap:
                        src.end_input()
                    continue
                if is_pcap:
                    src.put(chunk)
                else:
                    src.stderr += chunk
            if on_progress is not None and now >= next_progress:
                next_progress = now + progress_interval_s
                on_progress(
                    Progress(sum(s.packets for s in sources), sum(s.bytes for s in sources), now - start)
                )
        for s in sources:
            s.join_writer()
            fatal = fatal or s.fatal
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
            s.join_writer()
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


def _write_error(path: str, exc: OSError, packets: int) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full writing {path} after {packets} packets: free space and capture again"
    return f"cannot write {path}: {exc.strerror or exc}"


def _failure(s: _Source) -> str:
    error = classify_failure(
        s.label, s.proc.returncode, s.stderr.decode(errors="replace"), over_ssh=s.over_ssh
    )
    if s.packets:
        error += f"; kept the {s.packets} packets that arrived in {s.path}"
    return error


def _host_result(s: _Source) -> HostResult:
    stderr = s.stderr.decode(errors="replace")
    stats = parse_tcpdump_stats(stderr)
    rc = s.proc.returncode
    error = s.error
    if error is None and rc != 0 and not s.killed:
        error = _failure(s)
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
    ``if_description`` = host, packets ordered by timestamp (stable for equal timestamps).

    Decryption Secrets Blocks keep their place before the packets that followed them in their
    host's file; a key-log line already written (both ends of one connection were captured) is
    not repeated.
    """
    readers = [open_capture(path) for _, path in parts]
    try:
        with atomic_output(output, private=True) as f:
            writer = PcapngWriter(f)
            mapping: dict[tuple[int, int], int] = {}
            seen_lines: set[bytes] = set()

            def items(i: int) -> Iterator[tuple[int, int, int, int, Packet | SecretsBlock]]:
                reader = readers[i]
                n = 0
                last_ts = 0
                for item in reader:
                    n += 1
                    if isinstance(item, SecretsBlock):
                        # Timestamped as the packet before it: it sorts before the next one.
                        yield last_ts, i, n, -1, item
                        continue
                    key = (i, item.interface)
                    if key not in mapping:
                        iface = reader.interfaces[item.interface]
                        mapping[key] = writer.add_interface(replace(iface, description=parts[i][0]))
                    last_ts = item.ts_ns
                    # (ts, host, n) is unique: heapq.merge never compares two items.
                    yield item.ts_ns, i, n, mapping[key], item

            for _, _, _, index, item in heapq.merge(*(items(i) for i in range(len(readers)))):
                if isinstance(item, Packet):
                    writer.write_packet(item, index)
                    continue
                if item.secrets_type != SECRETS_TYPE_TLS_KEYLOG:
                    writer.write_secrets(item.secrets_type, item.data)
                    continue
                new = [ln for ln in item.data.splitlines() if ln.strip() and ln not in seen_lines]
                seen_lines.update(new)
                if new:
                    writer.write_secrets(item.secrets_type, b"\n".join(new) + b"\n")
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
