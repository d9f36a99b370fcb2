"""The key-log shim under load and beside a program's own key log."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

from capdebug.capture.keylog import SHIM_FILE_ENV, build_shim
from tests.tools import require

from .servers import tls_server

_LINE = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64}|[0-9a-f]{96})$")
_TLS13_LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
}
# Each process runs THREADS threads of ROUNDS handshakes each, all at once.
PROCESSES, THREADS, ROUNDS = 6, 8, 5
_CLIENT = """
import socket, ssl, sys, threading
port, threads, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
done = []
barrier = threading.Barrier(threads)
def work():
    barrier.wait()
    for _ in range(rounds):
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30)) as s:
            s.recv(100)
            done.append(1)
ts = [threading.Thread(target=work) for _ in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
print(len(done))
"""


def _shim_env(keylog: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    env[SHIM_FILE_ENV] = str(keylog)
    env["LD_PRELOAD"] = build_shim()
    return env


def test_many_threads_and_processes_every_line_whole_none_lost(tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    env = _shim_env(keylog)
    with tls_server(tmp_path) as server:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CLIENT, str(server.port), str(THREADS), str(ROUNDS)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        outs = [p.communicate(timeout=240)[0] for p in procs]
    sessions = PROCESSES * THREADS * ROUNDS
    assert [int(o) for o in outs] == [THREADS * ROUNDS] * PROCESSES
    assert server.handshakes == sessions
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    data = keylog.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    bad = [line for line in lines if not _LINE.match(line)]
    assert bad == []
    per_session: dict[str, Counter[str]] = {}
    for line in lines:
        label, random, _ = line.split(" ")
        per_session.setdefault(random, Counter())[label] += 1
    assert len(per_session) == sessions
    assert all(set(c) == _TLS13_LABELS and set(c.values()) == {1} for c in per_session.values())


def test_the_programs_own_key_log_still_gets_every_line(tmp_path: Path) -> None:
    """openssl s_client -keylogfile installs its own callback: the shim chains to it."""
    require("openssl")
    ours, theirs = tmp_path / "ours.log", tmp_path / "theirs.log"
    with tls_server(tmp_path) as server:
        subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-keylogfile", str(theirs)],
            env=_shim_env(ours), stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True,
        )  # fmt: skip
    their_lines = [line for line in theirs.read_text().splitlines() if not line.startswith("#")]
    assert len(their_lines) == 5
    assert sorted(their_lines) == sorted(ours.read_text().splitlines())


def test_without_the_variable_the_shim_does_nothing(tmp_path: Path) -> None:
    require("openssl")
    env = _shim_env(tmp_path / "unused.log")
    del env[SHIM_FILE_ENV]
    with tls_server(tmp_path) as server:
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-quiet"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True,
        )  # fmt: skip
    assert b"hello" in out.stdout
    assert list(tmp_path.glob("*.log")) == []


def test_shim_never_writes_through_a_symlink(tmp_path: Path) -> None:
    require("openssl")
    target = tmp_path / "victim"
    target.write_text("untouched\n")
    link = tmp_path / "k.log"
    link.symlink_to(target)
    with tls_server(tmp_path) as server:
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-quiet"],
            env=_shim_env(link), stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True,
        )  # fmt: skip
    assert b"hello" in out.stdout  # the program is unaffected
    assert target.read_text() == "untouched\n"


def test_the_program_sees_only_its_own_callback(tmp_path: Path) -> None:
    require("gcc")
    prog = tmp_path / "visibility"
    subprocess.run(
        ["gcc", "-o", str(prog), str(Path(__file__).parent / "progs" / "keylog_visibility.c"), "-lssl",
         "-lcrypto"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    out = subprocess.run([str(prog)], env=_shim_env(tmp_path / "k.log"), capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "ok\n")
