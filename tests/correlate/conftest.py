"""A real three-host topology per test: client, middlebox and server network namespaces.

    client (10.99.1.2) --veth-- (10.99.1.1) middlebox (10.99.2.1) --veth-- (10.99.2.2) server

The middlebox routes between its two links and does what the test asks with nftables rules
(NAT masquerade, a TCP reset, drops by size) or runs haproxy as a TLS-terminating proxy.
The addresses exist only inside the test's own namespaces (created with their veth pairs
inside them, never in the host's namespace), so parallel workers cannot collide. tcpdump runs
inside the client and the server namespaces; the TLS peers are Python ssl programs
(tests/correlate/peers.py) writing SSLKEYLOGFILE-format key logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tests.tools import require, require_root

REPO = Path(__file__).resolve().parents[2]
CLIENT_ADDR, MB_CLIENT_ADDR = "10.99.1.2", "10.99.1.1"
MB_SERVER_ADDR, SERVER_ADDR = "10.99.2.1", "10.99.2.2"
PORT = 4433
SNI = "capdbg.test"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class Topology:
    tag: str
    root: Path
    cert: Path
    key: Path

    @property
    def client(self) -> str:
        return f"cdc-{self.tag}"

    @property
    def middlebox(self) -> str:
        return f"cdm-{self.tag}"

    @property
    def server(self) -> str:
        return f"cds-{self.tag}"

    def run(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check, env=_env()
        )

    def popen(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
        )  # fmt: skip

    def nft(self, rules: str) -> None:
        """Load an nftables ruleset into the middlebox."""
        subprocess.run(
            ["ip", "netns", "exec", self.middlebox, "nft", "-f", "-"],
            input=rules, text=True, check=True, capture_output=True,
        )  # fmt: skip

    def nat(self, extra_forward: str = "") -> None:
        """Masquerade towards the server (random source ports: NAT rewrites address and port),
        plus ``extra_forward`` rules in a forward chain."""
        self.nft(
            "table ip cdtest {\n"
            "  chain cd_post { type nat hook postrouting priority srcnat; "
            'oifname "mb-s" masquerade random; }\n'
            f"  chain cd_forward {{ type filter hook forward priority filter; {extra_forward} }}\n"
            "}\n"
        )

    def start_capture(self, ns: str, iface: str, out: Path) -> subprocess.Popen[str]:
        proc = self.popen(
            ns,
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "0",
            "-Z",
            "root",
            "-w",
            str(out),
            "tcp",
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on" in line, line
        return proc

    def stop_capture(self, proc: subprocess.Popen[str]) -> None:
        time.sleep(0.3)  # the last packets in flight
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)

    def start_server(self, keylog: Path, *extra: str, addr: str = SERVER_ADDR) -> subprocess.Popen[str]:
        proc = self.popen(
            self.server, sys.executable, "-m", "tests.correlate.peers", "server", "--addr", addr,
            "--port", str(PORT), "--cert", str(self.cert), "--key", str(self.key),
            "--keylog", str(keylog), *extra,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def client_request(self, keylog: Path, *extra: str, addr: str = SERVER_ADDR) -> dict[str, object]:
        done = self.run(
            self.client, sys.executable, "-m", "tests.correlate.peers", "client", "--addr", addr,
            "--port", str(PORT), "--keylog", str(keylog), *extra,
        )  # fmt: skip
        status: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return status

    def traffic(
        self,
        name: str,
        *client_args: str,
        server_args: tuple[str, ...] = (),
        connect_to: str = SERVER_ADDR,
        middlebox_capture: bool = False,
    ) -> tuple[Path, Path, Path, dict[str, object]]:
        """One TLS request captured on the client's and the server's links:
        (client capture, server capture, key log of both peers, the client's status).
        ``middlebox_capture`` also captures on the middlebox's client-side link, to
        ``NAME-middlebox.pcap``."""
        c_pcap, s_pcap = self.root / f"{name}-client.pcap", self.root / f"{name}-server.pcap"
        keylog = self.root / f"{name}.keys"
        c_cap = self.start_capture(self.client, "c-m", c_pcap)
        s_cap = self.start_capture(self.server, "s-m", s_pcap)
        m_cap = (
            self.start_capture(self.middlebox, "mb-c", self.root / f"{name}-middlebox.pcap")
            if middlebox_capture
            else None
        )
        try:
            server = self.start_server(keylog, *server_args)
            try:
                status = self.client_request(keylog, *client_args, addr=connect_to)
            finally:
                server.communicate(timeout=15)
        finally:
            self.stop_capture(c_cap)
            self.stop_capture(s_cap)
            if m_cap is not None:
                self.stop_capture(m_cap)
        return c_pcap, s_pcap, keylog, status


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


_T = TypeVar("_T", bound=Topology)


@contextlib.contextmanager
def three_hosts(cls: type[_T], tmp_path: Path) -> Iterator[_T]:
    """Client, middlebox and server namespaces joined by two veth pairs (c-m -- mb-c, mb-s --
    s-m), with a test certificate; no address yet (the caller's topology decides). Everything,
    processes included, is removed afterwards, whatever happened."""
    t = cls(secrets.token_hex(3), tmp_path, tmp_path / "cert.pem", tmp_path / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(t.key), "-out", str(t.cert), "-days", "2", "-subj", f"/CN={SNI}"],
        check=True, capture_output=True,
    )  # fmt: skip
    made: list[str] = []
    try:
        for ns in (t.client, t.middlebox, t.server):
            _ip("netns", "add", ns)
            made.append(ns)
        # The veth pairs are created inside the namespaces: no interface or address ever
        # exists in the host's namespace.
        _ip(
            "-n", t.client, "link", "add", "c-m", "type", "veth", "peer", "name", "mb-c", "netns", t.middlebox
        )
        _ip(
            "-n", t.server, "link", "add", "s-m", "type", "veth", "peer", "name", "mb-s", "netns", t.middlebox
        )
        for ns in (t.client, t.middlebox, t.server):
            _ip("-n", ns, "link", "set", "lo", "up")
        yield t
    finally:
        for ns in made:
            # Anything a failed test left running in its own namespaces (peers, tcpdump, haproxy).
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[Topology]:
    require_root()
    require("ip", "nft", "tcpdump", "openssl")
    with three_hosts(Topology, tmp_path) as t:
        for ns, dev, addr in (
            (t.client, "c-m", CLIENT_ADDR),
            (t.middlebox, "mb-c", MB_CLIENT_ADDR),
            (t.middlebox, "mb-s", MB_SERVER_ADDR),
            (t.server, "s-m", SERVER_ADDR),
        ):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", t.client, "route", "add", "default", "via", MB_CLIENT_ADDR)
        _ip("-n", t.server, "route", "add", "default", "via", MB_SERVER_ADDR)
        t.run(t.middlebox, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield t


def correlate_json(*args: str | Path) -> tuple[int, dict[str, object]]:
    """``capdebug correlate ARGS --json`` through the installed entry point's main()."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])",
         "correlate", *map(str, args), "--json", "--no-env"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return done.returncode, doc
