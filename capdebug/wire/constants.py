"""Code points of TLS, named as the RFCs and the IANA "TLS Parameters" registries name them.

Wire structures keep code points as plain ``int`` (a peer may send any value, and GREASE
values, RFC 8701, are sent on purpose); these enums exist to compare against and to name.
:func:`name_of` turns any value into a display name without raising.

Member names are the registry names verbatim, including the few that are mixed case
(``brainpoolP256r1``, ``SecP256r1MLKEM768``), so that output can be grepped against the
registries.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "AlertDescription",
    "AlertLevel",
    "CertificateCompressionAlgorithm",
    "CertificateStatusType",
    "CipherSuite",
    "ContentType",
    "ECCurveType",
    "ECPointFormat",
    "ExtensionType",
    "HandshakeType",
    "HeartbeatMessageType",
    "KeyUpdateRequest",
    "NameType",
    "NamedGroup",
    "ProtocolVersion",
    "PskKeyExchangeMode",
    "SignatureScheme",
    "is_grease",
    "name_of",
    "version_name",
]

# ruff: noqa: N815  (registry names such as brainpoolP256r1 are mixed case on purpose)


class ContentType(IntEnum):
    """TLS record content types (RFC 8446 section 5.1; tls12_cid is RFC 9146)."""

    change_cipher_spec = 20
    alert = 21
    handshake = 22
    application_data = 23
    heartbeat = 24
    tls12_cid = 25


class HandshakeType(IntEnum):
    """Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4, IANA)."""

    hello_request = 0
    client_hello = 1
    server_hello = 2
    hello_verify_request = 3
    new_session_ticket = 4
    end_of_early_data = 5
    hello_retry_request = 6  # draft-era code point; RFC 8446 sends HRR as a server_hello
    encrypted_extensions = 8
    request_connection_id = 9
    new_connection_id = 10
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    client_certificate_request = 17
    finished = 20
    certificate_url = 21
    certificate_status = 22
    supplemental_data = 23
    key_update = 24
    compressed_certificate = 25
    ekt_key = 26
    next_protocol = 67  # NPN (never standardised, still seen in old captures)
    message_hash = 254  # synthetic, only inside the transcript (RFC 8446 section 4.4.1)


class AlertLevel(IntEnum):
    """RFC 5246 section 7.2; TLS 1.3 ignores the level (RFC 8446 section 6)."""

    warning = 1
    fatal = 2


class AlertDescription(IntEnum):
    """Every alert description in the IANA registry (RFC 8446 section 6, RFC 5246, ...)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    too_many_cids_requested = 52
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    certificate_required = 116
    general_error = 117
    no_application_protocol = 120
    ech_required = 121


class CipherSuite(IntEnum):
    """Cipher suites (IANA): all of TLS 1.3 and the TLS 1.2 suites seen in practice."""

    TLS_NULL_WITH_NULL_NULL = 0x0000
    # RSA key transport (RFC 5246, RFC 5288)
    TLS_RSA_WITH_NULL_MD5 = 0x0001
    TLS_RSA_WITH_NULL_SHA = 0x0002
    TLS_RSA_WITH_RC4_128_MD5 = 0x0004
    TLS_RSA_WITH_RC4_128_SHA = 0x0005
    TLS_RSA_WITH_3DES_EDE_CBC_SHA = 0x000A
    TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA = 0x0016
    TLS_RSA_WITH_AES_128_CBC_SHA = 0x002F
    TLS_DHE_DSS_WITH_AES_128_CBC_SHA = 0x0032
    TLS_DHE_RSA_WITH_AES_128_CBC_SHA = 0x0033
    TLS_RSA_WITH_AES_256_CBC_SHA = 0x0035
    TLS_DHE_DSS_WITH_AES_256_CBC_SHA = 0x0038
    TLS_DHE_RSA_WITH_AES_256_CBC_SHA = 0x0039
    TLS_RSA_WITH_NULL_SHA256 = 0x003B
    TLS_RSA_WITH_AES_128_CBC_SHA256 = 0x003C
    TLS_RSA_WITH_AES_256_CBC_SHA256 = 0x003D
    TLS_DHE_DSS_WITH_AES_128_CBC_SHA256 = 0x0040
    TLS_DHE_RSA_WITH_AES_128_CBC_SHA256 = 0x0067
    TLS_DHE_DSS_WITH_AES_256_CBC_SHA256 = 0x006A
    TLS_DHE_RSA_WITH_AES_256_CBC_SHA256 = 0x006B
    TLS_PSK_WITH_AES_128_CBC_SHA = 0x008C
    TLS_PSK_WITH_AES_256_CBC_SHA = 0x008D
    TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009C
    TLS_RSA_WITH_AES_256_GCM_SHA384 = 0x009D
    TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 = 0x009E
    TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 = 0x009F
    TLS_DHE_DSS_WITH_AES_128_GCM_SHA256 = 0x00A2
    TLS_DHE_DSS_WITH_AES_256_GCM_SHA384 = 0x00A3
    TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00A8
    TLS_PSK_WITH_AES_256_GCM_SHA384 = 0x00A9
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746
    # TLS 1.3 (RFC 8446 appendix B.4; RFC 9150 integrity-only)
    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303
    TLS_AES_128_CCM_SHA256 = 0x1304
    TLS_AES_128_CCM_8_SHA256 = 0x1305
    TLS_FALLBACK_SCSV = 0x5600  # RFC 7507
    # ECDHE (RFC 8422, RFC 5289)
    TLS_ECDHE_ECDSA_WITH_NULL_SHA = 0xC006
    TLS_ECDHE_ECDSA_WITH_RC4_128_SHA = 0xC007
    TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA = 0xC008
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA = 0xC009
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA = 0xC00A
    TLS_ECDHE_RSA_WITH_NULL_SHA = 0xC010
    TLS_ECDHE_RSA_WITH_RC4_128_SHA = 0xC011
    TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA = 0xC012
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = 0xC013
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA = 0xC014
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 = 0xC023
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 = 0xC024
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 = 0xC027
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 = 0xC028
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02C
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
    TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA = 0xC035
    TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA = 0xC036
    # AES-CCM (RFC 6655, RFC 7251)
    TLS_RSA_WITH_AES_128_CCM = 0xC09C
    TLS_RSA_WITH_AES_256_CCM = 0xC09D
    TLS_DHE_RSA_WITH_AES_128_CCM = 0xC09E
    TLS_DHE_RSA_WITH_AES_256_CCM = 0xC09F
    TLS_RSA_WITH_AES_128_CCM_8 = 0xC0A0
    TLS_RSA_WITH_AES_256_CCM_8 = 0xC0A1
    TLS_DHE_RSA_WITH_AES_128_CCM_8 = 0xC0A2
    TLS_DHE_RSA_WITH_AES_256_CCM_8 = 0xC0A3
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM = 0xC0AC
    TLS_ECDHE_ECDSA_WITH_AES_256_CCM = 0xC0AD
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xC0AE
    TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8 = 0xC0AF
    TLS_SHA256_SHA256 = 0xC0B4
    TLS_SHA384_SHA384 = 0xC0B5
    # ChaCha20-Poly1305 (RFC 7905)
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA8
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA9
    TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAA
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAB
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAC
    TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAD
    TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAE
    # ECDHE-PSK with AEAD (RFC 8442)
    TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256 = 0xD001
    TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384 = 0xD002
    TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256 = 0xD003
    TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256 = 0xD005


class ExtensionType(IntEnum):
    """Extension types (IANA "TLS ExtensionType Values")."""

    server_name = 0
    max_fragment_length = 1
    client_certificate_url = 2
    trusted_ca_keys = 3
    truncated_hmac = 4
    status_request = 5
    user_mapping = 6
    client_authz = 7
    server_authz = 8
    cert_type = 9
    supported_groups = 10
    ec_point_formats = 11
    srp = 12
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    status_request_v2 = 17
    signed_certificate_timestamp = 18
    client_certificate_type = 19
    server_certificate_type = 20
    padding = 21
    encrypt_then_mac = 22
    extended_master_secret = 23
    token_binding = 24
    cached_info = 25
    tls_lts = 26
    compress_certificate = 27
    record_size_limit = 28
    pwd_protect = 29
    pwd_clear = 30
    password_salt = 31
    ticket_pinning = 32
    tls_cert_with_extern_psk = 33
    delegated_credential = 34
    session_ticket = 35
    TLMSP = 36
    TLMSP_proxying = 37
    TLMSP_delegate = 38
    supported_ekt_ciphers = 39
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    oid_filters = 48
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    transparency_info = 52
    connection_id_deprecated = 53
    connection_id = 54
    external_id_hash = 55
    external_session_id = 56
    quic_transport_parameters = 57
    ticket_request = 58
    dnssec_chain = 59
    sequence_number_encryption_algorithms = 60
    rrc = 61
    next_protocol_negotiation = 0x3374  # NPN, not in the registry
    application_settings_old = 0x4469  # ALPS as first shipped by Chrome, not in the registry
    application_settings = 0x44CD  # ALPS, not in the registry
    ech_outer_extensions = 0xFD00
    encrypted_client_hello = 0xFE0D
    renegotiation_info = 0xFF01


class NamedGroup(IntEnum):
    """Supported groups (IANA "TLS Supported Groups"; RFC 8446 section 4.2.7)."""

    sect163k1 = 1
    sect163r1 = 2
    sect163r2 = 3
    sect193r1 = 4
    sect193r2 = 5
    sect233k1 = 6
    sect233r1 = 7
    sect239k1 = 8
    sect283k1 = 9
    sect283r1 = 10
    sect409k1 = 11
    sect409r1 = 12
    sect571k1 = 13
    sect571r1 = 14
    secp160k1 = 15
    secp160r1 = 16
    secp160r2 = 17
    secp192k1 = 18
    secp192r1 = 19
    secp224k1 = 20
    secp224r1 = 21
    secp256k1 = 22
    secp256r1 = 23
    secp384r1 = 24
    secp521r1 = 25
    brainpoolP256r1 = 26
    brainpoolP384r1 = 27
    brainpoolP512r1 = 28
    x25519 = 29
    x448 = 30
    brainpoolP256r1tls13 = 31
    brainpoolP384r1tls13 = 32
    brainpoolP512r1tls13 = 33
    ffdhe2048 = 256
    ffdhe3072 = 257
    ffdhe4096 = 258
    ffdhe6144 = 259
    ffdhe8192 = 260
    MLKEM512 = 512
    MLKEM768 = 513
    MLKEM1024 = 514
    SecP256r1MLKEM768 = 0x11EB
    X25519MLKEM768 = 0x11EC
    SecP384r1MLKEM1024 = 0x11ED
    X25519Kyber768Draft00 = 0x6399
    arbitrary_explicit_prime_curves = 0xFF01
    arbitrary_explicit_char2_curves = 0xFF02


class SignatureScheme(IntEnum):
    """Signature schemes (RFC 8446 section 4.2.3); the legacy ones are TLS 1.2
    SignatureAndHashAlgorithm pairs (RFC 5246 section 7.4.1.4.1): hash byte, then signature byte.
    """

    rsa_pkcs1_md5 = 0x0101  # legacy pair (md5, rsa)
    rsa_pkcs1_sha1 = 0x0201
    dsa_sha1 = 0x0202  # legacy pair (sha1, dsa)
    ecdsa_sha1 = 0x0203
    rsa_pkcs1_sha224 = 0x0301  # legacy pair (sha224, rsa)
    dsa_sha224 = 0x0302  # legacy pair (sha224, dsa)
    ecdsa_sha224 = 0x0303  # legacy pair (sha224, ecdsa)
    rsa_pkcs1_sha256 = 0x0401
    dsa_sha256 = 0x0402  # legacy pair (sha256, dsa)
    ecdsa_secp256r1_sha256 = 0x0403
    rsa_pkcs1_sha384 = 0x0501
    dsa_sha384 = 0x0502  # legacy pair (sha384, dsa)
    ecdsa_secp384r1_sha384 = 0x0503
    rsa_pkcs1_sha512 = 0x0601
    dsa_sha512 = 0x0602  # legacy pair (sha512, dsa)
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B
    ecdsa_brainpoolP256r1tls13_sha256 = 0x081A
    ecdsa_brainpoolP384r1tls13_sha384 = 0x081B
    ecdsa_brainpoolP512r1tls13_sha512 = 0x081C
    mldsa44 = 0x0904
    mldsa65 = 0x0905
    mldsa87 = 0x0906


class ProtocolVersion(IntEnum):
    """Protocol versions as they appear in legacy_version and supported_versions."""

    SSL2 = 0x0002
    SSL3 = 0x0300
    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303
    TLS1_3 = 0x0304
    DTLS1_0 = 0xFEFF
    DTLS1_2 = 0xFEFD
    DTLS1_3 = 0xFEFC


class PskKeyExchangeMode(IntEnum):
    """RFC 8446 section 4.2.9."""

    psk_ke = 0
    psk_dhe_ke = 1


class NameType(IntEnum):
    """server_name entry types (RFC 6066 section 3)."""

    host_name = 0


class CertificateStatusType(IntEnum):
    """RFC 6066 section 8, RFC 6961."""

    ocsp = 1
    ocsp_multi = 2


class ECPointFormat(IntEnum):
    """RFC 8422 section 5.1.2."""

    uncompressed = 0
    ansiX962_compressed_prime = 1
    ansiX962_compressed_char2 = 2


class ECCurveType(IntEnum):
    """RFC 8422 section 5.4 (only named_curve is still allowed)."""

    explicit_prime = 1
    explicit_char2 = 2
    named_curve = 3


class CertificateCompressionAlgorithm(IntEnum):
    """RFC 8879 section 3."""

    zlib = 1
    brotli = 2
    zstd = 3


class KeyUpdateRequest(IntEnum):
    """RFC 8446 section 4.6.3."""

    update_not_requested = 0
    update_requested = 1


class HeartbeatMessageType(IntEnum):
    """RFC 6520 section 3."""

    heartbeat_request = 1
    heartbeat_response = 2


def is_grease(value: int) -> bool:
    """Is ``value`` a 16-bit GREASE code point (RFC 8701 section 2): 0x0A0A, 0x1A1A, ... 0xFAFA."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


# Built lazily per enum class: Enum's own value lookup raises on a miss, and naming runs once
# per code point of every decoded message, so a plain dict lookup is worth keeping.
_NAME_TABLES: dict[type[IntEnum], dict[int, str]] = {}


def name_of(enum_cls: type[IntEnum], value: int) -> str:
    """The registry name of ``value`` in ``enum_cls``, ``"GREASE"`` or ``"unknown(0x1234)"``."""
    table = _NAME_TABLES.get(enum_cls)
    if table is None:
        table = {int(m): m.name for m in enum_cls}
        _NAME_TABLES[enum_cls] = table
    name = table.get(value)
    if name is not None:
        return name
    if is_grease(value):
        return "GREASE"
    return f"unknown(0x{value:04x})"


_VERSION_NAMES: Final = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
    0xFEFF: "DTLS 1.0",
    0xFEFD: "DTLS 1.2",
    0xFEFC: "DTLS 1.3",
}


def version_name(value: int) -> str:
    """Human name of a protocol version: ``"TLS 1.3"``, ``"GREASE"`` or ``"unknown(0x7f1c)"``.

    Draft TLS 1.3 versions (0x7fXX, RFC 8446 draft-XX) are named ``"TLS 1.3 draft XX"``.
    """
    name = _VERSION_NAMES.get(value)
    if name is not None:
        return name
    if is_grease(value):
        return "GREASE"
    if value >> 8 == 0x7F:
        return f"TLS 1.3 draft {value & 0xFF}"
    return f"unknown(0x{value:04x})"
