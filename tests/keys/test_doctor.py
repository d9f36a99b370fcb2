"""``capdebug keys doctor``: the diagnosis of real programs from the distribution and of
programs the tests build, and the ELF parser's behaviour on bad bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capdebug.keys.doctor import KeylogMethod, Linkage, TlsLibrary, diagnose
from capdebug.keys.elf import ElfError, go_version_from_buildinfo, parse_elf, shebang
from capdebug.keys.probe import parse_maps, probe_program
from tests.tools import require

from .conftest import psql_binary


def _doctor(program: str) -> dict[str, object]:
    out = subprocess.run(
        ["capdebug", "keys", "doctor", program, "--json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_openssl_s_client_is_dynamic_openssl_and_the_shim_works() -> None:
    require("openssl")
    d = _doctor("openssl")
    assert d["tls_library"] == "openssl"
    assert d["linkage"] == "dynamic"
    assert d["methods"] == ["shim"]
    assert str(d["version"]).startswith("3.")
    assert any("key-log shim will work" in p for p in d["plan"])  # type: ignore[union-attr]


def test_psql_uses_openssl_through_libpq() -> None:
    d = _doctor(psql_binary())
    assert d["tls_library"] == "openssl"
    assert d["methods"][0] == "shim"  # type: ignore[index]
    assert "loads libssl.so.3 through libpq.so.5" in d["evidence"]  # type: ignore[operator]


def test_curl_and_python_use_the_environment() -> None:
    require("curl")
    curl = _doctor("curl")
    assert curl["runtime"] == "curl" and curl["methods"] == ["env"]
    py = _doctor(shutil.which("python3") or "python3")
    assert py["runtime"] == "python"
    assert py["methods"][0] == "env"  # type: ignore[index]
    assert any("SSLKEYLOGFILE" in p for p in py["plan"])  # type: ignore[union-attr]


@pytest.mark.parametrize("program", ["gnutls-cli", "wget"])
def test_gnutls_programs_use_the_environment(program: str) -> None:
    require(program)
    d = _doctor(program)
    assert d["tls_library"] == "gnutls"
    assert d["methods"] == ["env"]
    # Debian 12's GnuTLS is 3.7.9: the version definitions say at least 3.7.
    major, minor = (int(x) for x in str(d["version"]).split(".")[:2])
    assert (major, minor) >= (3, 6)


def test_node_gets_the_flag_not_the_shim() -> None:
    require("node")
    d = _doctor("node")
    assert d["runtime"] == "node"
    assert d["linkage"] == "bundled"
    assert d["methods"] == ["node-flag"]
    assert any("--tls-keylog" in p for p in d["plan"])  # type: ignore[union-attr]


def test_static_openssl_client_cannot_be_reached(static_openssl_client: Path) -> None:
    d = _doctor(str(static_openssl_client))
    assert d["tls_library"] == "openssl"
    assert d["linkage"] == "static"
    assert d["methods"] == []
    assert any("SSL_CTX_set_keylog_callback" in p for p in d["plan"])  # type: ignore[union-attr]
    assert "triage" in str(d["without_keys"])


def test_go_client_needs_keylogwriter(go_client: Path) -> None:
    d = _doctor(str(go_client))
    assert d["tls_library"] == "go-crypto-tls"
    assert str(d["version"]).startswith("go1.")
    assert d["methods"] == []
    assert any("KeyLogWriter" in p for p in d["plan"])  # type: ignore[union-attr]


def test_a_running_python_process_shows_the_libssl_it_loaded() -> None:
    """/proc/PID/maps shows what was loaded at run time (the ssl module's libssl)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import ssl, sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        out = subprocess.run(
            ["capdebug", "keys", "doctor", "--pid", str(proc.pid), "--json"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
    d = json.loads(out.stdout)
    assert d["runtime"] == "python"
    assert str(d["version"]).startswith("3.")  # read from the mapped libcrypto
    assert f"Process {proc.pid} is already running" in d["plan"][0]


def test_doctor_text_and_bad_usage() -> None:
    require("gnutls-cli")
    out = subprocess.run(["capdebug", "keys", "doctor", "gnutls-cli"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "plan: Set SSLKEYLOGFILE" in out.stdout
    bad = subprocess.run(["capdebug", "keys", "doctor", "no-such-program-x"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "capdebug: error: no-such-program-x: no such program on PATH"
    both = subprocess.run(["capdebug", "keys", "doctor"], capture_output=True, text=True)
    assert both.returncode == 2 and "either PROGRAM or --pid" in both.stderr


def test_a_shell_script_is_followed_to_its_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/usr/bin/env python3\nprint(1)\n")
    d = diagnose(probe_program(str(script), shutil.which))
    assert d.runtime == "python"
    assert d.evidence[0] == "#! /usr/bin/env python3"
    sh = tmp_path / "t"
    sh.write_text("#!/bin/sh\ncurl https://example.com\n")
    d = diagnose(probe_program(str(sh), shutil.which))
    assert d.tls_library is TlsLibrary.NONE
    assert d.methods == (KeylogMethod.ENV, KeylogMethod.SHIM)
    assert d.linkage is Linkage.NONE


def test_every_truncation_of_a_real_library_parses_or_raises_elf_error() -> None:
    data = Path("/usr/lib/x86_64-linux-gnu/libssl.so.3").read_bytes()
    whole = parse_elf(data)
    assert "SSL_CTX_set_keylog_callback" in whole.dynamic_symbols
    assert whole.soname == "libssl.so.3" and "libcrypto.so.3" in whole.needed
    assert "OPENSSL_3.0.0" in whole.version_definitions
    started = time.monotonic()
    step = max(1, len(data) // 400)
    for cut in [*range(0, 4096, 7), *range(4096, len(data), step)]:
        try:
            parse_elf(data[:cut])
        except ElfError:
            pass
    assert time.monotonic() - started < 60


def test_corrupt_headers_raise_elf_error() -> None:
    data = bytearray(Path("/usr/lib/x86_64-linux-gnu/libssl.so.3").read_bytes()[:4096])
    with pytest.raises(ElfError, match="not an ELF file"):
        parse_elf(b"MZ" + bytes(100))
    data[4] = 9
    with pytest.raises(ElfError, match="unsupported ELF class 9"):
        parse_elf(bytes(data))


def test_go_buildinfo_inline_format() -> None:
    # Go 1.18+ layout: magic, pointer size 8, flags 2 (inline strings), padding to 32, then a
    # uvarint-prefixed version string.
    blob = b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16) + bytes([9]) + b"go1.21.13" + bytes([0])
    assert go_version_from_buildinfo(blob) == "go1.21.13"
    old = b"\xff Go buildinf:" + bytes([8, 0]) + bytes(16)
    assert go_version_from_buildinfo(old) == "go?"
    assert go_version_from_buildinfo(b"\xff Go buildinf") is None


def test_parse_maps_and_shebang() -> None:
    maps = (
        "55d0c-55d0d r--p 00000000 08:01 123 /usr/bin/python3.11\n"
        "7f00-7f01 r-xp 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f01-7f02 r--p 00001000 08:01 124 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f02-7f03 rw-p 00000000 00:00 0 \n"
        "7f03-7f04 r--p 00000000 08:01 125 /tmp/x.so (deleted)\n"
        "7ffc-7ffd rw-p 00000000 00:00 0 [stack]\n"
    )
    assert parse_maps(maps) == ["/usr/bin/python3.11", "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/tmp/x.so"]
    assert shebang(b"#!/usr/bin/env python3 -u\nx") == ["/usr/bin/env", "python3", "-u"]
    assert shebang(b"\x7fELF") is None
