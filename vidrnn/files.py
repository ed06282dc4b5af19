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

from vidrnn.cache_keys import short_digest

__all__ = ["NAME_MAX", "SourceIdentity", "atomic_write", "atomic_write_bytes", "denied", "file_sha256",
           "fitted_name", "name_max", "nearest_existing", "source_identity", "unwritable", "writer_id"]

#: The longest file name, in bytes, that Linux's and macOS's file systems take (``NAME_MAX``): assumed where a file
#: system does not say, and the limit of names derived from a video's (a cache file named after it).
NAME_MAX = 255


def writer_id() -> str:
    """This process among all that may write one folder: host name and process id (nodes of a multi-node run that
    share a cache on a network file system can hold the same process id). Letters, digits and ``_`` only, then ``-``
    and the id, so it survives being part of a file name split on ``.``."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that the file system holding ``folder`` (or the nearest folder above it that
    exists) takes: ``os.pathconf``'s ``PC_NAME_MAX`` where it answers, else :data:`NAME_MAX`."""
    try:
        limit = os.pathconf(nearest_existing(folder), "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX
    return limit if limit > 0 else NAME_MAX


def fitted_name(stem: str, suffix: str, limit: int = NAME_MAX, identity: str | None = None) -> str:
    """``stem + suffix`` where it fits in ``limit`` bytes (UTF-8), else as much of ``stem`` as leaves room for ``~``,
    16 hex digits of the SHA-256 of ``identity`` (by default the whole name) and ``suffix``.

    A name derived from another (a video's cache file, a temporary name) adds bytes to one that already fit its file
    system, so it may not; the shortened name keeps its start for people to read and the digest for it to stay one
    file per ``identity``, the same on every run. Names that fit are left as they are.
    """
    name = stem + suffix
    if len(os.fsencode(name)) <= limit:
        return name
    tail = f"~{short_digest(os.fsencode(identity or name))}{suffix}"
    room = limit - len(os.fsencode(tail))
    prefix = stem[:max(room, 0)]  # whole characters: at least as many bytes as characters
    while len(os.fsencode(prefix)) > room:
        prefix = prefix[:-1]
    return prefix + tail


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, flush it to disk, then rename it into place.

    The rename is atomic on POSIX and Windows file systems, so readers see the old file or the new one, never a part;
    the temporary name carries :func:`writer_id`, so concurrent writers (ranks, parallel runs, nodes) never share one,
    and is ``.NAME.WRITER.tmp`` with ``NAME`` shortened (:func:`fitted_name`) where that would exceed the file
    system's limit: a final name that fits is always written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(fitted_name(f".{path.name}", f".{writer_id()}.tmp", name_max(path.parent)))
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` as the whole of ``path`` or not at all (:func:`atomic_write`)."""
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
