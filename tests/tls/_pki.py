"""Shared test material for the engine tests: one test PKI per session, configs, pumps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from capdebug.crypto.testpki import Issued, KeyType, LeafOptions, make_ca, make_leaf
from capdebug.crypto.x509_engine import load_private_key
from capdebug.tls.config import Credential, TLSConfig
from capdebug.tls.connection import Connection
from capdebug.tls.events import Event

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Pki:
    ca: Issued
    leaves: dict[str, Issued]
    folder: Path

    def chain(self, name: str) -> tuple[bytes, ...]:
        leaf = self.leaves[name]
        return (leaf.cert_der,) if name == "self-signed" else (leaf.cert_der, self.ca.cert_der)

    def credential(self, name: str) -> Credential:
        return Credential(self.chain(name), load_private_key(self.leaves[name].key_pem))

    def pem(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"


LEAVES = {
    "ecdsa": LeafOptions(),
    "ecdsa384": LeafOptions(key_type=KeyType.ECDSA_P384),
    "rsa": LeafOptions(key_type=KeyType.RSA_2048),
    "ed25519": LeafOptions(key_type=KeyType.ED25519),
    "client": LeafOptions(hostnames=("capdebug client",), client=True),
    "client-rsa": LeafOptions(hostnames=("capdebug client",), client=True, key_type=KeyType.RSA_2048),
    "expired": LeafOptions(expired=True),
    "not-yet-valid": LeafOptions(not_yet_valid=True),
    "wrong-host": LeafOptions(hostnames=("wrong.example",)),
    "self-signed": LeafOptions(self_signed=True),
}


def make_pki(folder: Path) -> Pki:
    ca = make_ca(NOW)
    leaves = {name: make_leaf(ca, NOW, opts) for name, opts in LEAVES.items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    for name, leaf in leaves.items():
        chain = leaf.cert_pem if name == "self-signed" else leaf.cert_pem + ca.cert_pem
        (folder / f"{name}.pem").write_bytes(chain)
        (folder / f"{name}.key").write_bytes(leaf.key_pem)
    return Pki(ca, leaves, folder)


def server_config(pki: Pki, leaf: str = "ecdsa", **kw: Any) -> TLSConfig:
    return TLSConfig(credential=pki.credential(leaf), trust_roots=(pki.ca.cert_der,), **kw)


def client_config(pki: Pki, **kw: Any) -> TLSConfig:
    base = TLSConfig(trust_roots=(pki.ca.cert_der,), server_name="localhost")
    return replace(base, **kw)


def pump(a: Connection, b: Connection, rounds: int = 20) -> None:
    """Move bytes both ways until both are quiet."""
    for _ in range(rounds):
        x = a.data_to_send()
        if x:
            b.receive_data(x)
        y = b.data_to_send()
        if y:
            a.receive_data(y)
        if not x and not y:
            return


def drain(conn: Connection) -> list[Event]:
    out: list[Event] = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out
