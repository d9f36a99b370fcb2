"""Start-up cost of the ``capdebug`` command: building the root app imports the command modules,
but not the heavy libraries behind commands that are not being run (the capture runner and
transports, the TLS engine, live decoding, the HTML report, the engine's X.509 loader).

Each check runs a fresh interpreter: ``sys.modules`` of the test process already holds
everything other tests imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPDEBUG = [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])"]

#: Loaded only by the commands that need them.
HEAVY = ("capdebug.capture", "capdebug.tls", "capdebug.analysis.live", "capdebug.analysis.html")
HEAVY_EXACT = ("capdebug.crypto.x509_engine",)
#: Light, and needed to build ``capture``'s options: its defaults (--snaplen, --buffer-size)
#: come from here, so the help shows the library's values.
ALLOWED = ("capdebug.capture", "capdebug.capture.command")

_DUMP = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + json.dumps(\n"
    "    sorted(m for m in sys.modules if m.startswith('capdebug.'))) + '\\n'))\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SSLKEYLOGFILE", "CAPDEBUG_DEBUG")}
    env["COLUMNS"] = "200"  # rich wraps and truncates help to the terminal width
    return env


def _heavy(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m not in ALLOWED and (m in HEAVY_EXACT or any(m == h or m.startswith(h + ".") for h in HEAVY))
    ]


def _loaded_by(code: str, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _DUMP + code, *args], capture_output=True, text=True, env=_env(), timeout=120
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    assert len(marker) == 1, done.stderr
    modules: list[str] = json.loads(marker[0].removeprefix("MODULES "))
    return done, modules


def test_heavy_filter_catches_heavy_modules() -> None:
    # The filter itself must be able to fail: a full import of the command modules' libraries.
    modules = [
        "capdebug.capture",
        "capdebug.capture.command",
        "capdebug.capture.runner",
        "capdebug.tls",
        "capdebug.tls.connection",
        "capdebug.analysis.live",
        "capdebug.analysis.html",
        "capdebug.analysis.sessions",
        "capdebug.crypto.x509",
        "capdebug.crypto.x509_engine",
        "capdebug.cli.capture",
    ]
    assert _heavy(modules) == [
        "capdebug.capture.runner",
        "capdebug.tls",
        "capdebug.tls.connection",
        "capdebug.analysis.live",
        "capdebug.analysis.html",
        "capdebug.crypto.x509_engine",
    ]


def test_building_the_root_app_imports_no_heavy_module() -> None:
    done, modules = _loaded_by(
        "import typer\nfrom capdebug.cli.app import app\ncommand = typer.main.get_command(app)\n"
        "print(sorted(command.commands))\n"
    )
    assert done.returncode == 0, done.stderr
    # Every command module was imported and registered its commands ...
    for name in ("capdebug.cli.capture", "capdebug.cli.engine", "capdebug.cli.report", "capdebug.cli.triage"):
        assert name in modules
    for command in ("capture", "interfaces", "serve", "connect", "certs", "report", "triage", "decrypt"):
        assert f"'{command}'" in done.stdout
    # ... without the libraries behind them.
    assert _heavy(modules) == []


@pytest.mark.parametrize("command", ["triage", "decrypt"])
def test_offline_commands_import_no_heavy_module(command: str) -> None:
    capture = FIXTURES / "tls13-aes128gcm.pcap"
    keys = FIXTURES / "tls13-aes128gcm.keys"
    main = "from capdebug.cli.app import main\nmain(sys.argv[1:])\n"
    done, modules = _loaded_by(main, command, str(capture), "--keylog", str(keys))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the command printed nothing"
    assert "capdebug.analysis.decode" in modules
    assert _heavy(modules) == []


_HELP_OPTIONS = {
    ("capture",): ("--output", "--interface", "--port", "--snaplen", "--buffer-size", "--keylog", "--live"),
    ("interfaces",): ("--remote", "--tcpdump-path", "--ssh-config", "--ssh-option"),
    ("serve",): ("--port", "--cert", "--key", "--ca", "--client-auth", "--key-log", "--www", "--tickets"),
    ("connect",): ("--sni", "--ca", "--insecure", "--key-share", "--send", "--key-update", "--timeout"),
    ("certs", "make"): ("--only",),
    ("report",): ("--output", "--keylog", "--slow-handshake", "--no-env"),
}


@pytest.mark.parametrize("argv", sorted(_HELP_OPTIONS))
def test_help_of_lazily_importing_commands(argv: tuple[str, ...]) -> None:
    done = subprocess.run(
        [*CAPDEBUG, *argv, "--help"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    for option in _HELP_OPTIONS[argv]:
        assert option in done.stdout, f"{option} missing from `capdebug {' '.join(argv)} --help`"


def test_help_shows_defaults_and_names_taken_from_the_libraries() -> None:
    # The values typer puts into the help come from the library modules, not from copies.
    from capdebug.capture.command import DEFAULT_BUFFER_KIB, DEFAULT_SNAPLEN
    from capdebug.crypto.testpki import PKI_LAYOUT

    capture = subprocess.run([*CAPDEBUG, "capture", "--help"], capture_output=True, text=True, env=_env())
    assert capture.returncode == 0, capture.stderr
    assert str(DEFAULT_SNAPLEN) in capture.stdout
    assert str(DEFAULT_BUFFER_KIB) in capture.stdout
    certs = subprocess.run([*CAPDEBUG, "certs", "make", "--help"], capture_output=True, text=True, env=_env())
    assert certs.returncode == 0, certs.stderr
    flat = " ".join(certs.stdout.split())
    for name in PKI_LAYOUT:
        assert name in flat
