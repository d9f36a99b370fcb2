"""Fault injection for reproducing failures on demand (used by scenarios and tests).

A :class:`Faults` object is handed to a ``Connection`` (record- and handshake-level faults,
applied inside the sans-IO engine) and to the socket wrappers in ``io.py`` (transport-level
faults: RST instead of FIN, delays). Each fault is armed once and fires once, so that a
scenario reads as a list of "what goes wrong where"::

    faults = Faults()
    faults.tamper_next_record()                  # flip a bit in the next protected record
    faults.alert_at(State.CLIENT_EXPECT_FINISHED, AlertDescription.HANDSHAKE_FAILURE)
    faults.drop_close_notify = True              # close() sends no close_notify
    faults.rst_instead_of_fin = True             # io: SO_LINGER 0, so close() sends RST
    faults.delay_before_send = 0.2               # io: seconds before each write

Faults only ever change what *we* send; they never weaken checks of what we receive, so a
fault-injected peer still tests the other side's real error handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .state import State

__all__ = ["Faults"]


@dataclass(slots=True)
class Faults:
    """Armed faults. Mutable on purpose: firing a one-shot fault disarms it."""

    tamper_records: int = 0
    """How many of the next protected records to corrupt (one bit of the AEAD tag flipped)."""
    tamper_skip: int = 0
    """Protected records to let through untouched before tampering starts."""
    alerts_at: dict[State, int] = field(default_factory=dict)
    """Send this fatal alert (and fail) on entering the state, instead of carrying on."""
    drop_close_notify: bool = False
    """``close()``/``shutdown_send()`` mark the side closed but send no close_notify."""
    rst_instead_of_fin: bool = False
    """io: close the socket with SO_LINGER 0 so the kernel sends RST, not FIN."""
    delay_before_send: float = 0.0
    """io: sleep this many seconds before each socket write (slow peer)."""
    fired: list[str] = field(default_factory=list)
    """What fired, in order: for assertions and trace."""

    def tamper_next_record(self, count: int = 1, skip: int = 0) -> None:
        self.tamper_records = count
        self.tamper_skip = skip

    def alert_at(self, state: State, description: int) -> None:
        self.alerts_at[state] = int(description)

    # -- hooks called by the engine --------------------------------------------------------

    def on_protected_record(self, record: bytearray) -> None:
        """Called with each protected record (header included) just before it is queued."""
        if self.tamper_records <= 0:
            return
        if self.tamper_skip > 0:
            self.tamper_skip -= 1
            return
        self.tamper_records -= 1
        # The last byte is part of the AEAD tag: the peer's open() must fail with
        # bad_record_mac whatever the cipher (RFC 8446 5.2).
        record[-1] ^= 0x01
        self.fired.append("tamper_record")

    def on_enter_state(self, state: State) -> int | None:
        """The alert description to send on entering ``state``, if one is armed."""
        desc = self.alerts_at.pop(state, None)
        if desc is not None:
            self.fired.append(f"alert_at:{state.name}")
        return desc

    def on_close_notify(self) -> bool:
        """False when close_notify must be dropped."""
        if self.drop_close_notify:
            self.fired.append("drop_close_notify")
            return False
        return True
