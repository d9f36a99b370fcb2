"""Each triage verdict on a real capture, and no verdict where it does not belong.

The captures are in ``tests/fixtures/triage/`` (made by ``scripts/make_triage_captures.py`` from
``tests/triage/scenarios.py``: real Python ssl and OpenSSL peers over loopback, real tcpdump;
``manifest.json`` says how each was made). Frames are checked against tshark, which reads the
same capture independently: a verdict must point at the packet that shows it.

``data_after_close_notify`` is the one capture no stack makes by itself: the Python ssl client
sends close_notify, then a TLS 1.3 record sealed by capdebug.crypto.protection with the client's
logged traffic secret is written on its real TCP socket (see ``scenarios.data_after_close_notify``).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capdebug.analysis.triage import CATALOG, ConnectionReport, Verdict
from capdebug.api import load_keys, triage_capture
from capdebug.cli.app import app
from tests.tools import require

from . import scenarios

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRIAGE = FIXTURES / "triage"
MANIFEST: dict[str, dict[str, object]] = json.loads((TRIAGE / "manifest.json").read_text())["captures"]


def _paths(name: str) -> tuple[Path, Path | None]:
    entry = MANIFEST[name]
    keys = entry["keys"]
    return TRIAGE / str(entry["pcap"]), (TRIAGE / str(keys) if keys else None)


def _port(name: str) -> int:
    port = MANIFEST[name]["server_port"]
    assert isinstance(port, int)
    return port


def triage(name: str, *, keys: bool = True, slow: float = 1.0) -> list[ConnectionReport]:
    pcap, keylog = _paths(name)
    reports, _warnings = triage_capture(
        pcap, load_keys(pcap, [keylog] if keys and keylog else []), slow_handshake=slow
    )
    return reports


def only(reports: list[ConnectionReport]) -> ConnectionReport:
    assert len(reports) == 1, [r.to_json() for r in reports]
    return reports[0]


def codes(report: ConnectionReport) -> set[str]:
    return {v.code for v in report.verdicts}


def find(report: ConnectionReport, code: str) -> list[Verdict]:
    found = [v for v in report.verdicts if v.code == code]
    assert found, f"no {code} in {[v.to_json() for v in report.verdicts]}"
    return found


def one(report: ConnectionReport, code: str) -> Verdict:
    found = find(report, code)
    assert len(found) == 1, [v.to_json() for v in found]
    return found[0]


# -- tshark as the independent reader of the same packets -------------------------------------


@dataclass(frozen=True, slots=True)
class Pkt:
    frame: int
    from_client: bool
    fin: bool
    rst: bool
    handshake: tuple[int, ...]
    alerts: tuple[int, ...]
    """Alert descriptions tshark could read (with keys: decrypted)."""
    content_types: tuple[int, ...]
    """Outer content types of the records completed in this packet."""
    record_lengths: tuple[int, ...]


def _ints(field: str) -> tuple[int, ...]:
    return tuple(int(x, 0) for x in field.replace(";", ",").split(",") if x)


@functools.cache
def packets(name: str, keys: bool = True) -> tuple[Pkt, ...]:
    require("tshark")
    pcap, keylog = _paths(name)
    port = _port(name)
    argv = [
        "tshark",
        "-n",
        "-r",
        str(pcap),
        "-d",
        f"tcp.port=={port},tls",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]
    if keys and keylog is not None:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    for f in (
        "frame.number",
        "tcp.dstport",
        "tcp.flags.fin",
        "tcp.flags.reset",
        "tls.handshake.type",
        "tls.alert_message.desc",
        "tls.record.content_type",
        "tls.record.opaque_type",
        "tls.record.length",
    ):
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    pkts = []
    for line in out.splitlines():
        frame, dst, fin, rst, hs, al, ct, opaque, ln = line.split("|")
        pkts.append(
            Pkt(
                int(frame),
                int(dst) == port,
                fin in ("1", "True"),
                rst in ("1", "True"),
                _ints(hs),
                _ints(al),
                _ints(ct) + _ints(opaque),  # TLS 1.3 protected records: opaque_type
                _ints(ln),
            )
        )
    return tuple(pkts)


def frames(name: str, keys: bool = True, **want: object) -> list[int]:
    """Frames whose packet has every attribute in ``want`` (tuples: contains that value)."""
    out = []
    for p in packets(name, keys):
        ok = True
        for attr, value in want.items():
            have = getattr(p, attr)
            ok = ok and (value in have if isinstance(have, tuple) else have == value)
        if ok:
            out.append(p.frame)
    return out


CLIENT_HELLO, SERVER_HELLO, CERTIFICATE, FINISHED, KEY_UPDATE = 1, 2, 11, 20, 24
CLOSE_NOTIFY = 0
APPLICATION_DATA = 23


# -- one test per verdict ------------------------------------------------------------------


def test_every_catalog_code_has_a_capture() -> None:
    """The scenarios below cover the whole catalog: a new code needs a new capture."""
    tested = {
        "clean_close", "premature_close", "close_notify_unanswered", "half_close",
        "data_after_close_notify", "reset", "benign_reset", "handshake_alert", "alert",
        "handshake_incomplete", "certificate_problem", "undecryptable", "capture_incomplete",
        "hello_retry_request", "resumed", "early_data", "key_update", "slow_handshake",
        "likely_close_notify", "tcp_only",
        # captured by tests/keysrc/test_renegotiation.py (a refused renegotiation):
        "renegotiation_refused",
        # tests/triage/test_rejections.py makes these captures live:
        "likely_handshake_rejected", "warning_alert",
        # tests/triage/test_closing.py:
        "idle_close", "open_at_capture_end",
        # tests/triage/test_http.py (nginx and curl):
        "app_close", "proxy_error", "stale_connection_reuse",
    }  # fmt: skip
    # The plaintext prelude's verdicts have real captures of their own in tests/upgrade
    # (PostgreSQL, exim, dovecot, tinyproxy, an HTTP server, a TLS port).
    tested |= {"upgraded", "upgrade_refused", "tls_never_followed", "not_tls_reply", "plaintext_to_tls_port"}
    # TCP health codes: crafted captures and real namespaces in tests/health/.
    tested |= {
        "connection_refused", "syn_unanswered", "syn_retries", "retransmissions", "rto_stall",
        "heavy_loss", "unresponsive_peer", "zero_window", "injected_rst", "mtu_blackhole",
    }  # fmt: skip
    # Bounded state and conflicting copies: tests/robust3 (a SYN flood, crafted overlaps).
    tested |= {"connection_table_full", "overlap_conflict"}
    assert set(CATALOG) == tested
    assert set(MANIFEST) == set(scenarios.SCENARIOS)


def test_clean_close() -> None:
    r = only(triage("clean_close"))
    v = one(r, "clean_close")
    assert (v.severity, v.by) == ("info", None)
    # The frame is the second close_notify (the one that completes the exchange).
    assert v.frame == max(frames("clean_close", alerts=CLOSE_NOTIFY))
    assert codes(r) == {"clean_close"}
    assert r.version == "TLS 1.3" and r.sni == "localhost"


def test_clean_close_tls12() -> None:
    r = only(triage("clean_close_tls12"))
    assert codes(r) == {"clean_close"}
    assert one(r, "clean_close").frame == max(frames("clean_close_tls12", alerts=CLOSE_NOTIFY))
    assert r.version == "TLS 1.2"


def test_premature_close() -> None:
    r = only(triage("premature_close"))
    v = one(r, "premature_close")
    assert (v.severity, v.by) == ("error", "client")
    assert v.frame == frames("premature_close", from_client=True, fin=True)[0]
    assert "unexpected eof" in v.detail
    # The server's alert answers the truncation: a consequence, so not an error of its own.
    assert all(x.severity != "error" for x in r.verdicts if x.code != "premature_close")
    assert r.has_error


def test_close_notify_unanswered() -> None:
    r = only(triage("close_notify_unanswered"))
    v = one(r, "close_notify_unanswered")
    assert (v.severity, v.by) == ("info", "client")
    assert v.frame == frames("close_notify_unanswered", from_client=True, fin=True)[0]
    server_close = frames("close_notify_unanswered", from_client=False, alerts=CLOSE_NOTIFY)
    assert server_close and server_close[0] < v.frame
    assert not r.has_error


def test_half_close() -> None:
    r = only(triage("half_close"))
    v = one(r, "half_close")
    assert (v.severity, v.by) == ("info", "client")
    assert v.frame == frames("half_close", from_client=True, alerts=CLOSE_NOTIFY)[0]
    # The server's three records after the client's close_notify are in the detail.
    assert "3 records" in v.detail
    assert codes(r) == {"half_close"}


def test_data_after_close_notify() -> None:
    """Method: Python ssl client close_notify + a record sealed by capdebug.crypto.protection."""
    r = only(triage("data_after_close_notify"))
    v = one(r, "data_after_close_notify")
    assert (v.severity, v.by) == ("error", "client")
    close = frames("data_after_close_notify", from_client=True, alerts=CLOSE_NOTIFY)[0]
    later = [
        f
        for f in frames("data_after_close_notify", from_client=True, content_types=APPLICATION_DATA)
        if f > close
    ]
    assert later and v.frame == later[0]


def test_data_after_close_notify_is_not_a_clean_close() -> None:
    assert "clean_close" not in codes(only(triage("data_after_close_notify")))


def test_reset() -> None:
    r = only(triage("reset"))
    v = one(r, "reset")
    assert (v.severity, v.by) == ("error", "server")
    assert v.frame == frames("reset", from_client=False, rst=True)[0]
    assert "after the handshake" in v.detail
    assert "unread" in v.detail  # the client's second request was pending
    assert codes(r) == {"reset"}


def test_benign_reset() -> None:
    """The client closed; the server's alert then arrived on its closed socket: its kernel's RST
    is benign (the alert is a reaction, not lost data)."""
    r = only(triage("premature_close"))
    v = one(r, "benign_reset")
    assert (v.severity, v.by) == ("info", "client")
    assert v.frame == frames("premature_close", from_client=True, rst=True)[0]
    assert [(x.code, x.by) for x in r.verdicts if x.severity == "error"] == [("premature_close", "client")]


def test_stale_connection_reuse() -> None:
    """The server sent close_notify and closed; the client then wrote: that record was lost
    and the server's kernel answered it with RST: an error blamed on the client, not a
    benign_reset (the capture's name predates the distinction)."""
    for keys in (True, False):
        r = only(triage("benign_reset", keys=keys))
        v = one(r, "stale_connection_reuse")
        assert (v.severity, v.by) == ("error", "client")
        client_data = frames("benign_reset", from_client=True, content_types=APPLICATION_DATA)
        assert v.frame == client_data[-1]
        rst = frames("benign_reset", from_client=False, rst=True)[0]
        assert f"the server answered with RST (frame {rst})" in v.detail
        assert "benign_reset" not in codes(r)


def test_handshake_alert_protocol_version() -> None:
    r = only(triage("handshake_alert"))
    v = one(r, "handshake_alert")
    assert (v.severity, v.by) == ("error", "server")
    alert_frames = frames("handshake_alert", from_client=False, alerts=70)  # protocol_version
    assert v.frame == alert_frames[0]
    assert "protocol_version" in v.detail and "Client offered" in v.detail and "TLS 1.2" in v.detail
    assert "handshake_incomplete" not in codes(r)


def test_alert_after_handshake_certificate_required() -> None:
    """TLS 1.3: the server rejects the missing client certificate after the client's Finished."""
    r = only(triage("alert"))
    v = one(r, "handshake_alert")  # it answers the client's second flight: the handshake never completed
    assert (v.severity, v.by) == ("error", "server")
    assert v.frame == frames("alert", from_client=False, alerts=116)[0]  # certificate_required
    assert "certificate_required" in v.detail
    assert "second flight" in v.detail
    assert "empty Certificate" in v.detail  # the client's (empty) chain, not the server's
    assert "alert" not in codes(r)


def test_handshake_incomplete_capture_ends() -> None:
    r = only(triage("handshake_incomplete", keys=False))
    v = one(r, "handshake_incomplete")
    assert v.severity == "error"
    hello = frames("handshake_incomplete", keys=False, handshake=CLIENT_HELLO)
    assert v.frame is not None and v.frame >= hello[0]
    assert "the capture ended" in v.detail and "client_hello" in v.detail
    assert codes(r) == {"handshake_incomplete"}


def test_handshake_incomplete_server_closes() -> None:
    r = only(triage("handshake_server_fin", keys=False))
    v = one(r, "handshake_incomplete")
    assert "client_hello" in v.detail
    assert "handshake_alert" not in codes(r)


@pytest.mark.parametrize(
    ("name", "severity", "words"),
    [
        ("cert_expired", "error", "expired"),
        ("cert_not_yet_valid", "error", "not valid before"),
        ("cert_wrong_host", "error", "SNI localhost is not among"),
        ("cert_self_signed", "warning", "self-signed"),
        ("cert_rsa1024", "warning", "RSA 1024"),
    ],
)
def test_certificate_problem(name: str, severity: str, words: str) -> None:
    r = only(triage(name))
    v = one(r, "certificate_problem")
    assert (v.severity, v.by) == (severity, "server")
    assert words in v.detail
    assert v.frame == frames(name, from_client=False, handshake=CERTIFICATE)[0]
    assert codes(r) == {"certificate_problem", "clean_close"}


def test_no_certificate_problem_on_a_good_certificate() -> None:
    assert "certificate_problem" not in codes(only(triage("clean_close")))


def test_undecryptable_without_keys() -> None:
    r = only(triage("clean_close", keys=False))
    found = find(r, "undecryptable")
    assert {v.by for v in found} == {"client", "server"}
    assert all(v.severity == "warning" for v in found)
    assert all("[no_key" in v.detail or "[keylog_other_sessions" in v.detail for v in found)
    protected = set(frames("clean_close", keys=False, content_types=APPLICATION_DATA))
    assert all(v.frame in protected for v in found)


def test_undecryptable_with_another_sessions_key_log() -> None:
    pcap, _ = _paths("clean_close")
    _, other = _paths("resumed")
    assert other is not None
    reports, _ = triage_capture(pcap, load_keys(pcap, [other]))
    found = find(only(reports), "undecryptable")
    assert all(v.severity == "warning" for v in found)
    assert any("keylog_other_sessions" in v.detail for v in found), [v.detail for v in found]


def test_capture_incomplete_midstream() -> None:
    r = only(triage("capture_incomplete"))
    v = one(r, "capture_incomplete")
    assert (v.severity, v.frame) == ("warning", 1)
    assert "mid-connection" in v.detail


def test_capture_incomplete_midstream_is_no_error() -> None:
    assert not only(triage("capture_incomplete")).has_error


def test_capture_incomplete_snaplen() -> None:
    r = only(triage("capture_snaplen"))
    found = find(r, "capture_incomplete")
    assert all(v.severity == "warning" for v in found)
    assert {v.by for v in found} == {"client", "server"}


def test_capture_snaplen_is_no_error() -> None:
    assert not only(triage("capture_snaplen")).has_error


def test_capture_snaplen_names_the_snaplen() -> None:
    assert any("snaplen" in v.detail for v in find(only(triage("capture_snaplen")), "capture_incomplete"))


def test_hello_retry_request() -> None:
    r = only(triage("hello_retry_request"))
    v = one(r, "hello_retry_request")
    assert (v.severity, v.by) == ("info", "server")
    assert v.frame == frames("hello_retry_request", from_client=False, handshake=SERVER_HELLO)[0]
    assert "secp384r1" in v.detail or "P-384" in v.detail
    assert codes(r) == {"hello_retry_request", "clean_close"}


def test_resumed() -> None:
    first, second = triage("resumed")
    assert "resumed" not in codes(first)
    v = one(second, "resumed")
    assert v.severity == "info"
    assert v.frame == frames("resumed", from_client=False, handshake=SERVER_HELLO)[1]
    assert codes(second) == {"resumed", "clean_close"}


def test_early_data() -> None:
    first, second = triage("early_data")
    assert "early_data" not in codes(first)
    v = one(second, "early_data")
    assert (v.severity, v.by) == ("info", "client")
    assert v.frame == frames("early_data", from_client=True, handshake=CLIENT_HELLO)[1]
    assert "accepted" in v.detail and "rejected" not in v.detail
    assert not second.has_error


def test_key_update() -> None:
    r = only(triage("key_update"))
    v = one(r, "key_update")
    assert (v.severity, v.by) == ("info", "client")
    assert frames("key_update", from_client=True, handshake=KEY_UPDATE)  # tshark sees it from the client
    assert codes(r) == {"key_update", "clean_close"}


def test_slow_handshake() -> None:
    r = only(triage("slow_handshake", slow=0.3))
    v = one(r, "slow_handshake")
    assert v.frame in frames("slow_handshake", handshake=FINISHED)
    assert "round trip" in v.detail
    # The same capture is not slow against a 2 s threshold, and a quick one never is.
    assert "slow_handshake" not in codes(only(triage("slow_handshake", slow=2.0)))
    assert "slow_handshake" not in codes(only(triage("clean_close", slow=0.3)))


def test_slow_handshake_is_info() -> None:
    assert one(only(triage("slow_handshake", slow=0.3)), "slow_handshake").severity == "info"


def test_tcp_only_connection_refused() -> None:
    r = only(triage("tcp_only", keys=False))
    v = one(r, "connection_refused")
    assert (v.severity, v.by) == ("error", "server")
    assert v.frame == frames("tcp_only", keys=False, from_client=False, rst=True)[0]
    assert "refused" in v.detail
    assert codes(r) == {"connection_refused"}


# -- without keys ---------------------------------------------------------------------------


def test_tls13_clean_close_without_keys_is_likely_close_notify() -> None:
    r = only(triage("clean_close", keys=False))
    assert "premature_close" not in codes(r)
    found = find(r, "likely_close_notify")
    assert {v.by for v in found} == {"client", "server"}
    for v in found:
        assert v.severity == "info"
        assert "19 bytes" in v.detail
        # The frame carries that side's 19-byte protected record.
        assert v.frame in frames("clean_close", keys=False, from_client=v.by == "client", record_lengths=19)
    assert not r.has_error


def test_tls12_close_without_keys_alert_visible_by_content_type() -> None:
    r = only(triage("clean_close_tls12", keys=False))
    assert "premature_close" not in codes(r)
    found = find(r, "likely_close_notify")
    assert {v.by for v in found} == {"client", "server"}
    for v in found:
        assert "encrypted alert" in v.detail
        assert v.frame in frames(
            "clean_close_tls12", keys=False, from_client=v.by == "client", content_types=21
        )
    assert not r.has_error


def test_premature_close_without_keys() -> None:
    r = only(triage("premature_close", keys=False))
    assert "clean_close" not in codes(r)
    v = one(r, "premature_close")
    assert v.by == "client"


def test_reset_and_benign_reset_without_keys() -> None:
    assert one(only(triage("reset", keys=False)), "reset").by == "server"
    r = only(triage("premature_close", keys=False))
    assert one(r, "benign_reset").by == "client"


def test_close_notify_unanswered_without_keys() -> None:
    r = only(triage("close_notify_unanswered", keys=False))
    assert "premature_close" not in codes(r)
    assert not r.has_error


@pytest.mark.parametrize(
    "name",
    [
        "clean_close", "clean_close_tls12", "half_close", "cert_expired", "hello_retry_request",
        "resumed", "early_data", "key_update", "slow_handshake",
    ],
)  # fmt: skip
def test_no_error_without_keys_on_healthy_connections(name: str) -> None:
    for r in triage(name, keys=False):
        assert not r.has_error, [v.to_json() for v in r.verdicts]
        assert "premature_close" not in codes(r)


# -- no verdict where it does not belong -------------------------------------------------------


def _clean_fixtures() -> list[str]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return [f["name"] for f in manifest["fixtures"] if f["ending"].startswith("close_notify both")]


@pytest.mark.parametrize("name", _clean_fixtures())
def test_clean_fixture_only_info(name: str) -> None:
    pcap = FIXTURES / f"{name}.pcap"
    reports, _ = triage_capture(pcap, load_keys(pcap, [FIXTURES / f"{name}.keys"]))
    assert reports
    for r in reports:
        assert [v.to_json() for v in r.verdicts if v.severity != "info"] == []
        assert "clean_close" in codes(r)


@pytest.mark.parametrize("name", _clean_fixtures())
def test_clean_fixture_without_keys_no_error(name: str) -> None:
    reports, _ = triage_capture(FIXTURES / f"{name}.pcap")
    for r in reports:
        assert [v.to_json() for v in r.verdicts if v.severity == "error"] == []


# -- the command ---------------------------------------------------------------------------


def _json(name: str) -> tuple[int, list[dict[str, Any]]]:
    pcap, keys = _paths(name)
    args = ["triage", str(pcap), "--json", "--no-env"] + (["--keylog", str(keys)] if keys else [])
    result = CliRunner().invoke(app, args, standalone_mode=False, catch_exceptions=False)
    doc = json.loads(result.stdout)
    connections: list[dict[str, Any]] = doc["connections"]
    return int(result.return_value), connections


def test_cli_json_clean_and_error() -> None:
    rc, conns = _json("clean_close")
    assert rc == 0
    (conn,) = conns
    assert conn["worst"] == "clean_close" and conn["version"] == "TLS 1.3"
    assert conn["verdicts"] == [v.to_json() for v in only(triage("clean_close")).verdicts]
    rc, conns = _json("premature_close")
    assert rc == 1
    (conn,) = conns
    assert conn["worst"] == "premature_close"


def _capdebug(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", "from capdebug.cli.app import main; main()", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_exit_codes(tmp_path: Path) -> None:
    pcap, keys = _paths("clean_close")
    assert keys is not None
    ok = _capdebug("triage", str(pcap), "--keylog", str(keys), "--no-env")
    assert ok.returncode == 0, ok.stderr
    pcap, keys = _paths("reset")
    assert keys is not None
    bad = _capdebug("triage", str(pcap), "--keylog", str(keys), "--no-env")
    assert bad.returncode == 1, bad.stderr
    assert "reset" in bad.stdout
    garbage = tmp_path / "bad.pcap"
    garbage.write_bytes(b"this is not a capture file at all\n" * 4)
    unreadable = _capdebug("triage", str(garbage), "--no-env")
    assert unreadable.returncode == 2, (unreadable.stdout, unreadable.stderr)
    assert "Traceback" not in unreadable.stderr
    missing = _capdebug("triage", str(tmp_path / "nope.pcap"), "--no-env")
    assert missing.returncode == 2


# -- the generator still makes what the committed captures show --------------------------------


@pytest.mark.tools
@pytest.mark.parametrize("name", ["premature_close", "data_after_close_notify"])
def test_live_capture_gives_the_same_verdict(name: str, tmp_path: Path) -> None:
    require("tcpdump", "openssl")
    from tests.tools import require_root

    require_root()
    pki = scenarios.make_pki(tmp_path / "pki")
    cap = scenarios.run(name, tmp_path / "cap", pki)
    assert cap.keys is not None
    reports, _ = triage_capture(cap.pcap, load_keys(cap.pcap, [cap.keys]))
    # The verdict the scenario exists for, from the same side as in the committed capture (what
    # comes after it, e.g. whether the kernel answers with RST, depends on timing).
    live = one(only(reports), name)
    committed = one(only(triage(name)), name)
    assert (live.code, live.severity, live.by) == (committed.code, committed.severity, committed.by)


def test_confidence_follows_the_evidence() -> None:
    """With keys a premature close is seen (high); without them, TLS 1.3's last record before
    the FIN is unread and could be a padded close_notify (medium), and a 19-byte protected
    record before a FIN is read as close_notify by its size alone (medium). Every verdict of
    every fixture has one of the three levels, and the text output shows the unsure ones."""
    pcap, keys = _paths("premature_close")
    assert keys is not None
    seen = triage_capture(pcap, load_keys(pcap, [keys])).reports
    unread = triage_capture(pcap, load_keys(pcap, [])).reports
    assert [(v.by, v.confidence) for r in seen for v in r.verdicts if v.code == "premature_close"] == [
        ("client", "high")
    ]
    (guess,) = [v for r in unread for v in r.verdicts if v.code == "premature_close"]
    assert (guess.by, guess.confidence) == ("client", "medium") and "padded close_notify" in guess.detail
    pcap, _ = _paths("clean_close")
    likely = [v for r in triage_capture(pcap, load_keys(pcap, [])).reports for v in r.verdicts]
    assert {(v.code, v.confidence) for v in likely if v.code == "likely_close_notify"} == {
        ("likely_close_notify", "medium")
    }
    for name in MANIFEST:
        pcap, keys = _paths(name)
        reports = triage_capture(pcap, load_keys(pcap, [keys] if keys else [])).reports
        assert all(v.confidence in ("high", "medium", "low") for r in reports for v in r.verdicts), name
    out = CliRunner().invoke(app, ["triage", str(_paths("premature_close")[0]), "--no-env"]).stdout
    assert "premature_close" in out and "(medium confidence)" in out
