"""Tests for capdebug.crypto.keylog: the NSS key log format (RFC 9850)."""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug.crypto.keylog import (
    EXPORTER_LABELS,
    TLS13_LABELS,
    KeyLog,
    KeyLogEntry,
    format_line,
    write_keylog_file,
)
from capdebug.errors import KeyLogError, UsageError
from tests.support.peers import self_signed_localhost

CR1 = bytes(range(32))
CR2 = bytes(range(100, 132))


def hx(b: bytes) -> str:
    return b.hex()


ALL_LABELS_AND_LENGTHS = [
    ("CLIENT_RANDOM", 48),
    ("CLIENT_EARLY_TRAFFIC_SECRET", 32),
    ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 48),
    ("SERVER_HANDSHAKE_TRAFFIC_SECRET", 32),
    ("CLIENT_TRAFFIC_SECRET_0", 32),
    ("SERVER_TRAFFIC_SECRET_0", 64),
    ("EARLY_EXPORTER_SECRET", 32),
    ("EXPORTER_SECRET", 48),
    ("ECH_SECRET", 32),
    ("ECH_CONFIG", 71),
    ("CLIENT_TRAFFIC_SECRET_1", 32),
    ("SERVER_TRAFFIC_SECRET_1", 32),
    ("CLIENT_TRAFFIC_SECRET_17", 48),
]


@pytest.mark.parametrize(("label", "length"), ALL_LABELS_AND_LENGTHS)
def test_every_label_parses(label: str, length: int) -> None:
    secret = bytes((i * 7 + length) & 0xFF for i in range(length))
    log = KeyLog.parse(f"{label} {hx(CR1)} {hx(secret)}\n")
    assert log.issues == []
    assert log.get(CR1, label) == secret
    assert log.secrets_for(CR1) == {label: secret}
    assert len(log) == 1
    assert CR1 in log
    assert format_line(label, CR1, secret) == f"{label} {hx(CR1)} {hx(secret)}"


def test_constants() -> None:
    assert {"EXPORTER_SECRET", "EARLY_EXPORTER_SECRET"} == EXPORTER_LABELS
    assert "CLIENT_TRAFFIC_SECRET_0" in TLS13_LABELS
    assert "CLIENT_RANDOM" not in TLS13_LABELS


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_line_endings_and_line_numbers(eol: str) -> None:
    lines = [
        "# a comment",
        "",
        f"CLIENT_RANDOM {hx(CR1)} {'ab' * 48}",
        "   ",
        f"  SERVER_TRAFFIC_SECRET_0\t{hx(CR2)}  {'cd' * 32}  ",
        "BOGUS_LABEL " + hx(CR2) + " " + "00" * 32,
    ]
    log = KeyLog.parse(eol.join(lines) + eol)
    assert log.get(CR1, "CLIENT_RANDOM") == bytes.fromhex("ab" * 48)
    assert log.get(CR2, "SERVER_TRAFFIC_SECRET_0") == bytes.fromhex("cd" * 32)
    assert [i.line_no for i in log.issues] == [6]
    assert [e.line_no for e in log.entries()] == [3, 5]


def test_bytes_input_and_bom() -> None:
    text = "\ufeffCLIENT_RANDOM " + hx(CR1) + " " + "11" * 48 + "\n"
    log = KeyLog.parse(text.encode("utf-8"))
    assert log.issues == []
    assert log.get(CR1, "CLIENT_RANDOM") == b"\x11" * 48


def test_mixed_case_hex_normalised_on_output() -> None:
    secret = bytes(range(200, 232))
    mixed_cr = "".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(hx(CR1)))
    mixed_secret = hx(secret).upper()
    log = KeyLog.parse(f"client_traffic_secret_0 {mixed_cr} {mixed_secret}")
    assert log.issues == []
    assert log.get(CR1, "CLIENT_TRAFFIC_SECRET_0") == secret
    assert log.lines() == [f"CLIENT_TRAFFIC_SECRET_0 {hx(CR1)} {hx(secret)}"]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (f"NOT_A_LABEL {hx(CR1)} {'00' * 32}", "unknown label"),
        (f"CLIENT_TRAFFIC_SECRET_01 {hx(CR1)} {'00' * 32}", "unknown label"),
        (f"CLIENT_RANDOM {hx(CR1)[:-2]} {'00' * 48}", "client_random must be 32 bytes"),
        (f"CLIENT_RANDOM {hx(CR1)}00 {'00' * 48}", "client_random must be 32 bytes"),
        (f"CLIENT_RANDOM {hx(CR1)[:-1]} {'00' * 48}", "odd number of hex digits"),
        (f"CLIENT_RANDOM {hx(CR1)} {'0' * 95}", "odd number of hex digits"),
        (f"CLIENT_RANDOM {hx(CR1)} {'zz' * 48}", "not hex"),
        (f"CLIENT_RANDOM {'g' * 64} {'00' * 48}", "not hex"),
        (f"CLIENT_RANDOM {hx(CR1)} {'00' * 32}", "must be 48 bytes"),
        (f"SERVER_TRAFFIC_SECRET_0 {hx(CR1)} {'00' * 40}", "32, 48 or 64"),
        (f"ECH_CONFIG {hx(CR1)} x", "odd number"),
        (f"CLIENT_RANDOM {hx(CR1)}", "expected 3 fields"),
        (f"CLIENT_RANDOM {hx(CR1)} {'00' * 48} extra", "expected 3 fields"),
        (f"RSA {'00' * 7} {'00' * 48}", "must be 8 bytes"),
        (f"RSA {'00' * 8} {'00' * 47}", "must be 48 bytes"),
    ],
)
def test_bad_line_in_the_middle_keeps_the_others(line: str, needle: str) -> None:
    good_before = f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {hx(CR1)} {'01' * 32}"
    good_after = f"SERVER_HANDSHAKE_TRAFFIC_SECRET {hx(CR2)} {'02' * 48}"
    log = KeyLog.parse("\n".join([good_before, line, good_after]), source="k.log")
    assert len(log.issues) == 1
    issue = log.issues[0]
    assert issue.line_no == 2
    assert needle in issue.message
    assert str(issue).startswith("k.log: line 2: ")
    assert "00" * 32 not in issue.message  # never echo a secret
    assert log.get(CR1, "CLIENT_HANDSHAKE_TRAFFIC_SECRET") == b"\x01" * 32
    assert log.get(CR2, "SERVER_HANDSHAKE_TRAFFIC_SECRET") == b"\x02" * 48
    assert len(log) == 2


def test_duplicates_merge_silently() -> None:
    line = f"EXPORTER_SECRET {hx(CR1)} {'aa' * 32}"
    log = KeyLog.parse("\n".join([line, line.lower().replace("exporter_secret", "EXPORTER_SECRET"), line]))
    assert log.issues == []
    assert len(log) == 1
    assert [e.line_no for e in log.entries()] == [1]


def test_conflict_keeps_first_and_reports() -> None:
    text = "\n".join(
        [
            "# header",
            "",
            f"SERVER_TRAFFIC_SECRET_0 {hx(CR1)} {'aa' * 32}",
            f"SERVER_TRAFFIC_SECRET_0 {hx(CR1)} {'bb' * 32}",
        ]
    )
    log = KeyLog.parse(text)
    assert log.get(CR1, "SERVER_TRAFFIC_SECRET_0") == b"\xaa" * 32
    assert len(log.issues) == 1
    issue = log.issues[0]
    assert issue.line_no == 4
    assert issue.message.startswith(f"conflicting SERVER_TRAFFIC_SECRET_0 for client_random {hx(CR1)[:8]}")
    assert issue.message.endswith("keeping the first value from line 3")
    assert "bb" * 32 not in str(issue) and "aa" * 32 not in str(issue)


def test_merge_adds_and_reports_conflicts_across_sources() -> None:
    a = KeyLog.parse(f"CLIENT_RANDOM {hx(CR1)} {'11' * 48}\n", source="a.keys")
    b = KeyLog.parse(
        f"CLIENT_RANDOM {hx(CR1)} {'22' * 48}\nCLIENT_RANDOM {hx(CR2)} {'33' * 48}\nnonsense\n",
        source="b.keys",
    )
    a.merge(b)
    assert a.client_randoms() == {CR1, CR2}
    assert a.get(CR1, "CLIENT_RANDOM") == b"\x11" * 48
    assert a.get(CR2, "CLIENT_RANDOM") == b"\x33" * 48
    msgs = [str(i) for i in a.issues]
    assert msgs[0].startswith("b.keys: line 3: expected 3 fields")
    assert msgs[1].startswith("b.keys: line 1: conflicting CLIENT_RANDOM")
    assert msgs[1].endswith("from a.keys line 1")
    assert [e.client_random for e in a.entries()] == [CR1, CR2]


def test_rsa_lines_are_kept_apart() -> None:
    enc = bytes(range(50, 58))
    log = KeyLog.parse(f"RSA {hx(enc)} {'44' * 48}\nCLIENT_RANDOM {hx(CR1)} {'55' * 48}\n")
    assert log.issues == []
    assert len(log) == 1
    assert log.client_randoms() == {CR1}
    assert log.rsa_premaster(enc + b"rest of the encrypted premaster") == b"\x44" * 48
    assert log.rsa_premaster(b"\x00" * 8) is None
    assert log.lines()[-1] == f"RSA {hx(enc)} {'44' * 48}"
    assert all(not line.startswith("RSA") for line in log.lines([CR1]))


def test_lines_filter_and_to_text() -> None:
    text = "\n".join(
        [
            f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {hx(CR1)} {'01' * 32}",
            f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {hx(CR2)} {'02' * 32}",
            f"EXPORTER_SECRET {hx(CR1)} {'03' * 32}",
            f"SERVER_HANDSHAKE_TRAFFIC_SECRET {hx(CR1)} {'04' * 32}",
        ]
    )
    log = KeyLog.parse(text)
    assert log.lines([CR1], exclude_labels=EXPORTER_LABELS) == [
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {hx(CR1)} {'01' * 32}",
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {hx(CR1)} {'04' * 32}",
    ]
    assert log.to_text([CR2]) == f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {hx(CR2)} {'02' * 32}\n"
    assert log.to_text([]) == ""
    again = KeyLog.parse(log.to_text())
    assert list(again.entries()) == list(log.entries())


def test_entry_repr_hides_secret() -> None:
    entry = next(KeyLog.parse(f"CLIENT_RANDOM {hx(CR1)} {'5a' * 48}").entries())
    assert isinstance(entry, KeyLogEntry)
    assert "5a5a" not in repr(entry)
    assert "CLIENT_RANDOM" in repr(entry)


def test_labels_missing() -> None:
    log = KeyLog.parse(
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {hx(CR1)} {'01' * 32}\n"
        f"SERVER_TRAFFIC_SECRET_0 {hx(CR1)} {'02' * 32}\n"
        f"CLIENT_RANDOM {hx(CR2)} {'03' * 48}\n"
    )
    assert log.labels_missing(CR1, "1.3") == ["SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"]
    assert log.labels_missing(CR1, "1.2") == ["CLIENT_RANDOM"]
    assert log.labels_missing(CR2, "1.2") == []
    assert len(log.labels_missing(b"\x00" * 32, "1.3")) == 4
    with pytest.raises(UsageError):
        log.labels_missing(CR1, "2.0")


def test_format_line_rejects_bad_input() -> None:
    with pytest.raises(UsageError):
        format_line("CLIENT_RANDOM", CR1, b"\x00" * 32)
    with pytest.raises(UsageError):
        format_line("CLIENT_RANDOM", CR1[:31], b"\x00" * 48)
    with pytest.raises(UsageError):
        format_line("NOPE", CR1, b"\x00" * 32)


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyLogError, match="does not exist"):
        KeyLog.from_file(tmp_path / "missing.keys")
    with pytest.raises(KeyLogError, match="directory"):
        KeyLog.from_file(tmp_path)
    binary = tmp_path / "bin.keys"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(KeyLogError, match="not a text file"):
        KeyLog.from_file(binary)
    latin = tmp_path / "latin.keys"
    latin.write_bytes(b"# caf\xe9\n")
    with pytest.raises(KeyLogError, match="not UTF-8"):
        KeyLog.from_file(latin)
    good = tmp_path / "good.keys"
    good.write_text(f"CLIENT_RANDOM {hx(CR1)} {'66' * 48}\r\n")
    log = KeyLog.from_file(good)
    assert log.get(CR1, "CLIENT_RANDOM") == b"\x66" * 48
    assert next(log.entries()).source == str(good)


def test_from_file_unreadable(tmp_path: Path) -> None:
    p = tmp_path / "secret.keys"
    p.write_text("")
    p.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(KeyLogError, match="cannot read"):
            KeyLog.from_file(p)
        return
    # Root reads any file: check as an unprivileged user in a child process instead.
    tmp_path.chmod(0o755)
    code = (
        "import sys\n"
        "from capdebug.crypto.keylog import KeyLog\n"
        "from capdebug.errors import KeyLogError\n"
        "try:\n"
        f"    KeyLog.from_file({str(p)!r})\n"
        "except KeyLogError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
        cwd="/",
    )
    assert done.returncode == 3, done.stderr
    assert "cannot read" in done.stdout


def test_write_keylog_file_mode_0600_and_append(tmp_path: Path) -> None:
    path = tmp_path / "out.keys"
    old = os.umask(0)
    try:
        write_keylog_file(path, [format_line("CLIENT_RANDOM", CR1, b"\x01" * 48)])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_keylog_file(path, [format_line("CLIENT_RANDOM", CR2, b"\x02" * 48) + "\n"])
    log = KeyLog.from_file(path)
    assert log.issues == []
    assert log.client_randoms() == {CR1, CR2}
    write_keylog_file(path, [format_line("CLIENT_RANDOM", CR2, b"\x03" * 48)], append=False)
    assert KeyLog.from_file(path).client_randoms() == {CR2}


def test_write_keylog_file_tightens_existing(tmp_path: Path) -> None:
    path = tmp_path / "loose.keys"
    path.write_text("# existing\n")
    path.chmod(0o644)
    write_keylog_file(path, [format_line("EXPORTER_SECRET", CR1, b"\x09" * 32)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# existing\n")


def test_write_keylog_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyLogError, match="newline"):
        write_keylog_file(tmp_path / "x.keys", ["a\nb"])
    with pytest.raises(KeyLogError, match="cannot open"):
        write_keylog_file(tmp_path / "no" / "such" / "dir.keys", ["x"])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_never_raises_on_text(text: str) -> None:
    log = KeyLog.parse(text)
    for entry in log.entries():
        assert len(entry.client_random) == 32
    KeyLog.parse(log.to_text())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["CLIENT_RANDOM", "SERVER_TRAFFIC_SECRET_0", "RSA", "X"]), max_size=5),
    st.binary(),
)
def test_parse_never_raises_on_near_miss_lines(labels: list[str], blob: bytes) -> None:
    text = "\n".join(f"{label} {blob.hex()} {blob[::-1].hex()}" for label in labels)
    KeyLog.parse(text)
    KeyLog.parse(blob)


# -- a real key log from Python's ssl module (OpenSSL underneath) ------------------------


def _memory_handshake(tmp: Path, version: ssl.TLSVersion) -> Path:
    cert, key = self_signed_localhost(tmp, ec.generate_private_key(ec.SECP256R1()))
    keylog = tmp / f"py-{version.name}.keys"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    for ctx in (server_ctx, client_ctx):
        ctx.minimum_version = ctx.maximum_version = version
    client_ctx.keylog_filename = str(keylog)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", client), ("s", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    client.write(b"ping")
    s_in.write(c_out.read())
    assert server.read(4) == b"ping"
    return keylog


def test_real_python_ssl_keylog_tls13(tmp_path: Path) -> None:
    path = _memory_handshake(tmp_path, ssl.TLSVersion.TLSv1_3)
    log = KeyLog.from_file(path)
    assert log.issues == []
    assert len(log.client_randoms()) == 1
    (cr,) = log.client_randoms()
    assert log.labels_missing(cr, "1.3") == []
    assert "EXPORTER_SECRET" in log.secrets_for(cr)
    assert KeyLog.parse(log.to_text()).secrets_for(cr) == log.secrets_for(cr)


def test_real_python_ssl_keylog_tls12(tmp_path: Path) -> None:
    path = _memory_handshake(tmp_path, ssl.TLSVersion.TLSv1_2)
    log = KeyLog.from_file(path)
    assert log.issues == []
    (cr,) = log.client_randoms()
    assert log.labels_missing(cr, "1.2") == []
    assert len(log.secrets_for(cr)["CLIENT_RANDOM"]) == 48


def test_openssl_literal_traffic_secret_n_is_numbered_in_order() -> None:
    # OpenSSL 3.0 writes the literal label ..._TRAFFIC_SECRET_N after every KeyUpdate.
    text = "\n".join(
        [
            f"CLIENT_TRAFFIC_SECRET_0 {hx(CR1)} {'00' * 32}",
            f"CLIENT_TRAFFIC_SECRET_N {hx(CR1)} {'01' * 32}",
            f"SERVER_TRAFFIC_SECRET_N {hx(CR1)} {'a1' * 32}",
            f"CLIENT_TRAFFIC_SECRET_N {hx(CR1)} {'01' * 32}",  # duplicate of generation 1
            f"CLIENT_TRAFFIC_SECRET_N {hx(CR1)} {'02' * 32}",
            f"CLIENT_TRAFFIC_SECRET_N {hx(CR2)} {'03' * 32}",
        ]
    )
    log = KeyLog.parse(text)
    assert log.issues == []
    assert log.secrets_for(CR1) == {
        "CLIENT_TRAFFIC_SECRET_0": b"\x00" * 32,
        "CLIENT_TRAFFIC_SECRET_1": b"\x01" * 32,
        "SERVER_TRAFFIC_SECRET_1": b"\xa1" * 32,
        "CLIENT_TRAFFIC_SECRET_2": b"\x02" * 32,
    }
    assert log.get(CR2, "CLIENT_TRAFFIC_SECRET_1") == b"\x03" * 32
    assert [e.line_no for e in log.entries()] == [1, 2, 3, 5, 6]
