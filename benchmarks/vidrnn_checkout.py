"""``vidrnn`` from this checkout whatever the working directory holds: how the benchmarks start the CLI.

``python -m vidrnn`` puts the working directory first on ``sys.path``, so a caller's directory holding another vidrnn
(a clone, a worktree) would run that code. Run as a file, this puts the checkout first instead (in place of its own
folder). A file rather than ``-c`` code: Lightning's DDP launcher starts each further process as ``sys.argv[0]``
names it, which a file is and ``-c`` is not. Imported (``from vidrnn_checkout import command``), it only builds
command lines that run it.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "vidrnn_checkout.py"


def command(*arguments: str | Path) -> list[str]:
    """A command line running this checkout's vidrnn with ``arguments`` under the benchmark's own Python."""
    return [sys.executable, str(LAUNCHER), *map(str, arguments)]


if __name__ in ("__main__", "__mp_main__"):  # run, or imported as the run by multiprocessing's spawn in a worker
    sys.path[:] = [str(HERE.parent), *(entry for entry in sys.path if entry != str(HERE))]

    from vidrnn.cli import main

    if __name__ == "__main__":
        sys.exit(main())
