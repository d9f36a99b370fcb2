"""The ``_event`` decorator of :mod:`capdebug.analysis.events`, in a module of its own so that
it stays interpreted when the hot modules are compiled with mypyc (see README, "Compiled
build"): ``typing.dataclass_transform`` marks the function with an attribute, which a compiled
function cannot take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

_E = TypeVar("_E")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def _event(cls: type[_E]) -> type[_E]:
    """Declare an event: a dataclass that mypy checks as frozen (no code may assign to an
    event), built at run time as a plain slotted dataclass with the same equality and hash.
    A frozen dataclass sets each field through ``object.__setattr__``, which costs ~9,000 more
    instructions per event than a slotted store (cachegrind, 7 fields), and the decoder builds
    one or more events per record."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
