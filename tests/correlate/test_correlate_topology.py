"""``capdebug correlate`` on captures of real topologies: client, middlebox and server namespaces
(see conftest.py), real tcpdump on the client's and the server's links, real TLS peers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.correlate.conftest import Topology, correlate_json

pytestmark = [pytest.mark.slow, pytest.mark.tools]


def _codes(doc: dict[str, Any]) -> list[tuple[str, tuple[str, str], str | None]]:
    return [
        (v["code"], tuple(v["between"]), v["by"]) for c in doc["connections"] for v in c["verdicts"]
    ]


def test_nat_pass_through_matches_by_client_random(topo: Topology) -> None:
    topo.nat()
    c_pcap, s_pcap, keys, status = topo.traffic("nat", "--send", "3000")
    assert status == {"handshake": True, "received": 3000, "error": None}
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    print(doc)
    assert rc == 0
    (conn,) = doc["connections"]
    assert conn["match"] == "client_random"
