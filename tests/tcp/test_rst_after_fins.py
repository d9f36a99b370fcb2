"""An RST after both FINs is in the timeline, and the connection's duration counts it (issue 14).

The connection is a real fixture (tcpdump over loopback) with RSTs appended by scapy, as a
socket closed with unread data, or a peer answering a late segment, sends them; tshark says
where they are.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from capdebug.analysis.decode.order import frame_of
from capdebug.analysis.events import TcpEvent
from capdebug.api import load_keys, triage_capture
from tests.decode import craft as c
from tests.tools import require

NAME = "tls13-aes128gcm"
S = 1_000_000_000


def _with_rsts(tmp: Path) -> tuple[Path, list[c.Seg]]:
    """The fixture, then 2 s later an RST from the client, then the server's RST answering a
    late segment (only the first is the connection's last word)."""
    segs = c.read_segments(c.fixture(NAME)[0])
    client = c.client_of(segs)
    fins = [s for s in segs if s.flags & c.FIN]
    assert len(fins) == 2
    cfin = next(s for s in fins if c.is_client(s, client))
    sfin = next(s for s in fins if not c.is_client(s, client))
    end = segs[-1].ts_ns
    rst = replace(cfin, seq=cfin.seq + 1, ack=0, flags=c.RST, ts_ns=end + 2 * S, origin=0)
    again = replace(sfin, seq=sfin.seq + 1, ack=0, flags=c.RST, ts_ns=end + 3 * S, origin=0)
    out = [*segs, rst, again]
    return c.write(tmp / "rst.pcap", out), out


def test_rst_after_both_fins_is_shown(tmp_path: Path) -> None:
    require("tshark")
    pcap, segs = _with_rsts(tmp_path)
    events = c.decode(pcap, c.fixture(NAME)[1])
    frames = [frame_of(e) for e in events]
    assert frames == sorted(frames)
    tcp = [(e.from_, e.flag, e.frame) for e in events if isinstance(e, TcpEvent)]
    resets = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", "tcp.flags.reset==1", "-T", "fields", "-e", "frame.number"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert len(resets) == 2
    # Both FINs, then the client's RST at its frame; the server's later RST is not a new event.
    assert [t[:2] for t in tcp[-3:]] == [("server", "FIN"), ("client", "FIN"), ("client", "RST")]
    assert tcp[-1][2] == int(resets[0])
    assert events[-1] == next(e for e in events if isinstance(e, TcpEvent) and e.flag == "RST")
    (report,) = triage_capture(pcap, load_keys(pcap, [c.fixture(NAME)[1]])).reports
    # From the SYN to the RST.
    assert report.duration is not None
    assert abs(report.duration - (segs[-2].ts_ns - segs[0].ts_ns) / 1e9) < 1e-6
    codes = {v.code: (v.severity, v.by) for v in report.verdicts}
    assert codes["clean_close"] == ("info", None)
    assert codes["benign_reset"] == ("info", "client")


def test_new_connection_on_the_same_ports_after_fins_and_rst(tmp_path: Path) -> None:
    # The remembered connection does not swallow a new one on the same 4-tuple.
    _, segs = _with_rsts(tmp_path)
    client = c.client_of(segs)
    again = c.shift(
        c.read_segments(c.fixture(NAME)[0]), seq_client=1 << 20, seq_server=1 << 21, client=client, ts=10 * S
    )
    pcap = c.write(tmp_path / "reuse.pcap", [*segs, *again])
    events = c.decode(pcap, c.fixture(NAME)[1])
    assert {e.conn for e in events} == {1, 2}
    assert [(e.conn, e.flag) for e in events if isinstance(e, TcpEvent) and e.flag == "RST"] == [(1, "RST")]
