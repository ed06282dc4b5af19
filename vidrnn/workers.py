"""Run one function over many items in worker processes that may die, and know which item killed a worker.

Decoding goes through FFmpeg and OpenCV: native code that can crash its process on a hostile file (a segfault, an
abort) where Python code would have raised. In a batch job (``vidrnn classify`` over a night of files, ``vidrnn
extract`` over a dataset) one such file must cost one error entry, not the run. torch's DataLoader cannot give that:
a dead worker surfaces as a ``RuntimeError`` that its SIGCHLD handler raises wherever the main process happens to be,
without saying which item was in flight, and the loader is finished.

Here each worker reads positions from a pipe of its own, works on them one at a time in the order they were sent, and
answers on a second pipe. When a worker dies, the answers it sent are read first; the item it was working on is then
the first one it has not answered. That item's answer is a :class:`WorkerCrash`, the items queued behind it go to a
fresh worker, and the run goes on. Answers come out in input order, so a run is reproducible; workers run ahead of
the next answer out (up to :data:`_WINDOW` times their queue places) so that a long item does not idle the others.

A worker that dies before it could start — its initializer raised or crashed, or it did not finish starting in
:data:`_START_TIMEOUT` seconds (stuck, say, on a lock that another thread held when it was forked) and was killed —
was working on no item, so no item is blamed: its items go to the next worker. When starts keep failing, the cause is the environment (a missing library,
no memory), not the items, and marking every item as crashed would hide it; after a few failed starts in a row the
run stops with a :class:`WorkerStartError` that names the cause. A spawned worker runs the main script again as it
starts; a script that starts workers without an ``if __name__ == "__main__":`` guard would start them there too, and
each try re-run the whole script (a model load: the third failure came after over a minute). Asked for workers while
it is still running the main script, a spawned worker exits with :data:`_UNGUARDED_MAIN`, and that one failure stops
the run, the error saying to guard the script; any other failed start (too many open files for a moment) is retried.

Answers travel by value, never as handles to memory a worker owns: memory that a dying worker owned cannot be opened
any more, and the answer it sent just before it crashed would be lost with it. So answers should be plain data (numpy
arrays, numbers, strings), not torch tensors (whose pickling hands out such handles). Large arrays (decoded frames) go
out of band (pickle protocol 5). Where workers are forked (Linux), each has a shared-memory arena that the *main*
process maps before it starts the worker, so it outlives the worker (and no worker started later maps it): the worker copies a large array into it, then sends only where it lies, and the
main process's array is that memory itself, handed back to the worker once the array is garbage. Sending a video's
frames through the pipe instead (two copies through the kernel) cost the decoders and the main process about 6 % of
extraction on two cores. An array that does not fit (the arena is full of arrays the main process still holds, or
it is larger than the arena) follows the answer through the pipe and is read straight into the memory that becomes
the array. An answer cut short by the worker's death counts as not sent: its arrays are in the arena before the
answer says where they lie, and an answer whose bytes stop short on the pipe is dropped.
"""

from __future__ import annotations

import fcntl
import mmap
import multiprocessing
import os
import pickle
import signal
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

__all__ = ["WorkerCrash", "WorkerStartError", "available_cores", "isolated_map"]

#: Seconds an idle worker waits for work before it checks that the process that started it still exists (a main
#: process killed with SIGKILL cannot stop its workers; they notice and leave).
_WATCH_INTERVAL = 1.0
#: Seconds a worker told to stop gets before it is killed.
_STOP_GRACE = 5.0
#: Worker starts that may fail in a row before the run stops: one can be bad luck (memory short for a moment), three
#: are the environment.
_START_ATTEMPTS = 3
#: Seconds a worker may take to start (run its initializer) before it counts as a failed start: forked, one starts in
#: milliseconds; spawned, importing torch and OpenCV takes seconds. One that never starts must not hang the run.
_START_TIMEOUT = 120.0

# Fork on Linux: a worker starts in milliseconds and holds the work function as it is, so replacing a dead one costs
# nothing (what DataLoader does there). Elsewhere the platform's safe method: the work function must then pickle.
_CONTEXT = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


@dataclass(frozen=True)
class WorkerCrash:
    """The answer for an item whose worker process died while working on it (``exitcode``: negative = signal)."""

    exitcode: int | None

    @property
    def reason(self) -> str:
        """The death in words, e.g. ``worker process killed by SIGSEGV``."""
        if self.exitcode is None or self.exitcode >= 0:
            return f"worker process exited with status {self.exitcode}"
        try:
            name = signal.Signals(-self.exitcode).name
        except ValueError:
            name = f"signal {-self.exitcode}"
        return f"worker process killed by {name}"


class WorkerStartError(RuntimeError):
    """Worker processes die before they can take any work, start after start: a problem of the environment (the
    initializer fails, the process cannot run), not of the items, so the run stops instead of failing each item."""


#: Bytes a pipe holds before its writer waits (Linux default 64 KiB, widened where allowed): a video's frames then
#: cross in a few large reads instead of dozens of small ones, each a wake-up of both processes.
_PIPE_BYTES = 1 << 20


#: How far past the next answer out (the one the main process waits for, answers being handed out in order) positions
#: may be handed to workers, in multiples of their queue places (workers x prefetch). At 1, one long video holding the
#: next answer idles every other worker as soon as they have done the rest of the window. Simulated over ucf101-mini's
#: clip lengths (``benchmarks/decode_window.py``): 16 workers busy 89-95 % of the time at 1, 98-99 % at 2, no better
#: beyond; 64 workers 75-87 % against 92-96 %; 2 workers ~100 % either way. The main process holds at most this many
#: times ``workers x prefetch`` answers.
_WINDOW = 2

#: Bytes of each worker's shared-memory arena: room for the decoded videos the main process may hold from one worker
#: (``_WINDOW x prefetch`` on average, 8 with extraction's prefetch: 32 crops of 224x224 are 4.8 MB; a fast worker
#: can have more). What does not fit comes through the pipe, at the cost of copies in both processes. Pages take
#: memory once written, and the ring writes them all in a long run: this much a worker.
_ARENA_BYTES = 64 << 20
#: Arrays the arena can hold at once (each has a flag saying whether the main process still holds it).
_ARENA_SLOTS = 64
#: Arrays smaller than this follow the answer through the pipe: a copy that small costs less than its bookkeeping.
_ARENA_MIN_BYTES = 64 << 10
#: Arrays start at multiples of this (a cache line; any dtype's alignment).
_ARENA_ALIGN = 64
#: Bytes before the arrays: the flags, padded to the alignment.
_ARENA_HEADER = -(-_ARENA_SLOTS // _ARENA_ALIGN) * _ARENA_ALIGN


class _Arena:
    """Shared memory that one worker writes large arrays into and the main process reads them from, in place.

    The main process maps it before it starts the worker (fork shares the mapping), so it stays valid when the worker
    dies. The worker allocates in a ring, oldest first; a flag per array says whether the main process still holds it.
    The worker sets a flag after it has copied the array and before it sends where the array lies; the main process
    clears it once its array is garbage. The worker reuses memory only from the oldest array on, once it is released:
    the main process consumes answers in order, so the ring rarely waits for an array held out of order — and when
    nothing fits, the array goes through the pipe. The flags are plain byte stores, not atomics: a flag is cleared long
    after the main process's last read of its array (once the array's last reference is gone), and the worker copies
    only after it has seen the flag cleared."""

    def __init__(self, size: int = _ARENA_BYTES) -> None:
        self.memory = mmap.mmap(-1, _ARENA_HEADER + size)  # anonymous, shared with the worker forked next
        self.held = np.frombuffer(self.memory, dtype=np.uint8, count=_ARENA_SLOTS)
        self.size = size
        # The worker's side: its arrays the main process may still hold, oldest first, as (slot, start, end).
        self.placed: deque[tuple[int, int, int]] = deque()
        self.next_slot = 0

    def place(self, data: memoryview) -> tuple[int, int] | None:
        """Copy ``data`` into the arena (the worker's side); ``(slot, start)``, or ``None`` when there is no room."""
        while self.placed and not self.held[self.placed[0][0]]:
            self.placed.popleft()
        start = self._room(data.nbytes)
        slot = self.next_slot
        if start is None or self.held[slot]:
            return None
        offset = _ARENA_HEADER + start
        self.memory[offset : offset + data.nbytes] = data
        self.held[slot] = 1
        self.placed.append((slot, start, start + data.nbytes))
        self.next_slot = (slot + 1) % _ARENA_SLOTS
        return slot, start

    def _room(self, size: int) -> int | None:
        """Where ``size`` free bytes begin after the newest array (or from the ring's start, wrapping), if anywhere;
        always at a multiple of :data:`_ARENA_ALIGN`, so that arrays of any dtype come back aligned."""
        if not self.placed:
            return 0 if size <= self.size else None
        oldest, newest = self.placed[0][1], self.placed[-1][2]
        after = -(-newest // _ARENA_ALIGN) * _ARENA_ALIGN
        if oldest < newest:  # arrays lie in [oldest, newest): room after them, or before them from the start
            if self.size - after >= size:
                return after
            return 0 if oldest >= size else None
        return after if oldest - after >= size else None  # wrapped: room between the newest and the oldest

    def take(self, slot: int, start: int, size: int) -> np.ndarray:
        """The main process's array over bytes the worker placed: that memory itself, released when it is garbage."""
        array = np.frombuffer(self.memory, dtype=np.uint8, count=size, offset=_ARENA_HEADER + start)
        weakref.finalize(array, _release, self.held, slot, os.getpid())
        return array


def _release(held: np.ndarray, slot: int, taker: int) -> None:
    """Hand an array's memory back to its worker — only from the process that took it: a process forked from it holds
    a copy of the array's Python object, whose garbage there says nothing about the array here."""
    if os.getpid() == taker:
        held[slot] = 0


@dataclass(frozen=True)
class _Answer:
    """An answer as sent: pickled without its large buffers, and where each of them is: ``(slot, start, size)`` in the
    worker's arena, or ``(None, None, size)`` for raw bytes that follow this on the pipe, in order."""

    pickled: bytes
    buffers: list[tuple[int | None, int | None, int]]


def _send_answer(answers: Connection, answer: Any, arena: _Arena | None) -> None:
    buffers: list[pickle.PickleBuffer] = []
    pickled = pickle.dumps(answer, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    places = [arena.place(view) if arena is not None and view.nbytes >= _ARENA_MIN_BYTES else None for view in views]
    answers.send(_Answer(pickled, [(*(place or (None, None)), view.nbytes) for place, view in zip(places, views)]))
    for place, view in zip(places, views):
        while place is None and view:
            view = view[os.write(answers.fileno(), view):]


def _receive_answer(answers: Connection, header: _Answer, arena: _Arena | None) -> Any:
    """The answer ``header`` announced: arrays in the arena taken in place, the others read from the pipe into memory
    of their own (raises ``EOFError`` when the worker died before it sent them all)."""
    buffers = []
    for slot, start, size in header.buffers:
        if slot is not None:
            buffers.append(arena.take(slot, start, size))
            continue
        buffer = np.empty(size, dtype=np.uint8)  # not zero-filled: every byte is read into it
        view = memoryview(buffer)
        while view:
            read = os.readv(answers.fileno(), [view])
            if read == 0:
                raise EOFError("the worker's pipe ended inside an answer")
            view = view[read:]
        buffers.append(buffer)
    return pickle.loads(header.pickled, buffers=buffers)


def _widen(pipe_end: Connection) -> None:
    """Give a pipe :data:`_PIPE_BYTES` of room where the system allows (Linux; elsewhere, or above the limit in
    ``/proc/sys/fs/pipe-max-size``, it keeps its size: only speed depends on it)."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(pipe_end.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass


@dataclass(frozen=True)
class _Started:
    """A worker's first message: its initializer ran (``error`` is ``None``), or what it raised."""

    error: str | None


def _initialize(initializer: Callable[[], None] | None) -> str | None:
    """Run a worker's initializer; ``None`` when it ran (or there is none), else what it raised, in words."""
    if initializer is None:
        return None
    try:
        initializer()
    except Exception as error:  # reported to the main process, which names it when it stops the run
        return f"the initializer raised {type(error).__name__}: {error}"
    return None


def _serve(work: Callable[[int], Any], initializer: Callable[[], None] | None, tasks: Connection,
           answers: Connection, arena: _Arena | None, main_ends: list[Connection], parent: int) -> None:
    """A worker's life: run the initializer and tell the main process how that went; once it ran, answer positions.

    ``main_ends``: the main process's ends of this worker's pipes and of the other workers', inherited by fork and
    closed at once. A worker holding the reading end of its own answers would wait forever to send an answer once the
    main process is killed; with it closed, the send fails and the worker leaves."""
    for connection in main_ends:
        connection.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle; it stops the workers
    started = _Started(_initialize(initializer))
    try:
        answers.send(started)
        if started.error is None:
            _answer(work, tasks, answers, arena, parent)
    except BrokenPipeError:
        pass  # the main process is gone, and nobody will read the answer


def _answer(work: Callable[[int], Any], tasks: Connection, answers: Connection, arena: _Arena | None,
            parent: int) -> None:
    """Answer each position sent on ``tasks``, in order, until told to stop (``None``) or orphaned."""
    while True:
        if not tasks.poll(_WATCH_INTERVAL):
            if os.getppid() != parent:
                return
            continue
        try:
            position = tasks.recv()
        except EOFError:
            return
        if position is None:
            return
        _send_answer(answers, (position, work(position)), arena)


@dataclass
class _Worker:
    """A worker process, the main process's ends of its two pipes, its arena (``None`` where workers are not forked),
    and the positions sent to it not yet answered. ``start`` is its first message, once received."""

    process: Any
    tasks: Connection
    answers: Connection
    arena: _Arena | None
    pending: deque[int] = field(default_factory=deque)
    start: _Started | None = None
    started_at: float = field(default_factory=time.monotonic)
    timed_out: bool = False

    @property
    def ready(self) -> bool:
        """Whether it said its initializer ran: from then on, its death is the doing of the item it was on."""
        return self.start is not None and self.start.error is None

    def close(self) -> None:
        """Close the pipes and let the arena go: it is unmapped once the last array taken from it is garbage."""
        self.tasks.close()
        self.answers.close()
        self.arena = None


def _start(work: Callable[[int], Any], initializer: Callable[[], None] | None, others: list[_Worker]) -> _Worker:
    task_reader, task_writer = _CONTEXT.Pipe(duplex=False)
    answer_reader, answer_writer = _CONTEXT.Pipe(duplex=False)
    _widen(answer_writer)
    arena = _Arena() if _CONTEXT.get_start_method() == "fork" else None  # shared by forking, before the worker starts
    main_ends = [task_writer, answer_reader, *(end for other in others for end in (other.tasks, other.answers))]
    process = _CONTEXT.Process(target=_serve, args=(work, initializer, task_reader, answer_writer, arena, main_ends,
                                                    os.getpid()), daemon=True)
    process.start()
    if arena is not None and hasattr(mmap, "MADV_DONTFORK"):
        # Mapped by this worker and the main process only: a worker forked later must not keep this one's memory
        # alive after it died (nor touch it: it releases nothing it did not take, see _release).
        arena.memory.madvise(mmap.MADV_DONTFORK)
    # The worker's ends, closed here so that its death shows as the end of its pipe (and no later worker inherits them).
    task_reader.close()
    answer_writer.close()
    return _Worker(process, task_writer, answer_reader, arena)


class _Pool:
    """The main process's side of :func:`isolated_map`: who works on what, and the answers not yet handed out."""

    def __init__(self, work: Callable[[int], Any], count: int, workers: int, prefetch: int,
                 initializer: Callable[[], None] | None) -> None:
        self.work, self.initializer = work, initializer
        self.count, self.prefetch, self.window = count, prefetch, _WINDOW * workers * prefetch
        self.queue: deque[int] = deque(range(count))
        self.answers: dict[int, Any] = {}
        self.workers: list[_Worker] = []
        self.size = min(workers, count)
        self.failed_starts = 0  # workers in a row that died before they were ready

    def results(self) -> Iterator[tuple[int, Any]]:
        finished = False
        try:
            for _ in range(self.size):
                self.workers.append(_start(self.work, self.initializer, self.workers))
            deferred: Exception | None = None
            for position in range(self.count):
                while position not in self.answers:
                    if deferred is not None:
                        raise deferred
                    self._dispatch(position)
                    self._collect()
                answer = self.answers.pop(position)
                # The caller works on this answer before it asks for the next (the CNN runs on a run of answers that a
                # long video held up): workers done with theirs get their next positions now, not once it is through.
                # What goes wrong here (workers that cannot start) waits until the answers already here are handed
                # out, as it would have had it come up while waiting.
                if deferred is None:
                    try:
                        self._collect(block=False)
                        self._dispatch(position + 1)
                    except Exception as error:
                        deferred = error
                yield position, answer
            finished = True
        finally:
            self._stop(gently=finished)

    def _dispatch(self, next_out: int) -> None:
        """Send queued positions to workers with room, never more than ``window`` positions past the next one out
        (memory stays bounded while a slow item holds up the order)."""
        for worker in self.workers:
            while len(worker.pending) < self.prefetch and self.queue and self.queue[0] < next_out + self.window:
                position = self.queue.popleft()
                try:
                    worker.tasks.send(position)
                except OSError:  # it is dead; its sentinel says so and _collect replaces it
                    self.queue.appendleft(position)
                    break
                worker.pending.append(position)

    def _collect(self, block: bool = True) -> None:
        """Take the answers there are, replace the dead (and those too slow to start); when ``block``, first wait for
        at least one answer or death."""
        starting = [w.started_at + _START_TIMEOUT for w in self.workers if w.start is None]
        timeout = max(0.0, min(starting) - time.monotonic()) if starting else None
        if not block:
            timeout = 0.0
        ready = set(wait([w.answers for w in self.workers] + [w.process.sentinel for w in self.workers], timeout))
        for worker in list(self.workers):
            overdue = worker.start is None and time.monotonic() > worker.started_at + _START_TIMEOUT
            if overdue and worker.answers not in ready:  # (its first message may be arriving just now)
                worker.timed_out = True
                worker.process.kill()
                worker.process.join()
                ready.add(worker.process.sentinel)
            ended = worker.process.sentinel in ready
            if worker.answers in ready:
                ended |= not self._receive(worker)
            if ended:
                self._replace(worker)

    def _receive(self, worker: _Worker) -> bool:
        """Take every message the worker has sent; ``False`` when its pipe has ended (the worker is gone)."""
        while worker.answers.poll():
            try:
                message = worker.answers.recv()
                if isinstance(message, _Answer):
                    message = _receive_answer(worker.answers, message, worker.arena)
            except (EOFError, OSError):  # the pipe ended, between messages or inside one ("end of file during message")
                return False
            if isinstance(message, _Started):
                worker.start = message
                if worker.ready:
                    self.failed_starts = 0
                continue
            position, answer = message
            worker.pending.popleft()  # answers come in the order the positions were sent
            self.answers[position] = answer
        return True

    def _replace(self, dead: _Worker) -> None:
        """The dead worker's last answers are taken, the item it was on fails, the rest go to a fresh worker.

        A worker that died before it was ready was on no item: none fails, and its items wait for the next worker."""
        self._receive(dead)
        dead.process.join()
        dead.close()
        self.workers.remove(dead)
        if not dead.ready:
            self._failed_start(dead)
        elif dead.pending:
            self.answers[dead.pending.popleft()] = WorkerCrash(dead.process.exitcode)
        self.queue.extendleft(reversed(dead.pending))
        if self.queue:
            self.workers.append(_start(self.work, self.initializer, self.workers))

    def _failed_start(self, dead: _Worker) -> None:
        """Count a worker that died before it was ready; stop the run at :data:`_START_ATTEMPTS` of them in a row, or
        at once for a spawned one that ran an unguarded main script (:func:`_ran_unguarded_main`)."""
        self.failed_starts += 1
        if _ran_unguarded_main(dead):
            raise WorkerStartError(_UNGUARDED_SCRIPT)
        if self.failed_starts >= _START_ATTEMPTS:
            if dead.timed_out:
                cause = f"it had not started after {_START_TIMEOUT:g} s and was killed"
            else:
                cause = dead.start.error if dead.start is not None else WorkerCrash(dead.process.exitcode).reason
            raise WorkerStartError(f"worker processes cannot start: {self.failed_starts} in a row ended before taking "
                                   f"any work; the last: {cause}")

    def _stop(self, gently: bool) -> None:
        """Ask the workers to stop after a complete run; kill them when the run was cut short (an error, Ctrl-C)."""
        for worker in self.workers:
            if gently:
                try:
                    worker.tasks.send(None)
                except OSError:
                    pass
            else:
                worker.process.kill()
        for worker in self.workers:
            worker.process.join(_STOP_GRACE if gently else None)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.close()


#: The status a spawned worker exits with when the main script it runs again as it starts asks for workers: the
#: script is unguarded, and every further start would run it again. Python itself exits with 1 there, as for any error.
_UNGUARDED_MAIN = 86

#: What stops the run when a spawned worker exits with :data:`_UNGUARDED_MAIN`.
_UNGUARDED_SCRIPT = ("worker processes cannot start: a spawned worker ran the main script again as it started, and the "
                     "script started workers there. A script that starts vidrnn's decoding processes under the spawn "
                     "start method (the default on macOS) must guard its top level with "
                     '`if __name__ == "__main__":`, as each worker runs the script again as it starts; or pass 0 '
                     "workers (num_workers=0, --workers 0) to decode in this process")


def _running_parents_main() -> bool:
    """Whether this is a spawned worker still running the main script of the process that started it: where
    multiprocessing refuses to start a process (``_inheriting``, its own check) and vidrnn's workers are spawned."""
    return (_CONTEXT.get_start_method() == "spawn"
            and getattr(multiprocessing.current_process(), "_inheriting", False))


def _ran_unguarded_main(dead: _Worker) -> bool:
    """Whether a spawned worker exited as it started because the main script it ran again asked for workers
    (:func:`_running_parents_main`): every further start would do so again, after as long (seconds: a script that
    loads a model)."""
    return (_CONTEXT.get_start_method() == "spawn" and dead.start is None and not dead.timed_out
            and dead.process.exitcode == _UNGUARDED_MAIN)


def isolated_map(work: Callable[[int], Any], count: int, *, workers: int, prefetch: int = 2,
                 initializer: Callable[[], None] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(position, work(position))`` for positions ``0 .. count - 1``, in order.

    ``work`` runs in ``workers`` processes (each started with ``initializer``), at most ``prefetch`` positions queued
    per worker. A position whose worker dies while working on it yields a :class:`WorkerCrash` instead, and the others
    carry on in a fresh worker. Workers that keep dying before they can take work (``initializer`` raises or crashes)
    raise :class:`WorkerStartError`. With ``workers=0`` everything runs here, in order, and nothing is isolated.
    """
    if workers < 0 or prefetch < 1:
        raise ValueError(f"need workers >= 0 and prefetch >= 1, got {workers} and {prefetch}")
    if workers == 0:
        return ((position, work(position)) for position in range(count))
    if _running_parents_main():
        raise SystemExit(_UNGUARDED_MAIN)
    return _Pool(work, count, workers, prefetch, initializer).results()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a scheduler's share, ``taskset``), the default number of
    decoding processes: decoding is the CPU's part of extraction, and on a GPU machine it is the part that starves
    the GPU when given too few cores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
