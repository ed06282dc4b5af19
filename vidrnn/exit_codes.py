"""Exit statuses of the ``vidrnn`` commands, one meaning each, so scripts can tell what happened."""

#: Everything worked.
EXIT_OK = 0
#: The command itself failed after it started (a read error midway).
EXIT_FAILED = 1
#: Wrong arguments, paths or settings, reported before any slow work (argparse uses 2 as well).
EXIT_USAGE = 2
#: The batch ran to the end, but some inputs could not be processed (each is reported with its reason).
EXIT_SOME_FAILED = 3
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it); what was finished is kept, and the command says how to go on.
EXIT_INTERRUPTED = 130
#: Stopped by SIGTERM (128 + SIGTERM): a job's time limit, Kubernetes, ``timeout``; said and kept as for Ctrl-C.
EXIT_TERMINATED = 143
#: Stopped because the reader of standard output has gone (``vidrnn track --output /dev/stdout | head -2``): 128 +
#: SIGPIPE, as shells report a Unix tool that stopped there; nothing is said.
EXIT_BROKEN_PIPE = 141
