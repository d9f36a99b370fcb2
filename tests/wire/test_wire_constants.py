"""Code point tables, GREASE and naming."""

from __future__ import annotations

from enum import IntEnum

import pytest

from capdebug._buffer import Buffer
from capdebug.wire import constants as c
from capdebug.wire.alert import Alert, alert_name, pull_alert, push_alert

GREASE_VALUES = [0x0A0A + 0x1010 * i for i in range(16)]


def test_grease_values() -> None:
    assert [v for v in range(0x10000) if c.is_grease(v)] == GREASE_VALUES
    assert GREASE_VALUES[-1] == 0xFAFA


@pytest.mark.parametrize("enum_cls", [c.CipherSuite, c.ExtensionType, c.NamedGroup, c.SignatureScheme])
def test_grease_named_in_every_table(enum_cls: type[IntEnum]) -> None:
    assert all(c.name_of(enum_cls, v) == "GREASE" for v in GREASE_VALUES)
    assert not any(c.is_grease(int(m)) for m in enum_cls)


def test_name_of() -> None:
    assert c.name_of(c.CipherSuite, 0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert c.name_of(c.CipherSuite, 0x1301) == "TLS_AES_128_GCM_SHA256"
    assert c.name_of(c.CipherSuite, 0x00FF) == "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    assert c.name_of(c.ExtensionType, 0xFF01) == "renegotiation_info"
    assert c.name_of(c.ExtensionType, 0xFE0D) == "encrypted_client_hello"
    assert c.name_of(c.NamedGroup, 0x11EC) == "X25519MLKEM768"
    assert c.name_of(c.SignatureScheme, 0x0804) == "rsa_pss_rsae_sha256"
    assert c.name_of(c.HandshakeType, 254) == "message_hash"
    assert c.name_of(c.CipherSuite, 0x1234) == "unknown(0x1234)"
    assert c.name_of(c.ContentType, 99) == "unknown(0x0063)"


def test_registry_values() -> None:
    # Spot checks against the IANA registries.
    assert int(c.AlertDescription.certificate_required) == 116
    assert int(c.AlertDescription.no_application_protocol) == 120
    assert int(c.AlertDescription.ech_required) == 121
    assert int(c.ExtensionType.key_share) == 51 and int(c.ExtensionType.pre_shared_key) == 41
    assert int(c.ExtensionType.quic_transport_parameters) == 57
    assert int(c.CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256) == 0xCCA9
    assert int(c.CipherSuite.TLS_FALLBACK_SCSV) == 0x5600
    assert int(c.NamedGroup.ffdhe2048) == 256 and int(c.NamedGroup.x448) == 30
    assert int(c.ProtocolVersion.TLS1_3) == 0x0304 and int(c.ProtocolVersion.SSL3) == 0x0300
    assert len(c.CipherSuite) >= 60


ENUMS = [m for m in vars(c).values() if isinstance(m, type) and issubclass(m, IntEnum) and m is not IntEnum]


@pytest.mark.parametrize("enum_cls", ENUMS)
def test_no_aliases(enum_cls: type[IntEnum]) -> None:
    # An alias (two names, one value) would make name_of ambiguous.
    assert len({int(m) for m in enum_cls}) == len(enum_cls.__members__)


def test_version_name() -> None:
    assert c.version_name(0x0304) == "TLS 1.3"
    assert c.version_name(0x0300) == "SSL 3.0"
    assert c.version_name(0x7F1C) == "TLS 1.3 draft 28"
    assert c.version_name(0x3A3A) == "GREASE"
    assert c.version_name(0x0305) == "unknown(0x0305)"


def test_alert_codec() -> None:
    buf = Buffer()
    push_alert(buf, Alert(2, 40))
    assert buf.data() == b"\x02\x28"
    alert = pull_alert(Buffer(b"\x01\x00"))
    assert alert == Alert(1, 0) and alert.name == "close_notify" and alert.is_closure
    assert not Alert(2, 40).is_closure
    assert alert_name(116) == "certificate_required"
    assert alert_name(255) == "unknown(0x00ff)"
