"""The one place that turns typed events into what people and JSON read.

The decoder's events carry typed facts (the parsed message of :mod:`capdebug.wire.handshake`,
versions and code points as ints, certificate summaries with datetimes); this module names them:

- :func:`handshake_fields`: the fields of a ``handshake`` object of ``decrypt --json`` (the
  contract of ARCHITECTURE.md; names for code points, counts for long lists);
- :func:`text_detail`: the same message on one line of the text timeline (``capdebug decrypt``);
- :func:`ladder_detail`: the shortest line that explains a failure, under an arrow of the HTML
  ladder (``capdebug report``).

The two short forms pick from :func:`handshake_fields`, so a field is named once. Nothing here is
on the decoder's per-record path: events are described only when they are rendered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..crypto.certinfo import CertSummary
from ..errors import DecodeError
from ..wire.constants import (
    CipherSuite,
    ExtensionType,
    KeyUpdateRequest,
    NamedGroup,
    PskKeyExchangeMode,
    SignatureScheme,
    name_of,
    version_name,
)
from ..wire.extensions import (
    CertificateStatus,
    ext,
    pull_alpn_protocols,
    pull_early_data,
    pull_key_share_client,
    pull_key_share_hrr,
    pull_key_share_server,
    pull_offered_psks,
    pull_psk_key_exchange_modes,
    pull_selected_identity,
    pull_selected_version,
    pull_server_name_list,
    pull_signature_schemes,
    pull_supported_groups,
    pull_supported_versions,
)
from ..wire.handshake import (
    Certificate,
    CertificateRequest,
    CertificateRequest12,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    CompressedCertificate,
    EncryptedExtensions,
    Finished,
    HandshakeMessage,
    KeyUpdate,
    NewSessionTicket,
    NewSessionTicket12,
    ServerHello,
    ServerKeyExchange,
    UnknownHandshake,
    handshake_name,
)
from ..wire.handshake12 import parse_dhe_server_key_exchange, parse_ecdhe_server_key_exchange
from .messages import certificates, text

if TYPE_CHECKING:
    from .events import HandshakeEvent

__all__ = ["handshake_fields", "ladder_detail", "message_fields", "text_detail"]


def handshake_fields(ev: HandshakeEvent) -> dict[str, Any]:
    """The fields of ``ev``'s JSON object beyond the common ones (``decrypt --json``)."""
    if ev.error is not None:
        return {"error": f"malformed {handshake_name(ev.type)}: {ev.error}"}
    if ev.sslv2:
        return {"sslv2": True}
    if ev.message is None:
        return {}
    return message_fields(ev.message)


def _cert_json(c: CertSummary | str) -> dict[str, Any]:
    if isinstance(c, str):
        return {"error": c}
    shown = dict(_cert_items(c))
    shown["sans"] = list(c.sans)  # a fresh list: the cached items stay immutable
    return shown


@functools.lru_cache(maxsize=1024)
def _cert_items(c: CertSummary) -> tuple[tuple[str, Any], ...]:
    """What to show of one certificate, in JSON order. Cached like the summaries themselves
    (a capture repeats the same few chains)."""
    return (
        ("subject", c.subject),
        ("issuer", c.issuer),
        ("sans", None),
        ("not_before", c.not_before.isoformat()),
        ("not_after", c.not_after.isoformat()),
        ("key", c.key_type),
        ("self_signed", c.self_signed),
        ("sha256", c.sha256_fingerprint),
    )


def _names(enum_cls: type, values: tuple[int, ...]) -> list[str]:
    return [name_of(enum_cls, v) for v in values]


class _Summary:
    """Collects fields; an extension that does not decode is listed, not raised."""

    __slots__ = ("fields", "malformed")

    def __init__(self) -> None:
        self.fields: dict[str, object] = {}
        self.malformed: list[str] = []

    def ext(
        self,
        key: str,
        msg: ClientHello | ServerHello | EncryptedExtensions | NewSessionTicket | CertificateRequest,
        ext_type: ExtensionType,
        decode: Callable[[bytes], object],
    ) -> None:
        data = ext(msg, ext_type)
        if data is None:
            return
        try:
            self.fields[key] = decode(data)
        except DecodeError:
            self.malformed.append(ext_type.name)

    def done(self) -> dict[str, object]:
        if self.malformed:
            self.fields["malformed_extensions"] = self.malformed
        return self.fields


def _summary_client_hello(msg: ClientHello) -> dict[str, object]:
    s = _Summary()
    f = s.fields
    f["legacy_version"] = version_name(msg.legacy_version)
    f["session_id_length"] = len(msg.legacy_session_id)
    f["cipher_suites"] = _names(CipherSuite, msg.cipher_suites)
    f["extensions"] = _names(ExtensionType, tuple(e.type for e in msg.extensions))
    s.ext("sni", msg, ExtensionType.server_name, lambda d: next(iter(pull_server_name_list(d)), None))
    s.ext(
        "supported_versions",
        msg,
        ExtensionType.supported_versions,
        lambda d: [version_name(v) for v in pull_supported_versions(d)],
    )
    s.ext(
        "groups", msg, ExtensionType.supported_groups, lambda d: _names(NamedGroup, pull_supported_groups(d))
    )
    s.ext(
        "key_share_groups",
        msg,
        ExtensionType.key_share,
        lambda d: [name_of(NamedGroup, e.group) for e in pull_key_share_client(d)],
    )
    s.ext(
        "signature_algorithms",
        msg,
        ExtensionType.signature_algorithms,
        lambda d: _names(SignatureScheme, pull_signature_schemes(d)),
    )
    s.ext(
        "alpn",
        msg,
        ExtensionType.application_layer_protocol_negotiation,
        lambda d: [text(p) for p in pull_alpn_protocols(d)],
    )
    s.ext("psk_identities", msg, ExtensionType.pre_shared_key, lambda d: len(pull_offered_psks(d).identities))
    s.ext(
        "psk_modes",
        msg,
        ExtensionType.psk_key_exchange_modes,
        lambda d: _names(PskKeyExchangeMode, pull_psk_key_exchange_modes(d)),
    )
    f["early_data"] = ext(msg, ExtensionType.early_data) is not None
    s.done()
    f["random"] = msg.random.hex()
    return f


def _summary_server_hello(msg: ServerHello) -> dict[str, object]:
    s = _Summary()
    f = s.fields
    hrr = msg.is_hello_retry_request
    f["hello_retry_request"] = hrr
    f["legacy_version"] = version_name(msg.legacy_version)
    f["version"] = version_name(msg.legacy_version)
    s.ext("version", msg, ExtensionType.supported_versions, lambda d: version_name(pull_selected_version(d)))
    f["cipher_suite"] = name_of(CipherSuite, msg.cipher_suite)
    f["session_id_length"] = len(msg.legacy_session_id_echo)
    f["extensions"] = _names(ExtensionType, tuple(e.type for e in msg.extensions))
    if hrr:
        s.ext(
            "key_share_group",
            msg,
            ExtensionType.key_share,
            lambda d: name_of(NamedGroup, pull_key_share_hrr(d)),
        )
    else:
        s.ext(
            "key_share_group",
            msg,
            ExtensionType.key_share,
            lambda d: name_of(NamedGroup, pull_key_share_server(d).group),
        )
    s.ext("selected_psk", msg, ExtensionType.pre_shared_key, pull_selected_identity)
    s.ext(
        "alpn",
        msg,
        ExtensionType.application_layer_protocol_negotiation,
        lambda d: next(iter(text(p) for p in pull_alpn_protocols(d)), None),
    )
    downgrade = msg.downgrade_sentinel
    if downgrade is not None:
        f["downgrade_sentinel"] = version_name(downgrade)
    return s.done()


def message_fields(msg: HandshakeMessage) -> dict[str, object]:
    """JSON-friendly fields worth showing for ``msg`` (names for code points, counts for lists).

    Only the extensions shown are decoded. Extensions that fail to decode are listed under
    ``malformed_extensions`` rather than raised.
    """
    match msg:
        case ClientHello():
            return _summary_client_hello(msg)
        case ServerHello():
            return _summary_server_hello(msg)
        case EncryptedExtensions():
            s = _Summary()
            s.fields["extensions"] = _names(ExtensionType, tuple(e.type for e in msg.extensions))
            s.ext(
                "alpn",
                msg,
                ExtensionType.application_layer_protocol_negotiation,
                lambda d: next(iter(text(p) for p in pull_alpn_protocols(d)), None),
            )
            s.fields["early_data"] = ext(msg, ExtensionType.early_data) is not None
            return s.done()
        case Certificate():
            return {
                "count": len(msg.certificate_list),
                "certificates": [_cert_json(c) for c in certificates(msg)],
            }
        case CertificateRequest():
            s = _Summary()
            s.fields["context_length"] = len(msg.certificate_request_context)
            s.ext(
                "signature_algorithms",
                msg,
                ExtensionType.signature_algorithms,
                lambda d: _names(SignatureScheme, pull_signature_schemes(d)),
            )
            return s.done()
        case CertificateRequest12():
            return {
                "certificate_types": list(msg.certificate_types),
                "signature_algorithms": None
                if msg.supported_signature_algorithms is None
                else _names(SignatureScheme, msg.supported_signature_algorithms),
                "certificate_authorities": len(msg.certificate_authorities),
            }
        case CertificateVerify():
            return {
                "algorithm": None if msg.algorithm is None else name_of(SignatureScheme, msg.algorithm),
                "signature_length": len(msg.signature),
            }
        case Finished():
            return {"verify_data_length": len(msg.verify_data)}
        case NewSessionTicket():
            s = _Summary()
            s.fields["lifetime"] = msg.ticket_lifetime
            s.fields["ticket_length"] = len(msg.ticket)
            s.fields["max_early_data_size"] = None
            s.ext("max_early_data_size", msg, ExtensionType.early_data, pull_early_data)
            return s.done()
        case NewSessionTicket12():
            return {"lifetime": msg.ticket_lifetime_hint, "ticket_length": len(msg.ticket)}
        case KeyUpdate():
            return {
                "update_requested": msg.request_update == KeyUpdateRequest.update_requested,
                "request_update": msg.request_update,
            }
        case ServerKeyExchange():
            return _summary_server_key_exchange(msg)
        case ClientKeyExchange():
            return {"length": len(msg.body)}
        case CompressedCertificate():
            return {
                "algorithm": msg.algorithm,
                "uncompressed_length": msg.uncompressed_length,
                "compressed_length": len(msg.compressed_certificate_message),
            }
        case CertificateStatus():
            return {"status_type": msg.status_type, "response_length": len(msg.response)}
        case UnknownHandshake():
            return {"length": len(msg.body)}
        case _:  # EndOfEarlyData, HelloRequest, ServerHelloDone
            return {}


def _summary_server_key_exchange(msg: ServerKeyExchange) -> dict[str, object]:
    try:
        ecdhe = parse_ecdhe_server_key_exchange(msg.body)
    except DecodeError:
        pass
    else:
        return {
            "kx": "ECDHE",
            "group": name_of(NamedGroup, ecdhe.named_curve),
            "signature_algorithm": None
            if ecdhe.signature_algorithm is None
            else name_of(SignatureScheme, ecdhe.signature_algorithm),
        }
    try:
        dhe = parse_dhe_server_key_exchange(msg.body)
    except DecodeError:
        return {"length": len(msg.body)}
    return {
        "kx": "DHE",
        "dh_bits": 8 * len(dhe.dh_p.lstrip(b"\x00")),
        "signature_algorithm": None
        if dhe.signature_algorithm is None
        else name_of(SignatureScheme, dhe.signature_algorithm),
    }


# -- one-line forms ---------------------------------------------------------------------------


def _present(v: Any) -> bool:
    return v is not None and v != [] and v != ""


def _join(values: Any, limit: int, sep: str = ", ") -> str:
    if not isinstance(values, list):
        return str(values)
    shown = sep.join(str(v) for v in values[:limit])
    return shown + (f"{sep}+{len(values) - limit}" if len(values) > limit else "")


#: Bytes of a protected TLS 1.3 record holding only an empty Certificate message: 4-byte header,
#: empty request context (1), empty list (3) (RFC 8446 4.4.2), content type (1), 16-byte tag.
_EMPTY_CERTIFICATE_RECORD: Final = 4 + 1 + 3 + 1 + 16


def _hidden_size(ev: HandshakeEvent) -> str:
    """What the size of an unopened handshake record says. A client's record of exactly an
    empty Certificate's size: no other client handshake record of TLS 1.3 is that short
    (Finished is 53 or 69 bytes, CertificateVerify longer) and no TLS 1.2 encrypted Finished
    either (40 bytes with GCM, 32 with ChaCha20, 48 or more with CBC); only padding could fake it."""
    if ev.from_ == "client" and ev.length == _EMPTY_CERTIFICATE_RECORD:
        return f"{ev.length} B: the size of an empty Certificate, so likely no client certificate"
    return f"{ev.length} B" if ev.length else ""


def text_detail(ev: HandshakeEvent) -> str:
    """``ev``'s fields on one line of the text timeline (``key=value``, two spaces apart)."""
    f = handshake_fields(ev)
    parts: list[str] = []

    def add(key: str, label: str | None = None, limit: int = 6) -> None:
        v = f.get(key)
        if _present(v):
            parts.append(f"{label or key}={_join(v, limit)}")

    if "error" in f:
        return f"!! {f['error']}"
    name = ev.name
    if name == "encrypted_handshake":
        return _hidden_size(ev)
    if name == "client_hello":
        add("sni")
        add("supported_versions", "versions")
        add("cipher_suites", "suites", 4)
        add("alpn")
        add("key_share_groups", "key_share")
        if f.get("psk_identities"):
            parts.append(f"psk={f['psk_identities']}")
        if f.get("early_data"):
            parts.append("early_data")
    elif name in ("server_hello", "hello_retry_request"):
        add("version")
        add("cipher_suite", "suite")
        add("key_share_group", "group")
        add("alpn")
        if f.get("selected_psk") is not None:
            parts.append(f"psk={f['selected_psk']}")
    elif name == "certificate":
        certs: list[dict[str, Any]] = f.get("certificates") or []
        if not certs and "error" not in f:
            # RFC 8446 4.4.2.4 / RFC 5246 7.4.6: a client with no certificate for the server's
            # CertificateRequest sends an empty list.
            parts.append("empty (no certificate)")
        for i, c in enumerate(certs[:3]):
            if "error" in c:
                parts.append(f"[{i}] {c['error']}")
                continue
            sans = ",".join(c.get("sans", [])[:3])
            parts.append(
                f"[{i}] {c.get('subject')} (issuer {c.get('issuer')}; {c.get('key')}; "
                f"until {str(c.get('not_after'))[:10]}{'; SAN ' + sans if sans else ''})"
            )
        if len(certs) > 3:
            parts.append(f"+{len(certs) - 3} more")
    else:
        for key, value in f.items():
            if value is None or value == [] or key == "random":
                continue
            if isinstance(value, (list, dict)) and len(value) > 6:
                continue
            parts.append(f"{key}={value}")
    return "  ".join(parts)


def ladder_detail(ev: HandshakeEvent) -> str:
    """The few fields that explain a failure, short enough for one line under a ladder arrow."""
    f = handshake_fields(ev)
    if "error" in f:
        return f"cannot decode: {f['error']}"
    parts: list[str] = []

    def add(key: str, label: str, limit: int = 4) -> None:
        v = f.get(key)
        if _present(v):
            parts.append(f"{label} {_join(v, limit)}")

    name = ev.name
    if name == "client_hello":
        add("sni", "SNI")
        add("supported_versions", "versions")
        parts.append(f"{len(f.get('cipher_suites') or [])} suites")
        add("alpn", "ALPN", 3)
        add("key_share_groups", "key_share", 2)
        if f.get("psk_identities"):
            parts.append("PSK offered")
        if f.get("early_data"):
            parts.append("early_data")
    elif name == "server_hello":
        if f.get("hello_retry_request"):
            parts.append("HelloRetryRequest")
        add("version", "")
        add("cipher_suite", "")
        add("key_share_group", "group")
        add("alpn", "ALPN")
        if f.get("selected_psk") is not None:
            parts.append("PSK accepted")
    elif name == "certificate":
        certs: list[dict[str, Any]] = f.get("certificates") or []
        if not certs:
            parts.append("empty (no certificate)")
        else:
            leaf = certs[0]
            parts.append(str(leaf.get("subject", leaf.get("error", "?"))))
            if leaf.get("self_signed"):
                parts.append("self-signed")
            if len(certs) > 1:
                parts.append(f"+{len(certs) - 1} in chain")
    elif name == "certificate_verify":
        add("algorithm", "")
    elif name == "new_session_ticket":
        add("lifetime", "lifetime")
    elif name == "key_update":
        add("request_update", "request_update")
    text = ", ".join(p.strip() for p in parts if p.strip())
    return f"{text} (encrypted)" if ev.encrypted and text else ("encrypted" if ev.encrypted else text)
