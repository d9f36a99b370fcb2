"""Access to the real external tools the tests drive.

Outside CI a missing tool skips the test with a reason; in CI (``CI=true``) it is a failure,
so that a green CI never hides a test that did not run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if not missing:
        return
    msg = f"needs {', '.join(missing)} (run `make system-deps`)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("needs root (tcpdump, network namespaces)")
    pytest.skip("needs root")
