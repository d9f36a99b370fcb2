"""A real TLS 1.3 fixture with a plaintext prelude spliced in front of its TLS (sequence numbers
moved): the decoder finds TLS after an SMTP STARTTLS, after an unknown protocol, and in pieces;
what it decodes equals the fixture's own decode."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.decode import craft as c

SMTP = (b"220 mx ESMTP\r\n", b"EHLO me\r\nSTARTTLS\r\n", b"250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n")
UNKNOWN = (b"HELLO proto 3\r\n", b"WANT-TLS\r\n", b"")


def _spliced(
    tmp_path: Path, server_first: bytes, client: bytes, server_after: bytes, *, tls: bool = True
) -> Path:
    segs = c.read_segments(c.fixture("tls13-aes128gcm")[0])
    who = c.client_of(segs)
    syn, synack, rest = segs[0], segs[1], segs[2:]
    spre = server_first + server_after
    t = synack.ts_ns + 1000
    cs, ss = (syn.seq + 1) & 0xFFFFFFFF, (synack.seq + 1) & 0xFFFFFFFF
    pre = (
        [replace(synack, flags=c.ACK | c.PSH, seq=ss, ack=cs, payload=server_first, ts_ns=t)]
        if server_first
        else []
    )
    pre.append(
        replace(
            syn,
            flags=c.ACK | c.PSH,
            seq=cs,
            ack=(ss + len(server_first)) & 0xFFFFFFFF,
            payload=client,
            ts_ns=t + 1000,
        )
    )
    if server_after:
        seq = (ss + len(server_first)) & 0xFFFFFFFF
        ack = (cs + len(client)) & 0xFFFFFFFF
        pre.append(
            replace(synack, flags=c.ACK | c.PSH, seq=seq, ack=ack, payload=server_after, ts_ns=t + 2000)
        )
    moved = c.shift(rest, seq_client=len(client), seq_server=len(spre), client=who, ts=10_000)
    if not tls:
        # The client gives up after the 220: only its FIN (and the server's) follow.
        moved = [
            replace(
                m,
                payload=b"",
                seq=(syn.seq + 1 + len(client)) & 0xFFFFFFFF
                if c.is_client(m, who)
                else (synack.seq + 1 + len(spre)) & 0xFFFFFFFF,
            )
            for m in moved
            if m.flags & c.FIN
        ]
    return c.write(tmp_path / "spliced.pcap", [syn, synack, *pre, *moved])


def _tls_kinds(objs: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (o["event"], o.get("from"), o.get("name"), o.get("decrypted"), o.get("length"))
        for o in objs
        if o["event"] in ("handshake", "app_data", "alert", "undecryptable")
    ]


@pytest.mark.parametrize(("prelude", "protocol"), [(SMTP, "smtp"), (UNKNOWN, "unknown")])
def test_tls_after_a_prelude_decodes_like_the_fixture(
    tmp_path: Path, prelude: tuple[bytes, ...], protocol: str
) -> None:
    original, keys = c.fixture("tls13-aes128gcm")
    expected = _tls_kinds(c.as_json(c.decode(original, keys)))
    assert expected and not any(k[0] == "undecryptable" for k in expected)
    spliced = _spliced(tmp_path, *prelude)
    objs = c.as_json(c.decode(spliced, keys))
    assert _tls_kinds(objs) == expected
    ups = [o for o in objs if o["event"] == "upgrade"]
    assert [(u["protocol"], u["accepted"]) for u in ups] == [(protocol, True)]
    if protocol == "smtp":
        assert (ups[0]["command"], ups[0]["reply"], ups[0]["from"]) == ("STARTTLS", "220 go ahead", "server")
    else:
        assert ups[0]["from"] == "client"


def test_accepted_upgrade_without_a_client_hello_is_tls_never_followed(tmp_path: Path) -> None:
    from capdebug.analysis.triage import triage

    spliced = _spliced(tmp_path, *SMTP, tls=False)
    (report,) = triage(c.decode(spliced, None))
    by_code = {v.code: v for v in report.verdicts}
    assert by_code["tls_never_followed"].by == "client" and "upgraded" in by_code
