"""Ctrl-C and SIGTERM in the Lightning commands (``vidrnn fit|validate|test|predict``): which exit status they end
with, and SIGTERM handled wherever the command is.

Lightning turns both into other endings: it catches Ctrl-C (``KeyboardInterrupt``) inside a trainer's run and ends
the process with ``sys.exit(1)``, and it handles SIGTERM only while a trainer runs, by raising ``SIGTERMException`` —
a ``SystemExit`` without a status, which a shell reads as success — at the next step. Before and between its runs
(parsing, the checks, ``test_after_fit``'s start) SIGTERM ended the process at once, saying nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from lightning.pytorch.utilities.exceptions import SIGTERMException

from vidrnn.exit_codes import EXIT_INTERRUPTED, EXIT_TERMINATED

__all__ = ["sigterm_stops", "stop_status"]


def stop_status(error: BaseException) -> int | None:
    """The exit status of a command that ``error`` ended: 130 for Ctrl-C (also as Lightning's ``sys.exit(1)``, raised
    while it handled the ``KeyboardInterrupt``), 143 for SIGTERM; ``None`` for any other ending."""
    if isinstance(error, SIGTERMException):
        return EXIT_TERMINATED
    if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit)
                                                and isinstance(error.__context__, KeyboardInterrupt)):
        return EXIT_INTERRUPTED
    return None


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """While in this block, SIGTERM raises ``SIGTERMException`` where Lightning's own handler is not in place.

    Lightning's handler, installed while a trainer runs, only notes the signal and stops at the next step; it also
    calls the handler it found, this one, which then leaves the stop to it. Processes forked meanwhile (decoding and
    loader workers) inherit this handler: there SIGTERM ends the process as it would have without it. Python takes
    signal handlers in its main thread only; elsewhere (a command run from a thread) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def stop(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        elif signal.getsignal(signal.SIGTERM) is stop:
            raise SIGTERMException

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
