"""An ``undecryptable`` event names a record of the capture that could not be opened (the same
side, the same frame), never a key change after which that side sent nothing: e.g. a TLS 1.3
side that ends after its Finished, or a key log missing only the application secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from capdebug.analysis.events import AlertEvent, AppDataEvent, DecodeEvent, HandshakeEvent, UndecryptableEvent
from capdebug.analysis.sessions import iter_events
from capdebug.crypto.keylog import KeyLog
from capdebug.pcap.open import open_capture

FIXTURES = Path(__file__).parent.parent / "fixtures"
TLS13 = [*sorted(FIXTURES.glob("tls13-*.pcap")), FIXTURES / "gnutls-tls13.pcap"]


def _unopened(ev: DecodeEvent) -> tuple[int, int, str] | None:
    if isinstance(ev, AppDataEvent) and not ev.decrypted:
        return ev.conn, ev.frame, ev.from_
    if isinstance(ev, HandshakeEvent) and ev.type == -1:
        return ev.conn, ev.frame, ev.from_
    if isinstance(ev, AlertEvent) and ev.description is None:
        return ev.conn, ev.frame, ev.from_
    return None


def _without_application_secrets(keys: Path) -> KeyLog:
    lines = keys.read_text().splitlines()
    kept = [x for x in lines if not x.startswith(("CLIENT_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET"))]
    return KeyLog.parse("\n".join(kept), source=str(keys))


@pytest.mark.parametrize("capture", TLS13, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", ["nokeys", "no-application-secrets"])
def test_undecryptable_names_an_unopened_record(capture: Path, variant: str) -> None:
    keylog = None if variant == "nokeys" else _without_application_secrets(capture.with_suffix(".keys"))
    with open_capture(capture) as reader:
        events = list(iter_events(reader, keylog))
    unopened = {u for ev in events if (u := _unopened(ev)) is not None}
    bad = [e for e in events if isinstance(e, UndecryptableEvent)]
    if variant == "no-application-secrets" and any(isinstance(e, AppDataEvent) for e in events):
        assert bad, "the application records cannot be opened without their secrets"
    for ev in bad:
        assert (ev.conn, ev.frame, ev.from_) in unopened, ev
