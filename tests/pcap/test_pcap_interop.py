"""Interop with the real tools: tcpdump and dumpcap write, tshark/capinfos/editcap read and convert.

tshark is the oracle: for every packet of a real capture, the timestamp and length capdebug reads
must equal what ``tshark -T fields -e frame.time_epoch -e frame.len`` prints.
"""

from __future__ import annotations

import io
import socket
import subprocess
import time
from pathlib import Path

import pytest

from capdebug.pcap import (
    SECRETS_TYPE_TLS_KEYLOG,
    Interface,
    LinkType,
    Packet,
    PcapngWriter,
    SecretsBlock,
    open_capture,
    write_pcap,
)
from tests.tools import require, require_root

pytestmark = pytest.mark.tools


def _epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


def _tshark(path: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``tshark -T fields``: epoch time, wire length and captured length of every frame."""
    fields = ("frame.time_epoch", "frame.len", "frame.cap_len")
    return subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
        check=check,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rows(stdout: str) -> list[tuple[int, int, int]]:
    return [
        (_epoch_ns(ts), int(length), int(cap_len))
        for ts, length, cap_len in (line.split("\t") for line in stdout.splitlines())
    ]


def _tshark_fields(path: Path) -> list[tuple[int, int, int]]:
    return _rows(_tshark(path).stdout)


def _capture_udp(argv: list[str], count: int) -> None:
    """Run a capture command on lo while sending UDP datagrams to 127.0.0.1 until it stops."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        bpf = f"udp and dst port {port}"
        proc = subprocess.Popen(
            [*argv, "-c", str(count), *(["-f", bpf] if argv[0] == "dumpcap" else [bpf])],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Both tools say so on stderr once the capture is really running.
            line = proc.stderr.readline() if proc.stderr else ""
            while "apturing on" not in line and "listening on" not in line:
                assert line, f"{argv[0]} did not start"
                line = proc.stderr.readline() if proc.stderr else ""
            deadline = time.monotonic() + 20
            size = 1
            while proc.poll() is None and time.monotonic() < deadline:
                sender.sendto(b"x" * size, ("127.0.0.1", port))
                size = size * 7 % 1400 + 1
                time.sleep(0.002)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_tcpdump_capture_matches_tshark(nano: bool, tmp_path: Path) -> None:
    require("tcpdump", "tshark")
    require_root()
    path = tmp_path / "lo.pcap"
    precision = ["--time-stamp-precision=nano"] if nano else []
    # -Z root: tcpdump would otherwise drop to a user that cannot write into tmp_path.
    _capture_udp(["tcpdump", "-i", "lo", "-Z", "root", "-U", *precision, "-w", str(path)], 12)
    oracle = _tshark_fields(path)
    with open_capture(path) as reader:
        packets = [p for p in reader if isinstance(p, Packet)]
        assert reader.format == "pcap"
        assert reader.interfaces[0].tsresol_ns == (1 if nano else 1000)
        assert reader.warnings == []
    assert len(packets) == 12
    assert [(p.ts_ns, p.orig_len, len(p.data)) for p in packets] == oracle
    if not nano:
        assert all(p.ts_ns % 1000 == 0 for p in packets)


def test_dumpcap_pcapng_matches_tshark(tmp_path: Path) -> None:
    require("dumpcap", "tshark")
    require_root()
    path = tmp_path / "lo.pcapng"
    _capture_udp(["dumpcap", "-q", "-i", "lo", "-w", str(path)], 10)
    with open_capture(path) as reader:
        packets = [p for p in reader if isinstance(p, Packet)]
        assert reader.format == "pcapng"
        assert [i.name for i in reader.interfaces] == ["lo"]
        # dumpcap ends with an Interface Statistics Block carrying isb_ifdrop.
        assert reader.interface_drops == {0: 0}
        assert reader.warnings == []
    assert [(p.ts_ns, p.orig_len, len(p.data)) for p in packets] == _tshark_fields(path)


def _sample_pcap(path: Path) -> list[Packet]:
    packets = [
        Packet(1_700_000_000_000_000_000 + i * 1_234_567_891, 0, bytes(14) + bytes([i]) * (40 + i), 54 + i)
        for i in range(20)
    ]
    write_pcap(path, packets, linktype=LinkType.ETHERNET, nanosecond=True)
    return packets


def test_tshark_and_capinfos_read_our_pcapng_with_secrets(tmp_path: Path) -> None:
    require("tshark", "capinfos", "editcap")
    packets = _sample_pcap(tmp_path / "in.pcap")
    out = tmp_path / "out.pcapng"
    keys = b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n"
    with open(out, "wb") as f:
        writer = PcapngWriter(f, shb_comment="interop")
        idx = writer.add_interface(Interface(LinkType.ETHERNET, name="eth0"))
        writer.write_secrets(SECRETS_TYPE_TLS_KEYLOG, keys)
        for pkt in packets:
            writer.write_packet(pkt, idx)
    assert _tshark_fields(out) == [(p.ts_ns, p.orig_len, len(p.data)) for p in packets]
    info = subprocess.run(
        ["capinfos", "-c", "-M", str(out)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert f"Number of packets:   {len(packets)}" in info
    # editcap understood our DSB: it drops it on request and keeps every packet.
    stripped = tmp_path / "stripped.pcapng"
    subprocess.run(["editcap", "--discard-all-secrets", str(out), str(stripped)], check=True, timeout=60)
    with open_capture(out) as reader:
        assert [i.data for i in reader if isinstance(i, SecretsBlock)] == [keys]
    with open_capture(stripped) as reader:
        items = list(reader)
    assert not any(isinstance(i, SecretsBlock) for i in items)
    assert [(p.ts_ns, p.data, p.orig_len) for p in items if isinstance(p, Packet)] == [
        (p.ts_ns, p.data, p.orig_len) for p in packets
    ]


def test_editcap_inject_secrets(tmp_path: Path) -> None:
    require("editcap")
    packets = _sample_pcap(tmp_path / "in.pcap")
    keys = tmp_path / "keys.log"
    keys.write_bytes(
        b"# a comment\nCLIENT_HANDSHAKE_TRAFFIC_SECRET " + b"01" * 32 + b" " + b"02" * 32 + b"\n"
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET " + b"01" * 32 + b" " + b"03" * 32 + b"\n"
    )
    out = tmp_path / "out.pcapng"
    subprocess.run(
        ["editcap", "--inject-secrets", f"tls,{keys}", str(tmp_path / "in.pcap"), str(out)],
        check=True,
        timeout=60,
    )
    with open_capture(out) as reader:
        items = list(reader)
    secrets = [i for i in items if isinstance(i, SecretsBlock)]
    assert [(s.secrets_type, s.data, s.packets_before) for s in secrets] == [
        (SECRETS_TYPE_TLS_KEYLOG, keys.read_bytes(), 0)
    ]
    assert [(p.ts_ns, p.data, p.orig_len) for p in items if isinstance(p, Packet)] == [
        (p.ts_ns, p.data, p.orig_len) for p in packets
    ]


def test_editcap_pcapng_equals_source_pcap(tmp_path: Path) -> None:
    """Wireshark's own pcapng writer, read by capdebug, gives what the pcap gave."""
    require("editcap")
    packets = _sample_pcap(tmp_path / "in.pcap")
    out = tmp_path / "out.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(tmp_path / "in.pcap"), str(out)], check=True, timeout=60)
    raw = out.read_bytes()
    with open_capture(io.BytesIO(raw)) as reader:
        got = [p for p in reader if isinstance(p, Packet)]
        assert reader.format == "pcapng"
    assert [(p.ts_ns, p.data, p.orig_len) for p in got] == [(p.ts_ns, p.data, p.orig_len) for p in packets]


def test_tcpdump_killed_mid_write(tmp_path: Path) -> None:
    """tcpdump killed with SIGKILL leaves its stdio buffer half written: a record cut short."""
    require("tcpdump", "tshark")
    require_root()
    path = tmp_path / "killed.pcap"
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        # No -U: tcpdump writes whole stdio buffers, so the file ends wherever a buffer ended.
        proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-Z", "root", "-w", str(path), f"udp and dst port {port}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            assert "listening on" in proc.stderr.readline()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 20_000):
                sender.sendto(b"y" * 333, ("127.0.0.1", port))
                time.sleep(0.0005)
        finally:
            proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
    # tshark exits non-zero on the cut record; its output up to there is still the oracle.
    shark = _tshark(path, check=False)
    oracle = _rows(shark.stdout)
    with open_capture(path) as reader:
        packets = [p for p in reader if isinstance(p, Packet)]
        warnings = reader.warnings
    assert len(packets) > 10
    assert [(p.ts_ns, p.orig_len, len(p.data)) for p in packets] == oracle
    # The two agree on whether the last record was cut (it usually is: 4 KiB buffers, 375-byte records).
    assert ("cut short" in shark.stderr) == bool(warnings), (shark.stderr, warnings)
    if warnings:
        assert f"truncated at byte offset {path.stat().st_size}" in warnings[0]
