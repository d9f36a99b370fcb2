"""Who rejected whom, on real captures made here: OpenSSL, GnuTLS, Python and Node servers
rejecting expired and unknown-CA client certificates (TLS 1.2 and 1.3), each triaged with and
without the key log; and a warning alert that must not get a fatal alert's verdict (see
:mod:`tests.triage.mtls`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capdebug.analysis.triage import ConnectionReport, Verdict
from capdebug.api import load_keys, triage_capture
from tests.tools import require

from . import mtls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> mtls.ClientPki:
    return mtls.make_client_pki(tmp_path_factory.mktemp("pki"))


def _triage(pcap: Path, keys: Path | None) -> ConnectionReport:
    reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if keys else []))
    assert len(reports) == 1, [r.to_json() for r in reports]
    return reports[0]


def _errors(r: ConnectionReport) -> list[Verdict]:
    return [v for v in r.verdicts if v.severity == "error"]


CASES = [
    ("openssl", "tls1_3", "unknown", "unknown_ca"),
    ("openssl", "tls1_3", "expired", "certificate_expired"),
    ("openssl", "tls1_2", "unknown", "unknown_ca"),
    ("openssl", "tls1_2", "expired", "certificate_expired"),
    ("gnutls", "tls1_3", "unknown", "access_denied"),
    ("gnutls", "tls1_3", "expired", "access_denied"),
    ("gnutls", "tls1_2", "unknown", "access_denied"),
    ("gnutls", "tls1_2", "expired", "access_denied"),
    ("python", "tls1_3", "unknown", "unknown_ca"),
    ("python", "tls1_2", "expired", "certificate_expired"),
    ("node", "tls1_3", "expired", None),
    ("node", "tls1_2", "unknown", None),
]


@pytest.mark.parametrize(("stack", "version", "cert", "alert"), CASES)
def test_server_rejects_client_certificate(
    stack: str, version: str, cert: str, alert: str | None, pki: mtls.ClientPki, tmp_path: Path
) -> None:
    require("openssl", "tcpdump", *({"gnutls": ["gnutls-serv"], "node": ["node"]}.get(stack, [])))
    pcap, keys, _port = mtls.reject_client_cert(tmp_path, pki, stack=stack, version=version, cert=cert)
    if alert is None:
        # Node checks the client's certificate after OpenSSL's handshake (rejectUnauthorized)
        # and drops the connection without an alert: inferred from the silent close, with or
        # without keys, blamed on the server, with the client's chain.
        for k in (keys, None):
            r = _triage(pcap, k)
            errors = _errors(r)
            assert [(v.code, v.by) for v in errors] == [("likely_handshake_rejected", "server")], r.to_json()
            detail = errors[0].detail
            assert "closed TCP (FIN) right after the client's second flight" in detail, detail
            if k or version == "tls1_2":
                assert "Client chain sent: CN=capdebug client" in detail
                assert ("the client certificate is expired on" in detail) == (cert == "expired")
            else:
                assert "large enough to carry a client certificate" in detail
            assert not any(v.code in ("premature_close", "handshake_incomplete") for v in r.verdicts)
        return

    # With keys: the alert is read, blamed on the server, and explained by the CLIENT's chain.
    r = _triage(pcap, keys)
    errors = _errors(r)
    assert [(v.code, v.by) for v in errors] == [("handshake_alert", "server")], r.to_json()
    detail = errors[0].detail
    assert f"fatal alert {alert}" in detail
    assert "rejecting the client" in detail
    assert "Client chain sent: CN=capdebug client" in detail
    assert "CN=localhost" not in detail  # never the server's certificate
    if cert == "expired":
        assert "the client certificate is expired on" in detail
    if version == "tls1_3":
        assert "second flight" in detail
    if stack == "gnutls":
        # GnuTLS follows its fatal alert with a second one (close_notify): mentioned, not lost.
        assert "the same side then also sent" in detail
    assert not any(v.code in ("alert", "clean_close", "premature_close") for v in r.verdicts)

    # Without keys.
    r = _triage(pcap, None)
    errors = _errors(r)
    if version == "tls1_2":
        # TLS 1.2 alerts during the handshake are plaintext: the same verdict, the client's chain.
        assert [(v.code, v.by) for v in errors] == [("handshake_alert", "server")]
        assert f"fatal alert {alert}" in errors[0].detail
        assert "Client chain sent: CN=capdebug client" in errors[0].detail
    else:
        assert [(v.code, v.by) for v in errors] == [("likely_handshake_rejected", "server")], r.to_json()
        v = errors[0]
        n = 2 if stack == "gnutls" else 1
        assert f"with {n} short protected record(s)" in v.detail
        assert "large enough to carry a client certificate" in v.detail
        assert ("confidence high" if n == 1 else "confidence medium") in v.detail
        assert not any(v.code in ("likely_close_notify", "close_notify_unanswered") for v in r.verdicts)


def test_warning_alert_gets_warning_advice(pki: mtls.ClientPki, tmp_path: Path) -> None:
    require("openssl", "tcpdump")
    pcap, keys, _port = mtls.warning_unrecognized_name(tmp_path, pki)
    for k in (keys, None):
        r = _triage(pcap, k)
        warn = [v for v in r.verdicts if v.code == "warning_alert"]
        assert [(v.severity, v.by) for v in warn] == [("warning", "server")]
        assert "unrecognized_name (112)" in warn[0].detail
        assert not any(v.code in ("alert", "handshake_alert") for v in r.verdicts)
