"""TLS 1.0 and 1.1, still spoken by old servers and devices: real openssl s_server and s_client
(security level 0, the only one OpenSSL 3 allows them at) on the loopback, captured by tcpdump,
decrypted frame for frame as tshark decrypts them.

They differ from TLS 1.2 in their PRF (RFC 2246 5: MD5 and SHA-1 halves, XORed) and, for TLS
1.0, in the CBC IV, which is the last ciphertext block of the record before (RFC 2246 6.2.3.2;
OpenSSL also sends an empty record before each data record against BEAST). capdebug used to
derive TLS 1.2 keys for them and blame the key log ("the secret is wrong")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capdebug.analysis.events import AppDataEvent, UndecryptableEvent
from tests.keysrc2._capture import session
from tests.oracle import by_frame, capdebug_events, capdebug_rows, tshark_rows
from tests.tools import require, require_root


def _tshark_lengths(capture: Path, keylog: Path) -> list[int]:
    argv = ["tshark", "-n", "-r", str(capture), "-o", f"tls.keylog_file:{keylog}", "-Y", "tls"]
    argv += ["--disable-protocol", "http"]  # the plaintext as data, not as HTTP
    argv += ["-T", "fields", "-e", "data.len"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [int(n) for line in out.splitlines() for n in line.split(",") if n]


@pytest.mark.parametrize(
    ("version", "extra"),
    [("-tls1", ()), ("-tls1", ("-no_etm",)), ("-tls1_1", ()), ("-tls1_1", ("-no_etm",))],
    ids=["tls1.0-etm", "tls1.0-mac-then-encrypt", "tls1.1-etm", "tls1.1-mac-then-encrypt"],
)
def test_legacy_versions_decrypt_as_tshark_does(tmp_path: Path, version: str, extra: tuple[str, ...]) -> None:
    require("openssl", "tcpdump", "tshark")
    require_root()
    args = [version, "-cipher", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0"]
    capture, keylog, _ = session(tmp_path, server_args=args, client_args=[*args, *extra])
    events = capdebug_events(capture, keylog)
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    app = [e for e in events if isinstance(e, AppDataEvent)]
    assert app and all(e.decrypted for e in app)
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(capture, keylog))
    # Plaintext lengths: tshark shows none for the empty records TLS 1.0 sends before data.
    mine = [e.length for e in app if e.length]
    assert mine and mine == [n for n in _tshark_lengths(capture, keylog) if n]
