"""``capdebug run --keylog FILE -- COMMAND [ARGS...]``: run a command with key logging on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import typer

from ..crypto.keylog import KeyLog
from ..errors import CaptureError, UsageError
from ..keys.doctor import Diagnosis, KeylogMethod
from ._common import echo_err

__all__ = ["KeylogPlan", "prepare_keylog", "register", "sessions_logged"]


class KeylogPlan:
    """The environment that switches key logging on for one command, and why it was chosen."""

    def __init__(self, diagnosis: Diagnosis, env: dict[str, str], methods: tuple[str, ...]) -> None:
        self.diagnosis = diagnosis
        self.env = env
        self.methods = methods


def prepare_keylog(command: list[str], keylog: str, *, every_means: bool = False) -> KeylogPlan:
    """Diagnose ``command[0]``, build the shim if it is needed, create the key log (0600) and
    return the command's environment. ``every_means`` adds all three means to the doctor's."""
    from ..capture.keylog import build_shim, create_keylog_file, keylog_environment
    from .keys import doctor_for

    if not command:
        raise UsageError("no command given: capdebug run --keylog FILE -- COMMAND [ARGS...]")
    program = command[0] if "/" in command[0] else shutil.which(command[0])
    if program is None:
        raise UsageError(f"{command[0]}: command not found")
    if os.path.basename(program) in ("env", "sudo", "nice", "timeout", "stdbuf") and len(command) > 1:
        # A launcher: the program that speaks TLS comes later on the line.
        rest = [a for a in command[1:] if not a.startswith("-") and "=" not in a]
        if rest and (found := shutil.which(rest[0])) is not None:
            program = found
    diagnosis = doctor_for(program, None)
    # With no outside means, SSLKEYLOGFILE is still set: a program may honour it by itself
    # (the doctor's advice for Go is exactly that).
    methods = tuple(m.value for m in diagnosis.methods) or (KeylogMethod.ENV.value,)
    if every_means:
        methods = tuple(dict.fromkeys((*methods, *(m.value for m in KeylogMethod))))
    elif not diagnosis.methods:
        echo_err(f"capdebug: warning: {diagnosis.program}: {diagnosis.summary}; " + " ".join(diagnosis.plan))
    shim = None
    if KeylogMethod.SHIM.value in methods:
        try:
            shim = build_shim()
        except CaptureError as exc:
            if methods == (KeylogMethod.SHIM.value,):
                raise
            echo_err(f"capdebug: warning: {exc}; continuing without the shim")
            methods = tuple(m for m in methods if m != KeylogMethod.SHIM.value)
    create_keylog_file(keylog)
    env = keylog_environment(os.environ, keylog, methods, shim)
    return KeylogPlan(diagnosis, env, methods)


def sessions_logged(text: str) -> int:
    """How many TLS sessions (distinct client randoms) a key-log text holds."""
    return len(KeyLog.parse(text, source="key log").client_randoms())


def report_sessions(keylog: str, before: int, plan: KeylogPlan) -> int:
    with open(keylog, "rb") as f:
        f.seek(before)
        n = sessions_logged(f.read().decode("utf-8", "replace"))
    how = ", ".join(plan.methods)
    if n:
        echo_err(f"capdebug: {n} TLS session(s) logged to {keylog} (via {how})")
    else:
        d = plan.diagnosis
        echo_err(
            f"capdebug: no TLS session was logged to {keylog} (tried {how}). {d.program}: {d.summary}. "
            + " ".join(d.plan)
        )
    return n


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(run)


def run(
    keylog: Path = typer.Option(..., "--keylog", "-k", help="Key log to write (created 0600, appended)."),
    command: list[str] = typer.Argument(..., help="The command and its arguments, after --."),
) -> None:
    """Run a command with TLS key logging switched on, by whichever means fits it.

    SSLKEYLOGFILE (GnuTLS, NSS, curl, Python), Node's --tls-keylog (through NODE_OPTIONS), or
    capdebug's key-log shim preloaded into a dynamically linked OpenSSL program (built with the
    system C compiler on first use). At the end it says how many sessions were logged, or why
    none were. The exit status is the command's.

    Examples:

      capdebug run --keylog /tmp/k.log -- psql "host=db sslmode=require"

      capdebug run --keylog /tmp/k.log -- openssl s_client -connect example.com:443
    """
    from ..capture.keylog import create_keylog_file, start_logged

    path = str(keylog)
    before = create_keylog_file(path)
    plan = prepare_keylog(list(command), path)
    rc = start_logged(list(command), plan.env).wait()
    report_sessions(path, before, plan)
    raise typer.Exit(rc if rc >= 0 else 128 - rc)
