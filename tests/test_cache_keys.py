"""What both caches share: a folder named by its settings."""

from __future__ import annotations

from vidrnn.cache_keys import settings_key, short_digest


def test_settings_name_one_folder_in_whatever_order_they_are_written() -> None:
    """The key is of JSON with sorted keys and json's default separators: the bytes older caches were named by."""
    assert settings_key({"walks": 1, "seed": 7}) == settings_key({"seed": 7, "walks": 1}) == \
        short_digest(b'{"seed": 7, "walks": 1}')
    assert settings_key({"walks": 1, "seed": 7}) != settings_key({"walks": 2, "seed": 7})
    assert len(short_digest(b"")) == 16

