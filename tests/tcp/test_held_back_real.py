"""A segment held back on a real path while more than a megabyte of later data arrives (issue 14,
"Done means"): Python ssl peers in namespaces, the bridge of tests/tcp/bridge.py holding one
early server segment (and the sender's retransmissions of it) until 1.5 MiB of later data has
passed, tcpdump at the receiver. The receiver's kernel queues the later data and acknowledges
nothing past the hole until the segment arrives; capdebug must do the same: wait for it, and
only past its stated limit (``--max-out-of-order``) give the hole up, saying why.

tests/tcp/test_out_of_order.py does the same on a crafted capture; this is the real path.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from capdebug.analysis.decode.order import frame_of
from capdebug.analysis.events import GapEvent, UndecryptableEvent
from capdebug.api import PlaintextExporter, decode_capture, load_keys
from tests.correlate.conftest import _env
from tests.tcp.bridged import PORT, BridgedPath, Transfer, bridged
from tests.tools import require

__all__ = ["bridged"]

MiB = 1 << 20
HOLD_AT = MiB  # stream offset of the held segment: the windows have grown by then
RELEASE = 3 * MiB // 2  # later data that passes it
SEND = 4 * MiB


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.bin"))}


def _later_bytes_before(pcap: Path, offset: int) -> int:
    """tshark's view of the capture: server bytes beyond the held segment that arrived before
    its first copy."""
    rows = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", f"tcp.srcport == {PORT} && tcp.len > 0", "-T", "fields",
         "-e", "tcp.seq", "-e", "tcp.len"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    later = 0
    for row in filter(None, rows):
        seq, size = map(int, row.split("\t"))
        if seq == offset + 1:  # tshark's relative numbers count the SYN
            return later
        if seq > offset + 1:
            later += size
    raise AssertionError(f"the held segment (offset {offset}) is not in the capture")


def _transfer(path: BridgedPath) -> Transfer:
    run = path.transfer(
        "held",
        client_sends=200,
        server_sends=SEND,
        bridge=("--hold-at", str(HOLD_AT), "--hold-release", str(RELEASE)),
    )
    hold = run.bridge["hold"]
    assert isinstance(hold, dict) and not hold["timed_out"], run.bridge
    assert hold["released_after"] > RELEASE and hold["offset"] >= HOLD_AT, run.bridge
    assert run.client["received_sha256"] == run.server["sent_sha256"], (run.client, run.server)
    # The capture at the receiver shows it: the segment came after more than 1 MiB of later data.
    assert _later_bytes_before(run.client_pcap, hold["offset"]) > MiB
    return run


def test_held_back_segment_on_a_real_path(bridged: BridgedPath) -> None:
    require("tshark")
    run = _transfer(bridged)
    pcap = run.client_pcap

    # Within the limit (16 MiB by default): the hole waits for the segment, the plaintext is exact.
    folder = bridged.root / "export"
    with (
        PlaintextExporter(folder) as exporter,
        decode_capture(pcap, load_keys(pcap, run.keylogs), app_data_sink=exporter) as decoding,
    ):
        events = list(decoding)
    assert _digests(folder) == {
        "conn1-client.bin": run.client["sent_sha256"],
        "conn1-server.bin": run.server["sent_sha256"],
    }
    assert not [e for e in events if isinstance(e, GapEvent | UndecryptableEvent)]
    frames = [frame_of(e) for e in events]
    assert frames == sorted(frames)
    assert not list(folder.glob("*.gaps.json"))

    # Past the limit (1 MiB, below the 1.5 MiB held behind the hole), through the CLI: the hole
    # is given up, and the gap event, the warning and the map beside the plaintext say why.
    small = bridged.root / "small"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])",
         "decrypt", str(pcap), "--no-env", "--json", "--export", str(small), "--max-out-of-order", "1",
         *(a for k in run.keylogs for a in ("--keylog", str(k)))],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    gaps = [e for e in lines if e["event"] == "gap"]
    assert [(g["from"], g["cause"]) for g in gaps] == [("server", "out_of_order")], gaps
    assert "more than 1 MiB out of order" in done.stderr, done.stderr
    (gap_map,) = small.glob("*.gaps.json")
    assert gap_map.name == "conn1-server.gaps.json"
    entries = json.loads(gap_map.read_text())
    assert [(e["reason"], e["tcp_bytes"], e["frame"]) for e in entries] == [
        ("out_of_order", gaps[0]["size"], gaps[0]["frame"])
    ]
    exact = (folder / "conn1-server.bin").read_bytes()
    cut = (small / "conn1-server.bin").read_bytes()
    offset = entries[0]["offset"]
    # Everything before the hole is there; the records it cut are missing, nothing is spliced.
    assert 0 < offset < len(cut) < len(exact) and cut[:offset] == exact[:offset]
    assert exact.endswith(cut[offset:])
    assert (small / "conn1-client.bin").read_bytes() == (folder / "conn1-client.bin").read_bytes()
