"""``capdebug capture`` and ``capdebug interfaces``: parse options, call capdebug.capture, render."""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

# Only the option defaults are needed to build the command (typer evaluates them when the root
# app is built): capture.command is light. The runner, transports and live decoding are imported
# by the commands that use them, so `capdebug triage` and friends start without them.
from ..capture.command import DEFAULT_BUFFER_KIB, DEFAULT_SNAPLEN
from ..errors import UsageError
from ._exec import _capture_while_running, _ExecLaunch, _prepare_exec

if TYPE_CHECKING:
    from ..analysis.live import LiveKeys
    from ..capture.runner import CaptureResult, FilterFactory, Progress
    from ..capture.tail import KeylogTail
    from ..capture.transport import SshTransport, Transport
    from ..pcap.model import Interface

__all__ = ["embed_fetched_keylog", "parse_duration", "register"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``30s``, ``2m``, ``1h``, ``500ms`` or plain seconds -> seconds."""
    m = _DURATION_RE.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise UsageError(f"--duration {text!r}: expected a positive duration such as 30s, 2m or 1h")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _progress_line(p: Progress) -> None:
    rate = p.bytes / p.elapsed_s if p.elapsed_s > 0 else 0.0
    minutes, seconds = divmod(int(p.elapsed_s), 60)
    sys.stderr.write(
        f"\r{p.packets} packets  {_human_bytes(p.bytes)}  {_human_bytes(rate)}/s  "
        f"{minutes:02d}:{seconds:02d}  "
    )
    sys.stderr.flush()


def embed_fetched_keylog(capture_path: str, keylog_text: str, *, all_keys: bool = False) -> str:
    """Embed a key log into ``capture_path`` as a Decryption Secrets Block; returns a sentence.

    Only the lines for sessions present in the capture are kept unless ``all_keys``.
    """
    from ..analysis.sessions import embed_keylog
    from ..crypto.keylog import KeyLog

    tmp = f"{capture_path}.embedding.tmp"
    try:
        result = embed_keylog(
            capture_path, KeyLog.parse(keylog_text, source="--keylog"), tmp, all_keys=all_keys
        )
        os.replace(tmp, capture_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return (
        f"key log embedded into {capture_path}: {result.lines_embedded} lines for "
        f"{result.sessions_with_keys} of {result.sessions} TLS sessions"
        + (f" ({result.lines_dropped} lines of other sessions left out)" if result.lines_dropped else "")
    )


def _save_keylog_beside(capture_path: str, text: str) -> str:
    path = f"{os.path.splitext(capture_path)[0]}.keylog"
    # Key logs are secrets: never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _summary(result: CaptureResult) -> None:
    for h in result.hosts:
        drops = "unknown" if h.stats.dropped_by_kernel is None else str(h.stats.dropped_by_kernel)
        where = h.path if h.path is not None else "no file (nothing arrived)"
        typer.echo(
            f"{h.label}: {h.packets} packets, {_human_bytes(h.bytes)}, dropped by kernel: {drops} -> {where}"
        )
        for w in h.warnings:
            typer.echo(f"capdebug: warning: {w}", err=True)
        if h.stats.dropped_by_kernel:
            typer.echo(
                f"capdebug: warning: tcpdump on {h.label} dropped {h.stats.dropped_by_kernel} packets; "
                "narrow the filter or raise --buffer-size",
                err=True,
            )
    if len(result.hosts) > 1 and result.output is not None:
        typer.echo(f"merged: {result.packets} packets from {len(result.hosts)} hosts -> {result.output}")
    typer.echo(f"stopped by {result.stopped_by} after {result.elapsed_s:.1f} s")


class _Lines:
    """Live lines from every host's writer thread, one whole line at a time, above the
    progress line."""

    def __init__(self, progress: bool) -> None:
        self._lock = threading.Lock()
        self._progress = progress

    def emit(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            text = "".join(line + "\n" for line in lines)
            sys.stdout.write(("\r\x1b[K" if self._progress else "") + text)
            sys.stdout.flush()


def _live_filters(
    tail: KeylogTail | None, keys: LiveKeys | None, show: _Lines | None, several_hosts: bool
) -> FilterFactory | None:
    if keys is None and show is None:
        return None

    from ..api import LivePipeline

    def make(label: str, iface: Interface) -> LivePipeline:
        return LivePipeline(
            iface,
            label=label if several_hosts else None,
            read_keylog=tail.read if tail is not None else None,
            keys=keys,
            show=show.emit if show is not None else None,
        )

    return make


def register(app: typer.Typer) -> None:
    """Add ``capture`` and ``interfaces`` to ``app``."""

    @app.command("capture")
    def capture(
        ctx: typer.Context,
        output: Annotated[Path, typer.Option("--output", "-o", help="pcapng file to write.")],
        interface: Annotated[str, typer.Option("--interface", "-i", help="Capture interface.")] = "any",
        port: Annotated[list[int] | None, typer.Option("--port", help="TCP port (repeatable).")] = None,
        host: Annotated[list[str] | None, typer.Option("--host", help="Host (repeatable).")] = None,
        bpf: Annotated[str | None, typer.Option("--filter", help="BPF filter (ANDed).")] = None,
        remote: Annotated[
            list[str] | None, typer.Option("--remote", help="[user@]host[:port] to capture on (repeatable).")
        ] = None,
        duration: Annotated[str | None, typer.Option("--duration", help="Stop after e.g. 30s, 2m.")] = None,
        count: Annotated[int | None, typer.Option("--count", "-c", help="Stop after N packets/host.")] = None,
        snaplen: Annotated[int, typer.Option("--snaplen", "-s", help="Bytes kept/packet.")] = DEFAULT_SNAPLEN,
        keylog: Annotated[
            str | None, typer.Option("--keylog", help="Key log to fetch afterwards: PATH or HOST:PATH.")
        ] = None,
        no_embed: Annotated[bool, typer.Option("--no-embed", help="Keep the key log apart.")] = False,
        all_keys: Annotated[
            bool,
            typer.Option("--all-keys", help="Embed all key-log lines."),
        ] = False,
        tcpdump_path: Annotated[str, typer.Option("--tcpdump-path", help="tcpdump to run.")] = ("tcpdump"),
        buffer_kib: Annotated[
            int, typer.Option("--buffer-size", help="Kernel capture buffer in KiB (tcpdump -B).")
        ] = DEFAULT_BUFFER_KIB,
        ssh_config: Annotated[str | None, typer.Option("--ssh-config", help="ssh -F FILE.")] = None,
        ssh_option: Annotated[
            list[str] | None, typer.Option("--ssh-option", help="ssh -o OPTION (repeatable).")
        ] = None,
        live: Annotated[
            bool, typer.Option("--live", help="Decode and triage while capturing (one line per event).")
        ] = False,
        exec_command: Annotated[
            str | None,
            typer.Option("--exec", help="Run this shell command with key logging on; stop when it exits."),
        ] = None,
    ) -> None:
        """Capture with tcpdump, locally or on remote hosts over SSH, into a pcapng file.

        \b
        --keylog is followed during the capture: each session's secrets go
        into the growing file before its encrypted records, so Wireshark can
        open and decrypt it while the capture runs. Afterwards the key log is
        fetched and embedded whole (the capture's sessions only, unless
        --all-keys). --live prints handshakes, alerts, closes and each
        connection's verdicts as they happen.

        \b
        Examples:
          capdebug capture -i lo --port 443 --duration 30s -o out.pcapng
          capdebug capture --port 443 --keylog ~/k.log --live -o out.pcapng
          capdebug capture --remote web1 --port 443 \\
              --keylog web1:/tmp/k.log -o web1.pcapng
          capdebug capture --remote lb1 --remote app1 --port 443 -c 1000 \\
              -o fleet.pcapng
          capdebug capture --remote admin@db:2222 --filter 'port 5432' -o db.pcapng
          capdebug capture -i lo --port 443 --exec 'curl https://localhost/' -o c.pcapng

        \b
        --exec runs the command (through sh -c, where the capture runs) with
        key logging switched on as `capdebug run` would, once tcpdump listens;
        the capture stops when the command exits and the pcapng gets exactly
        that command's secrets. --keylog then names where its key log is kept
        (by default a private temporary file, removed after embedding).
        """
        from ..analysis.live import LiveKeys
        from ..capture.command import TcpdumpOptions
        from ..capture.runner import fetch_keylog, run_capture, split_keylog_spec, stop_on_sigint
        from ..capture.tail import KeylogTail
        from ..capture.transport import LocalTransport, parse_remote

        opts = TcpdumpOptions(
            interface=interface,
            ports=tuple(port or ()),
            hosts=tuple(host or ()),
            filter=bpf,
            snaplen=snaplen,
            count=count,
            buffer_kib=buffer_kib,
            tcpdump_path=tcpdump_path,
        )

        def ssh_for(spec: str) -> SshTransport:
            return parse_remote(spec, config_file=ssh_config, options=tuple(ssh_option or ()))

        targets: list[Transport] = [ssh_for(r) for r in remote] if remote else [LocalTransport()]
        launch: _ExecLaunch | None = None
        if exec_command is not None:
            launch = _prepare_exec(exec_command, targets, keylog)
            # The key log made for the command is a secret: removed when the command ends,
            # whatever happened (click closes the context on errors too).
            ctx.call_on_close(launch.cleanup)
            keylog = launch.keylog_spec
        seconds = parse_duration(duration) if duration is not None else None
        out = str(output)
        if output.parent and not output.parent.is_dir():
            raise UsageError(f"cannot write {out}: directory {output.parent} does not exist")
        progress = _progress_line if sys.stderr.isatty() else None
        tail: KeylogTail | None = None
        keys: LiveKeys | None = None
        if keylog is not None and not no_embed:
            tail_host, tail_path = split_keylog_spec(keylog)
            tail = KeylogTail(LocalTransport() if tail_host is None else ssh_for(tail_host), tail_path)
            keys = LiveKeys(exporter_secrets=all_keys)
        show = _Lines(progress is not None) if live else None
        filters = _live_filters(tail, keys, show, len(targets) > 1)
        if tail is not None:
            tail.start()
        try:
            with stop_on_sigint(threading.Event()) as stop:
                if launch is None:
                    result = run_capture(
                        targets,
                        opts,
                        out,
                        duration_s=seconds,
                        stop=stop,
                        on_progress=progress,
                        filter_for=filters,
                    )
                else:
                    result = _capture_while_running(
                        launch,
                        lambda ready_filters: run_capture(
                            targets,
                            opts,
                            out,
                            duration_s=seconds,
                            stop=stop,
                            on_progress=progress,
                            filter_for=ready_filters,
                        ),
                        filters,
                        stop,
                    )
        finally:
            if tail is not None:
                tail.close()
        if progress is not None:
            sys.stderr.write("\n")
        _summary(result)
        result.raise_for_errors()
        if keylog is not None and result.output is not None:
            text = fetch_keylog(keylog, ssh_for=ssh_for)
            if no_embed:
                typer.echo(f"key log saved to {_save_keylog_beside(result.output, text)}")
            else:
                typer.echo(embed_fetched_keylog(result.output, text, all_keys=all_keys))
        if launch is not None and launch.exit_status:
            typer.echo(f"capdebug: the command exited with status {launch.exit_status}", err=True)

    @app.command("interfaces")
    def interfaces(
        remote: Annotated[str | None, typer.Option("--remote", help="[user@]host[:port]")] = None,
        tcpdump_path: Annotated[str, typer.Option("--tcpdump-path", help="tcpdump on the host.")] = "tcpdump",
        ssh_config: Annotated[str | None, typer.Option("--ssh-config", help="ssh -F FILE.")] = None,
        ssh_option: Annotated[
            list[str] | None, typer.Option("--ssh-option", help="ssh -o OPTION (repeatable).")
        ] = None,
    ) -> None:
        """List the capture interfaces (tcpdump -D), locally or on a remote host."""
        from ..capture.runner import list_interfaces
        from ..capture.transport import LocalTransport, parse_remote

        transport: Transport = (
            LocalTransport()
            if remote is None
            else parse_remote(remote, config_file=ssh_config, options=tuple(ssh_option or ()))
        )
        for iface in list_interfaces(transport, tcpdump_path):
            desc = f"  {iface.description}" if iface.description else ""
            flags = f"  [{', '.join(iface.flags)}]" if iface.flags else ""
            typer.echo(f"{iface.name}{desc}{flags}")
