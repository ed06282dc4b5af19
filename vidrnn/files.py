"""Files that appear whole or not at all: a killed run must never leave a half-written array, cache or manifest."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = ["SourceIdentity", "atomic_write", "atomic_write_bytes", "denied", "file_sha256", "nearest_existing",
           "source_identity", "unwritable", "writer_id"]


def writer_id() -> str:
    """This process among all that may write one folder: host name and process id (nodes of a multi-node run that
    share a cache on a network file system can hold the same process id). Letters, digits and ``_`` only, then ``-``
    and the id, so it survives being part of a file name split on ``.``."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it into place.

    The rename is atomic on POSIX and Windows file systems, so readers see the old file or the new one, never a part;
    the temporary name carries :func:`writer_id`, so concurrent writers (ranks, parallel runs, nodes) never share one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{writer_id()}.tmp")
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path`` as hex, read a block at a time (weights files and checkpoints may be
    large): what tells two files apart whatever their paths."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SourceIdentity(NamedTuple):
    """A source file as it was when it was read: size and modification time (cheap to compare again) and the SHA-256
    of its bytes (what still tells that it is the same file once a copy or a re-mount has given it a new time)."""

    size: int
    mtime_ns: int
    sha256: str | None


def source_identity(path: Path) -> SourceIdentity | None:
    """The file's identity, or ``None`` when it cannot be looked at. The digest is ``None`` when the file changed while
    it was hashed (a digest of bytes other than those the size and time describe would vouch for the wrong file) and
    for what is not a regular file (a pipe or a device would never end)."""
    try:
        before = path.stat()
        if not stat.S_ISREG(before.st_mode):
            return SourceIdentity(before.st_size, before.st_mtime_ns, None)
        digest = file_sha256(path)
        after = path.stat()
    except OSError:
        return None
    unchanged = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
    return SourceIdentity(before.st_size, before.st_mtime_ns, digest if unchanged else None)


def nearest_existing(path: Path) -> Path:
    """``path`` itself where it exists, else the nearest folder above it that does: where making it would start."""
    return next(candidate for candidate in (path, *path.parents) if os.path.exists(candidate))


def unwritable(folder: Path) -> str | None:
    """Why this user cannot make files in ``folder`` (made first where it is missing); ``None`` when it can.

    Asked before slow work that would otherwise fail only at its first write, maybe hours in. ``os.access`` answers
    for this user and counts a read-only file system as unwritable; root passes every permission check.
    """
    existing = nearest_existing(folder)
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"this user cannot write in {existing} (permission denied, or a read-only file system)"
    return None


def denied(error: PermissionError) -> str:
    """A ``PermissionError`` met while paths are read before any work, as the message of a usage error: the path and
    what to do (Python's own names the path only)."""
    where = error.filename if error.filename is not None else error
    return (f"{where}: permission denied: this user may not read it (or a folder on its way); make it readable "
            "(chmod, chown) or choose another path")
