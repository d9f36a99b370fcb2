"""Cryptography for TLS: cipher suites, key schedules, record protection and certificates.

The record layer both drivers share is :class:`~capdebug.crypto.record.RecordDirection`.

This package is the only importer of ``cryptography``: everything above it sees bytes, frozen
dataclasses and :mod:`capdebug.errors` exceptions. Legacy CBC-HMAC protection is kept apart in
:mod:`capdebug.crypto.cbc`; the NSS key-log format lives in :mod:`capdebug.crypto.keylog`.
"""

from __future__ import annotations

from .prf12 import Keys12, derive_keys12, extended_master_secret, master_secret, verify_data12
from .protection import Protection, Tls12AeadProtection, Tls13Protection, tls12_protection
from .record import RecordDirection, RecordOverflow, SequenceOverflow
from .schedule13 import KeySchedule, Transcript, finished_verify_data, next_traffic_secret, traffic_keys
from .suites import SUITES, SuiteParams, suite

__all__ = [
    "SUITES",
    "KeySchedule",
    "Keys12",
    "Protection",
    "RecordDirection",
    "RecordOverflow",
    "SequenceOverflow",
    "SuiteParams",
    "Tls12AeadProtection",
    "Tls13Protection",
    "Transcript",
    "derive_keys12",
    "extended_master_secret",
    "finished_verify_data",
    "master_secret",
    "next_traffic_secret",
    "suite",
    "tls12_protection",
    "traffic_keys",
    "verify_data12",
]
