"""Lists cut short in messages, and the lines of the small text files datasets come with."""

from __future__ import annotations

from pathlib import Path

from vidrnn.text import first_few, text_lines


def test_a_list_cut_short_says_how_many_more_there_are() -> None:
    assert first_few(["a", "b", "c", "d", "e"], 3) == "a, b, c and 2 more"
    assert first_few(["a", "b", "c"], 3) == "a, b, c"
    assert first_few(["a b", "c"], 1, "; ") == "a b and 1 more"
    assert first_few(["x", "y"], 5, " = ") == "x = y"


def test_lines_keep_their_numbers_and_lose_the_blank_end(tmp_path: Path) -> None:
    """A line's index is its number in the file less one: blank lines inside count, those at the end are an
    editor's last newline; a byte-order mark and CRLF endings are no part of any line."""
    path = tmp_path / "list.txt"
    path.write_bytes("\ufefffirst\r\n\r\n third \r\n\r\n  \r\n".encode())
    assert text_lines(path) == ["first", "", " third "]
    path.write_text("")
    assert text_lines(path) == []
