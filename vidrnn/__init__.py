"""vidrnn: recurrent temporal models over frozen ImageNet CNN features, for video classification and tracking.

It runs on Linux and macOS (POSIX: ``fcntl`` locks, ``os.readv``, fork or spawn decoding processes). On Windows every
data command died deep inside in ``ModuleNotFoundError: No module named 'fcntl'``, so the import refuses it at once.
"""

import os

if os.name == "nt":
    raise ImportError("vidrnn runs on Linux and macOS, not on Windows (its decoding processes and file locks need a "
                      "POSIX system): run it under WSL2 (Windows Subsystem for Linux), where it works as on Linux")

__version__ = "0.1.0"
