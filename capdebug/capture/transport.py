"""Where a command runs: on this machine, or on a remote host through the system OpenSSH client.

Using ``ssh`` itself (not a Python SSH library) means ``~/.ssh/config``, agents, ProxyJump and
known_hosts behave as the user expects. It always runs with ``BatchMode=yes`` so that it fails
instead of prompting (a prompt nobody sees is a hang), and with keepalives so that a dead
connection is noticed within seconds.

ssh exits 255 on its own failures and with the remote command's status otherwise; its messages
and the remote command's standard error share one stream, which :func:`classify_failure` turns
into one actionable line.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import CaptureError, UsageError
from .command import remote_command_line

__all__ = [
    "SSH_EXIT_ERROR",
    "LocalTransport",
    "SshTransport",
    "Transport",
    "classify_failure",
    "parse_remote",
    "run_checked",
    "run_command",
    "start_command",
]

#: ssh's own exit status for its failures (connection, authentication, host key).
SSH_EXIT_ERROR = 255

#: Extra ssh arguments from the environment, split like a shell would (e.g. ``-F cfg -i key``).
SSH_OPTS_ENV = "CAPDEBUG_SSH_OPTS"

_DEFAULT_SSH_OPTIONS = (
    "BatchMode=yes",
    "ConnectTimeout=10",
    "ServerAliveInterval=5",
    "ServerAliveCountMax=3",
    "LogLevel=ERROR",
)


@dataclass(frozen=True, slots=True)
class LocalTransport:
    """Runs commands on this machine."""

    label: str = "local"
    """How summaries, errors and the merged file's ``if_description`` name this host."""
    sudo: bool = False
    """Prefix ``sudo -n`` when not root. Off locally: run capdebug as root or give tcpdump
    CAP_NET_RAW."""

    def argv(self, command: Sequence[str]) -> list[str]:
        return list(command)


@dataclass(frozen=True, slots=True)
class SshTransport:
    """Runs commands on ``destination`` through ``ssh``."""

    destination: str
    """``[user@]host`` as ssh takes it."""
    port: int | None = None
    config_file: str | None = None
    """``ssh -F``."""
    options: tuple[str, ...] = ()
    """``ssh -o`` values, after capdebug's defaults (ssh keeps the first value it sees for an
    option, so the user's come first on the command line)."""
    extra_args: tuple[str, ...] = ()
    """Raw ssh arguments (from ``CAPDEBUG_SSH_OPTS``)."""
    ssh_path: str = "ssh"
    sudo: bool = True

    @property
    def label(self) -> str:
        return self.destination if self.port is None else f"{self.destination}:{self.port}"

    def ssh_argv(self) -> list[str]:
        argv = [self.ssh_path, "-T"]
        if self.config_file is not None:
            argv += ["-F", self.config_file]
        argv += list(self.extra_args)
        for opt in self.options:
            argv += ["-o", opt]
        for opt in _DEFAULT_SSH_OPTIONS:
            argv += ["-o", opt]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        return argv

    def argv(self, command: Sequence[str]) -> list[str]:
        # "--" ends ssh's options, and parse_remote refuses a destination starting with "-":
        # a host name must never be read as an option such as -oProxyCommand=...
        return [*self.ssh_argv(), "--", self.destination, remote_command_line(command)]


Transport = LocalTransport | SshTransport


_REMOTE_RE = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.%]+)\]|(?P<host>[^:\s\[\]]+))(?::(?P<port>\d+))?$"
)


def parse_remote(
    spec: str,
    *,
    config_file: str | None = None,
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> SshTransport:
    """``[user@]host[:port]`` (IPv6 as ``[addr]:port``) -> :class:`SshTransport`."""
    m = _REMOTE_RE.match(spec)
    host = None if m is None else (m.group("v6") or m.group("host"))
    if m is None or host is None or host.startswith("-") or (m.group("user") or "").startswith("-"):
        raise UsageError(f"--remote {spec!r}: expected [user@]host[:port]")
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"--remote {spec!r}: port out of range")
    dest = host if m.group("user") is None else f"{m.group('user')}@{host}"
    environ = os.environ if env is None else env
    extra = tuple(shlex.split(environ.get(SSH_OPTS_ENV, "")))
    return SshTransport(dest, port=port, config_file=config_file, options=tuple(options), extra_args=extra)


# (pattern in the combined stderr, message); first match wins. ssh's own messages only count
# when ssh failed (exit 255), the remote ones whatever the status.
_SSH_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed"),
        "the host key of {host} does not match known_hosts (possible man-in-the-middle): "
        "check the key, then fix the known_hosts entry",
    ),
    (
        re.compile(r"No \S+ host key is known|Host key verification failed"),
        "the host key of {host} is not known: connect once with `ssh {host}` to verify and record it",
    ),
    (
        re.compile(r"Permission denied \(|Too many authentication failures"),
        "ssh authentication to {host} was refused: check the user name and that your key "
        "(or agent) is accepted; capdebug never prompts for a password",
    ),
    (
        re.compile(r"Could not resolve hostname|Name or service not known"),
        "cannot resolve host {host}: check the name",
    ),
    (
        re.compile(
            r"Connection refused|Connection timed out|No route to host|Network is unreachable|"
            r"Operation timed out|connect to host"
        ),
        "host {host} is unreachable over ssh ({detail}): check the host, the port and that sshd runs",
    ),
    (
        re.compile(
            r"closed by remote host|Connection reset|Broken pipe|Timeout, server .* not responding|"
            r"Connection closed by|client_loop"
        ),
        "the ssh connection to {host} dropped ({detail})",
    ),
)

_REMOTE_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"a password is required|a terminal is required"),
        "on {host}, sudo needs a password to run tcpdump: log in as root, or allow it without "
        "one (sudoers: `USER ALL=(root) NOPASSWD: /usr/bin/tcpdump`)",
    ),
    (
        re.compile(r"not root and sudo is not installed"),
        "on {host}, the user is not root and sudo is not installed: log in as root",
    ),
    (
        re.compile(r"is not in the sudoers file|is not allowed to execute|may not run sudo"),
        "on {host}, sudo refuses to run tcpdump for this user: add a sudoers rule or log in as root",
    ),
    (
        re.compile(
            r"(?:^|: )(\S*tcpdump\S*): (?:command )?not found|tcpdump: No such file|"
            r"(\S*tcpdump\S*): No such file or directory|command not found"
        ),
        "tcpdump is not installed on {host} (or not at the given path): install it "
        "(e.g. apt-get install tcpdump) or pass --tcpdump-path",
    ),
    (
        re.compile(
            r"You don't have permission|Operation not permitted|Permission denied|"
            r"socket: Operation not permitted|Permission to perform this capture denied"
        ),
        "tcpdump on {host} is not permitted to capture ({detail}): run as root, or grant it "
        "CAP_NET_RAW and CAP_NET_ADMIN",
    ),
    (
        re.compile(r"No such device exists|SIOCGIFHWADDR|That device is not up|no such device"),
        "tcpdump on {host} cannot open the interface ({detail}): list them with `capdebug interfaces`",
    ),
    (
        re.compile(r"syntax error|can't parse filter expression|illegal token|unknown host"),
        "tcpdump on {host} rejected the filter ({detail})",
    ),
)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _detail(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    # tcpdump's statistics and banner say nothing about a failure.
    lines = [ln for ln in lines if not re.match(r"^\d+ packets? |^tcpdump: listening on", ln)]
    return lines[-1] if lines else "no message"


def classify_failure(
    host: str, returncode: int, stderr: str, *, what: str = "tcpdump", over_ssh: bool = False
) -> str:
    """One line saying what went wrong on ``host`` and what to do, from ssh/tcpdump's stderr.

    ``over_ssh``: the process was the local ssh client; killed by a signal, it is the SSH
    connection that dropped, whatever ran at the other end."""
    detail = _detail(stderr)
    if returncode < 0:
        signame = _signal_name(-returncode)
        if over_ssh:
            return f"the ssh connection to {host} dropped (the local ssh process was killed by {signame})"
        return f"{what} on {host} was killed by {signame}"
    if returncode == SSH_EXIT_ERROR:
        for pattern, message in _SSH_FAILURES:
            if pattern.search(stderr):
                return message.format(host=host, detail=detail)
    for pattern, message in _REMOTE_FAILURES:
        if pattern.search(stderr):
            return message.format(host=host, detail=detail)
    if returncode == 127:
        return _REMOTE_FAILURES[3][1].format(host=host, detail=detail)
    if returncode == SSH_EXIT_ERROR:
        return f"ssh to {host} failed: {detail}"
    return f"{what} on {host} failed (exit status {returncode}): {detail}"


def run_command(
    transport: Transport, command: Sequence[str], *, timeout: float, what: str
) -> tuple[int, bytes, str]:
    """Run a short command to completion: (exit status, stdout, stderr). Never prompts, never hangs."""
    argv = transport.argv(command)
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise CaptureError(f"cannot run {argv[0]!r}: not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CaptureError(f"{what} on {transport.label} did not finish within {timeout:g} s") from exc
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def start_command(transport: Transport, command: Sequence[str], *, stderr: int) -> subprocess.Popen[bytes]:
    """Start a long-running command with pipes on stdin and stdout, in its own process group so
    that it can be killed whole. The wrapper scripts stop their child when stdin closes."""
    argv = transport.argv(command)
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, process_group=0
        )
    except FileNotFoundError as exc:
        raise CaptureError(f"cannot run {argv[0]!r}: not installed or not on PATH") from exc


def run_checked(transport: Transport, command: Sequence[str], *, timeout: float = 60.0, what: str) -> bytes:
    """Run a short command to completion; its stdout, or :class:`CaptureError` in one line."""
    rc, out, err = run_command(transport, command, timeout=timeout, what=what)
    if rc != 0:
        raise CaptureError(classify_failure(transport.label, rc, err, what=what))
    return out
