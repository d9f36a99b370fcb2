"""Build the tcpdump command line and its BPF filter (pure: no processes, no I/O).

The capture runs as ``sh -c WRAPPER capdebug-capture MODE FILTER TCPDUMP ARGV...`` on the
capturing host, locally or through ``ssh``. The wrapper (:data:`WRAPPER_SCRIPT`):

* appends to the filter an exclusion of the SSH connection that carries the capture, read from
  ``$SSH_CONNECTION`` as sshd sets it ("client_ip client_port server_ip server_port"), so the
  capture never records (and feeds back on) its own transport;
* prefixes ``sudo -n`` when MODE is ``auto`` and the user is not root (``-n``: never prompt,
  fail with "a password is required" instead);
* runs tcpdump in the background and waits on its *own* standard input: when that closes, because
  capdebug closed it to stop the capture or because the SSH connection went away, it sends
  tcpdump SIGINT. tcpdump then flushes its last packets, prints its statistics and exits, so no
  tcpdump survives the capture on the remote host whatever happens to capdebug or the network.

Every value reaches the wrapper as a positional parameter, never spliced into the script, so an
interface name, filter or path cannot inject shell syntax (see :func:`remote_command_line`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError

__all__ = [
    "DEFAULT_BUFFER_KIB",
    "DEFAULT_SNAPLEN",
    "WRAPPER_SCRIPT",
    "CaptureInterface",
    "TcpdumpOptions",
    "TcpdumpStats",
    "build_filter",
    "interfaces_argv",
    "parse_interface_list",
    "parse_tcpdump_stats",
    "remote_command_line",
    "tcpdump_argv",
    "wrapper_argv",
]

#: Keeps whole packets on every link capdebug meets, hence whole TLS records (at most
#: 2^14 + 256 bytes of ciphertext, RFC 8446 section 5.2) even inside 64 KiB loopback segments.
DEFAULT_SNAPLEN = 262144

#: Kernel capture buffer (tcpdump ``-B``, KiB). libpcap's 2 MiB default drops packets within
#: a second of a loopback bulk transfer while the reader is scheduled out. It must cover the
#: longest stall of the whole path home (tcpdump -> sshd -> ssh -> capdebug) on a busy host; on
#: loopback every packet is stored twice (outgoing and incoming copy). Measured with
#: scripts/bench_capture.py at 60 MB/s over ssh on 2 busy CPUs: 32 MiB still dropped up to ~800
#: packets in some 10 s runs, 64 MiB none.
DEFAULT_BUFFER_KIB = 65536

# POSIX sh. $1 = sudo mode (auto | none), $2 = filter given by the user (may be empty), rest =
# tcpdump argv without the filter. "--" ends tcpdump's options before the filter, so that a
# filter starting with "-" (say "-w/tmp/x") is an expression, never an option. The background
# list gets its stdin from /dev/null (POSIX rule for asynchronous lists without job control), so
# the original stdin is kept on fd 3 first. The same rule has the background list start with
# SIGINT ignored until tcpdump installs its handler: a stop that comes that early is lost, so
# the SIGINT is repeated each second until tcpdump is gone.
WRAPPER_SCRIPT = r"""mode=$1; filter=$2; shift 2
if [ -n "${SSH_CONNECTION-}" ]; then
  read -r ca cp sa sp <<EOF
$SSH_CONNECTION
EOF
  case "$ca$cp$sa$sp" in
    *[!0-9A-Fa-f:.]*|'') ;;
    *) x="not (host $ca and host $sa and tcp port $cp and tcp port $sp)"
       if [ -n "$filter" ]; then filter="($filter) and $x"; else filter=$x; fi ;;
  esac
fi
if [ -n "$filter" ]; then set -- "$@" -- "$filter"; fi
if [ "$mode" = auto ] && [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "capdebug: not root and sudo is not installed" >&2; exit 126; }
  set -- sudo -n "$@"
fi
exec 3<&0
"$@" </dev/null 3<&- &
tp=$!
{ read -r _ <&3; while kill -INT "$tp"; do sleep 1; done; } >/dev/null 2>&1 &
wp=$!
exec 3<&-
wait "$tp"; rc=$?
kill "$wp" 2>/dev/null
exit "$rc"
"""

#: $0 of the wrapper: names it in ``ps`` on the remote host.
WRAPPER_NAME = "capdebug-capture"

_PORT_MAX = 65535


@dataclass(frozen=True, slots=True)
class TcpdumpOptions:
    """What to capture, independent of where."""

    interface: str = "any"
    """``-i``; ``any`` captures on all interfaces (Linux cooked header)."""
    ports: tuple[int, ...] = ()
    """TCP ports; each becomes ``tcp port N``."""
    hosts: tuple[str, ...] = ()
    """Hosts; each becomes ``host H``."""
    filter: str | None = None
    """A BPF expression given by the user, combined with ports and hosts by ``and``."""
    snaplen: int = DEFAULT_SNAPLEN
    count: int | None = None
    """``-c``: tcpdump stops by itself after this many packets."""
    buffer_kib: int = DEFAULT_BUFFER_KIB
    tcpdump_path: str = "tcpdump"
    immediate_mode: bool = False
    """``--immediate-mode``: hand each packet over at once instead of when a kernel ring block
    fills or times out (about 1 s), so that a capture stopped right after a short conversation
    holds all of it (the scenarios need that)."""


@dataclass(frozen=True, slots=True)
class TcpdumpStats:
    """The statistics tcpdump prints on standard error when it exits."""

    captured: int | None = None
    received: int | None = None
    dropped_by_kernel: int | None = None
    dropped_by_interface: int | None = None


@dataclass(frozen=True, slots=True)
class CaptureInterface:
    """One line of ``tcpdump -D``."""

    index: int
    name: str
    description: str | None
    flags: tuple[str, ...]


_HOST_RE = re.compile(r"^[A-Za-z0-9_.:%-]+(/[0-9]{1,3})?$")


def build_filter(ports: Sequence[int], hosts: Sequence[str], user_filter: str | None) -> str:
    """The BPF expression for ``--port``, ``--host`` and ``--filter`` (empty: everything).

    Several ports (or hosts) are alternatives; the three groups must all match.
    """
    parts: list[str] = []
    for port in ports:
        if not 0 < port <= _PORT_MAX:
            raise UsageError(f"--port {port}: not a TCP port (1-65535)")
    if ports:
        parts.append(" or ".join(f"tcp port {p}" for p in ports))
    for host in hosts:
        # A host name or address only: anything else would change the meaning of the expression.
        if not _HOST_RE.match(host):
            raise UsageError(f"--host {host!r}: not a host name or address; use --filter for expressions")
    if hosts:
        parts.append(" or ".join(f"host {h}" for h in hosts))
    if user_filter is not None and user_filter.strip():
        parts.append(user_filter.strip())
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({p})" for p in parts)


def tcpdump_argv(opts: TcpdumpOptions) -> list[str]:
    """tcpdump's argv without the filter expression (the wrapper appends it).

    ``-U -w -``: write classic pcap to standard output, flushed after every packet, so that
    packets stream home as they are captured (``-U`` is ``--packet-buffered``).
    """
    if not opts.tcpdump_path:
        raise UsageError("--tcpdump-path must not be empty")
    if opts.snaplen < 0:
        raise UsageError(f"--snaplen {opts.snaplen}: must be >= 0 (0: whole packets)")
    argv = [opts.tcpdump_path, "-i", opts.interface, "-n", "-U", "-w", "-", "-s", str(opts.snaplen)]
    if opts.immediate_mode:
        argv.append("--immediate-mode")
    if opts.buffer_kib > 0:
        argv += ["-B", str(opts.buffer_kib)]
    if opts.count is not None:
        if opts.count <= 0:
            raise UsageError(f"--count {opts.count}: must be positive")
        argv += ["-c", str(opts.count)]
    return argv


def wrapper_argv(opts: TcpdumpOptions, *, sudo: bool) -> list[str]:
    """``sh -c WRAPPER ...`` as an argv list (run directly locally, quoted for ssh)."""
    flt = build_filter(opts.ports, opts.hosts, opts.filter)
    return ["sh", "-c", WRAPPER_SCRIPT, WRAPPER_NAME, "auto" if sudo else "none", flt, *tcpdump_argv(opts)]


def interfaces_argv(tcpdump_path: str = "tcpdump") -> list[str]:
    return [tcpdump_path, "-D"]


def remote_command_line(argv: Sequence[str]) -> str:
    """One shell command line for ``ssh HOST LINE`` that runs exactly ``argv``.

    ssh joins its command arguments with spaces and hands the result to the remote user's
    login shell, so each word is quoted here; no value can escape its word.
    """
    return " ".join(shlex.quote(a) for a in argv)


_STAT_RE = re.compile(
    r"^(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)$", re.M
)


def parse_tcpdump_stats(stderr: str) -> TcpdumpStats:
    """Read the closing statistics tcpdump writes to standard error."""
    found: dict[str, int] = {}
    for m in _STAT_RE.finditer(stderr):
        found[m.group(2)] = int(m.group(1))
    return TcpdumpStats(
        captured=found.get("captured"),
        received=found.get("received by filter"),
        dropped_by_kernel=found.get("dropped by kernel"),
        dropped_by_interface=found.get("dropped by interface"),
    )


_IFACE_RE = re.compile(r"^(\d+)\.(\S+)(?: \((.*?)\))?(?: \[(.*)\])?\s*$")


def parse_interface_list(text: str) -> list[CaptureInterface]:
    """Parse ``tcpdump -D``: ``2.any (Pseudo-device ...) [Up, Running]``."""
    out: list[CaptureInterface] = []
    for line in text.splitlines():
        m = _IFACE_RE.match(line.strip())
        if m is None:
            continue
        flags = tuple(f.strip() for f in m.group(4).split(",")) if m.group(4) else ()
        out.append(CaptureInterface(int(m.group(1)), m.group(2), m.group(3), flags))
    return out
