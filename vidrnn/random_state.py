"""torch's random state in checkpoints, so that a resumed fit draws what the uninterrupted one would have.

The datasets' draws are already functions of seed, epoch and item (:mod:`vidrnn.data.streams`), but dropout draws
from torch's global generator, which ``seed_everything`` resets at every start: a run resumed from an epoch's
checkpoint would give its next epochs the dropout masks of the first ones, and a job pre-empted every epoch would
train with one set of masks. A checkpoint therefore carries the generators' state as it was when it was saved, and a
fit resumed from it takes that state back when training starts — after the sanity check and before the first step, as
the uninterrupted run stood. Loading a checkpoint for inference leaves the process's generators alone.

The states match only when nothing else draws from torch's generator between a checkpoint and the next epoch; the
data modules' loaders therefore seed their workers from generators of their own
(:func:`vidrnn.data.streams.loader_generator`), not from torch's.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

__all__ = ["RANDOM_STATE", "random_state", "restore_random_state", "resuming_fit", "state_to_resume"]

#: Where a checkpoint holds the state.
RANDOM_STATE = "random_state"


def random_state() -> dict[str, Any]:
    """torch's CPU generator state, and each CUDA device's when CUDA is in use."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore_random_state(state: dict[str, Any] | None) -> None:
    """Take back a saved state; nothing for a checkpoint without one (written by an older vidrnn). CUDA states are
    restored only onto as many devices as they were saved from."""
    if state is None:
        return
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])



def resuming_fit(module: L.LightningModule) -> bool:
    """Whether a checkpoint ``module`` loads now is one a fit resumes from (its trainer is fitting), rather than one
    loaded to validate, test or predict, or without a trainer."""
    trainer = module._trainer
    return trainer is not None and trainer.state.fn == TrainerFn.FITTING


def state_to_resume(module: L.LightningModule, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The generator state in ``checkpoint`` when ``module`` is loading it to resume a fit, else ``None``: a
    checkpoint loaded to validate, test or predict must not hand its state to a later fit of the module."""
    return checkpoint.get(RANDOM_STATE) if resuming_fit(module) else None
