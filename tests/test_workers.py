"""Worker processes that may die: every item answered once, in order, and a crash costs only the item it struck."""

from __future__ import annotations

import faulthandler
import gc
import mmap
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest

from vidrnn import workers as workers_module
from vidrnn.workers import WorkerCrash, isolated_map

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the work is a closure: fork only")


def _crashing_at(deaths: dict[int, int]):
    """Work that squares its position, or dies by the given signal at the given positions (as native code would)."""

    def work(position: int) -> int:
        if position in deaths:
            faulthandler.disable()  # no Python traceback dump: die quietly, as a crashing decoder does
            os.kill(os.getpid(), deaths[position])
        time.sleep(0.002 * (position % 3))  # answers become ready out of order
        return position * position

    return work


def test_answers_come_once_each_in_input_order() -> None:
    results = list(isolated_map(_crashing_at({}), 20, workers=3, prefetch=2))
    assert results == [(position, position * position) for position in range(20)]


def test_a_worker_that_dies_costs_only_the_item_it_was_working_on() -> None:
    deaths = {3: signal.SIGSEGV, 4: signal.SIGABRT, 11: signal.SIGKILL}
    results = dict(isolated_map(_crashing_at(deaths), 16, workers=2, prefetch=3))
    assert sorted(results) == list(range(16))
    crashed = {position: answer.reason for position, answer in results.items() if isinstance(answer, WorkerCrash)}
    assert crashed == {3: "worker process killed by SIGSEGV", 4: "worker process killed by SIGABRT",
                       11: "worker process killed by SIGKILL"}
    assert all(results[position] == position * position for position in set(results) - set(deaths))


def _frames(position: int) -> dict:
    """An answer shaped like a decoded video: a few MB of frames (several times a pipe's capacity) and plain values."""
    frames = np.random.default_rng(position).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8)
    return {"crops": frames, "indices": np.arange(position, position + 16), "fps": 25.0}


#: Answers of :func:`_frames` that fill three arenas (one and a half for each of two workers).
_THREE_ARENAS = 3 * workers_module._ARENA_BYTES // (16 * 224 * 224 * 3)


def test_large_arrays_cross_intact_and_writable() -> None:
    for position, answer in isolated_map(_frames, 6, workers=2, prefetch=2):
        expected = _frames(position)
        assert np.array_equal(answer["crops"], expected["crops"]) and answer["crops"].flags.writeable
        assert np.array_equal(answer["indices"], expected["indices"]) and answer["fps"] == 25.0


def _in_shared_memory(array: np.ndarray) -> bool:
    """Whether the array's memory is a worker's arena (its chain of bases ends in an mmap)."""
    owner = array
    while isinstance(owner, (np.ndarray, memoryview)):
        owner = owner.base if isinstance(owner, np.ndarray) else owner.obj
    return isinstance(owner, mmap.mmap)


def test_frames_come_through_shared_memory_that_is_handed_back_once_the_array_is_garbage() -> None:
    """Answers of 2.4 MB, three arenas' worth over two workers: enough only if memory comes back as arrays are dropped."""
    shared = 0
    for position, answer in isolated_map(_frames, _THREE_ARENAS, workers=2, prefetch=2):
        assert np.array_equal(answer["crops"], _frames(position)["crops"])
        shared += _in_shared_memory(answer["crops"])
        assert not _in_shared_memory(answer["indices"])  # small arrays follow on the pipe
    assert shared == _THREE_ARENAS


def test_answers_held_by_the_main_process_fill_the_arena_and_the_rest_come_by_pipe_intact() -> None:
    held = dict(isolated_map(_frames, _THREE_ARENAS, workers=2, prefetch=2))
    assert 0 < sum(_in_shared_memory(answer["crops"]) for answer in held.values()) < _THREE_ARENAS
    for position, answer in held.items():
        assert np.array_equal(answer["crops"], _frames(position)["crops"])


def test_the_arena_reuses_memory_oldest_first_once_released() -> None:
    arena = workers_module._Arena(size=256)
    data = bytes(range(100))
    first, second = arena.place(memoryview(data)), arena.place(memoryview(data))
    assert (first, second) == ((0, 0), (1, 128))  # arrays start at multiples of 64
    assert arena.place(memoryview(data)) is None  # 28 bytes left at the end, none free at the start
    views = [arena.take(*first, 100), arena.take(*second, 100)]
    assert bytes(views[1]) == data
    del views[1]
    gc.collect()
    assert arena.place(memoryview(data)) is None  # the second is free, but the oldest is still held: reuse is in order
    del views[0]
    gc.collect()
    assert arena.place(memoryview(bytes(60))) == (2, 0)  # both free: back at the start
    assert arena.place(memoryview(bytes(64))) == (3, 64) and arena.place(memoryview(bytes(128))) == (4, 128)
    assert arena.place(memoryview(bytes(1))) is None  # full


def test_arena_arrays_of_any_dtype_come_back_aligned() -> None:
    arena = workers_module._Arena(size=1000)
    odd = arena.place(memoryview(bytes(3)))
    even = arena.place(memoryview(np.arange(5, dtype=np.float64).tobytes()))
    array = np.frombuffer(arena.take(*even, 40), dtype=np.float64)
    assert odd == (0, 0) and array.flags.aligned and array.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_forked_process_dropping_its_copy_of_an_array_releases_nothing() -> None:
    """A child forked while the main process holds an array has a copy of its Python object: when that copy dies in
    the child, the memory must stay the main process's, or the worker would overwrite an array still in use."""
    arena = workers_module._Arena(size=100)
    held = arena.take(*arena.place(memoryview(bytes(10))), 10)
    child = os.fork()
    if child == 0:
        del held
        gc.collect()
        os._exit(0)
    os.waitpid(child, 0)
    assert arena.held[0] == 1
    del held
    gc.collect()
    assert arena.held[0] == 0


def _slow_first(position: int) -> int:
    if position == 0:
        time.sleep(1.0)
    return position


def test_workers_get_their_next_positions_while_the_caller_works_through_answers_a_long_item_held_up() -> None:
    """While position 0 takes long, the other worker answers every position the window allows and waits. Once 0 is
    there, the caller works through the answers held up behind it (running the CNN on each): the pool must hand out
    new positions now, not after the last of them."""
    pool = workers_module._Pool(_slow_first, 20, workers=2, prefetch=1, initializer=None)
    results = pool.results()
    assert next(results) == (0, 0)
    assert set(pool.answers) == set(range(1, pool.window))  # the rest of the window, done while 0 was
    handed_out = set(pool.answers) | {position for worker in pool.workers for position in worker.pending}
    assert pool.window in handed_out  # past the window of the answer just taken
    results.close()


def test_an_error_while_handing_out_an_answer_comes_after_the_answers_already_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Collecting at a hand-out can find workers that cannot start (WorkerStartError): the answer in hand and those
    already received are still the caller's, as when such errors came only while waiting for the next answer."""
    collect = workers_module._Pool._collect

    def failing_at_hand_out(self, block: bool = True) -> None:
        if not block:
            raise workers_module.WorkerStartError("workers cannot start")
        collect(self, block)

    monkeypatch.setattr(workers_module._Pool, "_collect", failing_at_hand_out)
    received = []
    with pytest.raises(workers_module.WorkerStartError, match="cannot start"):
        for position, answer in isolated_map(_slow_first, 5, workers=2, prefetch=1):
            received.append((position, answer))
    assert received == [(0, 0), (1, 1), (2, 2), (3, 3)]  # 1-3 were done while 0 was; 4 was never sent


def test_a_worker_does_not_map_the_arenas_of_workers_started_before_it() -> None:
    """Else a dead worker's arena would stay in memory as long as any worker started while it existed."""
    pool = workers_module._Pool(_frames, 4, workers=2, prefetch=1, initializer=None)
    results = pool.results()
    next(results)
    first, second = pool.workers
    address = first.arena.held.__array_interface__["data"][0]

    def maps_it(pid: int) -> bool:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            low, high = (int(bound, 16) for bound in line.split()[0].split("-"))
            if low <= address < high:
                return True
        return False

    assert maps_it(first.process.pid) and not maps_it(second.process.pid)
    results.close()


def _dying_inside_answer(position: int) -> dict:
    """Position 2's worker dies after the answer's pickled part has gone out and before its frames have."""
    if position == 2:
        os.write = lambda fd, data: os._exit(9)  # this worker's own os module: the main process is untouched
    return _frames(position)


def test_a_worker_that_dies_inside_an_answer_costs_only_that_item() -> None:
    results = dict(isolated_map(_dying_inside_answer, 6, workers=2, prefetch=2))
    assert sorted(results) == list(range(6))
    assert isinstance(results[2], WorkerCrash) and results[2].exitcode == 9
    for position in (0, 1, 3, 4, 5):
        assert np.array_equal(results[position]["crops"], _frames(position)["crops"])


def _dying_inside_pickled_part(position: int) -> dict:
    """Position 2's worker dies two bytes into its answer's pickled part."""
    if position == 2:
        def two_bytes_then_death(connection, buffer, write=os.write):
            write(connection.fileno(), bytes(buffer[:2]))
            os._exit(9)

        Connection._send = two_bytes_then_death  # this worker's own class: the main process is untouched
    return _frames(position)


def test_a_worker_that_dies_inside_the_pickled_part_of_an_answer_costs_only_that_item() -> None:
    results = dict(isolated_map(_dying_inside_pickled_part, 5, workers=2, prefetch=2))
    assert isinstance(results[2], WorkerCrash) and results[2].exitcode == 9
    for position in (0, 1, 3, 4):
        assert np.array_equal(results[position]["crops"], _frames(position)["crops"])


def _dying_inside_shared_memory(position: int) -> dict:
    """Position 2's worker dies halfway through copying its frames into the arena."""
    if position == 2:
        def half_then_death(arena, data):
            start = workers_module._ARENA_HEADER + arena._room(data.nbytes)  # where the real copy would go
            arena.memory[start : start + data.nbytes // 2] = data[: data.nbytes // 2]
            os._exit(9)

        workers_module._Arena.place = half_then_death  # this worker's own class: the main process is untouched
    return _frames(position)


def test_a_worker_that_dies_inside_shared_memory_costs_only_that_item_and_its_sent_frames_stay_valid() -> None:
    results = dict(isolated_map(_dying_inside_shared_memory, 6, workers=1, prefetch=2))
    assert isinstance(results[2], WorkerCrash) and results[2].exitcode == 9
    for position in (0, 1, 3, 4, 5):  # 0 and 1 lie in the dead worker's arena, 3-5 in its successor's
        assert _in_shared_memory(results[position]["crops"])
        assert np.array_equal(results[position]["crops"], _frames(position)["crops"])


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started as on macOS (spawn), which CI on Linux never does otherwise: no arena, arrays through the
    pipe, the work function pickled. A spawned worker imports this module, so it and the work stay light (no torch)."""
    monkeypatch.setattr(workers_module, "_CONTEXT", multiprocessing.get_context("spawn"))


def _square_or_segfault(position: int) -> int:
    """Work at module level (a spawned worker gets it pickled): squares, or dies by SIGSEGV at position 3."""
    if position == 3:
        faulthandler.disable()
        os.kill(os.getpid(), signal.SIGSEGV)
    return position * position


def test_spawned_workers_answer_in_order_and_a_crash_costs_only_its_item(spawned: None) -> None:
    results = list(isolated_map(_square_or_segfault, 8, workers=2, prefetch=2))
    assert [position for position, _ in results] == list(range(8))
    assert results[3][1] == WorkerCrash(-signal.SIGSEGV)
    assert all(answer == position * position for position, answer in results if position != 3)


def test_spawned_workers_send_large_arrays_intact_and_writable(spawned: None) -> None:
    for position, answer in isolated_map(_frames, 3, workers=2, prefetch=2):
        assert not _in_shared_memory(answer["crops"])  # no arena: spawned workers share no memory with this one
        assert np.array_equal(answer["crops"], _frames(position)["crops"]) and answer["crops"].flags.writeable


def test_without_workers_the_work_runs_here_in_order() -> None:
    assert list(isolated_map(lambda position: os.getpid(), 3, workers=0)) == [(0, os.getpid()), (1, os.getpid()),
                                                                             (2, os.getpid())]


def test_workers_of_a_killed_main_process_leave(tmp_path: Path) -> None:
    """A SIGKILL-ed main process cannot stop its workers: they notice it is gone and leave, instead of living on."""
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, time
        from vidrnn import workers

        def work(position):
            with open({str(pids)!r}, "a") as handle:
                handle.write(f"{{os.getpid()}}\\n")
            time.sleep(0.2)
            return bytes(1_000_000)  # more than a pipe holds: a worker must not wait forever to send it

        for _ in workers.isolated_map(work, 1000, workers=2):
            pass
    """)
    main = subprocess.Popen([sys.executable, "-c", script], env=_with_this_checkout())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(set(_lines(pids))) < 2:
        time.sleep(0.05)
    main.kill()
    main.wait()
    started = {int(pid) for pid in _lines(pids)}
    assert len(started) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in started)


@pytest.mark.parametrize(("failure", "cause"), [
    ("os._exit(1)", "worker process exited with status 1"),
    ("raise OSError('libavcodec.so.60: cannot open shared object file')",
     "the initializer raised OSError: libavcodec.so.60: cannot open shared object file"),
    ("import time; time.sleep(600)", "it had not started after 0.5 s and was killed"),  # stuck, e.g. on a lock
])
def test_workers_that_cannot_start_stop_the_run_and_name_the_cause(failure: str, cause: str) -> None:
    """An initializer that always fails is the environment's fault, not the items': the run stops after a few
    failed starts, saying why, instead of failing every item or starting fresh workers for ever (hence the deadline:
    the map runs in a child process)."""
    script = textwrap.dedent(f"""
        import os
        from vidrnn import workers
        from vidrnn.workers import isolated_map

        workers._START_TIMEOUT = 0.5  # a stuck start is given up on that soon here (forked, one takes milliseconds)

        def initializer():
            {failure}

        try:
            answers = list(isolated_map(lambda position: position, 50, workers=2, initializer=initializer))
        except RuntimeError as error:
            print(f"stopped: {{error}}")
        else:
            print(f"answered: {{answers[:3]}} ...")
    """)
    finished = subprocess.run([sys.executable, "-c", script], env=_with_this_checkout(), capture_output=True,
                              text=True, timeout=60)
    assert finished.stdout == (f"stopped: worker processes cannot start: 3 in a row ended before taking any work; "
                               f"the last: {cause}\n"), finished.stdout + finished.stderr


def test_a_spawned_worker_rerunning_an_unguarded_script_stops_the_run_at_once_saying_to_guard_it(
        tmp_path: Path) -> None:
    """Under spawn (macOS) a worker runs the main script again as it starts; unguarded, the script starts workers
    there too, which multiprocessing refuses, and the worker exits with status 1. Each failed start re-ran the whole
    script (a Predictor's: imports and a checkpoint, about 23 s), three in a row, and the error named only the status."""
    script, starts = tmp_path / "unguarded.py", tmp_path / "starts"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing
        from pathlib import Path
        from vidrnn import workers

        with Path({str(starts)!r}).open("a") as log:
            log.write("started\\n")
        workers._CONTEXT = multiprocessing.get_context("spawn")
        try:
            list(workers.isolated_map(abs, 4, workers=1))
        except workers.WorkerStartError as error:
            print(f"stopped: {{error}}")
    """))
    finished = subprocess.run([sys.executable, str(script)], env=_with_this_checkout(), capture_output=True,
                              text=True, timeout=60)
    assert finished.stdout.startswith("stopped: worker processes cannot start: a spawned worker ran the main script "
                                      "again as it started, and the script started workers there"), \
        finished.stdout + finished.stderr
    assert 'guard its top level with `if __name__ == "__main__":`' in finished.stdout
    assert "or pass 0 workers" in finished.stdout
    assert len(_lines(starts)) == 2  # the script and one worker: no further attempts


def test_a_spawned_worker_that_fails_once_as_it_starts_is_retried_and_the_run_answers(tmp_path: Path) -> None:
    """A transient failure while a spawned worker imports the script's modules (too many open files, memory short
    for a moment) ends it with status 1, as an unguarded script would: the next worker starts and answers."""
    mark = tmp_path / "fail once"
    (tmp_path / "flaky.py").write_text(textwrap.dedent(f"""
        import os
        from pathlib import Path

        MARK = Path({str(mark)!r})
        if MARK.exists() and os.getpid() != int(MARK.read_text()):
            MARK.unlink()
            raise OSError(24, "Too many open files (simulated, transient)")


        def square(position):
            return position * position
    """))
    script = tmp_path / "guarded.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing
        import os

        import flaky
        from vidrnn import workers

        if __name__ == "__main__":
            flaky.MARK.write_text(str(os.getpid()))
            workers._CONTEXT = multiprocessing.get_context("spawn")
            print(list(workers.isolated_map(flaky.square, 4, workers=1)))
    """))
    finished = subprocess.run([sys.executable, str(script)], env=_with_this_checkout(), capture_output=True,
                              text=True, timeout=60)
    assert finished.stdout == "[(0, 0), (1, 1), (2, 4), (3, 9)]\n", finished.stdout + finished.stderr
    assert "Too many open files (simulated, transient)" in finished.stderr  # the failed worker's own traceback
    assert not mark.exists()


def test_a_worker_that_fails_to_start_costs_no_item(tmp_path: Path) -> None:
    """The items sent to a worker that died in its initializer were never worked on: a fresh worker answers them."""
    failed = tmp_path / "failed once"

    def fails_the_first_time() -> None:
        if not failed.exists():
            failed.touch()
            os._exit(1)

    results = list(isolated_map(_crashing_at({}), 12, workers=2, prefetch=2, initializer=fails_the_first_time))
    assert failed.exists() and results == [(position, position * position) for position in range(12)]


def test_items_that_kill_fresh_workers_in_a_row_fail_one_by_one() -> None:
    """Workers that started and died on their first item, again and again, are the items' doing: no start error."""
    deaths = dict.fromkeys(range(5), signal.SIGSEGV)
    results = dict(isolated_map(_crashing_at(deaths), 8, workers=1, prefetch=1))
    assert all(isinstance(results[position], WorkerCrash) for position in deaths)
    assert [results[position] for position in range(5, 8)] == [25, 36, 49]


def _with_this_checkout() -> dict[str, str]:
    """The environment for a child Python that imports vidrnn from this checkout."""
    repository = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")]))}


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan is reaped by init once it exits)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"
