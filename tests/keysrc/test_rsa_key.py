"""TLS 1.2 RSA key exchange decrypted with the server's private key (--rsa-key) and with the key
log's RSA lines, against tshark with the same private key; and why a key cannot help (EC)DHE."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from capdebug.analysis.events import AppDataEvent, DecodeEvent, HandshakeEvent, Reason, UndecryptableEvent
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.errors import KeyLogError
from capdebug.pcap.open import open_capture
from capdebug.wire.handshake import ClientKeyExchange
from capdebug.wire.handshake12 import pull_encrypted_premaster
from tests.oracle import by_frame, capdebug_rows
from tests.tools import require, require_root

from .peers import capture_session, rsa_identity, tshark_rsa_rows

RSA_SUITE = ["-cipher", "AES128-GCM-SHA256", "-no_tls1_3"]


def _decode(capture: Path, keylogs: list[Path], rsa_keys: list[str]) -> tuple[list[DecodeEvent], list[bytes]]:
    keys = load_keys(capture, keylogs, use_env=False, rsa_keys=rsa_keys)
    plain: list[bytes] = []
    from capdebug.analysis.decode import DecodeOptions

    options = DecodeOptions(app_data_sink=lambda conn, who, data: plain.append(data))
    with open_capture(capture) as reader:
        return list(iter_events(reader, keys.keylog, options)), plain


@pytest.fixture(scope="module")
def rsa_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, int, Path]:
    require("openssl", "tcpdump", "tshark")
    require_root()
    folder = tmp_path_factory.mktemp("rsa")
    cert, key = rsa_identity(folder)
    capture, keylog, port = capture_session(folder, cert, key, RSA_SUITE)
    return capture, key, keylog, port, folder


def _undecryptable(events: list[DecodeEvent]) -> list[UndecryptableEvent]:
    return [e for e in events if isinstance(e, UndecryptableEvent)]


def test_private_key_decrypts_like_tshark(rsa_session: tuple[Path, Path, Path, int, Path]) -> None:
    capture, key, _, port, folder = rsa_session
    events, plain = _decode(capture, [], [str(key)])
    assert not _undecryptable(events)
    assert any(isinstance(e, AppDataEvent) and e.decrypted for e in events)
    assert any(b"HTTP/1.0 200 ok" in p for p in plain), "the server's reply was not decrypted"
    ours = by_frame(capdebug_rows(events))
    theirs = by_frame(tshark_rsa_rows(capture, key, port, folder))
    # tshark shows both Finished messages only when its RSA key decrypted the session.
    assert sum(1 for r in theirs if r[3] == "hs" and r[4] == 20) == 2
    assert ours == theirs


def test_der_key_with_scope(rsa_session: tuple[Path, Path, Path, int, Path], tmp_path: Path) -> None:
    capture, key, _, port, _ = rsa_session
    der = tmp_path / "key.der"
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    der.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    events, _ = _decode(capture, [], [f"{der}@127.0.0.1:{port}"])
    assert not _undecryptable(events)
    # Scoped to another port, the key is not tried, and the reason says so.
    events, _ = _decode(capture, [], [f"{der}@127.0.0.1:{port + 1 if port < 65535 else 1}"])
    bad = _undecryptable(events)
    assert bad and bad[0].reason == Reason.RSA_KEY_EXCHANGE
    assert "scope" in bad[0].message


def test_rsa_keylog_lines(rsa_session: tuple[Path, Path, Path, int, Path], tmp_path: Path) -> None:
    """The key log's ``RSA <first 8 bytes of the encrypted pre-master> <pre-master>`` lines,
    made honestly: the pre-master is decrypted here from the captured ClientKeyExchange."""
    capture, key, _, _, _ = rsa_session
    events, _ = _decode(capture, [], [])
    cke = [
        e.message
        for e in events
        if isinstance(e, HandshakeEvent) and isinstance(e.message, ClientKeyExchange)
    ]
    assert len(cke) == 1
    encrypted = pull_encrypted_premaster(cke[0].body)
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    premaster = private.decrypt(encrypted, padding.PKCS1v15())  # type: ignore[union-attr]
    assert len(premaster) == 48
    keylog = tmp_path / "rsa.keys"
    keylog.write_text(f"RSA {encrypted[:8].hex()} {premaster.hex()}\n")
    with_lines, plain = _decode(capture, [keylog], [])
    with_key, _ = _decode(capture, [], [str(key)])
    assert not _undecryptable(with_lines)
    assert any(b"HTTP/1.0 200 ok" in p for p in plain)
    assert capdebug_rows(with_lines) == capdebug_rows(with_key)


def test_wrong_key_yields_no_secret(rsa_session: tuple[Path, Path, Path, int, Path], tmp_path: Path) -> None:
    capture, _, _, _, _ = rsa_session
    _, other = rsa_identity(tmp_path / "other")
    events, plain = _decode(capture, [], [str(other)])
    bad = _undecryptable(events)
    assert plain == []
    assert len({(e.from_, e.reason) for e in bad}) == 2  # each side explained once
    assert all(e.reason == Reason.RSA_KEY_EXCHANGE for e in bad)
    assert "none of the 1 RSA private key(s)" in bad[0].message
    assert "no key log was given" not in bad[0].message


def test_ecdhe_session_says_why_a_key_cannot_help(tmp_path: Path) -> None:
    require("openssl", "tcpdump")
    require_root()
    cert, key = rsa_identity(tmp_path)
    capture, _, _ = capture_session(
        tmp_path, cert, key, ["-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-no_tls1_3"]
    )
    events, _ = _decode(capture, [], [str(key)])
    bad = _undecryptable(events)
    assert bad
    assert "an RSA private key cannot help: with its ECDHE key exchange" in bad[0].message
    assert "no key log was given" not in bad[0].message
    capture13, _, _ = capture_session(tmp_path / "13", cert, key, [])
    bad13 = _undecryptable(_decode(capture13, [], [str(key)])[0])
    assert bad13 and "an RSA private key cannot help: with TLS 1.3" in bad13[0].message


def test_non_keylog_files_are_refused(
    rsa_session: tuple[Path, Path, Path, int, Path], tmp_path: Path
) -> None:
    capture, key, _, _, _ = rsa_session
    cert = key.parent / "cert.pem"
    with pytest.raises(KeyLogError, match=r"PEM private key .*--rsa-key"):
        load_keys(None, [key], use_env=False)
    with pytest.raises(KeyLogError, match="PEM certificate"):
        load_keys(None, [cert], use_env=False)
    with pytest.raises(KeyLogError, match=r"not a key log .*: it is a pcap capture"):
        load_keys(None, [capture], use_env=False)
    with pytest.raises(KeyLogError, match=r"not RSA|not a PEM or DER private key|PEM certificate"):
        load_keys(None, [], use_env=False, rsa_keys=[str(cert)])


def test_report_names_the_rsa_key(rsa_session: tuple[Path, Path, Path, int, Path], tmp_path: Path) -> None:
    """With only --rsa-key, the report's header names the key, never "no key log given"."""
    capture, key, _, _, _ = rsa_session
    out = tmp_path / "r.html"
    run = subprocess.run(
        ["capdebug", "report", str(capture), "--rsa-key", str(key), "--no-env", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    page = out.read_text()
    assert "1 RSA private key" in page
    assert "no key log" not in page
