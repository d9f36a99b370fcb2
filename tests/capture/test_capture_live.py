"""Secrets written into the growing pcapng while capturing, and ``--live`` decoding.

Fast tests replay committed real captures (tests/fixtures) through the injector and the live
monitor; the end-to-end tests run the real command with tcpdump, locally and over the loopback
sshd, copy the file while the capture runs and let tshark decrypt the copy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from capdebug.analysis.decode import Decoder
from capdebug.analysis.events import HandshakeEvent, UndecryptableEvent
from capdebug.analysis.live import LiveKeys, LiveMonitor, SecretsInjector, client_hello_random
from capdebug.pcap.model import SECRETS_TYPE_TLS_KEYLOG, Packet, SecretsBlock
from capdebug.pcap.open import open_capture
from capdebug.pcap.pcapng import PcapngWriter
from tests.capture.conftest import (
    REPO,
    Sshd,
    SshWorld,
    TlsEchoServer,
    cli_argv,
    cli_env,
    tls_roundtrip,
    tshark_count,
)
from tests.tools import require, require_root

FIXTURES = REPO / "tests" / "fixtures"


def _fixture(name: str) -> tuple[list[Packet], int, bytes]:
    with open_capture(FIXTURES / f"{name}.pcap") as reader:
        packets = [p for p in reader if isinstance(p, Packet)]
        linktype = reader.interfaces[0].linktype
    return packets, linktype, (FIXTURES / f"{name}.keys").read_bytes()


def _decode(items: Sequence[Packet | SecretsBlock], linktype: int) -> list[object]:
    dec = Decoder()
    events: list[object] = []
    frame = 0
    for item in items:
        if isinstance(item, SecretsBlock):
            dec.feed_secrets(item)
            continue
        frame += 1
        events += dec.feed_packet(frame, item, linktype)
    return events + list(dec.finish())


def _randoms(packets: list[Packet], linktype: int) -> list[bytes]:
    from capdebug.net.tcp import decode_tcp

    out = []
    for p in packets:
        seg = decode_tcp(linktype, p.data)
        r = client_hello_random(seg.payload) if seg is not None else None
        if r is not None and r not in out:
            out.append(r)
    return out


@pytest.mark.parametrize("name", ["tls13-aes128gcm", "python-tls12"])
def test_keys_known_before_the_client_hello(name: str) -> None:
    packets, linktype, keytext = _fixture(name)
    keys = LiveKeys()
    keys.feed(keytext)
    inj = SecretsInjector(linktype, keys)
    items = inj.feed(packets, 0.0) + inj.finish(0.0)
    # Nothing held, nothing reordered: the block goes right before the ClientHello.
    assert [i for i in items if isinstance(i, Packet)] == packets
    first_block = next(n for n, i in enumerate(items) if isinstance(i, SecretsBlock))
    assert client_hello_random(_payload(items[first_block + 1], linktype)) is not None
    assert inj.sessions == inj.sessions_with_keys >= 1
    events = _decode(items, linktype)
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    assert any(isinstance(e, HandshakeEvent) and e.name == "finished" and e.encrypted for e in events)


def _payload(item: Packet | SecretsBlock, linktype: int) -> bytes:
    from capdebug.net.tcp import decode_tcp

    assert isinstance(item, Packet)
    seg = decode_tcp(linktype, item.data)
    assert seg is not None
    return seg.payload


def test_keys_arriving_mid_handshake_are_written_before_the_held_packets() -> None:
    packets, linktype, keytext = _fixture("tls13-aes128gcm")
    keys = LiveKeys()
    inj = SecretsInjector(linktype, keys, hold_s=60.0)
    ch = next(n for n, p in enumerate(packets) if client_hello_random(_payload(p, linktype)) is not None)
    out = inj.feed(packets[: ch + 3], 0.0)
    assert out == packets[:ch]  # the session's packets wait for its keys
    # A key log arrives in pieces, cut inside a line, with a line of another session and an
    # exporter secret that must not be written.
    foreign = "CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n"
    text = foreign.encode() + keytext
    keys.feed(text[:50])
    assert inj.feed([], 0.5) == []
    keys.feed(text[50:])
    out = inj.feed(packets[ch + 3 :], 1.0) + inj.finish(1.0)
    block = out[0]
    assert isinstance(block, SecretsBlock) and block.secrets_type == SECRETS_TYPE_TLS_KEYLOG
    assert b"ab" * 32 not in block.data and b"EXPORTER" not in block.data
    assert block.data.count(b"\n") == 4  # the two handshake and two application secrets
    assert [i for i in out[1:] if isinstance(i, Packet)] == packets[ch:]
    events = _decode([*packets[:ch], *out], linktype)
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]


def test_keys_that_never_come_release_the_packets() -> None:
    packets, linktype, _ = _fixture("tls13-aes128gcm")
    inj = SecretsInjector(linktype, LiveKeys(), hold_s=2.0, hold_packets=10_000)
    out = inj.feed(packets, 0.0)
    assert len(out) < len(packets)
    assert inj.feed([], 1.9) == []
    late = inj.feed([], 2.0)
    assert out + late == packets  # in order, without secrets
    assert inj.released_without_keys == 1
    bounded = SecretsInjector(linktype, LiveKeys(), hold_s=60.0, hold_packets=3)
    out = bounded.feed(packets, 0.0) + bounded.finish(0.0)
    assert out == packets


def test_exporter_secrets_on_request() -> None:
    packets, linktype, keytext = _fixture("tls13-aes128gcm")
    keys = LiveKeys(exporter_secrets=True)
    keys.feed(keytext)
    items = SecretsInjector(linktype, keys).feed(packets, 0.0)
    data = b"".join(i.data for i in items if isinstance(i, SecretsBlock))
    assert b"EXPORTER_SECRET" in data


def test_live_monitor_prints_handshake_closes_and_verdicts() -> None:
    packets, linktype, keytext = _fixture("tls13-aes128gcm")
    keys = LiveKeys()
    keys.feed(keytext)
    items = SecretsInjector(linktype, keys).feed(packets, 0.0)
    mon = LiveMonitor(linktype, label="web1")
    lines = mon.feed(items[: len(items) // 2]) + mon.feed(items[len(items) // 2 :]) + mon.finish()
    text = "\n".join(lines)
    assert all(line.count("\n") == 0 for line in lines)
    assert "[web1]" in lines[0] and "connection" in lines[0]
    assert "client_hello" in text and "server_hello" in text
    assert text.count("close_notify") >= 2
    assert "TCP FIN" in text
    assert "clean_close" in text  # triage verdict when the connection closed


def _encrypted_extensions(path: Path, port: int) -> int:
    return tshark_count(path, "tls.handshake.type == 8", "-d", f"tcp.port=={port},tls")


def _secrets_moved_to_end(src: Path, dst: Path) -> None:
    """Negative control: the same packets and secrets, the secrets after every packet."""
    with open_capture(src) as reader, dst.open("wb") as f:
        items = list(reader)
        w = PcapngWriter(f)
        w.add_interface(reader.interfaces[0])
        for p in items:
            if isinstance(p, Packet):
                w.write_packet(p, 0)
        for s in items:
            if isinstance(s, SecretsBlock):
                w.write_secrets(s.secrets_type, s.data)


def _wait_for(pred: object, timeout: float) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.05)


def _run_live(
    argv: list[str], out: Path, keylog: Path, server: TlsEchoServer, tmp_path: Path
) -> tuple[str, str, Path]:
    proc = subprocess.Popen(
        argv, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: out.exists() and out.stat().st_size > 0, 15)
        time.sleep(0.3)  # tcpdump listens once the stream header has arrived
        for _ in range(3):
            tls_roundtrip("127.0.0.1", server.port, keylog=keylog)
        # Let the held packets and their secrets reach the file, then copy it mid-capture.
        _wait_for(
            lambda: tshark_count(out, "tls.handshake.type == 8", "-d", f"tcp.port=={server.port},tls") >= 3,
            10,
        )
        copy = tmp_path / "copy.pcapng"
        shutil.copyfile(out, copy)
        assert proc.poll() is None, "the capture should still be running"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    return stdout, stderr, copy


@pytest.mark.tools
def test_local_capture_growing_file_decrypts_and_live_lines(
    tls_server: TlsEchoServer, tmp_path: Path
) -> None:
    require_root()
    require("tcpdump", "tshark")
    out, keylog = tmp_path / "live.pcapng", tmp_path / "keys.log"
    # A line of a session that is not in the capture: it must never reach the file.
    keylog.write_text("CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    argv = cli_argv(
        "capture",
        "-i",
        "lo",
        "--port",
        str(tls_server.port),
        "--keylog",
        str(keylog),
        "--live",
        "-o",
        str(out),
    )
    stdout, _, copy = _run_live(argv, out, keylog, tls_server, tmp_path)
    # The copy taken while capturing decrypts on its own (no key log given to tshark) ...
    assert _encrypted_extensions(copy, tls_server.port) == 3
    # ... because each session's secrets precede its records: moved to the end, they do not.
    moved = tmp_path / "moved.pcapng"
    _secrets_moved_to_end(copy, moved)
    assert _encrypted_extensions(moved, tls_server.port) == 0
    with open_capture(copy) as reader:
        secrets = b"".join(i.data for i in reader if isinstance(i, SecretsBlock))
    assert b"ab" * 32 not in secrets and b"EXPORTER_SECRET" not in secrets
    assert secrets.count(b"SERVER_TRAFFIC_SECRET_0") == 3
    # The final file too, and the live lines showed handshakes, closes and verdicts.
    assert _encrypted_extensions(out, tls_server.port) == 3
    assert stdout.count("client_hello") == 3
    assert "TCP FIN" in stdout
    # Python's ssl closes these sockets without close_notify: triage says so as each one closes,
    # blaming whichever side's FIN came first (the server's, unless a loaded machine delays it
    # past the client's: seen twice in a row in full runs).
    assert stdout.count("closed: TLS 1.3") == 3, stdout
    assert stdout.count("premature_close by server") + stdout.count("premature_close by client") == 3, stdout


def _tails_alive(path: str) -> list[str]:
    res = subprocess.run(["pgrep", "-af", f"tail -c \\+1 -F -- {path}"], capture_output=True, text=True)
    return [ln for ln in res.stdout.splitlines() if "pgrep" not in ln]


@pytest.mark.tools
def test_remote_keylog_followed_over_ssh(
    ssh_world: SshWorld, lo_host: Sshd, tls_server: TlsEchoServer, tmp_path: Path
) -> None:
    require("tshark")
    out = tmp_path / "remote-live.pcapng"
    # The remote path has a space and a quote: it must reach tail as one word.
    keydir = tmp_path / "it's keys"
    keydir.mkdir()
    keylog = keydir / "k.log"
    keylog.touch()
    os.chmod(tmp_path, 0o755)
    argv = cli_argv(
        "capture", "--remote", lo_host.alias, "--ssh-config", str(ssh_world.ssh_config), "-i", "lo",
        "--port", str(tls_server.port), "--keylog", f"{lo_host.alias}:{keylog}", "-o", str(out),
    )  # fmt: skip
    _, _, copy = _run_live(argv, out, keylog, tls_server, tmp_path)
    assert _encrypted_extensions(copy, tls_server.port) == 3
    assert _encrypted_extensions(out, tls_server.port) == 3
    _wait_for(lambda: not _tails_alive(str(keylog)), 5)
    assert not _tails_alive(str(keylog)), "the remote tail must end with the capture"


def test_merge_keeps_secrets_before_their_packets(tmp_path: Path) -> None:
    """Both ends of one connection captured: the merged file carries each line once, before the
    records it decrypts."""
    from capdebug.capture.runner import merge_captures

    packets, linktype, keytext = _fixture("tls13-aes128gcm")
    keys = LiveKeys()
    keys.feed(keytext)
    parts = []
    for host, shift in (("a", 0), ("b", 1000)):
        items = SecretsInjector(linktype, keys).feed(
            [Packet(p.ts_ns + shift, 0, p.data, p.orig_len) for p in packets], 0.0
        )
        path = tmp_path / f"{host}.pcapng"
        with open_capture(FIXTURES / "tls13-aes128gcm.pcap") as reader, path.open("wb") as f:
            w = PcapngWriter(f)
            w.add_interface(reader.interfaces[0])
            for item in items:
                if isinstance(item, Packet):
                    w.write_packet(item, 0)
                else:
                    w.write_secrets(item.secrets_type, item.data)
        parts.append((host, str(path)))
    merged = tmp_path / "merged.pcapng"
    merge_captures(parts, str(merged))
    with open_capture(merged) as reader:
        items = list(reader)
    blocks = [i for i in items if isinstance(i, SecretsBlock)]
    assert len(blocks) == 1 and blocks[0].data.count(b"\n") == 4
    first_hello = next(
        n for n, i in enumerate(items) if isinstance(i, Packet) and client_hello_random(_payload(i, linktype))
    )
    assert items.index(blocks[0]) < first_hello
    assert sum(isinstance(i, Packet) for i in items) == 2 * len(packets)
    events = _decode([i for i in items if isinstance(i, SecretsBlock) or i.interface == 0], linktype)
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
