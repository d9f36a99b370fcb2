"""The cipher suite table, checked against OpenSSL's own catalogue (`openssl ciphers -V -stdname`)."""

from __future__ import annotations

import re
import subprocess

import pytest

from capdebug.crypto.suites import SUITES, suite
from tests.tools import require

_ALL13 = ":".join(
    [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    ]
)
_LINE = re.compile(
    r"0x(?P<hi>[0-9A-F]{2}),0x(?P<lo>[0-9A-F]{2}) - (?P<std>\S+)\s+- \S+\s+(?P<ver>\S+)\s+Kx=(?P<kx>\S+)\s+"
    r"Au=(?P<au>\S+)\s+Enc=(?P<enc>\S+)\((?P<bits>\d+)\)\s+Mac=(?P<mac>\S+)"
)
_ENC = {
    "AESGCM": "AES-GCM",
    "AESCCM": "AES-CCM",
    "AESCCM8": "AES-CCM8",
    "CHACHA20/POLY1305": "CHACHA20-POLY1305",
    "AES": "AES-CBC",
}
_KX = {"ECDH": "ECDHE", "DH": "DHE", "RSA": "RSA", "any": None}
_MAC = {"AEAD": None, "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384"}


@pytest.mark.tools
def test_table_matches_openssl_catalogue() -> None:
    require("openssl")
    out = subprocess.run(
        ["openssl", "ciphers", "-V", "-stdname", "-ciphersuites", _ALL13, "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    known = {}
    for line in out.splitlines():
        m = _LINE.search(line)
        if m:
            known[int(m["hi"] + m["lo"], 16)] = m
    checked = 0
    for code, params in SUITES.items():
        m = known.get(code)
        if m is None:
            continue
        checked += 1
        assert params.name == m["std"], hex(code)
        assert params.version == ("1.3" if m["ver"] == "TLSv1.3" else "1.2")
        assert params.cipher == _ENC[m["enc"]]
        assert params.key_len * 8 == int(m["bits"])
        assert params.kx == _KX[m["kx"]]
        assert params.mac_name == _MAC[m["mac"]]
        if params.version == "1.2":
            assert params.auth == m["au"]
    # OpenSSL knows every suite of ours, so each entry was checked.
    assert checked == len(SUITES)


def test_table_invariants() -> None:
    for code, params in SUITES.items():
        assert params.code == code
        assert params.hash_name == ("sha384" if "SHA384" in params.name else "sha256")
        assert params.hash_len == {"sha256": 32, "sha384": 48}[params.hash_name]
        if params.version == "1.3":
            assert (params.iv_len, params.record_iv_len, params.kx) == (12, 0, None)
        elif params.cipher == "CHACHA20-POLY1305":
            assert (params.iv_len, params.record_iv_len, params.tag_len) == (12, 0, 16)
        elif params.cipher == "AES-CBC":
            assert (params.iv_len, params.record_iv_len, params.tag_len) == (16, 16, 0)
            assert params.mac_len == {"sha1": 20, "sha256": 32, "sha384": 48}[params.mac_name or ""]
        else:
            assert (params.iv_len, params.record_iv_len) == (4, 8)
            assert params.tag_len == (8 if params.cipher == "AES-CCM8" else 16)
        assert params.is_aead == (params.cipher != "AES-CBC")
    assert suite(0x1301) is SUITES[0x1301]
    assert suite(0x0000) is None
    assert suite(0x0005) is None  # TLS_RSA_WITH_RC4_128_SHA: not supported
