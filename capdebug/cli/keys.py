"""``capdebug embed``, ``capdebug export`` and ``capdebug keys extract|strip|check|doctor``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import typer

from .._files import atomic_output
from ..analysis.sessions import (
    embed_keylog,
    export_connections,
    extract_secrets,
    scan_sessions,
    strip_secrets,
)
from ..crypto.keylog import KeyLog
from ..errors import UsageError
from ..keys.doctor import Diagnosis, diagnose
from ._common import KEYLOG_OPTION, echo_err, load_cli_keys, report_keylog_issues

keys_app = typer.Typer(
    help="Inspect, extract and strip the TLS secrets of a capture.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("export")(export)
    app.add_typer(keys_app, name="keys")


def embed(
    capture: Path = typer.Argument(..., help="Capture to embed the secrets into (pcap or pcapng)."),
    keylog: Path = typer.Argument(..., help="NSS key log (SSLKEYLOGFILE format)."),
    output: Path = typer.Option(..., "-o", "--output", help="pcapng file to write (mode 0600)."),
    all_keys: bool = typer.Option(
        False, "--all-keys", help="Embed every line of the key log, not only this capture's sessions."
    ),
) -> None:
    """Write CAPTURE as one pcapng with its TLS secrets inside (a Decryption Secrets Block).

    The result decrypts in capdebug, Wireshark and tshark with no key-log option. Only the
    lines of sessions that appear in the capture are embedded unless --all-keys is given.

    Example:

      capdebug embed case.pcap /tmp/keys.log -o case-with-keys.pcapng
    """
    log = KeyLog.from_file(keylog)
    report_keylog_issues(log)
    result = embed_keylog(capture, log, output, all_keys=all_keys)
    dropped = f", {result.lines_dropped} lines for other sessions left out" if result.lines_dropped else ""
    echo_err(
        f"wrote {output}: {result.packets} packets, {result.lines_embedded} key-log lines embedded "
        f"({result.sessions_with_keys} of {result.sessions} TLS connections have keys{dropped})"
    )


def export(
    capture: Path = typer.Argument(..., help="Capture to take the connections from."),
    output: Path = typer.Option(..., "-o", "--output", help="pcapng file to write."),
    conn: list[int] = typer.Option(
        [], "--conn", help="Connection number (as in `capdebug triage`); repeatable."
    ),
    host: str | None = typer.Option(None, "--host", help="Only connections with this address or SNI."),
    port: int | None = typer.Option(None, "--port", help="Only connections with this port."),
    keylog: list[Path] = KEYLOG_OPTION,
) -> None:
    """Write only some connections, with only their secrets embedded.

    A customer can share one conversation without leaking the others: packets of other
    connections are left out and so are their secrets; exporter secrets are never written.

    Examples:

      capdebug export case.pcapng --conn 3 -o conn3.pcapng

      capdebug export big.pcap --keylog keys.log --host api.example.com -o api.pcapng
    """
    keys = load_cli_keys(capture, keylog)
    chosen, packets, lines = export_connections(
        capture, output, keys.keylog, conns=conn, host=host, port=port
    )
    echo_err(
        f"wrote {output}: {len(chosen)} connection(s) ({', '.join(str(s.conn) for s in chosen)}), "
        f"{packets} packets, {lines} key-log lines"
    )


@keys_app.command("extract")
def keys_extract(
    capture: Path = typer.Argument(..., help="pcapng file with embedded secrets."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Key log to write (mode 0600); standard output when omitted."
    ),
) -> None:
    """Write the key log embedded in a pcapng's Decryption Secrets Blocks.

    Example:

      capdebug keys extract case.pcapng -o keys.log
    """
    data, blocks = extract_secrets(capture)
    if not blocks:
        echo_err(f"{capture} has no TLS secrets embedded")
        raise typer.Exit(1)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with atomic_output(output, private=True) as stream:
            stream.write(data)
        lines = data.count(b"\n")
        echo_err(f"wrote {output}: {lines} lines from {blocks} secrets block(s)")


@keys_app.command("strip")
def keys_strip(
    capture: Path = typer.Argument(..., help="Capture to clean."),
    output: Path = typer.Option(..., "-o", "--output", help="pcapng file to write, without secrets."),
) -> None:
    """Copy a capture without any Decryption Secrets Block (everything else is kept).

    Example:

      capdebug keys strip case.pcapng -o shareable.pcapng
    """
    packets, removed = strip_secrets(capture, output)
    echo_err(f"wrote {output}: {packets} packets, {removed} secrets block(s) removed")


@keys_app.command("check")
def keys_check(
    capture: Path = typer.Argument(..., help="Capture to check."),
    keylog: list[Path] = KEYLOG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per connection."),
) -> None:
    """For each TLS connection: are its secrets present (file or embedded), which are missing?

    Examples:

      capdebug keys check case.pcapng

      capdebug keys check case.pcap --keylog keys.log --json
    """
    keys = load_cli_keys(capture, keylog)
    log = keys.keylog
    missing_any = False
    for s in scan_sessions(capture):
        version = s.version or "1.3"
        if s.client_random is None:
            status, missing, have = "no_client_hello", [], []
        elif s.client_random in log:
            have = sorted(log.secrets_for(s.client_random))
            missing = log.labels_missing(s.client_random, version)
            status = "missing_labels" if missing else "ok"
        else:
            status, missing, have = "no_keys", [], []
        missing_any = missing_any or status != "ok"
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "conn": s.conn,
                        "client": s.client,
                        "server": s.server,
                        "sni": s.sni,
                        "version": s.version,
                        "client_random": s.client_random.hex() if s.client_random else None,
                        "status": status,
                        "labels": have,
                        "missing": missing,
                    }
                )
            )
        else:
            detail = {
                "ok": f"ok ({', '.join(have)})",
                "missing_labels": f"missing {', '.join(missing)} (has {', '.join(have)})",
                "no_keys": "no keys for this session",
                "no_client_hello": "handshake not captured: keys cannot be matched",
            }[status]
            sni = f" {s.sni}" if s.sni else ""
            typer.echo(f"conn {s.conn:>3}  {s.client} -> {s.server}{sni}  TLS {version}: {detail}")
    sources = [*keys.files]
    if keys.embedded_blocks:
        sources.append(f"{keys.embedded_blocks} embedded block(s)")
    if keys.from_env:
        sources.append(f"SSLKEYLOGFILE={keys.from_env}")
    if not as_json:
        echo_err(f"secrets from: {', '.join(sources) if sources else 'nowhere (no key log given)'}")
    if missing_any:
        raise typer.Exit(1)


def doctor_for(program: str | None, pid: int | None) -> Diagnosis:
    """The doctor's diagnosis of PROGRAM (found on PATH like a shell would) or process PID."""
    from ..keys.probe import probe_process, probe_program

    if pid is not None:
        return diagnose(probe_process(pid))
    assert program is not None
    path = program if "/" in program else shutil.which(program)
    if path is None:
        raise UsageError(f"{program}: no such program on PATH")
    return diagnose(probe_program(path, shutil.which))


def render_diagnosis(d: Diagnosis) -> str:
    lines = [f"{d.program}: {d.summary}"]
    lines += [f"  evidence: {e}" for e in d.evidence]
    lines += [f"  plan: {p}" for p in d.plan]
    lines.append(f"  {d.without_keys}")
    return "\n".join(lines)


@keys_app.command("doctor")
def keys_doctor(
    program: str | None = typer.Argument(None, help="Program (path or name on PATH) to examine."),
    pid: int | None = typer.Option(None, "--pid", help="Examine this running process instead."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Which TLS library a program or process uses, and how to get its keys.

    Reads the ELF file (dynamic section, symbols, version strings, Go build information) or
    /proc/PID/maps, then says in plain words what will make it write a key log: set
    SSLKEYLOGFILE, pass --tls-keylog (Node), `capdebug run` with the key-log shim (a
    dynamically linked OpenSSL), or why nothing outside the program can (Go, a static
    OpenSSL or BoringSSL) and what to change in it.

    Examples:

      capdebug keys doctor psql

      capdebug keys doctor --pid 4242 --json
    """
    if (program is None) == (pid is None):
        raise UsageError("give either PROGRAM or --pid PID")
    d = doctor_for(program, pid)
    typer.echo(json.dumps(d.to_json()) if as_json else render_diagnosis(d))
