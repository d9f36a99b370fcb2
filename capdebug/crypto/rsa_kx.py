"""TLS 1.2 RSA key exchange with the server's private key (RFC 5246 section 7.4.7.1).

With the RSA key exchange the client picks the 48-byte pre-master secret and sends it
encrypted with the server certificate's public key (RSAES-PKCS1-v1_5, RFC 8017 section 7.2), so
whoever holds the private key can recover it from the ClientKeyExchange and derive every key
of the session (RFC 5246 section 8.1). With (EC)DHE or TLS 1.3 the pre-master secret is never
sent at all: the private key only signs, and cannot decrypt anything.

Failed decryption: recent OpenSSL builds answer a bad PKCS#1 v1.5 padding with "implicit
rejection" (a synthetic message derived from the key and the ciphertext, never an error), so a
wrong key does not raise. A result is accepted only when it is 48 bytes long and starts with
the client_version the ClientHello offered (RFC 5246 7.4.7.1: PreMasterSecret.client_version),
and the record layer's authentication then proves it (the Finished must open).

Private keys never appear in ``repr`` or messages.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm

from ..errors import KeyLogError
from .prf12 import LEGACY_PRF, extended_master_secret, master_secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["RsaKey", "describe_non_keylog", "master_from_premaster", "parse_scope"]

_PREMASTER_LENGTH = 48  # RFC 5246 section 7.4.7.1


@dataclass(frozen=True, slots=True)
class RsaKey:
    """A server's RSA private key, optionally scoped to one server address (``host``, ``port``)."""

    key: rsa.RSAPrivateKey = field(repr=False)
    source: str
    """The file it came from (for messages)."""
    host: bytes | None = None
    """Packed IPv4/IPv6 address the key is limited to (None: any server)."""
    port: int | None = None

    @classmethod
    def from_bytes(cls, data: bytes, source: str, scope: str | None = None) -> RsaKey:
        """Load a PEM or DER private key (PKCS#1 or PKCS#8, unencrypted).

        Raises :class:`~capdebug.errors.KeyLogError` naming what the file is when it is not an
        RSA private key (a certificate, a public key, an EC key, an encrypted key, ...)."""
        # Imported here: key loading costs a measurable share of a small decode's start-up and
        # only --rsa-key and RSA key-log lines need it.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        host, port = parse_scope(scope) if scope else (None, None)
        loaded: object
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                loaded = serialization.load_pem_private_key(data, password=None)
            else:
                loaded = serialization.load_der_private_key(data, password=None)
        except TypeError as exc:  # raised for a key that needs a password
            raise KeyLogError(f"RSA key {source!r} is encrypted; give it decrypted (openssl pkey)") from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            what = describe_non_keylog(data) or "not a PEM or DER private key"
            raise KeyLogError(f"RSA key {source!r} is {what}") from exc
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise KeyLogError(
                f"RSA key {source!r} is a {type(loaded).__name__.removeprefix('_')} private key, "
                "not RSA; only RSA key exchange can be decrypted with a private key"
            )
        return cls(loaded, source, host, port)

    @classmethod
    def from_file(cls, spec: str | os.PathLike[str]) -> RsaKey:
        """``FILE`` or ``FILE@HOST:PORT`` (like Wireshark's RSA keys list)."""
        text = os.fspath(spec)
        path, scope = text, None
        if "@" in text and not Path(text).exists():
            path, scope = text.rsplit("@", 1)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise KeyLogError(f"RSA key file {path!r} does not exist") from exc
        except OSError as exc:
            raise KeyLogError(f"cannot read RSA key file {path!r}: {exc.strerror or exc}") from exc
        return cls.from_bytes(data, path, scope)

    def applies_to(self, server: tuple[bytes, int]) -> bool:
        """The key may be tried for a connection to ``server`` (packed address, port)."""
        if self.host is not None and self.host != server[0]:
            return False
        return self.port is None or self.port == server[1]

    def decrypt_premaster(self, encrypted: bytes, client_version: int) -> bytes | None:
        """The PreMasterSecret, or None when this key did not encrypt it (see the module text)."""
        if len(encrypted) != self.key.key_size // 8 + (1 if self.key.key_size % 8 else 0):
            return None
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            plain = self.key.decrypt(encrypted, padding.PKCS1v15())
        except ValueError:
            return None
        if len(plain) != _PREMASTER_LENGTH or int.from_bytes(plain[:2], "big") != client_version:
            return None
        return plain


def parse_scope(scope: str) -> tuple[bytes | None, int | None]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` (an IP address; ``any`` for none)."""
    host_text, port_text = scope, ""
    if scope.startswith("["):
        end = scope.find("]")
        if end < 0:
            raise KeyLogError(f"bad RSA key scope {scope!r}: missing ']'")
        host_text, rest = scope[1:end], scope[end + 1 :]
        port_text = rest.removeprefix(":")
    elif scope.count(":") == 1:
        host_text, port_text = scope.split(":")
    host: bytes | None = None
    if host_text and host_text != "any":
        try:
            host = ipaddress.ip_address(host_text).packed
        except ValueError as exc:
            raise KeyLogError(f"bad RSA key scope {scope!r}: {host_text!r} is not an IP address") from exc
    port: int | None = None
    if port_text and port_text != "any":
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise KeyLogError(f"bad RSA key scope {scope!r}: {port_text!r} is not a port")
        port = int(port_text)
    return host, port


_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "a pcap capture",
    b"\xa1\xb2\xc3\xd4": "a pcap capture",
    b"\x4d\x3c\xb2\xa1": "a pcap capture",
    b"\xa1\xb2\x3c\x4d": "a pcap capture",
    b"\x0a\x0d\x0d\x0a": "a pcapng capture",
}


def describe_non_keylog(data: bytes) -> str | None:
    """What ``data`` is when it is recognisably not a key log (a PEM object, DER, a capture),
    else None. Used so that a wrong file is refused by name, not read as zero usable lines."""
    what = _PCAP_MAGICS.get(bytes(data[:4]))
    if what is not None:
        return what
    head = data.lstrip()[:200]
    if head.startswith(b"-----BEGIN "):
        label = head[11:].split(b"-----", 1)[0].decode("ascii", "replace")
        if "PRIVATE KEY" in label:
            return f"a PEM private key ({label}), which goes to --rsa-key"
        if "CERTIFICATE" in label:
            return f"a PEM certificate ({label}), which holds no secret"
        return f"a PEM file ({label})"
    if len(data) > 4 and data[0] == 0x30 and data[1] in (0x81, 0x82, 0x83):
        return "DER (ASN.1) data, such as a certificate or a private key"
    return None


def master_from_premaster(
    hash_name: str,
    premaster: bytes,
    client_random: bytes,
    server_random: bytes,
    transcript: list[bytes] | None,
    extended: bool,
) -> bytes | None:
    """The master secret (RFC 5246 section 8.1), or with the extended_master_secret extension
    its RFC 7627 section 4 form, whose seed is the hash of every handshake message up to and
    including the ClientKeyExchange (``transcript``; None when it was not kept whole)."""
    if not extended:
        return master_secret(hash_name, premaster, client_random, server_random)
    if transcript is None:
        return None
    messages = b"".join(transcript)
    if hash_name == LEGACY_PRF:
        # TLS 1.0 and 1.1: the session hash is MD5 and SHA-1 of the messages, concatenated
        # (RFC 7627 section 3).
        session_hash = hashlib.md5(messages).digest() + hashlib.sha1(messages).digest()
    else:
        session_hash = hashlib.new(hash_name, messages).digest()
    return extended_master_secret(hash_name, premaster, session_hash)
