"""Programs the key tests build from source with the distribution's compilers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tools import require

PROGS = Path(__file__).parent / "progs"


def psql_binary() -> str:
    """The real psql ELF (Debian's /usr/bin/psql is a Perl wrapper that picks a version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    if not found:
        msg = "needs psql (postgresql-client)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return str(found[-1])


@pytest.fixture(scope="session")
def static_openssl_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TLS client linked with ``gcc -static`` against libssl.a (libssl-dev)."""
    require("gcc")
    out = tmp_path_factory.mktemp("static") / "static_client"
    subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(out), str(PROGS / "static_client.c"), "-lssl", "-lcrypto",
         "-lpthread"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crypto/tls client built by Debian's golang (golang-go)."""
    require("go")
    work = tmp_path_factory.mktemp("go")
    shutil.copy(PROGS / "go_client.go", work / "main.go")
    env = {
        **os.environ,
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "path"),
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    out = work / "go_client"
    subprocess.run(
        ["go", "build", "-o", str(out), "main.go"], cwd=work, env=env, check=True, capture_output=True,
        timeout=300,
    )  # fmt: skip
    return out


# The remote --exec test reuses the capture tests' real sshd on loopback (same fixtures).
from tests.capture.conftest import lo_host, ssh_world  # noqa: E402, F401
