"""A cursor over bytes for the wire codecs.

Every ``pull_`` reads exactly and advances; reading past the end raises
:class:`~capdebug.errors.NeedData`. Vectors use ``pull_block``/``push_block`` as context
managers so that a length-prefixed block that leaves bytes over is a
:class:`~capdebug.errors.DecodeError` (RFC 8446 section 3.4 vectors).

The buffer wraps a ``memoryview``: reading never copies the underlying bytes except when a
``bytes`` value is returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import DecodeError, NeedData

__all__ = ["Buffer"]


class Buffer:
    """Read cursor over ``data`` or write buffer (``Buffer()``)."""

    __slots__ = ("_data", "_end", "_out", "pos")

    def __init__(self, data: bytes | bytearray | memoryview | None = None) -> None:
        if data is None:
            self._out: bytearray | None = bytearray()
            self._data = memoryview(b"")
        else:
            self._out = None
            self._data = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        self.pos = 0
        self._end = len(self._data)

    # -- reading -------------------------------------------------------------------------

    def eof(self) -> bool:
        return self.pos >= self._end

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def _take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self._end:
            raise NeedData(f"need {n} bytes at offset {start}, have {self._end - start}")
        self.pos = start + n
        return start

    def pull_bytes(self, n: int) -> bytes:
        start = self._take(n)
        return bytes(self._data[start : start + n])

    def pull_view(self, n: int) -> memoryview:
        start = self._take(n)
        return self._data[start : start + n]

    def pull_rest(self) -> bytes:
        return self.pull_bytes(self._end - self.pos)

    def pull_uint8(self) -> int:
        start = self._take(1)
        return self._data[start]

    def pull_uint16(self) -> int:
        start = self._take(2)
        d = self._data
        return (d[start] << 8) | d[start + 1]

    def pull_uint24(self) -> int:
        start = self._take(3)
        d = self._data
        return (d[start] << 16) | (d[start + 1] << 8) | d[start + 2]

    def pull_uint32(self) -> int:
        start = self._take(4)
        return int.from_bytes(self._data[start : start + 4], "big")

    def pull_uint64(self) -> int:
        start = self._take(8)
        return int.from_bytes(self._data[start : start + 8], "big")

    def pull_opaque(self, length_size: int) -> bytes:
        """A vector ``opaque x<0..2^(8*length_size)-1>``."""
        n = int.from_bytes(self.pull_view(length_size), "big")
        return self.pull_bytes(n)

    @contextmanager
    def pull_block(self, length_size: int) -> Iterator[int]:
        """Read a length-prefixed block; the body must consume it exactly.

        Yields the block length. Inside, reads are limited to the block.
        """
        n = int.from_bytes(self.pull_view(length_size), "big")
        start = self.pos
        if start + n > self._end:
            raise NeedData(f"block of {n} bytes at offset {start} overruns the data")
        outer_end = self._end
        self._end = start + n
        try:
            yield n
        except NeedData as exc:
            # Running out inside a complete block is malformed, not truncated.
            raise DecodeError(f"block of {n} bytes at offset {start} is too short: {exc}") from exc
        finally:
            self._end = outer_end
        if self.pos != start + n:
            raise DecodeError(
                f"block of {n} bytes at offset {start} has {start + n - self.pos} bytes left over"
            )

    def pull_list(self, length_size: int, item_size: int) -> list[int]:
        """A vector of fixed-size unsigned integers, e.g. ``CipherSuite cipher_suites<2..2^16-2>``."""
        data = self.pull_opaque(length_size)
        if len(data) % item_size:
            raise DecodeError(f"vector of {len(data)} bytes is not a multiple of {item_size}")
        return [int.from_bytes(data[i : i + item_size], "big") for i in range(0, len(data), item_size)]

    # -- writing -------------------------------------------------------------------------

    def _w(self) -> bytearray:
        if self._out is None:
            raise TypeError("Buffer opened for reading")
        return self._out

    def data(self) -> bytes:
        return bytes(self._w())

    def push_bytes(self, b: bytes | bytearray | memoryview) -> None:
        self._w().extend(b)

    def push_uint8(self, v: int) -> None:
        self._w().append(v)

    def push_uint16(self, v: int) -> None:
        self._w().extend(v.to_bytes(2, "big"))

    def push_uint24(self, v: int) -> None:
        self._w().extend(v.to_bytes(3, "big"))

    def push_uint32(self, v: int) -> None:
        self._w().extend(v.to_bytes(4, "big"))

    def push_uint64(self, v: int) -> None:
        self._w().extend(v.to_bytes(8, "big"))

    def push_opaque(self, length_size: int, b: bytes | bytearray | memoryview) -> None:
        out = self._w()
        out.extend(len(b).to_bytes(length_size, "big"))
        out.extend(b)

    @contextmanager
    def push_block(self, length_size: int) -> Iterator[None]:
        """Write a length-prefixed block whose length is filled in when the body is done."""
        out = self._w()
        at = len(out)
        out.extend(bytes(length_size))
        yield
        n = len(out) - at - length_size
        if n >= 1 << (8 * length_size):
            raise DecodeError(f"block of {n} bytes does not fit a {length_size}-byte length")
        out[at : at + length_size] = n.to_bytes(length_size, "big")

    def push_list(self, length_size: int, item_size: int, items: list[int] | tuple[int, ...]) -> None:
        with self.push_block(length_size):
            for v in items:
                self._w().extend(v.to_bytes(item_size, "big"))
