"""A tiny ``capdebug`` with only the capture commands, for end-to-end tests in a subprocess
(mirrors the root app's error handling: one line on stderr, the error's exit code)."""

from __future__ import annotations

import sys

import typer

from capdebug.cli.capture import register
from capdebug.errors import CapdebugError

app = typer.Typer()
register(app)


def main() -> None:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=sys.argv[1:], prog_name="capdebug", standalone_mode=False)
    except CapdebugError as exc:
        sys.stderr.write(f"capdebug: error: {exc}\n")
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
