"""A real path through the impairing bridge (tests/tcp/bridge.py): client and server namespaces on
one subnet, joined by a third namespace where the bridge forwards (and delays) their frames.

    client (10.99.3.2) c-m --veth-- mb-c [bridge] mb-s --veth-- s-m (10.99.3.3) server

The bridge's interfaces have no address and the namespace does not route: every frame crosses
it through the bridge's raw sockets. The peers compute their checksums (the bridge does not
touch them) and send wire-sized segments (no TSO/GSO); tcpdump captures on the peers' links.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.correlate.conftest import Topology, three_hosts
from tests.tools import require, require_root

CLIENT_ADDR, SERVER_ADDR = "10.99.3.2", "10.99.3.3"
PORT = 4433


@dataclass
class Transfer:
    client_pcap: Path
    server_pcap: Path
    keylogs: list[Path]
    client: dict[str, object]
    server: dict[str, object]
    bridge: dict[str, object]


class BridgedPath(Topology):
    def transfer(
        self,
        name: str,
        *,
        client_sends: int,
        server_sends: int,
        tls: str = "1.3",
        bridge: tuple[str, ...] = (),
    ) -> Transfer:
        """One TLS connection across the bridge (run with ``bridge`` options), captured on both
        peers' links."""
        c_pcap, s_pcap = self.root / f"{name}-client.pcap", self.root / f"{name}-server.pcap"
        keylogs = [self.root / f"{name}-client.keys", self.root / f"{name}-server.keys"]
        br = self.popen(
            self.middlebox, sys.executable, "-m", "tests.tcp.bridge", "--left", "mb-c", "--right", "mb-s",
            "--port", str(PORT), *bridge,
        )  # fmt: skip
        try:
            assert br.stdout is not None
            assert br.stdout.readline().strip() == "ready", br.stderr.read() if br.stderr else ""
            c_cap = self.start_capture(self.client, "c-m", c_pcap)
            s_cap = self.start_capture(self.server, "s-m", s_pcap)
            try:
                server = self.popen(
                    self.server, sys.executable, "-m", "tests.tcp.bulk", "server", "--addr", SERVER_ADDR,
                    "--port", str(PORT), "--cert", str(self.cert), "--key", str(self.key),
                    "--keylog", str(keylogs[1]), "--send", str(server_sends), "--expect", str(client_sends),
                )  # fmt: skip
                assert server.stdout is not None
                assert server.stdout.readline().strip() == "ready"
                client = self.run(
                    self.client, sys.executable, "-m", "tests.tcp.bulk", "client", "--addr", SERVER_ADDR,
                    "--port", str(PORT), "--keylog", str(keylogs[0]), "--send", str(client_sends),
                    "--expect", str(server_sends), "--tls", tls,
                )  # fmt: skip
                s_out, _ = server.communicate(timeout=30)
            finally:
                self.stop_capture(c_cap)
                self.stop_capture(s_cap)
        finally:
            br.send_signal(signal.SIGTERM)
            b_out, b_err = br.communicate(timeout=10)
        assert b_out.strip(), b_err
        return Transfer(
            c_pcap,
            s_pcap,
            keylogs,
            json.loads(client.stdout.strip().splitlines()[-1]),
            json.loads(s_out.strip().splitlines()[-1]),
            json.loads(b_out.strip().splitlines()[-1]),
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def bridged(tmp_path: Path) -> Iterator[BridgedPath]:
    require_root()
    require("ip", "tcpdump", "openssl", "ethtool")
    with three_hosts(BridgedPath, tmp_path) as t:
        for ns, dev, addr in ((t.client, "c-m", CLIENT_ADDR), (t.server, "s-m", SERVER_ADDR)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            # Software checksums (the bridge forwards bytes as they are) and wire-sized segments.
            t.run(ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
        for dev in ("mb-c", "mb-s"):
            t.run(t.middlebox, "ethtool", "-K", dev, "gro", "off")
        for ns, dev in ((t.client, "c-m"), (t.middlebox, "mb-c"), (t.middlebox, "mb-s"), (t.server, "s-m")):
            _ip("-n", ns, "link", "set", dev, "up")
        for ns in (t.client, t.middlebox, t.server):
            # Buffers that can hold megabytes behind a hole: the receiver's out-of-order queue and
            # the sender's unacknowledged data (per namespace since Linux 4.15).
            t.run(ns, "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 4194304 33554432")
            t.run(ns, "sysctl", "-qw", "net.ipv4.tcp_wmem=4096 4194304 33554432")
        yield t
