"""The three-namespace topology of tests/correlate (client, router, server) carries the real
VXLAN overlay of test_vxlan_real.py."""

from tests.correlate.conftest import topo

__all__ = ["topo"]
