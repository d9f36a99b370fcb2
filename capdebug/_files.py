"""Creating output files safely: private (0600) files for secrets, atomic replacement.

A capture or key log with secrets must never be world-readable, not even for the moment
between ``open`` and ``chmod``: the file is created with its final mode.

Every writer creates a *new* file in the output's folder (``mkstemp``: ``O_CREAT|O_EXCL``,
mode 0600, a random name, so no symlink can be planted there) and renames it over the output
path. Rename replaces a symlink or an existing file at the path instead of writing through it:
the link's target is never touched, and an existing 0644 file (which others may hold open for
reading) is swapped for a fresh inode instead of being truncated and refilled. This was chosen
over "unlink, then ``O_EXCL``" because the rename is atomic: the path never goes missing, and
there is no window in which someone could plant a new link between the unlink and the create.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["atomic_output", "open_private", "write_private"]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _special(path: str) -> int | None:
    """An open fd if ``path`` names a device, FIFO or socket (``-o /dev/full``, a named pipe):
    written as it is, since renaming a new file over it would destroy the node. Regular files
    and symlinks give ``None``: they are replaced."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return None
    return os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))


def _new_file(path: str) -> tuple[int, str]:
    folder = os.path.dirname(os.path.abspath(path))
    return tempfile.mkstemp(prefix=".capdebug-", suffix=".tmp", dir=folder)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on
    success and removed on failure, so that an interrupted run never leaves half a file.

    ``private=True`` creates it with mode 0600 (secrets inside); otherwise 0644 less umask.
    A symlink at ``path`` is replaced, never followed; a device or FIFO is written as it is.
    """
    path = os.fspath(path)
    special = _special(path)
    if special is not None:
        with os.fdopen(special, "wb") as stream:
            yield stream
        return
    fd, tmp = _new_file(path)
    try:
        if not private:
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` in a new 0600 file (see :func:`atomic_output`)."""
    with atomic_output(path, private=True) as stream:
        stream.write(data)


def open_private(path: str | os.PathLike[str], *, append: bool = False, buffering: int = -1) -> BinaryIO:
    """A new 0600 file at ``path``, open for writing, for outputs written over time (a capture
    being recorded, exported plaintext, a key log the engine appends to).

    The file is in place at once (others may follow it as it grows). A symlink or an existing
    file at ``path`` is replaced, never written through. With ``append=True`` an existing
    regular file that is already private (0600 or stricter, ours) is appended to; any other
    regular file has its content copied into the new private file first, so that no secret is
    ever added to a file others can read. A device or FIFO at ``path`` is written as it is.
    """
    path = os.fspath(path)
    special = _special(path)
    if special is not None:
        return os.fdopen(special, "ab" if append else "wb", buffering=buffering)
    if append:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError:
            pass  # nothing there, or a symlink (ELOOP): a new file replaces it below
        else:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o077 and st.st_uid == os.geteuid():
                return os.fdopen(fd, "ab", buffering=buffering)
            os.close(fd)
    fd, tmp = _new_file(path)
    try:
        if append:
            try:
                src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                src = -1  # nothing there, or a symlink: nothing to keep
            if src >= 0:
                with os.fdopen(src, "rb") as old:
                    if stat.S_ISREG(os.fstat(old.fileno()).st_mode):
                        with os.fdopen(os.dup(fd), "wb") as new:
                            shutil.copyfileobj(old, new)
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return os.fdopen(fd, "ab" if append else "wb", buffering=buffering)
