"""Worker processes that may die: every item answered once, in order, and a crash costs only the item it struck."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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
    repository = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")]))
    main = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": path})
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


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan is reaped by init once it exits)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"
