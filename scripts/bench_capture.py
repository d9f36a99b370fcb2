#!/usr/bin/env python3
"""Benchmark: a remote capture (over a throwaway sshd on 127.0.0.1) of a sustained TLS transfer.

Starts sshd on an ephemeral loopback port with throwaway keys, a Python ssl server and client that
move data at ``--rate`` MB/s (0: as fast as they can) for ``--seconds``, and captures the
transfer with ``capdebug.capture`` through ssh, with the real tcpdump on the "remote" side. Prints
the TLS rate, the capture rate, packets, and the drops tcpdump reports. Needs root (tcpdump,
sshd). Usage: ``python scripts/bench_capture.py [--rate 60] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capdebug.capture.command import DEFAULT_BUFFER_KIB, TcpdumpOptions
from capdebug.capture.runner import run_capture
from capdebug.capture.transport import LocalTransport, parse_remote
from capdebug.pcap.model import Interface, Packet, SecretsBlock

CHUNK = 64 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_sshd(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "user.pub").read_text())
    (root / "known_hosts").write_text("capdbg-bench " + (root / "host.pub").read_text())
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\nLogLevel ERROR\n"
    )
    (root / "ssh_config").write_text(
        f"Host bench\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {root / 'user'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {root / 'known_hosts'}\n  HostKeyAlias capdbg-bench\n"
        "  GlobalKnownHostsFile /dev/null\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, root / "ssh_config"


def _cert(root: Path) -> tuple[Path, Path]:
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=bench"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _transfer(
    cert: Path,
    key: Path,
    port_box: list[int],
    rate: float,
    seconds: float,
    result: dict[str, float],
    keylog: Path | None = None,
) -> None:
    """Server sends at ``rate`` MB/s for ``seconds``; the client drains."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    lsock = socket.create_server(("127.0.0.1", 0))
    port_box.append(int(lsock.getsockname()[1]))
    received = [0]

    def client() -> None:
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
        if keylog is not None:
            cctx.keylog_filename = str(keylog)
        with socket.create_connection(("127.0.0.1", port_box[0])) as raw, cctx.wrap_socket(raw) as tls:
            while data := tls.recv(1 << 20):
                received[0] += len(data)

    ct = threading.Thread(target=client)
    ct.start()
    conn, _ = lsock.accept()
    payload = os.urandom(CHUNK)
    with sctx.wrap_socket(conn, server_side=True) as tls:
        start = time.monotonic()
        sent = 0
        while (now := time.monotonic()) - start < seconds:
            if rate > 0 and sent > rate * 1e6 * (now - start):
                time.sleep(0.001)
                continue
            tls.sendall(payload)
            sent += CHUNK
        elapsed = time.monotonic() - start
        try:
            tls.unwrap()  # close_notify; the client closes without answering it
        except (ssl.SSLError, OSError):
            pass
    ct.join()
    lsock.close()
    result.update(sent=sent, received=received[0], elapsed=elapsed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=60.0, help="TLS payload MB/s (0: unlimited)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--buffer-kib", type=int, default=DEFAULT_BUFFER_KIB, help="tcpdump -B")
    ap.add_argument("--local", action="store_true", help="capture locally instead of over ssh (baseline)")
    ap.add_argument(
        "--live-secrets",
        action="store_true",
        help="follow the client's key log and write secrets into the growing file (as --keylog does)",
    )
    ap.add_argument("--out-dir", default=None, help="where the pcapng goes (default: a temporary directory)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="capdbg-bench-"))
    sshd, ssh_config = _start_sshd(root)
    try:
        cert, key = _cert(root)
        port_box: list[int] = []
        tls_result: dict[str, float] = {}
        # Start the capture first; the transfer begins once tcpdump had time to start listening.
        out = Path(args.out_dir or root) / "bench.pcapng"
        capture_box: dict[str, object] = {}
        stop = threading.Event()

        keylog = root / "keys.log" if args.live_secrets else None
        filter_for = None
        if keylog is not None:
            from capdebug.analysis.live import LiveKeys, SecretsInjector
            from capdebug.capture.tail import KeylogTail

            tail, keys = KeylogTail(LocalTransport(), str(keylog)), LiveKeys()

            class Secrets:
                def __init__(self, linktype: int) -> None:
                    self.injector = SecretsInjector(linktype, keys)

                def feed(self, packets: list[Packet], now: float) -> list[Packet | SecretsBlock]:
                    keys.feed(tail.read())
                    return self.injector.feed(packets, now)

                def finish(self, now: float) -> list[Packet | SecretsBlock]:
                    return self.injector.finish(now)

            def filter_for(label: str, iface: Interface) -> Secrets:
                return Secrets(iface.linktype)

        def capture() -> None:
            # The port is chosen by the transfer thread; capture all TCP on lo except ssh (excluded
            # automatically), which is only the TLS transfer on this otherwise idle host.
            capture_box["result"] = run_capture(
                [LocalTransport() if args.local else parse_remote("bench", config_file=str(ssh_config))],
                TcpdumpOptions(interface="lo", filter="tcp", buffer_kib=args.buffer_kib),
                str(out),
                stop=stop,
                filter_for=filter_for,
            )

        cap = threading.Thread(target=capture)
        cap.start()
        time.sleep(2.0)
        _transfer(cert, key, port_box, args.rate, args.seconds, tls_result, keylog)
        time.sleep(1.5)  # let the last packets stream home
        stop.set()
        cap.join()
        result = capture_box["result"]
        from capdebug.capture.runner import CaptureResult

        assert isinstance(result, CaptureResult)
        result.raise_for_errors()
        host = result.hosts[0]
        tls_mb_s = tls_result["sent"] / tls_result["elapsed"] / 1e6
        print(
            f"TLS transfer: {tls_result['sent'] / 1e6:.0f} MB in {tls_result['elapsed']:.1f} s "
            f"= {tls_mb_s:.1f} MB/s"
        )
        print(
            f"capture: {host.packets} packets, {host.bytes / 1e6:.0f} MB on the wire "
            f"({host.bytes / tls_result['elapsed'] / 1e6:.1f} MB/s during the transfer), "
            f"file {out.stat().st_size / 1e6:.0f} MB"
        )
        print(
            f"tcpdump: captured {host.stats.captured}, received by filter {host.stats.received}, "
            f"dropped by kernel {host.stats.dropped_by_kernel}"
        )
        if keylog is not None:
            from capdebug.pcap.open import open_capture

            with open_capture(out) as reader:
                blocks = sum(1 for item in reader if isinstance(item, SecretsBlock))
            print(f"live secrets: {blocks} secrets blocks written into the growing file")
        ok = host.stats.dropped_by_kernel == 0 and host.bytes >= tls_result["sent"]
        print("result:", "OK: no drops, every TLS byte captured" if ok else "DROPS or missing bytes")
        return 0 if ok else 1
    finally:
        sshd.terminate()
        sshd.wait()
        shutil.rmtree(root, ignore_errors=True)
        if args.out_dir:
            (Path(args.out_dir) / "bench.pcapng").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
