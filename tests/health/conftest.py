"""The three-namespace topology of tests/correlate (client, router, server; nftables in the
router) serves the TCP health tests too."""

from tests.correlate.conftest import topo

__all__ = ["topo"]
