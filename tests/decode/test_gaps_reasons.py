"""Lost segments, captures that start mid-connection, and every undecryptable reason code,
on real TLS bytes re-emitted with scapy (see craft.py)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.decode import craft as c

SMALL = "tls13-aes128gcm"
LARGE = "tls13-large-transfer"
TLS12 = "tls12-ecdhe-aes128gcm"


def _load(name: str) -> tuple[list[c.Seg], Path, list[dict[str, Any]]]:
    pcap, keys = c.fixture(name)
    return c.read_segments(pcap), keys, c.as_json(c.decode(pcap, keys))


def _app(objs: list[dict[str, Any]], who: str | None = None) -> list[tuple[str, int, bool]]:
    return [
        (o["from"], o["length"], o["decrypted"])
        for o in objs
        if o["event"] == "app_data" and (who is None or o["from"] == who)
    ]


def _keylines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def _keyfile(tmp_path: Path, lines: list[list[str]], name: str = "keys.log") -> Path:
    out = tmp_path / name
    out.write_text("".join(" ".join(p) + "\n" for p in lines))
    return out


# -- (4) a lost segment ----------------------------------------------------------------------------


def _drop(segs: list[c.Seg], drop: list[int]) -> tuple[list[c.Seg], int, int]:
    """Without segments ``drop`` (consecutive data segments of one direction): the segments,
    the lost stream range [start, end) relative to the first payload byte."""
    client = c.client_of(segs)
    who = c.is_client(segs[drop[0]], client)
    before = sum(len(s.payload) for s in segs[: drop[0]] if c.is_client(s, client) == who)
    size = sum(len(segs[i].payload) for i in drop)
    return [s for i, s in enumerate(segs) if i not in drop], before, before + size


@pytest.mark.parametrize(("name", "which"), [(LARGE, 8), (SMALL, -3), (TLS12, -3)])
def test_lost_segment_gap_then_resume(tmp_path: Path, name: str, which: int) -> None:
    """One server segment is missing: one gap event of exactly its size, in the frame whose ACK
    proves it lost; every record wholly after it still decrypts (the sequence number is found
    again by trial); the records the gap cuts are not shown."""
    segs, keys, clean = _load(name)
    client = c.client_of(segs)
    k = c.data_segs(segs, client, False)[which]
    crafted, start, end = _drop(segs, [k])
    got = c.as_json(c.decode(c.write(tmp_path / "gap.pcap", crafted), keys))
    gaps = [o for o in got if o["event"] == "gap"]
    assert [(g["from"], g["size"]) for g in gaps] == [("server", end - start)]
    assert c.reasons(got) == []
    # Records touching [start, end) are lost; all others are shown as in the clean capture.
    ends = c.record_ends(c.stream(segs, client, False))
    starts = [0, *ends[:-1]]
    cut = sum(1 for a, b in zip(starts, ends, strict=True) if a < end and b > start)
    server_clean = [o for o in clean if o.get("from") == "server" and o["event"] in ("app_data", "alert")]
    server_got = [o for o in got if o.get("from") == "server" and o["event"] in ("app_data", "alert")]
    assert len(server_got) == len(server_clean) - cut
    assert all(o.get("decrypted", True) for o in server_got)
    assert _app(got, "client") == _app(clean, "client")
    after = [o for o in got if o["event"] in ("app_data", "alert") and o["frame"] >= gaps[0]["frame"]]
    assert after and all(o.get("decrypted", o.get("encrypted")) for o in after)


def test_long_gap_is_stream_gap(tmp_path: Path) -> None:
    """More records are lost than the trial window covers: the records after the gap cannot be
    placed in the sequence: stream_gap, and nothing after it is claimed decrypted."""
    segs, keys, clean = _load(LARGE)
    client = c.client_of(segs)
    idx = c.data_segs(segs, client, False)
    # About 1.1 MB of 16 KiB records: more than 64 records.
    drop: list[int] = []
    total = 0
    for i in idx[4:]:
        drop.append(i)
        total += len(segs[i].payload)
        if total > 70 * 16_401:
            break
    crafted, start, end = _drop(segs, drop)
    got = c.as_json(c.decode(c.write(tmp_path / "long-gap.pcap", crafted), keys))
    gaps = [o for o in got if o["event"] == "gap"]
    assert sum(g["size"] for g in gaps) == end - start
    assert {g["from"] for g in gaps} == {"server"}
    assert c.reasons(got) == [(1, "server", "stream_gap")]
    first_gap = gaps[0]["frame"]
    assert not [
        o
        for o in got
        if o["event"] == "app_data" and o["from"] == "server" and o["frame"] > first_gap and o["decrypted"]
    ]
    assert _app(got, "client") == _app(clean, "client")


# -- (5) capture started mid-connection -------------------------------------------------------------


def _mid_stream(segs: list[c.Seg], clean: list[dict[str, Any]]) -> list[c.Seg]:
    """Everything from the frame of the first application-data record on, with the server on
    port 443 (without a SYN or ClientHello, roles are guessed from the ports)."""
    first = next(o["frame"] for o in clean if o["event"] == "app_data")
    server_port = next(s.dport for s in segs if s.flags & c.SYN and not s.flags & c.ACK)
    return c.with_ports([s for s in segs if s.origin >= first], {server_port: 443})


@pytest.mark.parametrize("name", [SMALL, "tls13-chacha20", "tls13-aes256gcm"])
def test_mid_stream_tls13_recovered_by_trial(tmp_path: Path, name: str) -> None:
    segs, keys, clean = _load(name)
    got = c.as_json(c.decode(c.write(tmp_path / "mid.pcap", _mid_stream(segs, clean)), keys))
    conn = got[0]
    # The roles guessed from the ports are proven by which traffic secret opens which direction.
    assert conn["event"] == "connection" and conn["roles_from"] == "keys"
    assert (
        conn["server"].endswith(":443") and conn["client"].split(":")[-1] == clean[0]["client"].split(":")[-1]
    )
    # Every application record decrypts (the AEAD tag proves the secret and suite) ...
    assert _app(got) == _app(clean)
    alerts = [(o["from"], o["description"], o["encrypted"]) for o in got if o["event"] == "alert"]
    assert alerts == [(o["from"], o["description"], True) for o in clean if o["event"] == "alert"]
    # ... and it is said that this was recovered without a handshake, once per direction.
    assert c.reasons(got) == []
    recovered = sorted((o["from"], o["label"]) for o in got if o["event"] == "recovered")
    assert recovered == [("client", "CLIENT_TRAFFIC_SECRET_0"), ("server", "SERVER_TRAFFIC_SECRET_0")]


def test_mid_stream_tls12_no_handshake(tmp_path: Path) -> None:
    """TLS 1.2 keys need both hellos' randoms: without them nothing can be decrypted."""
    segs, keys, clean = _load(TLS12)
    got = c.as_json(c.decode(c.write(tmp_path / "mid.pcap", _mid_stream(segs, clean)), keys))
    assert got[0]["roles_from"] == "guess" and got[0]["server"].endswith(":443")
    assert [(w, d) for w, _, d in _app(got)] == [(w, False) for w, _, _ in _app(clean)]
    assert sorted(c.reasons(got)) == [(1, "client", "no_handshake"), (1, "server", "no_handshake")]
    alerts = [o for o in got if o["event"] == "alert"]
    assert len(alerts) == 2 and all(a["description"] is None and a["encrypted"] for a in alerts)


def test_mid_stream_roles_and_records(tmp_path: Path) -> None:
    """Without keys: roles guessed from the ports, every record framed and shown."""
    segs, _keys, clean = _load(SMALL)
    got = c.as_json(c.decode(c.write(tmp_path / "mid.pcap", _mid_stream(segs, clean)), None))
    assert got[0]["roles_from"] == "guess" and got[0]["server"].endswith(":443")
    clean_records = [o["from"] for o in clean if o["event"] in ("app_data", "alert")]
    assert [o["from"] for o in got if o["event"] in ("app_data", "alert")] == clean_records


def test_reason_no_handshake(tmp_path: Path) -> None:
    """Mid-stream TLS 1.3 and a key log without its secrets: no_handshake."""
    segs, _, clean = _load(SMALL)
    _, other_keys = c.fixture("tls13-chacha20")
    got = c.as_json(c.decode(c.write(tmp_path / "mid.pcap", _mid_stream(segs, clean)), other_keys))
    assert {r[2] for r in c.reasons(got)} == {"no_handshake"}
    assert not [a for a in _app(got) if a[2]]


# -- (8) reason codes ------------------------------------------------------------------------------------


def _two_connections(tmp_path: Path, first: str, second: str) -> tuple[Path, list[c.Seg], list[c.Seg]]:
    a = c.read_segments(c.fixture(first)[0])
    b = c.read_segments(c.fixture(second)[0])
    offset = a[-1].ts_ns - b[0].ts_ns + 1_000_000
    b = [replace(s, ts_ns=s.ts_ns + offset, origin=0) for s in b]
    return c.write(tmp_path / "two.pcap", a + b), a, b


def test_reason_no_key(tmp_path: Path) -> None:
    """The key log has the other connection of the capture, not this one."""
    out, _, _ = _two_connections(tmp_path, SMALL, TLS12)
    got = c.as_json(c.decode(out, c.fixture(SMALL)[1]))
    assert sorted(set(c.reasons(got))) == [(2, "client", "no_key"), (2, "server", "no_key")]
    assert all(o["decrypted"] for o in got if o["event"] == "app_data" and o["conn"] == 1)


def test_reason_no_key_counts_other_sessions_tls12(tmp_path: Path) -> None:
    out, _, _ = _two_connections(tmp_path, SMALL, TLS12)
    got = c.as_json(c.decode(out, c.fixture(SMALL)[1]))
    msg = next(o["reason"]["message"] for o in got if o["event"] == "undecryptable")
    assert "keys for 1 other session" in msg


def test_reason_keylog_other_sessions_tls12(tmp_path: Path) -> None:
    got = c.as_json(c.decode(c.fixture(TLS12)[0], c.fixture("tls12-chacha20")[1]))
    assert {r[2] for r in c.reasons(got)} == {"keylog_other_sessions"}


def test_reason_keylog_other_sessions(tmp_path: Path) -> None:
    pcap, _ = c.fixture(SMALL)
    got = c.as_json(c.decode(pcap, c.fixture("tls13-chacha20")[1]))
    assert {r[2] for r in c.reasons(got)} == {"keylog_other_sessions"}
    assert not [a for a in _app(got) if a[2]]


def test_reason_missing_labels_only_application_secrets(tmp_path: Path) -> None:
    """Only the *_TRAFFIC_SECRET_0 lines: the handshake cannot be decrypted (missing_labels),
    the application data still can."""
    _segs, keys, clean = _load(SMALL)
    lines = [p for p in _keylines(keys) if p[0].endswith("_TRAFFIC_SECRET_0")]
    got = c.as_json(c.decode(c.fixture(SMALL)[0], _keyfile(tmp_path, lines)))
    assert (1, "server", "missing_labels") in c.reasons(got)
    assert {r[2] for r in c.reasons(got)} == {"missing_labels"}
    assert [a for a in _app(got) if a[2]] == _app(clean)


def test_reason_missing_labels_said_for_each_direction(tmp_path: Path) -> None:
    _, keys, _ = _load(SMALL)
    lines = [p for p in _keylines(keys) if p[0].endswith("_TRAFFIC_SECRET_0")]
    got = c.as_json(c.decode(c.fixture(SMALL)[0], _keyfile(tmp_path, lines)))
    assert sorted(set(c.reasons(got))) == [(1, "client", "missing_labels"), (1, "server", "missing_labels")]


def test_reason_missing_labels_only_client_random(tmp_path: Path) -> None:
    """A TLS 1.2-style CLIENT_RANDOM line for a TLS 1.3 session."""
    _, keys, _ = _load(SMALL)
    cr = _keylines(keys)[0][1]
    got = c.as_json(c.decode(c.fixture(SMALL)[0], _keyfile(tmp_path, [["CLIENT_RANDOM", cr, "ab" * 48]])))
    assert {r[2] for r in c.reasons(got)} == {"missing_labels"}
    msg = next(o["reason"]["message"] for o in got if o["event"] == "undecryptable")
    assert "CLIENT_RANDOM" in msg


def test_reason_secret_length(tmp_path: Path) -> None:
    """SHA-256-length secrets for a TLS_AES_256_GCM_SHA384 session."""
    name = "tls13-aes256gcm"
    _, keys, _ = _load(name)
    lines = [[p[0], p[1], p[2][:64]] for p in _keylines(keys)]
    got = c.as_json(c.decode(c.fixture(name)[0], _keyfile(tmp_path, lines)))
    assert {r[2] for r in c.reasons(got)} == {"secret_length"}
    assert not [a for a in _app(got) if a[2]]


@pytest.mark.parametrize("name", [SMALL, TLS12, "tls12-aes128-cbc-sha"])
def test_reason_bad_tag(tmp_path: Path, name: str) -> None:
    """The right client_random with wrong secrets (one byte flipped): bad_tag, never plaintext."""
    _, keys, clean = _load(name)
    lines = []
    for p in _keylines(keys):
        secret = bytearray(bytes.fromhex(p[2]))
        secret[0] ^= 0x01
        lines.append([p[0], p[1], secret.hex()])
    got = c.as_json(c.decode(c.fixture(name)[0], _keyfile(tmp_path, lines)))
    assert {r[2] for r in c.reasons(got)} == {"bad_tag"}
    assert not [a for a in _app(got) if a[2]]
    assert len(_app(got)) >= len(_app(clean))
    assert not [o for o in got if o["event"] == "alert" and o["description"] is not None and o["encrypted"]]


def _server_hello_suite_offset(segs: list[c.Seg]) -> int:
    server = c.stream(segs, c.client_of(segs), False)
    assert server[0] == 22 and server[5] == 2
    sid_len = server[5 + 4 + 2 + 32]
    return 5 + 4 + 2 + 32 + 1 + sid_len


def test_reason_unsupported_suite(tmp_path: Path) -> None:
    """The ServerHello chooses TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256 (0xC061), a real suite
    capdebug cannot decrypt."""
    segs, keys, _ = _load(TLS12)
    client = c.client_of(segs)
    crafted = c.set_bytes(segs, client, False, _server_hello_suite_offset(segs), b"\xc0\x61")
    got = c.as_json(c.decode(c.write(tmp_path / "aria.pcap", crafted), keys))
    assert sorted(set(c.reasons(got))) == [
        (1, "client", "unsupported_suite"),
        (1, "server", "unsupported_suite"),
    ]
    assert "0xc061" in next(o["reason"]["message"] for o in got if o["event"] == "undecryptable")
    assert not [a for a in _app(got) if a[2]]


def test_reason_rsa_no_master_secret(tmp_path: Path) -> None:
    """A TLS_RSA_WITH_AES_128_GCM_SHA256 session (ServerHello edited) whose CLIENT_RANDOM line
    is missing from a key log that does hold the capture's other session."""
    a = c.read_segments(c.fixture(SMALL)[0])
    b = c.read_segments(c.fixture(TLS12)[0])
    b = c.set_bytes(b, c.client_of(b), False, _server_hello_suite_offset(b), b"\x00\x9c")
    b = [replace(s, ts_ns=s.ts_ns - b[0].ts_ns + a[-1].ts_ns + 1000) for s in b]
    got = c.as_json(c.decode(c.write(tmp_path / "rsa.pcap", a + b), c.fixture(SMALL)[1]))
    assert {(r[0], r[2]) for r in c.reasons(got)} == {(2, "rsa_no_master_secret")}


def _sslv2_client_hello() -> bytes:
    """SSLv2-compatible CLIENT-HELLO (RFC 5246 appendix E.2) offering TLS 1.0."""
    specs = bytes.fromhex("00002f00003500000a")
    challenge = bytes(range(16))
    body = (
        bytes([1])
        + b"\x03\x01"
        + len(specs).to_bytes(2, "big")
        + b"\x00\x00"
        + b"\x00\x10"
        + specs
        + challenge
    )
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def test_reason_sslv2(tmp_path: Path) -> None:
    segs, keys, _ = _load(SMALL)
    hello = _sslv2_client_hello()
    first = next(i for i, s in enumerate(segs) if s.payload)
    crafted = [*segs[:first], replace(segs[first], payload=hello)]
    got = c.as_json(c.decode(c.write(tmp_path / "sslv2.pcap", crafted), keys))
    hs = [o for o in got if o["event"] == "handshake"]
    assert [(h["from"], h["name"], h.get("sslv2")) for h in hs] == [("client", "client_hello", True)]
    assert c.reasons(got) == [(1, "client", "sslv2")]


def test_reason_not_tls(tmp_path: Path) -> None:
    """The server's stream turns into text after a valid handshake."""
    segs, keys, clean = _load(SMALL)
    client = c.client_of(segs)
    first_app = next(o["frame"] for o in clean if o["event"] == "app_data" and o["from"] == "server")
    offset = sum(len(s.payload) for s in segs if s.origin < first_app and not c.is_client(s, client))
    rest = len(c.stream(segs, client, False)) - offset
    text = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" * 20)[:rest]
    crafted = c.set_bytes(segs, client, False, offset, text)
    got = c.as_json(c.decode(c.write(tmp_path / "text.pcap", crafted), keys))
    assert c.reasons(got) == [(1, "server", "not_tls")]
    assert _app(got, "client") == _app(clean, "client")
    assert not [o for o in got if o.get("from") == "server" and o["event"] == "app_data"]


def _late(tmp_path: Path, at: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    segs, keys, clean = _load(SMALL)
    out = c.write_pcapng(tmp_path / "dsb.pcapng", segs, at, keys.read_bytes())
    return c.as_json(c.decode(out, None)), clean


def test_secrets_block_before_packets_decrypts(tmp_path: Path) -> None:
    got, clean = _late(tmp_path, 0)
    assert c.strip(got) == c.strip(clean)


def test_secrets_block_after_packets_decrypts_anyway(tmp_path: Path) -> None:
    got, clean = _late(tmp_path, None)
    assert _app(got) == _app(clean)
    assert [k for k in c.kinds(got) if k[1] != "undecryptable"] == c.kinds(clean)


def test_reason_late_secrets(tmp_path: Path) -> None:
    """Said once (at the ClientHello), and everything decrypted anyway."""
    got, clean = _late(tmp_path, None)
    assert c.reasons(got) == [(1, "client", "late_secrets")]
    assert _app(got) == _app(clean)


def test_no_late_secrets_when_block_comes_first(tmp_path: Path) -> None:
    got, _ = _late(tmp_path, 0)
    assert c.reasons(got) == []


def test_cli_notes_late_secrets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from capdebug.cli.app import app

    segs, keys, _ = _load(SMALL)
    out = c.write_pcapng(tmp_path / "dsb.pcapng", segs, None, keys.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    result = CliRunner().invoke(app, ["decrypt", str(out), "--json", "--no-env"], env=env)
    assert result.exit_code == 0, result.output
    assert "secrets block" in result.stderr and "after packets" in result.stderr
