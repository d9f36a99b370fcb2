"""Remote captures through a real sshd on loopback and a second sshd in a network namespace."""

from __future__ import annotations

import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from capdebug.capture.command import TcpdumpOptions
from capdebug.capture.runner import fetch_keylog, list_interfaces, run_capture
from capdebug.capture.transport import SshTransport, parse_remote
from capdebug.cli.capture import register
from capdebug.errors import CaptureError
from capdebug.pcap.model import Packet
from capdebug.pcap.open import open_capture
from tests.capture.conftest import (
    REPO,
    TEST_USER,
    Cert,
    Netns,
    Sshd,
    SshWorld,
    TlsEchoServer,
    cli_argv,
    cli_env,
    free_port,
    interrupt_capture,
    keep_sending,
    tcpdump_alive,
    tshark_count,
)
from tests.tools import require

pytestmark = [pytest.mark.tools, pytest.mark.slow]


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _ssh(world: SshWorld, spec: str) -> SshTransport:
    return parse_remote(spec, config_file=str(world.ssh_config), env={})


def _read(path: Path | str) -> tuple[list[Packet], list[str | None]]:
    with open_capture(path) as reader:
        pkts = [p for p in reader if isinstance(p, Packet)]
        return pkts, [i.description for i in reader.interfaces]


def _wait_no_tcpdump(marker: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (alive := tcpdump_alive(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def test_remote_capture_by_count(
    ssh_world: SshWorld, lo_host: Sshd, tls_server: TlsEchoServer, tmp_path: Path
) -> None:
    require("tshark", "capinfos")
    out = tmp_path / "remote.pcapng"
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop)
    try:
        result = CliRunner().invoke(
            _app(),
            ["capture", "--remote", "lo-host", "--ssh-config", str(ssh_world.ssh_config), "-i", "lo",
             "--port", str(tls_server.port), "--count", "10", "--duration", "20s", "-o", str(out)],
        )  # fmt: skip
    finally:
        stop.set()
    assert result.exit_code == 0, result.output
    assert "lo-host: 10 packets" in result.output and "dropped by kernel: 0" in result.output
    assert subprocess.run(["capinfos", str(out)], capture_output=True, check=False).returncode == 0
    assert tshark_count(out, f"tcp.port == {tls_server.port}") == 10
    assert not _wait_no_tcpdump(f"tcp port {tls_server.port}")


def test_capture_excludes_its_own_ssh_connection(ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path) -> None:
    """Capturing sshd's port over that very sshd: without the exclusion every packet sent home
    would be captured again (a feedback loop); with it, nothing of this connection appears."""
    out = tmp_path / "self.pcapng"
    result = run_capture(
        [_ssh(ssh_world, "lo-host")],
        TcpdumpOptions(interface="lo", ports=(lo_host.port,)),
        str(out),
        duration_s=1.5,
    )
    result.raise_for_errors()
    assert result.hosts[0].packets == 0


def test_remote_sigint_leaves_no_tcpdump(ssh_world: SshWorld, lo_host: Sshd, tls_server: TlsEchoServer,
                                         tmp_path: Path) -> None:  # fmt: skip
    require("capinfos")
    out = tmp_path / "sigint.pcapng"
    marker = f"tcp port {tls_server.port}"
    args = ["--remote", "lo-host", "--ssh-config", str(ssh_world.ssh_config), "-i", "lo", "--filter", marker]
    rc, stdout, stderr = interrupt_capture(args, out, tls_server.port, 3000)
    assert rc == 0, stderr
    assert "stopped by signal" in stdout
    assert subprocess.run(["capinfos", str(out)], capture_output=True, check=False).returncode == 0
    assert not _wait_no_tcpdump(marker)


def test_two_hosts_merge(ssh_world: SshWorld, lo_host: Sshd, ns_host: Sshd, netns: Netns, tls_cert: Cert,
                         tmp_path: Path) -> None:  # fmt: skip
    """Client side (this namespace, via lo-host) and server side (ns-host) of the same TLS
    connections across a veth pair: per-host files plus one merged file, two interfaces."""
    require("openssl", "tshark")
    port = 4433
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, "openssl", "s_server", "-quiet", "-rev",
         "-accept", f"{netns.ns_addr}:{port}", "-cert", str(tls_cert.cert), "-key", str(tls_cert.key)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out = tmp_path / "both.pcapng"
    stop = threading.Event()
    try:
        time.sleep(0.3)
        keep_sending(netns.ns_addr, port, stop, every=0.15)
        result = run_capture(
            [_ssh(ssh_world, "lo-host"), _ssh(ssh_world, "ns-host")],
            TcpdumpOptions(interface="any", ports=(port,)),
            str(out),
            duration_s=6,  # generous: under load ssh and remote tcpdump take seconds to start
        )
    finally:
        stop.set()
        server.terminate()
        server.wait()
    result.raise_for_errors()
    assert result.output == str(out)
    by_label = {h.label: h for h in result.hosts}
    assert set(by_label) == {"lo-host", "ns-host"}
    assert all(h.packets > 5 for h in result.hosts)
    for h in result.hosts:
        assert h.path is not None and Path(h.path).exists() and h.path != str(out)
        pkts, descs = _read(h.path)
        assert len(pkts) == h.packets and descs == [h.label]
    merged, descs = _read(out)
    assert sorted(d or "" for d in descs) == ["lo-host", "ns-host"]
    assert len(merged) == sum(h.packets for h in result.hosts)
    ts = [p.ts_ns for p in merged]
    assert ts == sorted(ts)
    assert {p.interface for p in merged} == {0, 1}
    assert tshark_count(out, "tls.handshake.type == 1", "-d", f"tcp.port=={port},tls") >= 4
    assert not _wait_no_tcpdump(f"tcp port {port}")


def test_dropped_connection_keeps_what_arrived(
    ssh_world: SshWorld, tls_server: TlsEchoServer, tmp_path: Path
) -> None:
    require("capinfos")
    sshd = ssh_world.start_sshd("drop-host", "127.0.0.1", free_port())
    out = tmp_path / "drop.pcapng"
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop, every=0.05)
    box: dict[str, object] = {}

    def run() -> None:
        box["result"] = run_capture(
            [_ssh(ssh_world, "drop-host")],
            TcpdumpOptions(interface="lo", ports=(tls_server.port,)),
            str(out),
            duration_s=30,
        )

    t = threading.Thread(target=run)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 3000):
            time.sleep(0.05)
        children = sshd.session_children()
        assert children
        for pid in children:
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
        t.join(timeout=15)
        assert not t.is_alive(), "the capture must end when the connection drops"
    finally:
        stop.set()
        ssh_world.stop(sshd)
    result = box["result"]
    (error,) = result.errors  # type: ignore[attr-defined]
    assert "ssh connection to drop-host dropped" in error and "kept the" in error
    assert subprocess.run(["capinfos", str(out)], capture_output=True, check=False).returncode == 0
    pkts, _ = _read(out)
    assert len(pkts) == result.hosts[0].packets > 0  # type: ignore[attr-defined]
    assert not _wait_no_tcpdump(f"tcp port {tls_server.port}")


def test_sudo_needs_password(ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path) -> None:
    require("sudo")
    result = CliRunner().invoke(
        _app(),
        ["capture", "--remote", f"{TEST_USER}@lo-host", "--ssh-config", str(ssh_world.ssh_config), "-i", "lo",
         "--duration", "10s", "-o", str(tmp_path / "o.pcapng")],
    )  # fmt: skip
    assert isinstance(result.exception, CaptureError)
    assert f"on {TEST_USER}@lo-host, sudo needs a password to run tcpdump" in str(result.exception)
    assert not (tmp_path / "o.pcapng").exists()


def test_missing_remote_tcpdump(ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = CliRunner().invoke(
        _app(),
        ["capture", "--remote", "lo-host", "--ssh-config", str(ssh_world.ssh_config),
         "--tcpdump-path", "/nonexistent/tcpdump", "--duration", "10s", "-o", str(tmp_path / "o.pcapng")],
    )  # fmt: skip
    assert time.monotonic() - t0 < 8
    assert isinstance(result.exception, CaptureError)
    assert "tcpdump is not installed on lo-host" in str(result.exception)


@pytest.mark.parametrize("field", ["interface", "filter", "tcpdump_path"])
def test_remote_injection_creates_nothing(
    ssh_world: SshWorld, lo_host: Sshd, field: str, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"
    for evil in (f"'; touch {target}; '", f"$(touch {target})", f"`touch {target}`"):
        opts = TcpdumpOptions(**{"interface": "lo", field: evil})  # type: ignore[arg-type]
        result = run_capture([_ssh(ssh_world, "lo-host")], opts, str(tmp_path / "o.pcapng"), duration_s=5)
        assert result.errors
    assert not target.exists()


def test_remote_keylog(ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path) -> None:
    keylog = tmp_path / "k y.log"
    keylog.write_text("CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    got = fetch_keylog(f"lo-host:{keylog}", ssh_for=lambda h: _ssh(ssh_world, h))
    assert got == keylog.read_text()
    target = tmp_path / "pwned"
    with pytest.raises(CaptureError, match="not found on lo-host"):
        fetch_keylog(f"lo-host:{tmp_path}/missing'; touch {target}; '", ssh_for=lambda h: _ssh(ssh_world, h))
    assert not target.exists()


def test_remote_interfaces(ssh_world: SshWorld, lo_host: Sshd, ns_host: Sshd, netns: Netns) -> None:
    names = {i.name for i in list_interfaces(_ssh(ssh_world, "ns-host"))}
    assert "lo" in names and any(n.startswith("cdv") for n in names)
    result = CliRunner().invoke(
        _app(), ["interfaces", "--remote", "lo-host", "--ssh-config", str(ssh_world.ssh_config)]
    )
    assert result.exit_code == 0, result.output
    assert any(line.split()[0] == "lo" for line in result.output.splitlines())


def test_auth_refused_and_host_key_mismatch(ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(CaptureError, match="authentication to capdbg-nobody@lo-host was refused"):
        list_interfaces(parse_remote("capdbg-nobody@lo-host", config_file=str(ssh_world.ssh_config), env={}))
    wrong_known = tmp_path / "known"
    wrong_known.write_text("capdbg-test-host " + (tmp_path / "other_key.pub").read_text())
    with pytest.raises(CaptureError, match="does not match known_hosts"):
        list_interfaces(parse_remote("lo-host", config_file=str(ssh_world.ssh_config),
                                     options=[f"UserKnownHostsFile={wrong_known}"], env={}))  # fmt: skip


def test_unreachable_host(ssh_world: SshWorld) -> None:
    t0 = time.monotonic()
    with pytest.raises(CaptureError, match="unreachable"):
        list_interfaces(
            parse_remote(f"127.0.0.1:{free_port()}", config_file=str(ssh_world.ssh_config), env={})
        )
    assert time.monotonic() - t0 < 10


def test_remote_filter_starting_with_a_dash_is_an_expression(
    ssh_world: SshWorld, lo_host: Sshd, tmp_path: Path
) -> None:
    """tcpdump would take "-w/path" as its -w option and write there; after "--" it is a (bad)
    filter expression that tcpdump rejects."""
    target = tmp_path / "written-by-tcpdump"
    t0 = time.monotonic()
    result = run_capture(
        [_ssh(ssh_world, "lo-host")],
        TcpdumpOptions(interface="lo", filter=f"-w{target}"),
        str(tmp_path / "o.pcapng"),
        duration_s=10,
    )
    assert time.monotonic() - t0 < 8
    (error,) = result.errors
    assert "rejected the filter" in error, error
    time.sleep(0.2)
    assert not target.exists()


def test_a_failing_host_is_reported_at_once_and_the_key_log_still_embedded(
    ssh_world: SshWorld, lo_host: Sshd, tls_server: TlsEchoServer, tmp_path: Path
) -> None:
    """lo-host captures; capdbgtest@lo-host fails at once (sudo wants a password): that is said
    while the capture goes on, and at the end the key log is embedded into the merged file."""
    out, keylog = tmp_path / "two.pcapng", tmp_path / "keys.log"
    keylog.write_text("CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    duration = 12.0
    proc = subprocess.Popen(
        cli_argv("capture", "--remote", "lo-host", "--remote", f"{TEST_USER}@lo-host",
                 "--ssh-config", str(ssh_world.ssh_config), "-i", "lo", "--port", str(tls_server.port),
                 "--duration", f"{duration}s", "--keylog", str(keylog), "--all-keys", "-o", str(out)),
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    t0 = time.monotonic()
    seen: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append((time.monotonic() - t0, line))

    reader = threading.Thread(target=read)
    reader.start()
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop)
    try:
        assert proc.stdout is not None  # not communicate(): it would read stderr too
        stdout = proc.stdout.read()
        proc.wait(timeout=30)
    finally:
        stop.set()
        reader.join(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    stderr = "".join(line for _, line in seen)
    failed = [(t, line) for t, line in seen if "sudo needs a password" in line]
    assert failed, stderr
    assert failed[0][0] < duration - 4, f"reported after {failed[0][0]:.1f} s, not at once"
    assert "capturing on the other hosts" in failed[0][1]
    assert proc.returncode != 0  # the failure still counts
    assert "key log embedded into" in stdout, stdout + stderr
    with open_capture(out) as reader_:
        items = list(reader_)
    assert any(not isinstance(i, Packet) for i in items)  # a Decryption Secrets Block
    assert sum(isinstance(i, Packet) for i in items) > 0
    for path in (out, tmp_path / "two.lo-host.pcapng"):  # merged and per-host files hold secrets
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_killed_ssh_client_is_a_dropped_connection(
    ssh_world: SshWorld, lo_host: Sshd, tls_server: TlsEchoServer, tmp_path: Path
) -> None:
    out = tmp_path / "killed.pcapng"
    box: dict[str, object] = {}
    stop = threading.Event()
    keep_sending("127.0.0.1", tls_server.port, stop, every=0.05)

    def run() -> None:
        box["result"] = run_capture(
            [_ssh(ssh_world, "lo-host")],
            TcpdumpOptions(interface="lo", ports=(tls_server.port,)),
            str(out),
            duration_s=30,
        )

    t = threading.Thread(target=run)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 2000):
            time.sleep(0.05)
        found = subprocess.run(
            ["pgrep", "-f", f"^ssh .*{ssh_world.ssh_config}.*capdebug-capture"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        pids = found.stdout.split()
        assert len(pids) == 1, found
        subprocess.run(["kill", "-KILL", pids[0]], check=True)
        t.join(timeout=15)
        assert not t.is_alive()
    finally:
        stop.set()
    (error,) = box["result"].errors  # type: ignore[attr-defined]
    assert error.startswith(
        "the ssh connection to lo-host dropped (the local ssh process was killed by SIGKILL)"
    )
    assert "exit status" not in error and "kept the" in error
    assert not _wait_no_tcpdump(f"tcp port {tls_server.port}", timeout=10)
