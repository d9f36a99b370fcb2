"""The catalog of verdict codes and the advice text: what each code usually means, what to
check next, and the usual cause of each fatal alert. Stable codes (``triage --json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ALERT_CAUSES", "CATALOG", "CLIENT_CERT_CAUSES", "CONFIDENCE", "SEVERITY_RANK", "Verdict"]

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}

CATALOG: dict[str, tuple[str, str]] = {
    # code: (what it usually means, what to check next)
    "clean_close": (
        "Both sides sent close_notify: the TLS session ended cleanly.",
        "Nothing; if the application still reports an error, look above TLS.",
    ),
    "premature_close": (
        "A side closed TCP (FIN) without close_notify while the session was open. The peer's TLS "
        "stack reads this as a truncation: OpenSSL reports SSL_ERROR_SYSCALL / 'unexpected eof "
        "while reading', s2n a premature close.",
        "Check that the closing side calls SSL_shutdown/close_notify before close(); look for "
        "timeouts, crashes or a proxy in between that closes idle connections.",
    ),
    "close_notify_unanswered": (
        "The peer sent close_notify and this side then closed TCP without its own. Common and "
        "acceptable (RFC 8446 6.1 lets the receiver close at once).",
        "Nothing, unless this side still had data to send.",
    ),
    "half_close": (
        "One side sent close_notify and the other kept sending before ending normally (TLS 1.3 half-close).",
        "Nothing; the application used a write shutdown.",
    ),
    "data_after_close_notify": (
        "A side sent application data after its own close_notify: a protocol violation the peer "
        "will reject or ignore.",
        "The sending application writes after shutdown; check its close path and threading.",
    ),
    "reset": (
        "A side reset the TCP connection (RST) while the TLS session was still open.",
        "An RST right after data usually means the application closed with unread data, crashed, "
        "or a firewall/load balancer killed the connection; check the resetting host's logs.",
    ),
    "benign_reset": (
        "RST after the TLS session was already over: the kernel answering data that arrived on a "
        "closed socket.",
        "Nothing; this is normal for many stacks.",
    ),
    "stale_connection_reuse": (
        "A side sent data (usually an HTTP request on a kept-alive connection) after its peer had "
        "already closed the connection (close_notify or FIN); the peer's kernel answered with RST "
        "and the request was lost. The race of a client reusing an idle connection just as the "
        "server's keep-alive timeout closes it.",
        "Make the client's idle timeout shorter than the server's, and let it retry idempotent "
        "requests on a new connection when a reused one fails.",
    ),
    "handshake_alert": (
        "A fatal alert ended the handshake. In TLS 1.3 this includes a server's alert answering "
        "the client's second flight (Certificate, CertificateVerify, Finished): the client thought "
        "the handshake was done, the server had not accepted it.",
        "See the detail: the alert, who sent it and the certificate it answers usually name the cause.",
    ),
    "likely_handshake_rejected": (
        "Without keys: a TLS 1.3 server answered the client's second flight with one or two short "
        "protected records (the size of an encrypted alert), no NewSessionTicket, and the "
        "connection closed: most likely the server rejected the handshake (often the client's "
        "certificate). Also, with or without keys, TLS 1.2 or 1.3: the server closed TCP right "
        "after the client's certificate flight with no alert, Finished, ticket or data (a server "
        "checking the certificate after the TLS library, e.g. Node's rejectUnauthorized). The "
        "detail says how sure the inference is.",
        "Provide the key log to read the alert (if any); check the server's log and its trust store for "
        "client certificates, and the client certificate's dates and issuer.",
    ),
    "warning_alert": (
        "A side sent a warning-level alert (other than close_notify): it does not end the "
        "connection by itself (RFC 5246 7.2; TLS 1.3 treats all but close_notify and "
        "user_canceled as fatal).",
        "Usually nothing: warnings such as unrecognized_name or user_canceled are informational; "
        "look at what the peer did next (after no_renegotiation, see renegotiation_refused).",
    ),
    "alert": (
        "An alert after the handshake.",
        "A fatal alert after the handshake usually means a record failed authentication "
        "(bad_record_mac), a protocol error, or a client certificate rejected late (TLS 1.3).",
    ),
    "renegotiation_refused": (
        "A TLS 1.2 renegotiation was refused (warning no_renegotiation, RFC 5246 7.2.2) and the "
        "side that asked for it gave up with a fatal alert.",
        "Allow renegotiation on the refusing side (OpenSSL 3 refuses a client's unless "
        "SSL_OP_ALLOW_CLIENT_RENEGOTIATION), or stop renegotiating (TLS 1.3 post-handshake "
        "authentication for a late client certificate).",
    ),
    "handshake_incomplete": (
        "The handshake did not finish before the connection closed or the capture ended; ``by`` "
        "is the side whose turn it was (it never answered the other's last message).",
        "Look at the side whose turn it was: its logs, its load, a firewall dropping its packets.",
    ),
    "certificate_problem": (
        "The server's certificate is likely to be rejected.",
        "Renew or reissue the certificate, add the name to its SANs, or send the full chain.",
    ),
    "undecryptable": (
        "Records could not be decrypted, so their contents are unknown.",
        "Provide the key log of this session (SSLKEYLOGFILE on the client or server) or check "
        "that it belongs to this capture.",
    ),
    "capture_incomplete": (
        "The capture does not hold the whole connection (started mid-connection, lost segments, "
        "or packets cut by the snaplen).",
        "Capture earlier, with a larger buffer (-B) or snaplen 0.",
    ),
    "hello_retry_request": (
        "The server asked for another key share (HelloRetryRequest): one extra round trip.",
        "Offer the server's preferred group in the first key_share to save the round trip.",
    ),
    "resumed": (
        "The session was resumed: the detail says how (session ID, session ticket, PSK) and, when "
        "the capture shows it, which earlier connection issued the session.",
        "Nothing.",
    ),
    "idle_close": (
        "The first close came long after the last data: an idle timeout (e.g. a server's "
        "keep-alive timeout) on the closing side. The detail says who closed, how and who went quiet.",
        "Nothing, unless the client reuses such connections: then match its idle timeout to "
        "the server's (shorter on the client).",
    ),
    "app_close": (
        "The application announced the end of the connection before it closed: an HTTP/2 GOAWAY "
        "(last stream id and error code in the detail) or an HTTP/1.x Connection: close.",
        "Nothing when the error code is NO_ERROR; otherwise the code names the problem (RFC 9113 7).",
    ),
    "proxy_error": (
        "The server answered 502, 503 or 504: a proxy or gateway in front could not get a good "
        "answer from its upstream (refused, reset, timed out, or its TLS to the upstream failed).",
        "The proxy's error log and its upstream leg (capture it too: a client certificate the "
        "backend rejects shows there).",
    ),
    "open_at_capture_end": (
        "The connection was still open when the capture ended: no close is in the capture.",
        "Capture longer if the close is what matters.",
    ),
    "early_data": ("The client sent 0-RTT early data.", "Whether the server accepted it is in the detail."),
    "key_update": ("A side updated its traffic keys (KeyUpdate).", "Nothing."),
    "slow_handshake": (
        "The handshake took long compared with the network round trip.",
        "Look for slow certificate checks (OCSP, CRL), slow key operations, or a busy server.",
    ),
    "likely_close_notify": (
        "An encrypted 19-byte record right before FIN: almost certainly close_notify.",
        "Provide keys to confirm.",
    ),
    "upgraded": (
        "The connection began in plaintext and upgraded to TLS (STARTTLS or a relative, "
        "PostgreSQL's SSLRequest, HTTP CONNECT, or a ClientHello found after plaintext).",
        "Nothing; the detail names the protocol, its command and the reply.",
    ),
    "upgrade_refused": (
        "The client asked to start TLS and the server refused (SMTP 454, IMAP NO/BAD, POP3 -ERR, "
        "FTP 5xx, PostgreSQL 'N', an LDAP error resultCode, XMPP <failure/>, a proxy's non-2xx; "
        "a MySQL greeting without CLIENT_SSL that the client closed on).",
        "Enable TLS on the server (certificate and key configured, STARTTLS advertised), or check "
        "that the client talks to the right server; a client that goes on in plaintext leaks data.",
    ),
    "tls_never_followed": (
        "The server accepted the upgrade but no ClientHello followed.",
        "The client gave up after the reply (a certificate or configuration problem on its side, "
        "or a timeout); look at the client's log.",
    ),
    "not_tls_reply": (
        "The client sent a ClientHello and the server answered in plaintext (e.g. an HTTP 400): "
        "the port serves another protocol, not TLS.",
        "Point the client at the TLS port (or use the plaintext protocol); the detail shows "
        "the first bytes the server sent.",
    ),
    "plaintext_to_tls_port": (
        "Plaintext was sent to a port where TLS is expected (443, 993, 8443...), with no upgrade. "
        "When another copy of those bytes differs (overlap_conflict), a warning by the path: the "
        "plaintext copy was likely injected.",
        "The client speaks the plaintext protocol (http:// instead of https://, a missing "
        "--ssl option); the detail shows its first bytes. By the path: compare with a capture "
        "taken nearer the client.",
    ),
    "tcp_only": (
        "A TCP connection with no TLS data: refused, reset, or closed before the ClientHello.",
        "An RST answering the SYN means nothing listens on that port (or a firewall rejects).",
    ),
    # TCP health (triage/tcp.py, net/health.py); by "path": the network between the endpoints.
    "connection_refused": (
        "The server answered the SYN with a RST: nothing listens on that port (or a firewall rejects).",
        "Check that the service runs and listens on that address and port, and firewall rules.",
    ),
    "connection_table_full": (
        "capdebug dropped this connection from its table of open connections: the limit "
        "(--max-connections, 65,536 by default) was reached, typically by a SYN flood or a port "
        "scan. The oldest connection that never carried data goes first, else the oldest one; "
        "nothing after the frame named is analysed as part of it (a later segment of it starts a "
        "new connection), and a SYN it sent may have been answered after that.",
        "If the capture holds that many connections at once on purpose, raise --max-connections "
        "(memory grows with it); else look at who opened the flood of connections.",
    ),
    "overlap_conflict": (
        "Two copies of the same TCP stream bytes differ: a retransmission (or a reordered "
        "segment) carried other content than the first copy. Real stacks resend the same bytes, "
        "so one copy was injected by a box on the path (racing the real sender) or rewritten by "
        "a broken middlebox. The copy that arrived first was used; a ClientHello hit this way "
        "may then look like something else (not_tls).",
        "Compare the two frames; check for IDS/IPS, DPI or censorship boxes and for middleboxes "
        "that rewrite TCP payloads; capture on both sides of the suspect box.",
    ),
    "syn_unanswered": (
        "The client's SYNs got no answer at all: a connect timeout.",
        "The host is down or unreachable, or a firewall silently drops the SYNs; check routing "
        "and firewall rules from the client's side.",
    ),
    "syn_retries": (
        "The client had to resend its SYN before the server answered: the connect took seconds.",
        "SYNs or SYN+ACKs are being lost (a busy server's full accept queue, a lossy path).",
    ),
    "retransmissions": (
        "A side retransmitted segments; the detail gives how many and the time they cost.",
        "Some loss is normal; much of it, see heavy_loss and rto_stall.",
    ),
    "rto_stall": (
        "A retransmission timeout: the sender got no acknowledgment and waited before resending, "
        "so the connection stalled.",
        "Look for loss on the path (a congested link, a policer) or a peer that stopped answering.",
    ),
    "heavy_loss": (
        "A large share of the bytes was retransmitted: the path loses packets.",
        "Find the lossy hop (mtr, interface error counters, policers, Wi-Fi).",
    ),
    "unresponsive_peer": (
        "One side kept retransmitting with no answer from the other, then gave up (nothing more, or a RST).",
        "The silent side crashed, lost its network, or a stateful middlebox dropped the flow "
        "(idle timeout on a firewall or NAT); check keepalives and idle timeouts.",
    ),
    "zero_window": (
        "A side advertised a zero receive window: its application stopped reading.",
        "Look at the reading application (blocked thread, slow consumer), not at the network.",
    ),
    "injected_rst": (
        "A RST whose IP TTL does not fit the other packets of the side it claims to come from: "
        "forged by a middlebox on the path (by: path), not sent by that side.",
        "Look for a firewall, IPS or load balancer between the endpoints that resets connections "
        "(policy, idle timeout, TLS inspection).",
    ),
    "mtu_blackhole": (
        "Full-size segments are retransmitted and never acknowledged while small ones pass: a "
        "path MTU black hole (a smaller-MTU link drops them and the ICMP 'fragmentation needed' "
        "never arrives). Handshakes stall at the server's certificate flight.",
        "Clamp the TCP MSS on the tunnel or router, lower the interface MTU, or let ICMP "
        "'fragmentation needed' / 'packet too big' through.",
    ),
}

ALERT_CAUSES: dict[str, str] = {
    "handshake_failure": "no cipher suite, group or signature algorithm both sides support",
    "protocol_version": "the versions offered do not overlap with what the peer accepts",
    "unknown_ca": "the trust store of the side that sent it does not accept the certificate chain",
    "bad_certificate": "the certificate was rejected (bad signature, wrong usage, or malformed)",
    "certificate_expired": "a certificate in the chain is expired (or the rejecting side's clock is wrong)",
    "certificate_unknown": "the certificate was rejected for a reason the stack does not name",
    "certificate_required": "the server requires a client certificate and the client sent none",
    "decrypt_error": "a signature or Finished check failed: often a key/certificate mismatch",
    "illegal_parameter": "a field had a value the peer considers invalid (e.g. a group or extension)",
    "unrecognized_name": "the server does not serve the name in the SNI",
    "no_application_protocol": "no common ALPN protocol (e.g. the server only speaks http/1.1)",
    "decode_error": "a message could not be parsed: a bug or a middlebox altering bytes",
    "internal_error": "the side that sent it failed internally (check its logs)",
    "insufficient_security": "the offered parameters are weaker than the peer requires",
    "inappropriate_fallback": "the client retried with a lower version than it supports (TLS_FALLBACK_SCSV)",
    "bad_record_mac": "a record failed authentication: corruption on the path, or a key mismatch",
    "unexpected_message": "a message arrived out of order: a state machine bug or an interfering middlebox",
    "access_denied": "the peer refused the connection by policy (e.g. client certificate not allowed)",
    "missing_extension": "a mandatory extension was not sent",
    "unsupported_extension": "an extension was sent that the peer did not offer",
}

CLIENT_CERT_CAUSES: dict[str, str] = {
    # A server's alert about the client's certificate (mutual TLS): what to check on which side.
    "unknown_ca": "the server's trust store for client certificates (e.g. nginx ssl_client_certificate, "
    "OpenSSL -CAfile) does not hold the CA that issued the client's chain",
    "certificate_expired": "the client's certificate (or one of its chain) is expired, or the server's "
    "clock is wrong",
    "bad_certificate": "the server found the client's certificate unusable (signature, usage or encoding)",
    "certificate_unknown": "the server rejected the client's certificate without naming why (check its log)",
    "unsupported_certificate": "the client's certificate type or key usage is not accepted for client "
    "authentication",
    "certificate_required": "the server requires a client certificate and the client sent none",
    "decrypt_error": "the client's CertificateVerify signature did not verify: the client key does not "
    "match its certificate, or a signature algorithm problem",
    "access_denied": "the server's policy refused this client (a valid certificate that is not allowed, "
    "or a verification failure GnuTLS reports this way)",
    "certificate_revoked": "the client's certificate is revoked according to the server's CRL/OCSP",
}


CONFIDENCE = ("high", "medium", "low")
"""How sure a verdict is, its claim and its ``by`` together:

- ``high``: it restates what the capture shows (an alert read in the clear or decrypted, a FIN
  or RST, a handshake message, a certificate, acknowledged bytes) between roles the capture
  proves (a SYN, a ClientHello or a ServerHello);
- ``medium``: an inference from strong evidence (a 19-byte protected record before a FIN read
  as close_notify, a RST whose TTL fits none of its claimed sender's packets, records no key
  opened);
- ``low``: the roles themselves are guessed (no SYN or hello in the capture: the side named may
  be the other one), or the evidence is thin."""


@dataclass(frozen=True, slots=True)
class Verdict:
    code: str
    severity: str
    by: str | None
    frame: int | None
    detail: str
    confidence: str = "high"
    """One of :data:`CONFIDENCE`."""

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "by": self.by,
            "confidence": self.confidence,
            "frame": self.frame,
            "detail": self.detail,
        }

    def unsure(self, confidence: str, why: str = "") -> Verdict:
        """This verdict at most as sure as ``confidence``, ``why`` added to its detail."""
        rank = CONFIDENCE.index
        level = confidence if rank(confidence) > rank(self.confidence) else self.confidence
        detail = f"{self.detail}; {why}" if why else self.detail
        return Verdict(self.code, self.severity, self.by, self.frame, detail, level)
