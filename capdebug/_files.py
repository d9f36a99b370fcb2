"""Creating output files safely: private (0600) files for secrets, atomic replacement.

A capture or key log with secrets must never be world-readable, not even for the moment
between ``open`` and ``chmod``: the file is created with its final mode.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["atomic_output"]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on
    success and removed on failure, so that an interrupted run never leaves half a file.

    ``private=True`` creates it with mode 0600 (secrets inside); otherwise 0644 less umask.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".capdebug-", suffix=".tmp", dir=folder)
    try:
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
