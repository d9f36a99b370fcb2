"""Real parts for the capture tests: sshd on loopback, a second host in a network namespace, TLS.

Everything lives in a private directory (mode 0755 so that the unprivileged test user's sshd
session can read its authorized_keys) and is torn down by the fixtures. Each xdist worker gets its
own sshd, namespace and addresses.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.tools import require, require_root

REPO = Path(__file__).resolve().parents[2]
TEST_USER = "capdbgtest"
SSHD = "/usr/sbin/sshd"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0, netns: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port}")


@dataclass
class Sshd:
    """One running sshd and the ssh client config that reaches it as ``alias``."""

    alias: str
    address: str
    port: int
    proc: subprocess.Popen[bytes]
    config_dir: Path

    def session_children(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]


@dataclass
class SshWorld:
    """Keys, the ssh client config, and the sshd instances it knows."""

    root: Path
    host_key: Path
    user_key: Path
    ssh_config: Path
    known_hosts: Path
    hosts: dict[str, Sshd] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_sshd(self, alias: str, address: str, port: int, netns: str | None = None) -> Sshd:
        cfg = self.root / f"sshd_{alias}.conf"
        cfg.write_text(
            f"Port {port}\nListenAddress {address}\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\nPidFile {self.root / f'sshd_{alias}.pid'}\n"
            "StrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        argv = [SSHD, "-D", "-e", "-f", str(cfg)]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.procs.append(proc)
        if netns is None:
            wait_port(address, port)
        else:
            _wait_port_netns(netns, address, port)
        with self.ssh_config.open("a") as f:
            f.write(f"\nHost {alias}\n  HostName {address}\n  Port {port}\n  HostKeyAlias capdbg-test-host\n")
        sshd = Sshd(alias, address, port, proc, self.root)
        self.hosts[alias] = sshd
        return sshd

    def stop(self, sshd: Sshd) -> None:
        sshd.proc.terminate()
        sshd.proc.wait(timeout=5)


def _wait_port_netns(netns: str, address: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd in {netns} does not listen on {address}:{port}")


def _ensure_test_user() -> None:
    """A non-root user without any sudoers entry (sudo -n must refuse it)."""
    if subprocess.run(["id", TEST_USER], capture_output=True, check=False).returncode == 0:
        return
    subprocess.run(
        ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", TEST_USER], capture_output=True, check=False
    )
    # useradd leaves the password field "!" (locked); sshd without PAM refuses locked accounts.
    # "*" means "no password can match" without locking key-based logins.
    subprocess.run(["usermod", "-p", "*", TEST_USER], capture_output=True, check=True)


@pytest.fixture(scope="session")
def ssh_world() -> Iterator[SshWorld]:
    require_root()
    require("sshd", "ssh", "ssh-keygen", "tcpdump")
    root = Path(tempfile.mkdtemp(prefix="capdbg-ssh-"))
    root.chmod(0o755)
    host_key, user_key = root / "host_ed25519", root / "user_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "authorized_keys").write_text((root / "user_ed25519.pub").read_text())
    (root / "authorized_keys").chmod(0o644)
    known = root / "known_hosts"
    known.write_text("capdbg-test-host " + (root / "host_ed25519.pub").read_text())
    config = root / "ssh_config"
    config.write_text(
        f"Host *\n  IdentityFile {user_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n"
        "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  User root\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    _ensure_test_user()
    world = SshWorld(root, host_key, user_key, config, known)
    try:
        yield world
    finally:
        for proc in world.procs:
            proc.terminate()
        for proc in world.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def lo_host(ssh_world: SshWorld) -> Sshd:
    """sshd on 127.0.0.1, reached as ``lo-host``."""
    return ssh_world.start_sshd("lo-host", "127.0.0.1", free_port())


@dataclass
class Netns:
    name: str
    host_addr: str
    ns_addr: str


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    """A network namespace joined to this one by a veth pair on a private /30."""
    require_root()
    require("ip")
    tag = secrets.token_hex(3)
    name = f"capdbg-{tag}"
    a, b = f"cdv{tag}a", f"cdv{tag}b"
    # 169.254.0.0/16 is link-local: nothing outside this veth pair routes it.
    third = 1 + int(tag[:2], 16) % 250
    host_addr, ns_addr = f"169.254.{third}.1", f"169.254.{third}.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", name)
    try:
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        ip("link", "set", b, "netns", name)
        ip("addr", "add", f"{host_addr}/30", "dev", a)
        ip("link", "set", a, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{ns_addr}/30", "dev", b)
        ip("netns", "exec", name, "ip", "link", "set", b, "up")
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield Netns(name, host_addr, ns_addr)
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def ns_host(ssh_world: SshWorld, netns: Netns) -> Sshd:
    """sshd inside the namespace, reached as ``ns-host`` across the veth pair."""
    return ssh_world.start_sshd("ns-host", netns.ns_addr, 22, netns=netns.name)


# -- TLS traffic ---------------------------------------------------------------------------


@dataclass
class Cert:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    require("openssl")
    d = tmp_path_factory.mktemp("cert")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=capdbg.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    return Cert(cert, key)


class TlsEchoServer:
    """A Python ssl server on a thread: reads up to 64 KiB per connection and echoes it back."""

    def __init__(self, cert: Cert, host: str = "127.0.0.1") -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert, cert.key)
        self.sock = socket.create_server((host, 0))
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    data = tls.recv(65536)
                    if data:
                        tls.sendall(data)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


def tls_roundtrip(
    host: str, port: int, payload: bytes = b"hello capdebug", keylog: Path | None = None
) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if keylog is not None:
        ctx.keylog_filename = str(keylog)
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(payload)
        return tls.recv(65536)


@pytest.fixture
def tls_server(tls_cert: Cert) -> Iterator[TlsEchoServer]:
    server = TlsEchoServer(tls_cert)
    yield server
    server.close()


def keep_sending(
    host: str, port: int, stop: threading.Event, every: float = 0.1, payload: bytes = b"hello capdebug\n"
) -> threading.Thread:
    """Background TLS round trips until ``stop`` is set (the server must answer each one:
    an echo server, or ``openssl s_server -rev``, which answers each line)."""

    def run() -> None:
        while not stop.is_set():
            try:
                tls_roundtrip(host, port, payload)
            except OSError:
                pass
            stop.wait(every)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# -- running the CLI -----------------------------------------------------------------------


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.capture.cli_main", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SSH_CONNECTION", None)
    return env


def tshark_count(path: Path | str, display_filter: str, *extra: str) -> int:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), *extra, "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return len(out.stdout.split())


def tcpdump_alive(marker: str, netns: str | None = None) -> list[str]:
    """tcpdump processes whose command line carries ``marker`` (the wrapper's, which names the
    filter before "tcpdump -i", does not match)."""
    out = subprocess.run(
        ["pgrep", "-af", f"tcpdump -i .*{marker}"], capture_output=True, text=True, check=False
    )
    return [ln for ln in out.stdout.splitlines() if "pgrep" not in ln]


def interrupt_capture(args: list[str], out: Path, port: int, min_size: int) -> tuple[int, str, str]:
    """Run ``capdebug capture ARGS -o OUT`` in a subprocess while TLS round trips go to
    127.0.0.1:PORT; once ``out`` holds ``min_size`` bytes, check that a tcpdump filtering on the
    port runs and interrupt the command like Ctrl-C. Returns (exit code, stdout, stderr)."""
    proc = subprocess.Popen(
        cli_argv("capture", *args, "-o", str(out)),
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stop = threading.Event()
    keep_sending("127.0.0.1", port, stop)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < min_size):
            time.sleep(0.05)
        assert tcpdump_alive(f"tcp port {port}"), "tcpdump should be running during the capture"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr
