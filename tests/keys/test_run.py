"""``capdebug run``: real clients get their keys logged by the means the doctor chose, and each
key log decrypts a real tcpdump capture of the client's connection (capdebug and tshark)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from .conftest import psql_binary
from .servers import RESPONSE, tls_server


def _run(keylog: Path, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["capdebug", "run", "--keylog", str(keylog), "--", *argv],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, **kw,  # type: ignore[call-overload]
    )  # fmt: skip


def _decrypt(capture: Path, keylog: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        ["capdebug", "decrypt", str(capture), "--keylog", str(keylog), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines()]


def _assert_decrypts(capture: Path, keylog: Path) -> None:
    events = _decrypt(capture, keylog)
    assert [e for e in events if e["event"] == "undecryptable"] == []
    server_data = [e for e in events if e["event"] == "app_data" and e["from"] == "server"]
    assert server_data and all(e["decrypted"] for e in server_data)
    assert len(RESPONSE) in [e["length"] for e in server_data]


def _tshark_encrypted_handshake_types(capture: Path, keylog: Path | None) -> set[str]:
    cmd = ["tshark", "-n", "-r", str(capture), "-Y", "tls", "-T", "fields", "-e", "tls.handshake.type"]
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {t for line in out.split() for t in line.split(",")}


def _session(
    tmp_path: Path, argv_for: Callable[[int], list[str]], *, postgres: bool = False, tls12: bool = False
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    require_root()
    require("tcpdump", "tshark")
    keylog, capture = tmp_path / "keys.log", tmp_path / "cap.pcap"
    with tls_server(tmp_path, postgres=postgres, tls12=tls12) as server, tcpdump(capture, server.port):
        result = _run(keylog, argv_for(server.port))
    assert server.handshakes == 1, result.stderr
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    return keylog, capture, result


def test_openssl_s_client_through_the_shim(tmp_path: Path) -> None:
    require("openssl")
    keylog, capture, result = _session(
        tmp_path, lambda port: ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet"]
    )
    assert "1 TLS session(s) logged" in result.stderr and "(via shim)" in result.stderr
    _assert_decrypts(capture, keylog)
    # tshark as the oracle: EncryptedExtensions (8) and Finished (20) only appear with the keys.
    assert {"8", "20"} <= _tshark_encrypted_handshake_types(capture, keylog)
    assert "8" not in _tshark_encrypted_handshake_types(capture, None)


def test_psql_through_the_shim(tmp_path: Path) -> None:
    """psql asks for TLS with PostgreSQL's SSLRequest first. capdebug's decoder does not follow
    that upgrade yet (it finds no TLS connection), so tshark, told the port is pgsql, is the
    oracle here: the encrypted handshake and psql's StartupMessage appear only with the keys."""
    psql = psql_binary()
    keylog, capture, result = _session(
        tmp_path,
        lambda port: [psql, f"host=127.0.0.1 port={port} sslmode=require user=x dbname=x connect_timeout=5"],
        postgres=True,
    )
    assert "1 TLS session(s) logged" in result.stderr and "shim" in result.stderr
    port = subprocess.run(
        ["tshark", "-r", str(capture), "-T", "fields", "-e", "tcp.dstport", "-c", "1"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip

    def fields(keys: Path | None) -> str:
        cmd = ["tshark", "-n", "-r", str(capture), "-d", f"tcp.port=={port},pgsql", "-T", "fields",
               "-e", "tls.handshake.type", "-e", "pgsql.type"]  # fmt: skip
        if keys is not None:
            cmd += ["-o", f"tls.keylog_file:{keys}"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    with_keys, without = fields(keylog), fields(None)
    assert "Startup message" in with_keys and "Startup message" not in without
    assert "20" in with_keys.replace(",", "\t").split()  # Finished, inside encrypted records


def test_curl_through_the_environment_tls12(tmp_path: Path) -> None:
    require("curl")
    keylog, capture, result = _session(
        tmp_path, lambda port: ["curl", "-sk", f"https://127.0.0.1:{port}/"], tls12=True
    )
    assert result.stdout == "hello\n"
    assert "(via env)" in result.stderr
    _assert_decrypts(capture, keylog)
    assert "CLIENT_RANDOM " in keylog.read_text()


def test_python_through_the_environment(tmp_path: Path) -> None:
    code = (
        "import ssl, sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], context=ssl._create_unverified_context()).read())"
    )
    keylog, capture, result = _session(
        tmp_path, lambda port: ["python3", "-c", code, f"https://127.0.0.1:{port}/"]
    )
    assert "b'hello\\n'" in result.stdout
    assert "env" in result.stderr
    _assert_decrypts(capture, keylog)


def test_gnutls_cli_through_the_environment(tmp_path: Path) -> None:
    require("gnutls-cli")
    keylog, capture, result = _session(
        tmp_path, lambda port: ["gnutls-cli", "--insecure", "-p", str(port), "127.0.0.1"]
    )
    assert "(via env)" in result.stderr
    _assert_decrypts(capture, keylog)


def test_node_through_its_flag(tmp_path: Path) -> None:
    require("node")
    js = (
        "const s=require('tls').connect(+process.argv[1],'127.0.0.1',{rejectUnauthorized:false},"
        "()=>{});s.on('data',d=>process.stdout.write(d));s.on('end',()=>s.end())"
    )
    keylog, capture, result = _session(tmp_path, lambda port: ["node", "-e", js, str(port)])
    assert "(via node-flag)" in result.stderr
    _assert_decrypts(capture, keylog)


def test_nothing_logged_says_why(tmp_path: Path, go_client: Path) -> None:
    result = _run(tmp_path / "k.log", [str(go_client)])
    assert result.returncode == 0
    assert "no TLS session was logged" in result.stderr
    assert "KeyLogWriter" in result.stderr


def test_the_command_exit_status_is_kept(tmp_path: Path) -> None:
    assert _run(tmp_path / "k.log", ["sh", "-c", "exit 7"]).returncode == 7
    missing = _run(tmp_path / "k.log", ["no-such-command-x"])
    assert missing.returncode == 2 and "no-such-command-x: command not found" in missing.stderr


def test_key_log_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("untouched\n")
    link = tmp_path / "k.log"
    link.symlink_to(target)
    result = _run(link, ["true"])
    assert result.returncode == 2 and "cannot create key log" in result.stderr
    assert target.read_text() == "untouched\n"


def test_a_key_log_readable_by_others_is_refused(tmp_path: Path) -> None:
    k = tmp_path / "k.log"
    k.write_text("")
    os.chmod(k, 0o644)
    result = _run(k, ["true"])
    assert result.returncode == 2 and "readable or writable by others" in result.stderr


def test_no_compiler_names_the_package(tmp_path: Path) -> None:
    require("openssl")
    env = {**os.environ, "CC": "no-such-cc", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = _run(tmp_path / "k.log", ["openssl", "version"], env=env)
    assert result.returncode == 1
    assert "apt-get install gcc libc6-dev" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", [0o777, 0o755])
def test_shim_cache_dir_must_be_private(tmp_path: Path, mode: int) -> None:
    from capdebug.capture.keylog import shim_cache_dir
    from capdebug.errors import CaptureError

    (tmp_path / "capdebug").mkdir()
    os.chmod(tmp_path / "capdebug", mode)
    if mode & 0o022:
        with pytest.raises(CaptureError, match="writable by no one else"):
            shim_cache_dir({"XDG_CACHE_HOME": str(tmp_path)})
    else:
        assert shim_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "capdebug"
