"""Real sessions for the keysrc2 tests: openssl s_server and s_client on the loopback,
captured by a real tcpdump, and tshark's view of the frames."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from capdebug.analysis.events import DecodeEvent
from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.pcap.open import open_capture
from tests.keysrc.peers import rsa_identity
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.support.tcpdump import tcpdump

#: A request for a page of a few kilobytes (s_server -www's status page).
REQUEST = b"GET /stats HTTP/1.0\r\n\r\n"


def session(
    folder: Path,
    *,
    server_args: Sequence[str] = (),
    client_args: Sequence[str] = (),
    snaplen: int | None = None,
    request: bytes = REQUEST,
) -> tuple[Path, Path, int]:
    """One openssl s_server -www session fetched by s_client: (capture, server key log, port)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = rsa_identity(folder / "id")
    capture, keylog = folder / "session.pcap", folder / "server.keys"
    server, port = openssl_s_server(
        ["-cert", str(cert), "-key", str(key), "-www", "-keylogfile", str(keylog), *server_args]
    )
    try:
        with tcpdump(capture, port, snaplen=snaplen):
            client = Proc(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", *client_args],
                name="s_client",
            )
            client.send(request)
            client.finish(ok=None)
    finally:
        server.close()
    return capture, keylog, port


def events(capture: Path, keylog: Path | None) -> list[DecodeEvent]:
    keys = load_keys(capture, [keylog] if keylog else [], use_env=False)
    with open_capture(capture) as reader:
        return list(iter_events(reader, keys.keylog))


def tshark_fields(capture: Path, fields: Sequence[str], *options: str) -> list[list[str]]:
    """One row per frame tshark shows, the fields tab-separated (multi-values joined by ",")."""
    cmd = ["tshark", "-n", "-r", str(capture), *options, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]
