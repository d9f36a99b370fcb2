"""``capdebug capture --exec``: run one command with key logging on while tcpdump captures.

The command starts once tcpdump's stream has begun (its pcap header arrived: the kernel is
capturing), the capture stops two seconds after the command exits (its last FIN and ACK have
then left the kernel's capture ring), and the key log written for it alone is embedded. Locally the doctor
chooses the means, as for ``capdebug run``; on a remote host the shim is built there first
(a clear error before anything starts when it cannot be) and SSLKEYLOGFILE, NODE_OPTIONS and
the shim are all switched on, since no doctor runs there.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import CaptureError, UsageError
from ._common import echo_err

if TYPE_CHECKING:
    from ..capture.runner import CaptureResult, FilterFactory, PacketFilter
    from ..capture.transport import SshTransport, Transport
    from ..pcap.model import Interface, Packet, SecretsBlock
    from .run import KeylogPlan

_START_TIMEOUT_S = 30.0
# tcpdump runs without --immediate-mode: the kernel hands packets over when a ring block fills
# or its timeout (1 s by default) expires, and packets still in the ring at SIGINT are lost. The
# command's last packets must have left the ring before the stop.
_SETTLE_S = 2.0


@dataclass
class _ExecLaunch:
    argv: list[str]
    env: dict[str, str]
    keylog_spec: str
    """What ``capture --keylog`` would take: a local path or HOST:PATH."""
    plan: KeylogPlan | None = None
    local_keylog: str | None = None
    before: int = 0
    temp_dir: str | None = None
    remote: SshTransport | None = None
    remote_keylog: str | None = None
    remote_is_temp: bool = False
    exit_status: int | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def cleanup(self) -> None:
        """Remove the key log capdebug made for the command (a secret); it is embedded by now."""
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        if self.remote is not None and self.remote_is_temp and self.remote_keylog is not None:
            from ..capture.keylog import remote_remove

            remote_remove(self.remote, self.remote_keylog)


def _prepare_exec(command: str, targets: Sequence[Transport], keylog: str | None) -> _ExecLaunch:
    from ..capture.transport import LocalTransport, SshTransport

    if not command.strip():
        raise UsageError("--exec needs a command")
    if len(targets) != 1:
        raise UsageError("--exec runs one command on one host: give at most one --remote")
    target = targets[0]
    if isinstance(target, LocalTransport):
        return _prepare_local(command, keylog)
    assert isinstance(target, SshTransport)
    return _prepare_remote(command, target, keylog)


def _prepare_local(command: str, keylog: str | None) -> _ExecLaunch:
    from ..capture.keylog import create_keylog_file
    from ..capture.runner import split_keylog_spec
    from .run import prepare_keylog

    if keylog is not None and split_keylog_spec(keylog)[0] is not None:
        raise UsageError("with a local --exec, --keylog is a local path (where the key log is kept)")
    temp_dir = None
    if keylog is None:
        temp_dir = tempfile.mkdtemp(prefix="capdebug-exec-")  # mode 0700
        keylog = os.path.join(temp_dir, "keys.log")
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--exec {command!r}: {exc}") from exc
    before = create_keylog_file(keylog)
    # The doctor diagnoses the first program; a shell line may start others, so every means is
    # switched on (each is inert for programs it does not concern, and the shim leaves alone
    # programs that log to SSLKEYLOGFILE themselves).
    plan = prepare_keylog(words or ["sh"], keylog, every_means=True)
    return _ExecLaunch(
        argv=["sh", "-c", command],
        env=plan.env,
        keylog_spec=keylog,
        plan=plan,
        local_keylog=keylog,
        before=before,
        temp_dir=temp_dir,
    )


def _prepare_remote(command: str, target: SshTransport, keylog: str | None) -> _ExecLaunch:
    from ..capture.keylog import remote_exec_line, remote_shim

    path: str | None = None
    is_temp = keylog is None
    if keylog is not None:
        host, _, path = keylog.rpartition(":")
        if not host or not path:
            raise UsageError("with --remote and --exec, --keylog is HOST:PATH on that host")
    shim = remote_shim(target)  # a clear error here, before tcpdump starts
    if path is None:
        path = f"/tmp/capdebug-exec-{secrets.token_hex(8)}.keylog"
    return _ExecLaunch(
        argv=target.argv(["sh", "-c", remote_exec_line(shim, path, command)]),
        env=dict(os.environ),
        keylog_spec=f"{target.destination}:{path}",
        remote=target,
        remote_keylog=path,
        remote_is_temp=is_temp,
    )


class _PassThrough:
    def feed(self, packets: list[Packet], now: float) -> Iterable[Packet | SecretsBlock]:
        return packets

    def finish(self, now: float) -> Iterable[Packet | SecretsBlock]:
        return []


def _capture_while_running(
    launch: _ExecLaunch,
    run: Callable[[FilterFactory], CaptureResult],
    filters: FilterFactory | None,
    stop: threading.Event,
) -> CaptureResult:
    from ..capture.keylog import start_logged

    ready = threading.Event()

    def make(label: str, iface: Interface) -> PacketFilter:
        ready.set()
        return filters(label, iface) if filters is not None else _PassThrough()

    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = run(make)
        except BaseException as exc:  # re-raised in the calling thread
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="capture", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT_S):
        stop.set()
        thread.join()
        raise CaptureError(f"tcpdump did not start within {_START_TIMEOUT_S:g} s; the command was not run")
    if "result" not in box and "error" not in box and not stop.is_set():
        proc = start_logged(launch.argv, launch.env)
        launch.exit_status = proc.wait()
        time.sleep(_SETTLE_S)
    else:
        echo_err("capdebug: the capture ended before the command could start; it was not run")
    stop.set()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    if launch.plan is not None and launch.local_keylog is not None and launch.exit_status is not None:
        from .run import report_sessions

        report_sessions(launch.local_keylog, launch.before, launch.plan)
    result = box["result"]
    return result  # type: ignore[return-value]
