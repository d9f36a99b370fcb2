"""Review of triage in shares (capdebug/_shares.py, TcpTracker.partition, merge_shares).

Each test shows one finding of that review (each was an ``xfail(strict=True)`` test until its
fix; they pass now): the shares gave another answer than one process without giving way, or the
parent process mishandled an interruption or a failed fork.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from capdebug import _shares
from capdebug.analysis.decode import _UNDECIDED_FRAMES
from capdebug.api import load_keys, triage_capture
from capdebug.net.flow import ConnectionStarted, TcpTracker, share_of
from capdebug.net.tcp import TcpSegment
from tests.analysis import review_frames as rf

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

HTTP_CLIENT, HTTP_SERVER, TLS_CLIENT, TLS_SERVER = (
    rf.HTTP_CLIENT,
    rf.HTTP_SERVER,
    rf.TLS_CLIENT,
    rf.TLS_SERVER,
)


def _json(reports: list[Any]) -> list[dict[str, Any]]:
    return [r.to_json() for r in reports]


def test_the_two_connections_are_in_different_shares() -> None:
    """The premise of the test below (not a finding)."""
    assert share_of(rf.HTTP_CLIENT[1], rf.HTTP_SERVER[1], 2) != share_of(
        rf.TLS_CLIENT[1], rf.TLS_SERVER[1], 2
    )


@pytest.mark.parametrize(
    ("segments", "per_segment", "conns"),
    [
        (130, 200, [2]),  # 26,000 events held; the request decides: not TLS, not shown
        (_UNDECIDED_FRAMES + 10, 1, [1, 2]),  # the request comes too late: shown without waiting
    ],
)
def test_an_undecided_connection_is_decided_alike_in_shares(
    tmp_path: Path, segments: int, per_segment: int, conns: list[int]
) -> None:
    """Found in review: the decision used to depend on how many events all connections had
    piled up, which a share of the capture does not see."""
    capture = rf.undecided_then_many_events(tmp_path / "held.pcap", segments, per_segment)
    one, _ = triage_capture(capture, load_keys(capture, []), jobs=1)
    assert [r.conn for r in one] == conns
    keys = load_keys(capture, [])
    shared = _shares.triage_in_shares(capture, keys, slow_handshake=1.0, jobs=2, progress=None)
    assert shared is not None
    assert _json(shared[0]) == _json(one)


def _seg(src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int) -> TcpSegment:
    return TcpSegment(
        bytes(map(int, src.split("."))),
        sport,
        bytes(map(int, dst.split("."))),
        dport,
        seq,
        ack,
        flags,
        65535,
        b"",
    )


def test_tombstone_eviction_numbers_the_same_in_shares() -> None:
    a, b, c = 40001, 40003, 40002  # ports to 443: a and c in share 0, b in share 1
    assert (share_of(a, 443, 2), share_of(b, 443, 2), share_of(c, 443, 2)) == (0, 1, 0)
    server = "10.0.0.2"
    segments = [
        _seg("10.0.0.1", a, server, 443, 100, 0, rf.SYN),  # 1: a opens
        _seg(server, 443, "10.0.0.1", a, 900, 101, rf.RST | rf.ACK),  # 2: and is refused
        _seg("10.0.0.1", b, server, 443, 200, 0, rf.SYN),  # 3: b opens
        _seg(server, 443, "10.0.0.1", b, 800, 201, rf.RST | rf.ACK),  # 4: and is refused
        _seg("10.0.0.1", a, server, 443, 101, 901, rf.ACK),  # 5: a late ACK of a
        _seg("10.0.0.1", c, server, 443, 300, 0, rf.SYN),  # 6: c opens
    ]

    def first_frames(tracker: TcpTracker) -> list[int]:
        started = []
        for frame, seg in enumerate(segments, 1):
            started += [
                ev.conn.first_frame for ev in tracker.feed(frame, 0, seg) if type(ev) is ConnectionStarted
            ]
        return started

    one = first_frames(TcpTracker(max_closed=1))
    shares = [TcpTracker(max_closed=1, partition=(k, 2)) for k in range(2)]
    for share in shares:
        first_frames(share)
    assert sorted(f for s in shares for f in s.first_frames) == one


_INTERRUPTED = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from capdebug import _shares
    from capdebug.api import load_keys

    real = _shares._share

    def slow_child(capture, keys, slow, k, n, progress, *limits):
        if k != 0:
            time.sleep(3)  # the parent is waiting for this share when Ctrl-C comes
        return real(capture, keys, slow, k, n, progress, *limits)

    def ctrl_c(signum, frame):
        raise KeyboardInterrupt

    _shares._share = slow_child
    capture = Path(sys.argv[1])
    keys = load_keys(capture, [])
    signal.signal(signal.SIGALRM, ctrl_c)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        _shares.triage_in_shares(capture, keys, slow_handshake=1.0, jobs=2, progress=None)
        print("no exception")
    except BaseException as exc:
        print(type(exc).__name__)
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        print("child left running" if pid == 0 else "child left unreaped")
    except ChildProcessError:
        print("no child left")
    while True:  # clean up whatever is left
        try:
            os.wait()
        except ChildProcessError:
            break
    """
)


def test_ctrl_c_while_waiting_for_a_share(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED, str(FIXTURES / "tls13-aes128gcm.pcap")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split("\n")[:2] == ["KeyboardInterrupt", "no child left"], (done.stdout, done.stderr)


def test_a_failed_fork_gives_way_to_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = FIXTURES / "tls13-aes128gcm.pcap"
    keys = load_keys(capture, [])
    real_fork = os.fork
    forks = []

    def fork_once() -> int:
        forks.append(1)
        if len(forks) > 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()

    fds_before = set(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fork", fork_once)  # the os module _shares forks with
    try:
        result = _shares.triage_in_shares(capture, keys, slow_handshake=1.0, jobs=3, progress=None)
    finally:
        monkeypatch.undo()
        leaked = set(os.listdir("/proc/self/fd")) - fds_before
    assert result is None
    assert not leaked
