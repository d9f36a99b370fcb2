"""Run a command with TLS key logging switched on: environment, Node's flag, or our shim.

The shim (``keylog_shim.c``, shipped as package data) is compiled with the system C compiler
the first time it is needed, into a per-user cache directory created 0700, under a name that
includes a hash of its source (a new capdebug never loads an old build). It is loaded only into
the command the user named (``LD_PRELOAD`` in that command's environment, inherited by what it
starts), never system-wide.

Methods are named by string (``"env"``, ``"node-flag"``, ``"shim"``: the values of
:class:`capdebug.keys.doctor.KeylogMethod`) so that this layer does not depend on the doctor.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureError, UsageError
from .transport import SshTransport

__all__ = [
    "SHIM_FILE_ENV",
    "KeylogLaunch",
    "build_shim",
    "create_keylog_file",
    "keylog_environment",
    "remote_exec_line",
    "remote_remove",
    "remote_shim",
    "shim_cache_dir",
    "shim_source",
    "start_logged",
]

#: The variable the shim reads its output path from.
SHIM_FILE_ENV = "CAPDEBUG_KEYLOG_SHIM_FILE"
_SHIM_SOURCE = Path(__file__).with_name("keylog_shim.c")
_CC_FLAGS = ("-shared", "-fPIC", "-O2", "-Wall")
_CC_LIBS = ("-ldl", "-lpthread")
NO_COMPILER = (
    "the key-log shim is built with a C compiler on first use and none was found: install one "
    "(Debian/Ubuntu: apt-get install gcc libc6-dev; Fedora/RHEL: dnf install gcc glibc-devel; "
    "Alpine: apk add gcc musl-dev), or set CC"
)


def shim_source() -> bytes:
    return _SHIM_SOURCE.read_bytes()


def _shim_name(source: bytes) -> str:
    digest = hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]
    return f"keylog-shim-{platform.machine()}-{digest}.so"


def shim_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/capdebug`` (or ``~/.cache/capdebug``), created 0700 and checked to be a
    directory of ours that no one else can write: a library from it runs inside the command."""
    env = os.environ if env is None else env
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    d = base / "capdebug"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise CaptureError(
            f"{d} must be a directory owned by you and writable by no one else (it holds the key-log "
            "shim that is loaded into commands); fix its owner or mode"
        )
    return d


def build_shim(cache_dir: Path | None = None, cc: str | None = None) -> str:
    """Path to the compiled shim, building it first if this version is not in the cache."""
    source = shim_source()
    d = shim_cache_dir() if cache_dir is None else cache_dir
    target = d / _shim_name(source)
    if target.exists():
        return str(target)
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None or shutil.which(compiler) is None:
        raise CaptureError(NO_COMPILER)
    fd, tmp = tempfile.mkstemp(prefix=".shim-", suffix=".so", dir=d)
    os.close(fd)
    try:
        proc = subprocess.run(
            [compiler, *_CC_FLAGS, "-o", tmp, str(_SHIM_SOURCE), *_CC_LIBS],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            missing = "No such file or directory" in proc.stderr and ".h" in proc.stderr
            hint = (
                "the C library's headers are missing: install libc6-dev (Debian/Ubuntu) or "
                "glibc-devel (Fedora/RHEL)"
                if missing
                else proc.stderr.strip().splitlines()[-1:]
            )
            raise CaptureError(f"building the key-log shim with {compiler} failed: {hint}")
        os.chmod(tmp, 0o700)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(target)


def create_keylog_file(path: str) -> int:
    """Create (or open to append) the key log with mode 0600, never through a symlink; returns
    its size before the command runs (what was already there is not this command's)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot create key log {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"key log {path} is not a regular file")
        if st.st_mode & 0o077:
            raise UsageError(
                f"key log {path} is readable or writable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                "key logs are secrets: chmod 600 it or choose a new file"
            )
        return st.st_size
    finally:
        os.close(fd)


def keylog_environment(
    base: Mapping[str, str], keylog: str, methods: Sequence[str], shim: str | None
) -> dict[str, str]:
    """``base`` plus what switches key logging on for ``methods``."""
    env = dict(base)
    path = os.path.abspath(keylog)
    if "env" in methods:
        env["SSLKEYLOGFILE"] = path
    if "node-flag" in methods:
        # NODE_OPTIONS is split on spaces by node; a path with a space must be quoted.
        flag = f"--tls-keylog={path}" if " " not in path else f'--tls-keylog="{path}"'
        env["NODE_OPTIONS"] = f"{env['NODE_OPTIONS']} {flag}" if env.get("NODE_OPTIONS") else flag
    if "shim" in methods:
        if shim is None:
            raise UsageError("the key-log shim was chosen but not built")
        env[SHIM_FILE_ENV] = path
        env["LD_PRELOAD"] = f"{shim} {env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else shim
    return env


@dataclass(frozen=True, slots=True)
class KeylogLaunch:
    """A command started with key logging on."""

    proc: subprocess.Popen[bytes]

    def wait(self) -> int:
        try:
            return self.proc.wait()
        except KeyboardInterrupt:
            # The terminal's Ctrl-C reached the command too (same process group): let it finish.
            return self.proc.wait()


def start_logged(argv: Sequence[str], env: Mapping[str, str]) -> KeylogLaunch:
    """Start ``argv`` with ``env``; the command shares capdebug's terminal (stdin/out/err)."""
    if not argv:
        raise UsageError("no command given (put it after --)")
    try:
        proc = subprocess.Popen(list(argv), env=dict(env))
    except FileNotFoundError as exc:
        raise UsageError(f"{argv[0]}: command not found") from exc
    except PermissionError as exc:
        raise UsageError(f"{argv[0]}: permission denied") from exc
    return KeylogLaunch(proc)


def remote_shim(transport: SshTransport) -> str:
    """Build the shim on ``transport``'s host (its compiler, its libc) and return its path there.

    The source goes over ssh's standard input; the host must have ``cc``. Raises CaptureError
    with the reason, before any capture starts, when it cannot.
    """
    name = _shim_name(shim_source())
    script = (
        'd="${XDG_CACHE_HOME:-$HOME/.cache}/capdebug"; umask 077; mkdir -p "$d" || exit 3; '
        f'f="$d/{name}"; if [ ! -f "$f" ]; then '
        'command -v cc >/dev/null 2>&1 || { echo "no C compiler (cc) on this host" >&2; exit 4; }; '
        f't="$d/.tmp-$$.so"; cc {" ".join(_CC_FLAGS)} -x c -o "$t" - {" ".join(_CC_LIBS)} '
        '|| { rm -f "$t"; exit 5; }; mv "$t" "$f"; fi; echo "$f"'
    )
    try:
        proc = subprocess.run(
            transport.argv(["sh", "-c", script]),
            input=shim_source(),
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CaptureError(f"{transport.label}: building the key-log shim took over 120 s") from exc
    if proc.returncode != 0:
        detail = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        why = {
            3: f"its cache directory cannot be created ({detail}); set XDG_CACHE_HOME there or give "
            "the remote user a writable home",
            4: "there is no C compiler (cc) on that host; install one there (e.g. apt-get install gcc "
            "libc6-dev)",
            5: f"compiling it failed ({detail}); install gcc and the C library headers there (e.g. "
            "apt-get install gcc libc6-dev)",
        }.get(proc.returncode, f"ssh or the host failed ({detail})")
        raise CaptureError(
            f"{transport.label}: the key-log shim cannot be built there: {why}. Otherwise run the "
            "command with SSLKEYLOGFILE or its own key-log option and give --keylog HOST:PATH"
        )
    return proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1]


def remote_exec_line(shim: str, keylog: str, command: str) -> str:
    """The remote shell line running ``command`` with SSLKEYLOGFILE and the shim on."""
    q = shlex.quote
    return (
        f"umask 077; : >> {q(keylog)}; SSLKEYLOGFILE={q(keylog)} {SHIM_FILE_ENV}={q(keylog)} "
        f"LD_PRELOAD={q(shim)} NODE_OPTIONS={q('--tls-keylog=' + keylog)} exec sh -c {q(command)}"
    )


def remote_remove(transport: SshTransport, path: str) -> None:
    """Remove a key log capdebug made on a remote host (best effort: say so when it fails)."""
    try:
        subprocess.run(transport.argv(["rm", "-f", "--", path]), capture_output=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        raise CaptureError(
            f"{transport.label}: could not remove the key log {path}: remove it by hand"
        ) from exc
