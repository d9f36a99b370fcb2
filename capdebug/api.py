"""The library's entry points: decode a capture, triage it, export its plaintext, decode live.

The ``capdebug`` command and any other program call these, never ``cli/`` internals::

    keys = load_keys("case.pcapng", ["keys.log"])
    with decode_capture("case.pcapng", keys) as decoding:
        for event in decoding:
            ...
    result = triage_capture("case.pcapng", keys)

What this module may touch: it is the library's edge, so it opens the capture and the key-log
files whose paths its caller names (and writes the plaintext files of
:class:`PlaintextExporter`), and runs triage in forked processes (:mod:`capdebug._shares`).
It never reads the environment or the clock: ``$SSLKEYLOGFILE`` is read by the caller and given
as ``env_keylog``; progress callbacks get frame counts and keep their own time. Everything
below it (``analysis``, ``pcap``, ``net``, ``crypto``) is sans-IO.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from . import _shares
from ._files import open_private, write_private
from .analysis.decode import DecodeOptions, Decoder
from .analysis.events import DecodeEvent
from .analysis.sessions import CaptureKeys, Progress, run_decoder
from .analysis.sessions import load_keys as _load_keys
from .analysis.triage import ConnectionReport, Triage
from .crypto.keylog import KeyLog
from .errors import UsageError
from .net.flow import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS  # for the CLI
from .net.reassembly import DEFAULT_MAX_BUFFERED
from .pcap.open import CaptureReader, open_capture

if TYPE_CHECKING:
    from .analysis.live import LiveKeys
    from .pcap.model import Interface, Packet, SecretsBlock

__all__ = [
    "CaptureKeys",
    "Decoding",
    "KeylogSource",
    "LivePipeline",
    "PlaintextExporter",
    "TriageResult",
    "auto_jobs",
    "decode_capture",
    "load_keys",
    "triage_capture",
]

CapturePath = str | os.PathLike[str]
KeylogSource = CaptureKeys | KeyLog | None
"""Secrets for decoding: what :func:`load_keys` found, a parsed :class:`KeyLog`, or none."""


def load_keys(
    capture: CapturePath | None,
    keylog_files: Iterable[CapturePath] = (),
    *,
    env_keylog: str | None = None,
    rsa_keys: Iterable[CapturePath] = (),
) -> CaptureKeys:
    """The secrets for ``capture``: the key-log files named, then the Decryption Secrets
    Blocks embedded in a pcapng, then ``env_keylog`` (the value of ``$SSLKEYLOGFILE`` that the
    caller read, or None) when nothing else gave any. Bad key-log lines are kept as
    ``keys.keylog.issues``, never raised; a missing or unreadable file, or a file that is not a
    key log, raises :class:`~capdebug.errors.KeyLogError`.

    ``rsa_keys`` are servers' RSA private keys (PEM or DER), each ``FILE`` or ``FILE@HOST:PORT``
    to use it only for that server: they decrypt TLS 1.2 sessions with RSA key exchange."""
    return _load_keys(capture, keylog_files, env_keylog=env_keylog, rsa_keys=rsa_keys)


def _capture_keys(keys: KeylogSource) -> CaptureKeys:
    if isinstance(keys, CaptureKeys):
        return keys
    return CaptureKeys(keys if keys is not None else KeyLog())


class Decoding:
    """One pass over a capture's events, in capture order (see :func:`decode_capture`).

    Iterate it once inside ``with``; :attr:`warnings` holds what the capture reader noticed
    (truncated file, unknown link types, ...) and what the decoder did to the capture as a
    whole (connections dropped from a full table) once the iteration is over."""

    def __init__(
        self, reader: CaptureReader, events: Iterator[DecodeEvent], decoder: Decoder | None = None
    ) -> None:
        self._reader = reader
        self._events = events
        self._decoder = decoder
        self.warnings: list[str] = []

    def __iter__(self) -> Iterator[DecodeEvent]:
        yield from self._events
        self.warnings = self._warnings()

    def contents(self) -> str:
        """What the capture held besides TLS (once decoding is over): see
        :func:`~capdebug.analysis.decode.decoder.describe_contents`."""
        return "" if self._decoder is None else self._decoder.contents()

    def _warnings(self) -> list[str]:
        said = list(self._reader.warnings)
        if self._decoder is not None:
            said += self._decoder.warnings()
        return said

    def __enter__(self) -> Decoding:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.warnings = self._warnings()
        self._reader.close()


def endpoint_filter(
    host: str | None, port: int | None
) -> Callable[[tuple[bytes, int], tuple[bytes, int]], bool] | None:
    """A :attr:`DecodeOptions.endpoints` predicate: connections with ``host`` (an IPv4 or IPv6
    address, in any spelling) and ``port`` at either end; None when neither is given. Raises
    :class:`~capdebug.errors.UsageError` for a host that is not an IP address."""
    if host is None and port is None:
        return None
    want_addr: bytes | None = None
    if host is not None:
        try:
            want_addr = ipaddress.ip_address(host.strip("[]")).packed
        except ValueError:
            raise UsageError(f"--host {host!r} is not an IP address (names are not resolved)") from None

    def accept(a: tuple[bytes, int], b: tuple[bytes, int]) -> bool:
        if want_addr is not None and want_addr not in (a[0], b[0]):
            return False
        return port is None or port in (a[1], b[1])

    return accept


def decode_capture(
    capture: CapturePath | BinaryIO,
    keys: KeylogSource = None,
    *,
    decrypt_app_data: bool = True,
    app_data_sink: Callable[[int, str, bytes], None] | None = None,
    conns: Iterable[int] | None = None,
    host: str | None = None,
    port: int | None = None,
    progress: Progress | None = None,
    max_out_of_order: int = DEFAULT_MAX_BUFFERED,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    gap_sink: Callable[[int, str, int, int, str], None] | None = None,
    record_wanted: Callable[[int, str, int, bool], bool] | None = None,
) -> Decoding:
    """Decode ``capture`` (a path, or a binary stream read from its position): every TLS event
    of every connection, decrypted where ``keys`` hold the secrets.

    ``decrypt_app_data=False`` counts application data without decrypting it (what triage
    needs); ``app_data_sink(conn, "client"|"server", plaintext)`` receives every authenticated
    application-data record (see :class:`PlaintextExporter`); ``conns`` keeps only these
    connection numbers, ``host`` and ``port`` only the connections with that address or port at
    either end (their numbers stay those of the whole capture); ``progress(frames)`` is called
    now and then on large captures;
    ``max_out_of_order`` bounds the bytes per direction held behind a hole in a TCP stream
    waiting for its retransmission (past it the hole becomes a gap, cause ``"out_of_order"``);
    ``max_connections`` bounds the connections followed at once (past it the oldest without
    data, else the oldest, is dropped with an ``evicted`` event and a warning).
    ``gap_sink`` and ``record_wanted`` are :class:`~capdebug.analysis.decode.DecodeOptions`'s
    (a :class:`PlaintextExporter` sink brings its own ``gap_sink``).
    Raises :class:`~capdebug.errors.CaptureFormatError` when the file is not a capture."""
    ck = _capture_keys(keys)
    options = DecodeOptions(
        decrypt_app_data=decrypt_app_data,
        app_data_sink=app_data_sink,
        gap_sink=app_data_sink.gap if isinstance(app_data_sink, PlaintextExporter) else gap_sink,
        record_wanted=record_wanted,
        conns=frozenset(conns) if conns else None,
        endpoints=endpoint_filter(host, port),
        max_out_of_order=max_out_of_order,
        max_connections=max_connections,
    )
    reader = open_capture(capture)
    try:
        decoder = Decoder(ck.keylog, options, late_secrets=ck.late_randoms)
        events = run_decoder(reader, decoder, progress)
    except BaseException:
        reader.close()
        raise
    return Decoding(reader, events, decoder)


class _Triaged(NamedTuple):
    """What :func:`triage_capture` found."""

    reports: Sequence[ConnectionReport]
    """One report per connection, in order of first appearance (numbered as decode numbers them).
    The reports of connections that carried only TCP flags (a SYN flood's) are made as they are
    read (see :class:`~capdebug.analysis.triage.Reports`): ``list()`` it to keep them all."""
    warnings: list[str]
    """What the capture reader noticed (truncated file, unknown link types, ...)."""


class TriageResult(_Triaged):
    """What :func:`triage_capture` found: ``reports, warnings = triage_capture(...)`` as ever,
    and :attr:`contents`."""

    contents: str = ""
    """What the capture held besides TLS (TCP connections without it, frames without TCP by
    kind): says why no TLS connection was found."""

    @classmethod
    def of(cls, reports: Sequence[ConnectionReport], warnings: list[str], contents: str) -> TriageResult:
        result = cls(reports, warnings)
        result.contents = contents
        return result


def triage_capture(
    capture: CapturePath,
    keys: KeylogSource = None,
    *,
    slow_handshake: float = 1.0,
    jobs: int = 1,
    also: Callable[[DecodeEvent], None] | None = None,
    progress: Progress | None = None,
    conns: Iterable[int] | None = None,
    host: str | None = None,
    port: int | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> TriageResult:
    """Triage ``capture``: per connection, the verdicts saying what went wrong and who did it
    (application data is counted, not decrypted).

    ``slow_handshake`` is the number of seconds above which a handshake is reported slow;
    ``also`` sees every decoded event too (e.g. to draw ladders). Without ``also``, ``jobs`` > 1
    lets that many forked processes share the work (POSIX; see :mod:`capdebug._shares`): the
    result is the same, only sooner. :func:`auto_jobs` picks a number for a capture.

    ``conns`` keeps only these connection numbers (numbered as ``decrypt`` numbers them; the
    others are not decoded), ``host``/``port`` only the connections with that address or port
    on either side; ``max_connections`` as for :func:`decode_capture`."""
    ck = _capture_keys(keys)
    wanted = frozenset(conns) if conns else None
    if also is None and jobs > 1 and wanted is None:
        shared = _shares.triage_in_shares(
            Path(capture),
            ck,
            slow_handshake=slow_handshake,
            jobs=jobs,
            progress=progress,
            max_connections=max_connections,
        )
        if shared is not None:
            return TriageResult.of(_by_endpoint(shared[0], host, port), shared[1], shared[2])
    t = Triage(slow_handshake_s=slow_handshake)
    with decode_capture(
        capture,
        ck,
        decrypt_app_data=False,
        progress=progress,
        conns=wanted,
        app_data_sink=t.app_data,
        max_connections=max_connections,
        gap_sink=t.gap,
        record_wanted=t.record_wanted,
    ) as decoding:
        for ev in decoding:
            t.add(ev)
            if also is not None:
                also(ev)
    return TriageResult.of(_by_endpoint(t.reports(), host, port), decoding.warnings, decoding.contents())


def _by_endpoint(
    reports: Sequence[ConnectionReport], host: str | None, port: int | None
) -> Sequence[ConnectionReport]:
    """The reports of connections with ``host`` and ``port`` on either side (None: any)."""
    if host is None and port is None:
        return reports
    out = []
    for r in reports:
        ends = [e.rsplit(":", 1) for e in (r.client, r.server)]
        if (host is None or host in {h.strip("[]") for h, _ in ends}) and (
            port is None or str(port) in {p for _, p in ends}
        ):
            out.append(r)
    return out


def auto_jobs(capture: CapturePath, jobs: int = 0) -> int:
    """The number of processes :func:`triage_capture` should use for ``capture`` when asked
    for ``jobs`` (0: automatic, by the capture's size and the CPUs this process may use)."""
    return _shares.auto_jobs(Path(capture), jobs)


class PlaintextExporter:
    """An ``app_data_sink`` for :func:`decode_capture`: decrypted application data per
    connection and direction, as ``conn{N}-{client|server}.bin`` files in ``folder`` (0600 from
    the first byte: plaintext is as sensitive as the keys). At most :attr:`MAX_OPEN` files
    stay open; others are reopened for appending when their connection sends again. Call
    :meth:`close` (or use it as a context manager) when decoding is over.

    Bytes the capture lacks are never spliced over in silence: for every direction with a gap,
    :meth:`close` writes ``conn{N}-{who}.gaps.json`` beside the plaintext, a list of
    ``{"offset", "tcp_bytes", "frame", "reason"}``: the plaintext offset where bytes are missing
    (the records cut by the hole are missing too), how many TCP stream bytes the hole spans, the
    frame that gave it up, and why (``lost``, ``snaplen``, ``out_of_order``)."""

    MAX_OPEN = 128

    def __init__(self, folder: CapturePath) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.open_files: collections.OrderedDict[tuple[int, str], BinaryIO] = collections.OrderedDict()
        self.created: set[tuple[int, str]] = set()
        self.written: collections.Counter[tuple[int, str]] = collections.Counter()
        self.gaps: dict[tuple[int, str], list[dict[str, int | str]]] = {}

    def gap(self, conn: int, who: str, size: int, frame: int, reason: str) -> None:
        """A hole in that direction's TCP stream (the decoder's ``gap_sink``)."""
        key = (conn, who)
        self.gaps.setdefault(key, []).append(
            {"offset": self.written[key], "tcp_bytes": size, "frame": frame, "reason": reason}
        )

    def __call__(self, conn: int, who: str, data: bytes) -> None:
        key = (conn, who)
        f = self.open_files.get(key)
        if f is None:
            if len(self.open_files) >= self.MAX_OPEN:
                self.open_files.popitem(last=False)[1].close()
            path = self.folder / f"conn{conn}-{who}.bin"
            f = self.open_files[key] = open_private(path, append=key in self.created, buffering=1 << 16)
            self.created.add(key)
        else:
            self.open_files.move_to_end(key)
        f.write(data)
        self.written[key] += len(data)

    def close(self) -> None:
        for f in self.open_files.values():
            f.close()
        self.open_files.clear()
        for (conn, who), gaps in self.gaps.items():
            write_private(self.folder / f"conn{conn}-{who}.gaps.json", json.dumps(gaps, indent=1).encode())
        self.gaps.clear()

    def __enter__(self) -> PlaintextExporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LivePipeline:
    """One host's packets on their way into a growing capture file: new key-log text ->
    secrets blocks written before the records they unlock -> live decoding into lines.

    ``read_keylog()`` returns the key-log bytes that arrived since the last call (b"" for
    none); ``keys`` collects them (None: no secrets are written); ``show(lines)`` receives
    the live lines (None: no live decoding). The caller passes the time (``now``, seconds)."""

    def __init__(
        self,
        iface: Interface,
        *,
        label: str | None = None,
        read_keylog: Callable[[], bytes] | None = None,
        keys: LiveKeys | None = None,
        show: Callable[[list[str]], None] | None = None,
    ) -> None:
        # Imported here: live decoding is loaded only by the commands that capture.
        from .analysis.live import LiveMonitor, SecretsInjector

        self.read_keylog = read_keylog
        self.keys = keys
        self.injector = SecretsInjector(iface.linktype, keys) if keys is not None else None
        self.monitor = LiveMonitor(iface.linktype, label=label) if show is not None else None
        self.show = show

    def feed(self, packets: list[Packet], now: float) -> list[Packet | SecretsBlock]:
        """Packets that arrived at ``now``: what to write, in order."""
        if self.read_keylog is not None and self.keys is not None:
            data = self.read_keylog()
            if data:
                self.keys.feed(data)
        items: list[Packet | SecretsBlock] = (
            self.injector.feed(packets, now) if self.injector is not None else list(packets)
        )
        if self.monitor is not None and self.show is not None and items:
            self.show(self.monitor.feed(items))
        return items

    def finish(self, now: float) -> list[Packet | SecretsBlock]:
        """The capture ended: what is still held, to write last."""
        items = self.injector.finish(now) if self.injector is not None else []
        if self.monitor is not None and self.show is not None:
            self.show(self.monitor.feed(items) + self.monitor.finish())
        return items
