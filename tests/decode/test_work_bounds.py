"""Damaged captures cost work in proportion to their size, not more.

Two ways a capture used to make the decoder slow (a 60k-frame excerpt of the benchmark corpus
with one frame in seven dropped took 31 s instead of 1.4 s):

* after every gap the next record boundary was searched byte by byte, from the start of the
  buffer again each time a segment arrived;
* a connection whose handshake was lost was "recovered" by trying every TLS 1.3 secret of the
  key log on every sequence number of a window, record after record, without limit; and after
  a gap, records whose sequence number drifted out of the window were each tried on the whole
  window, forever.

Timing is for benchmarks, so these tests count the work instead: AEAD openings and boundary
checks, against bounds that follow from the capture (its records, its gaps, the trial budget).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capdebug.analysis import keys as keys_module
from capdebug.analysis import recovery
from capdebug.analysis.decode import resync as resync_module
from capdebug.analysis.decode import trial as trial_module
from capdebug.crypto.keylog import KeyLog
from tests.decode import craft as c

BULK = "tls13-large-transfer"


class _Counter:
    def __init__(self) -> None:
        self.calls = 0


@pytest.fixture()
def opens(monkeypatch: pytest.MonkeyPatch) -> _Counter:
    counter = _Counter()
    real = keys_module.Keys.open

    def counting(self: keys_module.Keys, record: bytes, seq: int) -> bytes:
        counter.calls += 1
        return real(self, record, seq)

    monkeypatch.setattr(keys_module.Keys, "open", counting)
    return counter


@pytest.fixture()
def boundary_checks(monkeypatch: pytest.MonkeyPatch) -> _Counter:
    counter = _Counter()
    real = resync_module.boundary_at

    def counting(buf: bytearray, at: int, end: int) -> int:
        counter.calls += 1
        return real(buf, at, end)

    monkeypatch.setattr(resync_module, "boundary_at", counting)
    return counter


def _lossy(segs: list[c.Seg], every: int) -> list[c.Seg]:
    """The data cut into Ethernet-sized segments (the fixture was captured on loopback, whose
    segments hold whole records) and every ``every``-th of them dropped, as a capture that
    lost packets."""
    out = []
    n = 0
    for seg in segs:
        pieces = c.split(seg, [1448] * (len(seg.payload) // 1448)) if len(seg.payload) > 1448 else [seg]
        for s in pieces:
            if s.payload and not s.flags & (c.SYN | c.FIN):
                n += 1
                if n % every == 0:
                    continue
            out.append(s)
    return out


def test_a_lossy_capture_costs_work_in_proportion(
    tmp_path: Path, opens: _Counter, boundary_checks: _Counter
) -> None:
    capture, keys = c.fixture(BULK)
    segs = c.read_segments(capture)
    got = c.as_json(c.decode(c.write(tmp_path / "lossy.pcap", _lossy(segs, 7)), keys))
    records = sum(1 for o in got if o["event"] in ("app_data", "alert", "handshake"))
    gaps = sum(1 for o in got if o["event"] == "gap")
    assert gaps >= 5
    # Each record is opened once or, after a gap, on a few numbers of the window; a direction
    # whose number is lost for good stops trying after a few records.
    give_up = 2 * trial_module.MAX_TRIAL_RECORDS * trial_module.SEQ_WINDOW
    assert opens.calls <= records + gaps * 8 + give_up, (opens.calls, records)
    # Boundaries are checked only where a record header could start (found by the regular
    # expression), a handful per gap, not once per byte.
    assert boundary_checks.calls <= 4 * (gaps + records), (boundary_checks.calls, gaps, records)
    # And what arrives whole after a gap is still decoded.
    assert any(o["event"] == "app_data" and o["decrypted"] for o in got)


def test_mid_stream_recovery_stays_within_its_budget(
    tmp_path: Path, opens: _Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key log holding thousands of TLS 1.3 secrets of other sessions (another hop's) and a
    connection picked up mid-stream: the trials stop at the budget, per direction."""
    monkeypatch.setattr(trial_module, "TRIAL_BUDGET", 1000)
    capture, _ = c.fixture(BULK)
    segs = c.read_segments(capture)
    first_data = next(i for i, s in enumerate(segs) if len(s.payload) > 1000)
    mid = [s for s in segs[first_data:] if not s.flags & c.SYN]
    lines = [
        f"{label} {os.urandom(32).hex()} {os.urandom(32).hex()}"
        for _ in range(3000)
        for label in ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")
    ]
    keylog = KeyLog.parse("\n".join(lines).encode())
    got = c.as_json(c.decode(c.write(tmp_path / "mid.pcap", mid), keylog))
    records = sum(1 for o in got if o["event"] in ("app_data", "alert"))
    assert {r[2] for r in c.reasons(got)} == {"no_handshake"}
    assert opens.calls <= 2 * trial_module.TRIAL_BUDGET + records, (opens.calls, records)


def test_mid_stream_recovery_skips_sessions_seen_in_the_capture(tmp_path: Path) -> None:
    """The candidates of a mid-stream connection are the key log's sessions whose ClientHello
    the capture has not shown (those belong to other connections)."""
    _, keys = c.fixture(BULK)
    keylog = KeyLog.from_file(keys)
    randoms = keylog.client_randoms()
    assert len(recovery.recover_mid_stream(keylog, keys_module.Role.CLIENT)) >= 1
    assert recovery.recover_mid_stream(keylog, keys_module.Role.CLIENT, exclude=randoms) == []
