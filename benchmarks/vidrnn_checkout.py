"""``vidrnn`` from this checkout whatever the working directory holds: how ``classify_variants.py`` starts its runs.

``python -m vidrnn`` puts the working directory first on ``sys.path``, so a caller's directory holding another vidrnn
(a clone, a worktree) would run that code. Run as a file, this puts the checkout first instead (in place of its own
folder). A file rather than ``-c`` code: Lightning's DDP launcher starts each further process as ``sys.argv[0]``
names it, which a file is and ``-c`` is not.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(entry for entry in sys.path if entry != str(HERE))]

from vidrnn.cli import main  # noqa: E402 (after the checkout is first on the path)

if __name__ == "__main__":  # not when multiprocessing's spawn imports it as __mp_main__ in a worker
    sys.exit(main())
