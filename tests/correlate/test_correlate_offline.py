"""``capdebug correlate`` on fixture captures and copies of them changed on purpose: the pure
matching and verdicts, the terminal and JSON renderings, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capdebug.analysis.correlate import correlate
from capdebug.analysis.correlate.verdicts import CODES
from capdebug.cli import correlate as cli_correlate
from capdebug.cli.app import app
from capdebug.pcap import open_capture, write_pcap
from capdebug.pcap.model import Packet

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPTURE = FIXTURES / "tls13-aes128gcm.pcap"
KEYS = FIXTURES / "tls13-aes128gcm.keys"
README = (Path(__file__).parent.parent.parent / "README.md").read_text()


def _copy(
    tmp_path: Path, name: str, change: dict[int, int] | None = None, drop: set[int] | None = None
) -> Path:
    """The fixture as ``name``; ``change`` maps frame number -> offset from the end of the
    frame whose byte is flipped (the TCP checksum is not fixed: nothing here checks it);
    ``drop`` leaves frames out."""
    out = tmp_path / name
    change = change or {}
    if not change and not drop:
        shutil.copy(CAPTURE, out)
        return out
    packets: list[Packet] = []
    with open_capture(CAPTURE) as reader:
        linktype = reader.interfaces[0].linktype if reader.interfaces else 1
        for item in reader:
            if isinstance(item, Packet):
                data = bytearray(item.data)
                if drop and reader.packets_read in drop:
                    continue
                at = change.get(reader.packets_read)
                if at is not None:
                    data[-at] ^= 0x55
                packets.append(Packet(item.ts_ns, 0, bytes(data), item.orig_len))
        linktype = reader.interfaces[0].linktype
    write_pcap(out, packets, linktype=linktype, nanosecond=True)
    return out


def test_every_verdict_code_is_documented() -> None:
    section = README.split("### 7. Correlate", 1)[1]
    for code in CODES:
        assert f"`{code}`" in section, code


def test_the_same_capture_twice_matches_with_zero_offset_and_no_fault(tmp_path: Path) -> None:
    a, b = _copy(tmp_path, "a.pcap"), _copy(tmp_path, "b.pcap")
    result = correlate([cli_correlate.load_point(i, p, [KEYS], no_env=True) for i, p in enumerate((a, b))])
    (conn,) = result.connections
    assert conn.kind == "client_random"
    (hop,) = conn.hops
    assert hop.clock is not None and hop.clock.offset_ns == 0 and hop.clock.samples >= 10
    # Identical TTLs and no delay: the order of the files decides, and says so.
    assert hop.oriented_by == "assumed from the order of the captures"
    assert conn.verdicts == []
    assert not result.has_error


def test_a_record_altered_in_flight_is_named_with_its_hop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Frame 12 is the client's first application-data record: flip a byte of its AEAD tag.
    a, b = _copy(tmp_path, "near.pcap"), _copy(tmp_path, "far.pcap", {12: 1})
    code = _main("correlate", str(a), str(b), "--keylog", str(KEYS), "--json", "--no-env")
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    (conn,) = doc["connections"]
    found = [(v["code"], v["between"], v["by"], v["frames"]) for v in conn["verdicts"]]
    assert found == [
        ("altered_in_flight", ["near.pcap", "far.pcap"], "client", {"near.pcap": 12, "far.pcap": 12})
    ]


def test_an_alert_never_sent_by_the_client_is_injected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The near capture never saw the client's close_notify (frame 18) though it ran on: at the
    # far capture the record appears after all the client ever sent.
    near = _copy(tmp_path, "near.pcap", drop={18})
    far = _copy(tmp_path, "far.pcap")
    code = _main("correlate", str(near), str(far), "--keylog", str(KEYS), "--json", "--no-env")
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    (conn,) = doc["connections"]
    first = conn["verdicts"][0]
    assert (first["code"], first["between"], first["by"]) == (
        "injected_alert",
        ["near.pcap", "far.pcap"],
        "client",
    )
    assert "close_notify" in first["detail"] and first["frames"] == {"far.pcap": 18}


def test_a_hole_in_one_capture_is_not_network_loss(tmp_path: Path) -> None:
    # The far capture missed the client's frame 14 but saw what follows: TCP delivered it, so
    # the capture lost it, not the network.
    near, far = _copy(tmp_path, "near.pcap"), _copy(tmp_path, "far.pcap", drop={14})
    points = [cli_correlate.load_point(i, p, [KEYS], no_env=True) for i, p in enumerate((near, far))]
    (conn,) = correlate(points).connections
    assert conn.verdicts == []


def test_a_capture_started_after_the_client_hello_matches_by_payload(tmp_path: Path) -> None:
    near, far = _copy(tmp_path, "near.pcap"), _copy(tmp_path, "far.pcap", drop={1, 2, 3, 4, 5})
    other = tmp_path / "other.pcap"
    shutil.copy(FIXTURES / "tls13-chacha20.pcap", other)
    points = [cli_correlate.load_point(i, p, [KEYS], no_env=True) for i, p in enumerate((near, far, other))]
    result = correlate(points)
    (conn,) = result.connections
    assert conn.kind == "tcp_payload" and conn.confidence == "medium"
    assert [(leg.point, leg.client_random is None) for leg in conn.legs] == [(0, False), (1, True)]
    assert conn.verdicts == []
    assert [leg.point for leg in result.unmatched] == [2]


def _main(*argv: str) -> int:
    from capdebug.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    return int(exc.value.code or 0)


def test_terminal_output_escapes_peer_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _copy(tmp_path, "a.pcap"), _copy(tmp_path, "b.pcap")
    points = [cli_correlate.load_point(i, p, [KEYS], no_env=True) for i, p in enumerate((a, b))]
    for p in points:
        p.legs[0].sni = "[/]<script>\x1b[31m[bold]x"
    cli_correlate._render(correlate(points))
    out = capsys.readouterr().out
    assert "SNI [/]<script>\\x1b[31m[bold]x" in out
    assert "\x1b" not in out
    assert "hop a.pcap → b.pcap: clock offset +0.000 ms" in out
    assert "no fault found between these points" in out


def test_unrelated_fixtures_say_no_match(tmp_path: Path) -> None:
    other = FIXTURES / "tls13-chacha20.pcap"
    result = CliRunner().invoke(app, ["correlate", str(CAPTURE), str(other), "--no-env"])
    assert result.exit_code == 0, result.output
    assert "no match: no connection appears in more than one capture" in result.stdout
    assert _main("correlate", str(CAPTURE), str(other), "--no-env") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([str(CAPTURE)], "correlate needs at least two captures"),
        ([str(CAPTURE), str(CAPTURE)], "the captures need distinct file names"),
        ([str(CAPTURE), "/nonexistent/x.pcap"], "cannot open capture /nonexistent/x.pcap"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from capdebug.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["correlate", *args, "--no-env"])
    assert exc.value.code == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and message in err, err
