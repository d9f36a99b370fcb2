"""The TLS 1.2 PRF against OpenSSL's TLS1-PRF (`openssl kdf`), an independent implementation."""

from __future__ import annotations

import subprocess

import pytest

from capdebug.crypto.prf12 import derive_keys12, key_block, master_secret, prf, verify_data12
from capdebug.crypto.suites import SUITES
from capdebug.errors import UsageError
from tests.tools import require


def _openssl_prf(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = subprocess.run(
        ["openssl", "kdf", "-keylen", str(length), "-kdfopt", f"digest:{hash_name.upper()}",
         "-kdfopt", f"hexsecret:{secret.hex()}", "-kdfopt", f"hexseed:{seed.hex()}", "TLS1-PRF"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return bytes.fromhex(out.strip().replace(":", ""))


@pytest.mark.tools
@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("length", [1, 12, 48, 104, 200])
def test_prf_matches_openssl(hash_name: str, length: int) -> None:
    require("openssl")
    secret, label, seed = bytes(range(48)), b"key expansion", bytes(range(100, 164))
    assert prf(hash_name, secret, label, seed, length) == _openssl_prf(
        hash_name, secret, label + seed, length
    )


@pytest.mark.tools
def test_named_derivations_use_rfc_labels_and_seed_order() -> None:
    require("openssl")
    pre, cr, sr = bytes(range(48)), b"C" * 32, b"S" * 32
    ms = master_secret("sha256", pre, cr, sr)
    assert ms == _openssl_prf("sha256", pre, b"master secret" + cr + sr, 48)
    # key_block's seed is server_random + client_random (RFC 5246 section 6.3).
    assert key_block("sha384", ms, sr, cr, 72) == _openssl_prf("sha384", ms, b"key expansion" + sr + cr, 72)
    h = bytes(32)
    assert verify_data12("sha256", ms, "client finished", h) == _openssl_prf(
        "sha256", ms, b"client finished" + h, 12
    )


def test_key_block_partition() -> None:
    ms, cr, sr = bytes(range(48)), b"C" * 32, b"S" * 32
    for params in SUITES.values():
        if params.version != "1.2":
            continue
        keys = derive_keys12(params, ms, cr, sr)
        sizes = (params.mac_len, params.mac_len, params.key_len, params.key_len, params.iv_len, params.iv_len)
        parts = (
            keys.client_write_mac, keys.server_write_mac, keys.client_write_key,
            keys.server_write_key, keys.client_write_iv, keys.server_write_iv,
        )  # fmt: skip
        assert tuple(len(p) for p in parts) == sizes
        assert b"".join(parts) == key_block(params.hash_name, ms, sr, cr, sum(sizes))
        assert keys.client_write_key.hex() not in repr(keys)


def test_unsupported_hash() -> None:
    with pytest.raises(UsageError):
        prf("md5", b"", b"", b"", 1)
