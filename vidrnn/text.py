"""Plain text in and out: the lines of the small text files that datasets describe themselves with, and lists of
names cut short in messages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["counted", "first_few", "text_lines"]


def first_few(items: Sequence[str], shown: int, separator: str = ", ") -> str:
    """The first ``shown`` of ``items``, joined by ``separator``, and how many more there are: a list cut short must
    not read as complete."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return separator.join(items[:shown]) + more


def counted(number: int, noun: str) -> str:
    """``number`` and ``noun``, plural unless it is one: the counts a message names."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def text_lines(path: Path) -> list[str]:
    """The lines of a text file, blank ones at the end left out (an editor's last newline), without a byte-order mark
    or line endings (CRLF or LF). Blank lines inside are kept, so a line's index is its number in the file less one:
    messages can name it, and a file of one line per frame stays aligned with the frames."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
