"""The three-namespace topology (client, middlebox, server) of tests/correlate."""

from tests.correlate.conftest import topo

__all__ = ["topo"]
