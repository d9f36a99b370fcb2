"""The ``capdebug`` command: root app, global options, and error handling at the edge.

Library code raises :class:`capdebug.errors.CapdebugError`; this module turns it into one line
on stderr and the error's exit code. ``--debug`` (anywhere on the command line) shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from ..errors import CapdebugError, print_stacktraces

app = typer.Typer(
    name="capdebug",
    help=(
        "Debug TLS on the wire: capture, decrypt, decode and triage TLS connections.\n\n"
        "Typical session:\n\n"
        "  capdebug capture --port 443 --keylog /tmp/keys.log -o case.pcapng\n\n"
        "  capdebug triage case.pcapng\n\n"
        "  capdebug decrypt case.pcapng --conn 3"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"capdebug {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Debug TLS on the wire."""


def _register_commands() -> None:
    from . import capture, correlate, decrypt, engine, keys, report, run, scenario, triage

    capture.register(app)
    triage.register(app)
    report.register(app)
    decrypt.register(app)
    keys.register(app)
    run.register(app)
    engine.register(app)
    correlate.register(app)
    scenario.register(app)


_register_commands()


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"capdebug: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CAPDEBUG_DEBUG") == "1"
    # The library reads no environment: the edge turns the variable into the switch.
    print_stacktraces(os.environ.get("CAPDEBUG_PRINT_STACKTRACE") == "1")
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="capdebug", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("interrupted", 130)
    except TyperException as exc:
        # Usage errors of the (vendored) click parser: it prints usage and the problem.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except CapdebugError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 1)
    except Exception as exc:  # the edge of the program: a bug must still end in one line
        if debug:
            raise
        _fail(
            f"internal error {type(exc).__name__}: {exc} (a bug in capdebug: rerun with --debug "
            "and report the traceback)",
            70,
        )
    sys.exit(rv if isinstance(rv, int) else 0)
