"""A reader of standard output that has gone (``vidrnn track --output /dev/stdout | head -2``, ``vidrnn probe ... |
head -1``): the commands stop quietly with :data:`~vidrnn.exit_codes.EXIT_BROKEN_PIPE`, as Unix tools do, not in a
``BrokenPipeError`` traceback (Python ignores SIGPIPE, so a write there raises instead of ending the process)."""

from __future__ import annotations

import os
import select
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vidrnn.exit_codes import EXIT_BROKEN_PIPE

__all__ = ["stdout_reader_gone", "stdout_watched", "stop_writing_stdout"]


def stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it. Only that ending is quiet: a
    ``BrokenPipeError`` of another pipe (a decoding process's, a named pipe given as an output) is a failure to
    report."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without one, or closed
        return False
    return _reader_gone(descriptor)


@contextmanager
def stdout_watched() -> Iterator[Callable[[], bool]]:
    """Within the block, a check of whether the reader of standard output, as it was on entry, has gone: it keeps a
    copy of the descriptor, so it answers even after standard output was pointed elsewhere, as rich's console
    points it at the null device when its reader has gone, before ending the process with ``SystemExit(1)``."""
    try:
        descriptor = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by an object without one, or closed
        yield lambda: False
        return
    try:
        yield lambda: _reader_gone(descriptor)
    finally:
        os.close(descriptor)


def _reader_gone(descriptor: int) -> bool:
    """Whether ``descriptor`` is a pipe whose reader has closed it. Poll reports that as an error on Linux, as a
    hang-up on BSD kernels (macOS): a hang-up counts only on a pipe, never on a terminal or another file (on Linux a
    pipe's writer is told POLLERR alone; a terminal whose other side closed says both, and stays counted by its
    error, as before)."""
    poll = select.poll()
    poll.register(descriptor, 0)  # errors and hang-ups are reported whatever is asked for
    reported = 0
    for _, events in poll.poll(0):
        reported |= events
    return bool(reported & select.POLLERR) or bool(reported & select.POLLHUP and _is_pipe(descriptor))


def _is_pipe(descriptor: int) -> bool:
    """Whether ``descriptor`` is a pipe (a FIFO): the one kind of file a hang-up tells the reader has gone from."""
    try:
        return stat.S_ISFIFO(os.fstat(descriptor).st_mode)
    except OSError:
        return False


def stop_writing_stdout() -> int:
    """Point standard output at the null device and return the exit status of a command whose reader has gone: what
    is left in its buffer is flushed there when the interpreter exits, not into another "Exception ignored ...
    BrokenPipeError" (the handling Python's documentation of SIGPIPE gives)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
    return EXIT_BROKEN_PIPE
