"""What both caches (features, tracking evidence) share: how a folder is named after its settings.

A cache folder is named by a digest of every setting its contents depend on, so results made otherwise never share one.
Caches on users' disks are found by these names, so the bytes each function hashes never change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["settings_key", "short_digest"]


def short_digest(data: bytes) -> str:
    """16 hex digits of the SHA-256 of ``data``: short enough for a file or folder name, long enough (64 bits) that
    two settings or sources never meet on one."""
    return hashlib.sha256(data).hexdigest()[:16]


def settings_key(settings: Mapping[str, Any]) -> str:
    """The digest that names a cache's folder: of the settings as JSON with sorted keys (json's default separators
    and ASCII escapes), so settings written in any order name one folder."""
    return short_digest(json.dumps(settings, sort_keys=True).encode())

