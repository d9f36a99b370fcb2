"""An on-path injector races the client's ClientHello with a forged copy (issue 15, overlapping
retransmissions with different bytes) on a real path: the bridge of tests/tcp/bridge.py sends
the first client segment with its opening bytes replaced ("GET"), then the real one. The
server's kernel takes the forged copy (the real one is a duplicate to it) and its TLS stack
fails on an HTTP-looking ClientHello; the client's stack never sent anything wrong.

At the server's capture point both copies are seen: capdebug must report the conflict, say the
first copy was used, and blame the path, not the client. At the client's, only the real copy
passed: nothing conflicts there (comparing the two captures is what tells where it happened).
"""

from __future__ import annotations

from capdebug.analysis.events import OverlapEvent
from capdebug.api import decode_capture, load_keys, triage_capture
from tests.tcp.bridged import BridgedPath, bridged

__all__ = ["bridged"]


def test_forged_first_copy_of_the_client_hello(bridged: BridgedPath) -> None:
    run = bridged.transfer(
        "forged", client_sends=1000, server_sends=1000, tls="1.3", bridge=("--forge-first", "GET")
    )
    assert run.bridge["forged"] == 1, run.bridge
    assert run.server["error"] is not None, run.server  # its TLS stack read the forged bytes

    keys = load_keys(run.server_pcap, run.keylogs)
    with decode_capture(run.server_pcap, keys) as decoding:
        events = list(decoding)
    (conflict,) = [e for e in events if isinstance(e, OverlapEvent)]
    assert (conflict.from_, conflict.offset, conflict.differ) == ("client", 0, 3)

    (report,) = triage_capture(run.server_pcap, keys).reports
    verdicts = {(v.code, v.severity, v.by) for v in report.verdicts}
    assert ("overlap_conflict", "error", "path") in verdicts, verdicts
    # What the server read was not what the client sent: no error is laid at the client's door.
    assert not [v for v in report.verdicts if v.severity == "error" and v.by == "client"], verdicts

    with decode_capture(run.client_pcap, load_keys(run.client_pcap, run.keylogs)) as decoding:
        assert not [e for e in decoding if isinstance(e, OverlapEvent)]
