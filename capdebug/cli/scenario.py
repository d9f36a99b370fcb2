"""``capdebug scenario list`` and ``capdebug scenario run NAME [-o DIR]``: every common TLS
failure, reproduced on loopback by the engine's own peers, captured and triaged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import UsageError

__all__ = ["observed_verdicts", "register"]

scenario_app = typer.Typer(help="Reproduce common TLS failures on loopback.", no_args_is_help=True)

Pairs = tuple[tuple[tuple[str, str | None], ...], ...]


def register(app: typer.Typer) -> None:
    app.add_typer(scenario_app, name="scenario")


def _sorted(pairs: Pairs) -> Pairs:
    return tuple(tuple(sorted(conn, key=lambda p: (p[0], p[1] or ""))) for conn in pairs)


#: What the host's TCP did on its own (a retransmission on a loaded loopback): informational
#: health verdicts that no scenario asks for, so they do not make a run differ from its script.
INCIDENTAL = frozenset({"retransmissions", "rto_stall", "syn_retries"})


def observed_verdicts(capture: Path) -> Pairs:
    """Per connection, the sorted (code, by) pairs triage gives for ``capture`` with only the
    secrets embedded in it, leaving out informational TCP health (:data:`INCIDENTAL`)."""
    from ..api import load_keys, triage_capture

    reports = triage_capture(capture, load_keys(capture)).reports
    return _sorted(
        tuple(
            tuple((v.code, v.by) for v in r.verdicts if not (v.severity == "info" and v.code in INCIDENTAL))
            for r in reports
        )
    )


@scenario_app.command("list")
def scenario_list() -> None:
    """Name, what goes wrong, and the verdicts (code and who) triage must give."""
    from ..scenarios import SCENARIOS

    for sc in SCENARIOS.values():
        typer.echo(f"{sc.name:32} {sc.summary} [{sc.version}]")
        typer.echo(f"{'':32} verdicts: {sc.codes}")


@scenario_app.command("run")
def scenario_run(
    name: str = typer.Argument(..., help="A name from `capdebug scenario list`."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder for NAME.pcapng."),
    tcpdump_path: str = typer.Option("tcpdump", "--tcpdump-path", help="The tcpdump to run."),
) -> None:
    """Run a scenario: engine server and client on loopback, a real tcpdump capture written to
    DIR/NAME.pcapng with the secrets embedded, then its triage.

    Exit code 0 when triage gives exactly the scenario's verdicts, 1 otherwise."""
    from ..scenarios import SCENARIOS, run_scenario

    sc = SCENARIOS.get(name)
    if sc is None:
        raise UsageError(f"unknown scenario {name!r} (see `capdebug scenario list`)")
    # The edge reads the clock: certificates are made and checked at this time.
    run = run_scenario(name, output, now=dt.datetime.now(dt.UTC), tcpdump_path=tcpdump_path)
    console = Console(highlight=False)
    console.print(f"[bold]{escape(sc.name)}[/bold]: {escape(sc.summary)}")
    for line in run.outcomes:
        console.print(f"  {escape(line)}")
    console.print(f"wrote {escape(str(run.pcapng))} ({run.secrets_lines} key-log lines embedded)")
    from ..api import load_keys, triage_capture

    reports = triage_capture(run.pcapng, load_keys(run.pcapng)).reports
    for r in reports:
        console.print(f"conn {r.conn}: {escape(r.client)} -> {escape(r.server)}")
        for v in r.verdicts:
            console.print(
                f"  {v.severity:7} {v.code} (by {v.by or '-'}, frame {v.frame}, {v.confidence} confidence): "
                f"{escape(v.detail)}"
            )
    got = _sorted(tuple(tuple((v.code, v.by) for v in r.verdicts) for r in reports))
    if got == _sorted(sc.expected):
        console.print("[green]triage gives exactly the verdicts this scenario declares[/green]")
        return
    console.print(f"[red]triage differs from the scenario: expected {escape(sc.codes)}[/red]")
    raise typer.Exit(1)
