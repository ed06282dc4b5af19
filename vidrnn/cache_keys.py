"""What both caches (features, tracking evidence) share: how a folder is named after its settings, and how a cached
result is found to be still that of its source.

A cache folder is named by a digest of every setting its contents depend on, so results made otherwise never share one.
A cached result records its source twice: a stamp that is cheap to take again (sizes and modification times: stat
calls only) and a digest of its bytes. The stamp is compared first; only when it changed are the bytes hashed, and the
same bytes under a new stamp (a dataset copied without its times, a re-mount) keep the result, the new stamp recorded
so that the next check compares stamps again. Caches on users' disks are found by these names and fields, so the
bytes each function hashes never change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, NamedTuple

__all__ = ["Check", "Freshness", "Stamped", "recheck", "settings_key", "short_digest"]


def short_digest(data: bytes) -> str:
    """16 hex digits of the SHA-256 of ``data``: short enough for a file or folder name, long enough (64 bits) that
    two settings or sources never meet on one."""
    return hashlib.sha256(data).hexdigest()[:16]


def settings_key(settings: Mapping[str, Any]) -> str:
    """The digest that names a cache's folder: of the settings as JSON with sorted keys (json's default separators
    and ASCII escapes), so settings written in any order name one folder."""
    return short_digest(json.dumps(settings, sort_keys=True).encode())


class Freshness(Enum):
    """Whether a cached result is still that of its source."""

    SAME = "same"  #: the stamp is as recorded: nothing was read
    RENEWED = "renewed"  #: a new stamp, the same bytes: the result stands; record the new stamp
    CHANGED = "changed"  #: other bytes, or none to compare: make the result again


class Stamped(NamedTuple):
    """A source as recorded: its stamp (compared with ``==``) and the digest of its bytes (``None``: not known, as in
    records made before digests were kept, or for a source that changed while it was hashed)."""

    stamp: Any
    digest: str | None


class Check(NamedTuple):
    """What :func:`recheck` found, and, when :attr:`Freshness.RENEWED`, the source as it is now, to be recorded."""

    freshness: Freshness
    now: Stamped | None = None


def recheck(recorded: Stamped, stamp: object, hashed: Callable[[], Stamped | None]) -> Check:
    """Whether the source ``recorded`` describes is still the same, given its ``stamp`` now: the same stamp is
    :attr:`~Freshness.SAME`; else its bytes are hashed (``hashed``: the stamp and digest as they are now, ``None``
    when it cannot be read) only where a digest was recorded, and the same digest is :attr:`~Freshness.RENEWED`."""
    if stamp == recorded.stamp:
        return Check(Freshness.SAME)
    if recorded.digest is None:
        return Check(Freshness.CHANGED)
    now = hashed()
    if now is None or now.digest != recorded.digest:
        return Check(Freshness.CHANGED)
    return Check(Freshness.RENEWED, now)
