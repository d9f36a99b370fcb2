"""The ``capdebug`` command: root app, global options, and error handling at the edge.

Library code raises :class:`capdebug.errors.CapdebugError`; this module turns it into one line
on stderr and the error's exit code. ``--debug`` (anywhere on the command line) shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import typer
from typer.exceptions import TyperException

from ..errors import CapdebugError, print_stacktraces

#: Which module registers each top-level command: ``main`` imports and registers only the one
#: being run (building every command's parameters costs more than decoding a small capture;
#: issue 19). Anything else (no command, ``--help``, a typo) gets the full app.
_COMMAND_MODULES = {
    "capture": "capture",
    "interfaces": "capture",
    "triage": "triage",
    "report": "report",
    "decrypt": "decrypt",
    "embed": "keys",
    "export": "keys",
    "keys": "keys",
    "run": "run",
    "serve": "engine",
    "connect": "engine",
    "certs": "engine",
    "correlate": "correlate",
    "scenario": "scenario",
}


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"capdebug {__version__}")
        raise typer.Exit()


def _root(
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Debug TLS on the wire."""


def build_app(modules: Iterable[str] | None = None) -> typer.Typer:
    """The root app with the commands of ``modules`` (names of cli submodules; all when None)."""
    import importlib

    new = typer.Typer(
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
    new.callback()(_root)
    # The order of the full app's help listing.
    order = ("capture", "triage", "report", "decrypt", "keys", "run", "engine", "correlate", "scenario")
    wanted = order if modules is None else [m for m in order if m in set(modules)]
    for name in wanted:
        importlib.import_module(f".{name}", __package__).register(new)
    return new


def _command_module(args: list[str]) -> str | None:
    """The cli module of the command in ``args`` (the first word not an option: the root's own
    options take no value), or None when the full app is needed."""
    for arg in args:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return _COMMAND_MODULES.get(arg)
    return None


_full_app: typer.Typer | None = None


def __getattr__(name: str) -> typer.Typer:
    # ``app`` (every command) is built on first use: tests and embedders invoke it directly.
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = build_app()
        return _full_app
    raise AttributeError(name)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"capdebug: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CAPDEBUG_DEBUG") == "1"
    # The library reads no environment: the edge turns the variable into the switch.
    print_stacktraces(os.environ.get("CAPDEBUG_PRINT_STACKTRACE") == "1")
    module = _command_module(args)
    command = typer.main.get_command(build_app(None if module is None else [module]))
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
