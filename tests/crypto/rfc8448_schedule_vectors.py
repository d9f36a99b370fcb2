"""Key schedule and record values of RFC 8448 section 3, "Simple 1-RTT Handshake".

The handshake messages themselves live in :mod:`tests.wire.rfc8448_vectors`; this module holds
what the RFC prints around them: the ephemeral x25519 keys, every secret of the key schedule,
the traffic keys and IVs, both Finished verify_data values, and the protected records.

Where the hex was taken from (none of it is typed from memory):

* Secrets, keys, IVs, finished keys and verify_data, the resumption values and the
  NewSessionTicket message: RFC 8448 section 3 as quoted, line by line with the RFC's own
  step names, in the comments of erlang/otp ``lib/ssl/test/tls_1_3_record_SUITE.erl``. Where
  they overlap (x25519 keys, early and handshake secrets, handshake traffic secrets, finished
  keys) the RFC lines quoted in aws/s2n-tls's RFC 8448 key schedule test (duvet annotations
  citing https://www.rfc-editor.org/rfc/rfc8448.html#section-3) agree.
* The "complete record" lines of the protected records (server flight, NewSessionTicket,
  client Finished, both application_data records and both close_notify alerts) and the
  application_data payload: RFC 8448 section 3 as stored in randombit/botan
  ``src/tests/data/tls_13_rfc8448/transcripts.vec``, section ``[Simple_1RTT_Handshake]``.
  The octet counts are those the RFC prints (679, 58, 227, 72, 24).

Every value is checked by tests/crypto/test_rfc8448.py against values computed from the
others (for instance the records must authenticate and decrypt to the RFC's handshake
messages), so a slip in the hex below fails a test rather than passing silently.
"""

from __future__ import annotations


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# -- {client} / {server} create an ephemeral x25519 key pair --------------------------------

CLIENT_X25519_PRIVATE = _hex(
    "49 af 42 ba 7f 79 94 85 2d 71 3e f2 78 4b cb ca a7 91 1d e2 6a dc 56 42 cb 63 45 40 e7 ea 50 05"
)
CLIENT_X25519_PUBLIC = _hex(
    "99 38 1d e5 60 e4 bd 43 d2 3d 8e 43 5a 7d ba fe b3 c0 6e 51 c1 3c ae 4d 54 13 69 1e 52 9a af 2c"
)
SERVER_X25519_PRIVATE = _hex(
    "b1 58 0e ea df 6d d5 89 b8 ef 4f 2d 56 52 57 8c c8 10 e9 98 01 91 ec 8d 05 83 08 ce a2 16 a2 1e"
)
SERVER_X25519_PUBLIC = _hex(
    "c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72 e1 56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f"
)

# -- {server} extract secret "early" / "handshake" / "master" and the "derived" salts -------

#: {server} extract secret "early": secret (salt 0, IKM 32 zero octets).
EARLY_SECRET = _hex(
    "33 ad 0a 1c 60 7e c0 3b 09 e6 cd 98 93 68 0c e2 10 ad f3 00 aa 1f 26 60 e1 b2 2e 10 f1 70 f9 2a"
)
#: {server} derive secret for handshake "tls13 derived": expanded.
DERIVED_FOR_HANDSHAKE = _hex(
    "6f 26 15 a1 08 c7 02 c5 67 8f 54 fc 9d ba b6 97 16 c0 76 18 9c 48 25 0c eb ea c3 57 6c 36 11 ba"
)
#: {server} extract secret "handshake": IKM, the x25519 shared secret.
ECDHE_SHARED_SECRET = _hex(
    "8b d4 05 4f b5 5b 9d 63 fd fb ac f9 f0 4b 9f 0d 35 e6 d6 3f 53 75 63 ef d4 62 72 90 0f 89 49 2d"
)
#: {server} extract secret "handshake": secret.
HANDSHAKE_SECRET = _hex(
    "1d c8 26 e9 36 06 aa 6f dc 0a ad c1 2f 74 1b 01 04 6a a6 b9 9f 69 1e d2 21 a9 f0 ca 04 3f be ac"
)
#: {server} derive secret for master "tls13 derived": expanded.
DERIVED_FOR_MASTER = _hex(
    "43 de 77 e0 c7 77 13 85 9a 94 4d b9 db 25 90 b5 31 90 a6 5b 3e e2 e4 f1 2d d7 a0 bb 7c e2 54 b4"
)
#: {server} extract secret "master": secret.
MASTER_SECRET = _hex(
    "18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a 47 80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19"
)

# -- {server} derive secret "tls13 c hs traffic" / "tls13 s hs traffic": expanded ------------

CLIENT_HANDSHAKE_TRAFFIC_SECRET = _hex(
    "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21"
)
SERVER_HANDSHAKE_TRAFFIC_SECRET = _hex(
    "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38"
)

# -- {server} derive write / read traffic keys for handshake data ---------------------------

SERVER_HANDSHAKE_KEY = _hex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
SERVER_HANDSHAKE_IV = _hex("5d 31 3e b2 67 12 76 ee 13 00 0b 30")
CLIENT_HANDSHAKE_KEY = _hex("db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01")
CLIENT_HANDSHAKE_IV = _hex("5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f")

# -- {server} / {client} calculate finished "tls13 finished": expanded and finished ---------

SERVER_FINISHED_KEY = _hex(
    "00 8d 3b 66 f8 16 ea 55 9f 96 b5 37 e8 85 c3 1f c0 68 bf 49 2c 65 2f 01 f2 88 a1 d8 cd c1 9f c8"
)
SERVER_VERIFY_DATA = _hex(
    "9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de da 4a b4 2c 30 95 72 cb 7f ff ee 54 54 b7 8f 07 18"
)
CLIENT_FINISHED_KEY = _hex(
    "b8 0a d0 10 15 fb 2f 0b d6 5f f7 d4 da 5d 6b f8 3f 84 82 1d 1f 87 fd c7 d3 c7 5b 5a 7b 42 d9 c4"
)
CLIENT_VERIFY_DATA = _hex(
    "a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1 1a 03 9e c1 76 94 fa c6 e9 85 27 b6 42 f2 ed d5 ce 61"
)
#: {client} construct a Finished handshake message: Finished (36 octets).
CLIENT_FINISHED = _hex(
    """
    14 00 00 20 a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1 1a 03 9e c1 76 94 fa c6 e9 85 27 b6
    42 f2 ed d5 ce 61
    """
)

# -- {server} derive secret "tls13 c ap traffic" / "s ap traffic" / "exp master": expanded --

CLIENT_APPLICATION_TRAFFIC_SECRET = _hex(
    "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
)
SERVER_APPLICATION_TRAFFIC_SECRET = _hex(
    "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43"
)
EXPORTER_MASTER_SECRET = _hex(
    "fe 22 f8 81 17 6e da 18 eb 8f 44 52 9e 67 92 c5 0c 9a 3f 89 45 2f 68 d8 ae 31 1b 43 09 d3 cf 50"
)

# -- {server} / {client} derive write traffic keys for application data --------------------

SERVER_APPLICATION_KEY = _hex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56")
SERVER_APPLICATION_IV = _hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84")
CLIENT_APPLICATION_KEY = _hex("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51")
CLIENT_APPLICATION_IV = _hex("5b 78 92 3d ee 08 57 90 33 e5 23 d9")

# -- {client} derive secret "tls13 res master" and the session ticket -----------------------

#: {client} derive secret "tls13 res master": hash, Transcript-Hash(ClientHello..client Finished).
TRANSCRIPT_CH_CF = _hex(
    "20 91 45 a9 6e e8 e2 a1 22 ff 81 00 47 cc 95 26 84 65 8d 60 49 e8 64 29 42 6d b8 7c 54 ad 14 3d"
)
RESUMPTION_MASTER_SECRET = _hex(
    "7d f2 35 f2 03 1d 2a 05 12 87 d0 2b 02 41 b0 bf da f8 6c c8 56 23 1f 2d 5a ba 46 c4 34 ec 19 6c"
)
#: {server} generate resumption secret "tls13 resumption": hash (the ticket_nonce).
TICKET_NONCE = _hex("00 00")
#: {server} generate resumption secret "tls13 resumption": expanded (the PSK).
RESUMPTION_PSK = _hex(
    "4e cd 0e b6 ec 3b 4d 87 f5 d6 02 8f 92 2c a4 c5 85 1a 27 7f d4 13 11 c9 e6 2d 2c 94 92 e1 c4 f3"
)
#: {server} construct a NewSessionTicket handshake message: NewSessionTicket (205 octets).
NEW_SESSION_TICKET = _hex(
    """
    04 00 00 c9 00 00 00 1e fa d6 aa c5 02 00 00 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e c9 00
    00 00 00 26 2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09
    a2 be 78 5a bc 55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61
    be 7f d6 1d 28 27 db 27 9c ce 14 50 77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc
    d0 fc 67 d2 ae a7 05 29 51 3e 3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14
    70 f9 fb f2 97 b5 ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6 21 a7 91 41 ef 5f 7d e6 50 5e
    5b fb c3 88 e9 33 43 69 40 93 93 4a e4 d3 57 00 08 00 2a 00 04 00 00 04 00
    """
)
#: RFC 8448 section 4 ("Resumed 0-RTT Handshake"), {client} extract secret "early": secret,
#: from the PSK above; kept because it closes the loop from section 3's ticket.
RESUMED_EARLY_SECRET = _hex(
    "9b 21 88 e9 b2 fc 6d 64 d7 1d c3 29 90 0e 20 bb 41 91 50 00 f6 78 aa 83 9c bb 79 7c b7 d8 33 2c"
)

# -- protected records: "complete record" lines ---------------------------------------------

#: {server} send handshake record: complete record (679 octets), EncryptedExtensions through
#: Finished under the server handshake traffic key, sequence number 0.
SERVER_FLIGHT_RECORD = _hex(
    "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73f8"
    "48a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df8"
    "28b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609aee6e1"
    "22a4cf51427325250c7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255"
    "cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945b"
    "a246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea520a56a8d650"
    "f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24"
    "461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b659622245317b49eeda0c6258f1"
    "00d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879018e3f252107f243d243dc733"
    "9d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d461e6"
    "6f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a37668936b335583b599186dc5c69"
    "18a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e"
    "2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038ebba42f3b38edc0399"
    "f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e275592c12335ee340bbc4fddd502784016e4b3be7e"
    "f04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e750edc"
    "53370d2b"
)
#: {client} send handshake record: complete record (58 octets), the client Finished under the
#: client handshake traffic key, sequence number 0.
CLIENT_FINISHED_RECORD = _hex(
    "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb3"
    "84bd1caeacab6867d726c40546"
)
#: {server} send handshake record: complete record (227 octets), the NewSessionTicket under the
#: server application traffic key, sequence number 0.
NEW_SESSION_TICKET_RECORD = _hex(
    "17030300de3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d41d6af8f6b580dcf3d11d63c758"
    "db289a015940252f55713e061dc13e078891a38efbcf5753ad8ef170ad3c7353d16d9da773b9ca7f2b9fa1b6c0"
    "d4a3d03f75e09c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406f16e3fc181a77c"
    "a475840025db2f0a77f81b5ab05b94c01346755f69232c86519d86cbeeac87aac347d143f9605d64f650db4d02"
    "3e70e952ca49fe5137121c74bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779b37bf15985"
    "684f"
)
#: {client} / {server} send application_data record: payload (50 octets), the same both ways.
APPLICATION_DATA = _hex(
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031"
)
#: {client} send application_data record: complete record (72 octets), client application
#: traffic key, sequence number 0.
CLIENT_APPLICATION_DATA_RECORD = _hex(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20"
    "441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4"
)
#: {server} send application_data record: complete record (72 octets), server application
#: traffic key, sequence number 1 (after the NewSessionTicket).
SERVER_APPLICATION_DATA_RECORD = _hex(
    "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb50"
    "1a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d"
)
#: {client} send alert record: complete record (24 octets), close_notify (payload 01 00),
#: client application traffic key, sequence number 1.
CLIENT_CLOSE_NOTIFY_RECORD = _hex("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3")
#: {server} send alert record: complete record (24 octets), close_notify, server application
#: traffic key, sequence number 2.
SERVER_CLOSE_NOTIFY_RECORD = _hex("1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9")
