"""Triage a large capture in several processes, each following a share of the connections.

Every process reads the whole capture but follows only the connections whose ports hash to its
share (``DecodeOptions.partition``, ``capdebug.net.flow.share_of``): the frames of the others
cost it a header read, the rest of the work (TLS records, handshakes, verdicts) is divided. The
reports are put together and numbered as one process numbers them (``merge_shares``).

The shares only ever make triage faster, never different: when one of them said something
that depends on connections it did not follow (a missing key explained by counting the
capture's other sessions, a TLS 1.2 resumption of another connection's session, mid-stream
recovery), or a process failed, the capture is triaged again in one process.

The processes are forked (POSIX only), after the key log was loaded, which they then share.

Why here, next to :mod:`capdebug.api` and not in ``analysis/``: forking, pipes, signals and
``os.stat`` of the capture are process management and file access, which the pure layers never
do; they are the library's edge, like the API that calls this. ``analysis`` gives the parts
(``DecodeOptions.partition``, ``TriageShare``, ``merge_shares``), this module runs them.
"""

from __future__ import annotations

import os
import pickle
import signal
import stat
import sys
from pathlib import Path

from .analysis.decode import DecodeOptions, Decoder
from .analysis.decode.decoder import describe_contents
from .analysis.sessions import CaptureKeys, Progress, run_decoder
from .analysis.triage import ConnectionReport, Triage, TriageShare, merge_shares
from .net.flow import DEFAULT_MAX_CONNECTIONS
from .pcap.open import open_capture

__all__ = ["SHARE_MIN_BYTES", "auto_jobs", "triage_in_shares"]

SHARE_MIN_BYTES = 64 << 20
"""Smaller captures are triaged in one process: starting another costs more than it saves."""
_AUTO_MAX = 2
"""Processes chosen by default (each holds its own decoder, about 80 MB for a large capture)."""


def auto_jobs(capture: Path, jobs: int) -> int:
    """The number of processes for ``--jobs`` (0: automatic)."""
    if jobs > 0:
        return jobs
    if not hasattr(os, "fork"):
        return 1
    try:
        size = capture.stat().st_size
    except OSError:
        return 1
    return min(_AUTO_MAX, _usable_cpus()) if size >= SHARE_MIN_BYTES else 1


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which containers narrow), else all."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0)) or 1
    return os.cpu_count() or 1


def _share(
    capture: Path,
    keys: CaptureKeys,
    slow: float,
    k: int,
    n: int,
    progress: Progress | None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> TriageShare:
    t = Triage(slow_handshake_s=slow)
    decoder = Decoder(
        keys.keylog,
        DecodeOptions(
            decrypt_app_data=False,
            partition=(k, n),
            app_data_sink=t.app_data,
            max_connections=max_connections,
            gap_sink=t.gap,
            record_wanted=t.record_wanted,
        ),
        late_secrets=keys.late_randoms,
    )
    with open_capture(capture) as reader:
        for ev in run_decoder(reader, decoder, progress):
            t.add(ev)
        warnings = list(reader.warnings) + decoder.warnings()
    # A share that dropped connections from its full table did so by its own count (each share
    # holds up to the limit): one process would have dropped others, so it decides alone.
    dependent = decoder.partition_dependent or decoder.evicted[0] > 0
    return TriageShare(
        list(t.reports()),
        decoder.first_frames,
        dependent,
        warnings,
        t.issued,
        decoder.plain_connections,
        decoder.not_tcp,
    )


def triage_in_shares(
    capture: Path,
    keys: CaptureKeys,
    *,
    slow_handshake: float,
    jobs: int,
    progress: Progress | None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> tuple[list[ConnectionReport], list[str], str] | None:
    """Reports and warnings of ``capture`` triaged by ``jobs`` processes, or None when it must
    be triaged in one (see the module docstring). Errors of this process's own share (a
    corrupt capture, Ctrl-C) are raised as they would be in one process."""
    if jobs < 2 or not hasattr(os, "fork"):
        return None
    try:
        if not stat.S_ISREG(capture.stat().st_mode):
            return None  # a pipe can be read once, by one process
    except OSError:
        return None  # let one process say what is wrong with it
    sys.stdout.flush()
    sys.stderr.flush()
    children: dict[int, int] = {}  # pid -> read end of its pipe (until it is read)
    try:
        for k in range(1, jobs):
            try:
                read_end, write_end = os.pipe()
            except OSError:
                return None
            try:
                pid = os.fork()
            except OSError:  # a process limit, no memory: one process will do
                os.close(read_end)
                os.close(write_end)
                return None
            if pid == 0:  # pragma: no cover - the child's coverage is not collected
                os.close(read_end)
                _child(write_end, capture, keys, slow_handshake, k, jobs, max_connections)
            os.close(write_end)
            children[pid] = read_end
        shares = [_share(capture, keys, slow_handshake, 0, jobs, progress, max_connections)]
        for pid in list(children):
            share = _collect(pid, children.pop(pid))
            if share is None:
                return None
            shares.append(share)
    finally:
        # Shares not collected (an error here, Ctrl-C, one that failed first) are ended now.
        for pid, read_end in children.items():
            os.close(read_end)
            _end(pid)
    if any(s.dependent for s in shares):
        return None
    contents = describe_contents(sum(s.plain_connections for s in shares), shares[0].not_tcp)
    return merge_shares(shares), shares[0].warnings, contents


def _collect(pid: int, read_end: int) -> TriageShare | None:
    """A child's share from its pipe (which this closes), once it has exited; None if it
    failed. The child is reaped however this ends."""
    reaped = False
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        if os.waitstatus_to_exitcode(status) != 0 or not data:
            return None
        share = pickle.loads(data)
        return share if isinstance(share, TriageShare) else None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        return None
    finally:
        if not reaped:  # (a reaped pid may already name another process: never signal it)
            _end(pid)


def _end(pid: int) -> None:
    """Kill and reap a child (nothing happens if it was reaped already)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _child(
    write_end: int, capture: Path, keys: CaptureKeys, slow: float, k: int, n: int, max_connections: int
) -> None:
    """A forked share: its result goes down the pipe, nothing to the terminal, and it never
    returns into the parent's code (os._exit, so no stdio buffer of the parent is flushed)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly with the parent
        share = _share(capture, keys, slow, k, n, None, max_connections)
        data = pickle.dumps(share, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        code = 0
    except BaseException:  # any failure: the parent triages in one process
        pass
    os._exit(code)
