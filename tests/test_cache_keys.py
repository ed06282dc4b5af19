"""The two ideas both caches share: a folder named by its settings, and a source checked by stamp, then by bytes."""

from __future__ import annotations

import pytest

from vidrnn.cache_keys import Check, Freshness, Stamped, recheck, settings_key, short_digest


def test_settings_name_one_folder_in_whatever_order_they_are_written() -> None:
    """The key is of JSON with sorted keys and json's default separators: the bytes older caches were named by."""
    assert settings_key({"walks": 1, "seed": 7}) == settings_key({"seed": 7, "walks": 1}) == \
        short_digest(b'{"seed": 7, "walks": 1}')
    assert settings_key({"walks": 1, "seed": 7}) != settings_key({"walks": 2, "seed": 7})
    assert len(short_digest(b"")) == 16


def _never_hashed() -> Stamped:
    raise AssertionError("hashed although its stamp settles it")


@pytest.mark.parametrize(("recorded", "freshness"), [
    (Stamped((18, 1), "abc"), Freshness.SAME),  # the stamp as recorded: nothing read
    (Stamped((18, 0), None), Freshness.CHANGED),  # a new stamp and no digest to compare: made again
])
def test_a_source_is_hashed_only_when_its_stamp_changed_and_a_digest_was_recorded(recorded: Stamped,
                                                                                  freshness: Freshness) -> None:
    assert recheck(recorded, (18, 1), _never_hashed) == Check(freshness)


def test_the_same_bytes_under_a_new_stamp_are_renewed_with_it_and_other_bytes_are_changed() -> None:
    recorded = Stamped((18, 1), "abc")
    assert recheck(recorded, (18, 2), lambda: Stamped((18, 2), "abc")) == Check(Freshness.RENEWED,
                                                                                  Stamped((18, 2), "abc"))
    assert recheck(recorded, (18, 2), lambda: Stamped((18, 2), "abd")) == Check(Freshness.CHANGED)
    assert recheck(recorded, (18, 2), lambda: None) == Check(Freshness.CHANGED)  # could not be read
