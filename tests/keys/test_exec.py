"""``capdebug capture --exec``: capture while one command runs, embed exactly its secrets."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.capture.conftest import TEST_USER, Sshd, SshWorld, tls_roundtrip
from tests.tools import require, require_root

from .servers import RESPONSE, tls_server


def _capture(*args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
    return subprocess.run(
        ["capdebug", "capture", *args], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def _keys_check(capture: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        ["capdebug", "keys", "check", str(capture), "--json"], capture_output=True, text=True, check=False
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_exec_embeds_exactly_the_commands_secrets(tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark", "curl", "openssl")
    out = tmp_path / "exec.pcapng"
    other_keys = tmp_path / "other.log"
    stop = threading.Event()
    with tls_server(tmp_path) as server:
        # Another program talks to the same server during the capture, with its own key log:
        # its connection is captured, but its secrets are not the command's and must not be in.
        def other() -> None:
            while not stop.is_set():
                try:
                    tls_roundtrip("127.0.0.1", server.port, b"x", keylog=other_keys)
                except OSError:
                    pass
                stop.wait(0.3)

        t = threading.Thread(target=other, daemon=True)
        t.start()
        try:
            cmd = (
                f"curl -sk https://127.0.0.1:{server.port}/ -o /dev/null && "
                f"openssl s_client -connect 127.0.0.1:{server.port} -quiet </dev/null >/dev/null 2>&1"
            )
            temp = tmp_path / "temp"
            temp.mkdir()
            result = _capture(
                "-i", "lo", "--port", str(server.port), "--exec", cmd, "-o", str(out), tmpdir=temp
            )  # fmt: skip
        finally:
            stop.set()
            t.join(5)
    assert result.returncode == 0, result.stderr
    assert "2 TLS session(s) logged" in result.stderr
    conns = _keys_check(out)
    ours = [c for c in conns if c["status"] == "ok"]
    theirs = [c for c in conns if c["status"] == "no_keys"]
    assert len(ours) == 2 and theirs, conns
    assert all(c["client_random"] not in other_keys.read_text() for c in ours)
    events = [
        json.loads(line)
        for line in subprocess.run(
            ["capdebug", "decrypt", str(out), "--json"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    ]
    ours_conns = {c["conn"] for c in ours}
    mine = [e for e in events if e.get("conn") in ours_conns]
    assert [e for e in mine if e["event"] == "undecryptable"] == []
    assert [e["length"] for e in mine if e["event"] == "app_data" and e["from"] == "server"] == [
        len(RESPONSE)
    ] * 2
    # tshark reads the embedded secrets with no key-log option.
    types = subprocess.run(
        ["tshark", "-n", "-r", str(out), "-Y", "tls", "-T", "fields", "-e", "tls.handshake.type"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "8" in types.replace(",", " ").split()
    # The temporary key log (a secret) was made in TMPDIR and is gone.
    assert f"logged to {temp}/capdebug-exec-" in result.stderr
    assert list(temp.iterdir()) == []


def test_exec_key_log_is_removed_when_the_capture_fails(tmp_path: Path) -> None:
    require_root()
    require("tcpdump")
    result = _capture(
        "-i", "nosuchif0", "--exec", "true", "-o", str(tmp_path / "x.pcapng"), tmpdir=tmp_path
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("capdebug-exec-")] == []


def test_exec_with_two_hosts_is_refused(tmp_path: Path) -> None:
    result = _capture("--remote", "a", "--remote", "b", "--exec", "true", "-o", str(tmp_path / "x.pcapng"))
    assert result.returncode == 2
    assert "--exec runs one command on one host" in result.stderr


@pytest.mark.slow
def test_remote_exec_builds_the_shim_there_and_embeds_its_keys(
    ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path
) -> None:
    require("openssl", "tshark")
    out = tmp_path / "remote.pcapng"
    with tls_server(tmp_path) as server:
        cmd = f"openssl s_client -connect 127.0.0.1:{server.port} -quiet </dev/null >/dev/null 2>&1"
        result = _capture(
            "--remote", "lo-host", "--ssh-config", str(ssh_world.ssh_config), "-i", "lo",
            "--port", str(server.port), "--exec", cmd, "-o", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    conns = _keys_check(out)
    assert [c["status"] for c in conns] == ["ok"], conns
    assert "key log embedded" in result.stdout and "5 lines for 1 of 1 TLS sessions" in result.stdout
    # The key log made on the host for the command (a secret) was removed afterwards.
    assert list(Path("/tmp").glob("capdebug-exec-*.keylog")) == []


@pytest.mark.slow
def test_remote_exec_says_why_the_shim_cannot_run_before_capturing(
    ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path
) -> None:
    """The unprivileged test user's home is /nonexistent: the shim cannot be built there, and
    that is said before tcpdump (which that user could not run either) is started."""
    out = tmp_path / "never.pcapng"
    result = _capture(
        "--remote", f"{TEST_USER}@lo-host", "--ssh-config", str(ssh_world.ssh_config), "-i", "lo",
        "--exec", "true", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith(f"capdebug: error: {TEST_USER}@lo-host: the key-log shim cannot be built there")
    assert "cache directory cannot be created" in line and "sudo" not in line
    assert "\n" not in line
    assert not out.exists()
