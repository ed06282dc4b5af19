"""Random streams for training datasets that DataLoader worker processes copy.

A numpy generator held by a dataset is copied into every worker with the dataset, so every worker draws the same
numbers: with four workers, four clips in a row would get the same "random" segment offsets or the same shuffle,
and the augmentation would be a quarter of what it seems. :class:`WorkerRandom` gives each process a stream of its
own, derived from one seed — and, under DDP, from the rank too: every rank's data module has the same seed, and its
workers would otherwise draw what the other ranks' workers draw, on other clips.
"""

from __future__ import annotations

import os

import numpy as np
import torch.distributed as dist
from torch.utils.data import get_worker_info

__all__ = ["WorkerRandom"]


class WorkerRandom:
    """One seed, one numpy generator per process that draws from it, made on first use in that process.

    In the main process (``num_workers=0``) the generator is ``default_rng(seed)``, as a dataset holding one would
    have. In DataLoader worker ``i`` it is ``default_rng([seed, i + 1])``: the same seed and number of workers give the
    same draws, whichever worker runs first. On DDP rank ``r > 0`` (the rank when this is made: the data module's
    ``setup``, after the process group starts) both take ``r`` as a last entry, ``[seed, 0 or i + 1, r]``. A worker that persists across epochs (the data module's loaders keep
    theirs) runs on through its stream, as the main process does, so draws change from epoch to epoch; a worker
    started afresh each epoch would start its stream afresh too.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self._generator: np.random.Generator | None = None
        self._process: int | None = None

    def generator(self) -> np.random.Generator:
        """This process's generator. A copy made in another process (a forked worker inherits the main process's,
        when the main process drew before the fork) is replaced, never continued."""
        if self._generator is None or self._process != os.getpid():
            worker = get_worker_info()
            stream = 0 if worker is None else worker.id + 1
            entropy = [self.seed, stream, self.rank] if self.rank else [self.seed, stream] if stream else self.seed
            self._generator = np.random.default_rng(entropy)
            self._process = os.getpid()
        return self._generator
