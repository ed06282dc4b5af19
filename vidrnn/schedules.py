"""How a learning-rate scheduler from the config is stepped: the one rule both LightningModules hand to Lightning.

A config names the scheduler (``model.scheduler``), but only the module can say when Lightning steps it: per epoch
or per batch (``model.scheduler_interval``: a warm-up in steps, ``OneCycleLR`` over ``total_steps`` batches), and,
for ``ReduceLROnPlateau``, which value it reads. Both modules log their validation loss as :data:`VALIDATION_LOSS`.
"""

from __future__ import annotations

from typing import Any, Literal

from lightning.pytorch import Trainer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

__all__ = ["VALIDATION_LOSS", "SchedulerInterval", "require_validation", "scheduler_config"]

#: When Lightning steps the scheduler: after every training epoch, or after every optimiser step.
SchedulerInterval = Literal["epoch", "step"]

#: What ``ReduceLROnPlateau`` reads: the mean validation loss, as both modules log it.
VALIDATION_LOSS = "val/loss"


def scheduler_config(scheduler: LRScheduler | ReduceLROnPlateau, interval: SchedulerInterval,
                     validate_every: int | None) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` dict for ``scheduler``, stepped every ``interval``.

    ``ReduceLROnPlateau`` monitors :data:`VALIDATION_LOSS` and is stepped once per validation: every
    ``validate_every`` epochs (the trainer's ``check_val_every_n_epoch``; ``None``, validation by steps, counts as
    1). Lightning keeps the last validation's value between validations, so a plateau scheduler stepped every epoch
    would count each epoch without validation as one more without improvement, reading the same loss again. Stepped
    per batch it would read that stale value hundreds of times an epoch (and fail before the first validation): refused.
    """
    if not isinstance(scheduler, ReduceLROnPlateau):
        return {"scheduler": scheduler, "interval": interval}
    if interval != "epoch":
        raise ValueError(f"ReduceLROnPlateau lowers the rate when {VALIDATION_LOSS} stops improving, and that is "
                         "measured once per validation, not per batch: set model.scheduler_interval to epoch")
    return {"scheduler": scheduler, "interval": "epoch", "monitor": VALIDATION_LOSS, "frequency": validate_every or 1}


def require_validation(trainer: Trainer) -> None:
    """Refuse, before the first training step, a ``ReduceLROnPlateau`` in a fit that validates nothing (no validation
    clips: ``data.val_fraction`` 0, or ``trainer.limit_val_batches`` 0). Call it from ``on_train_start``, when the
    trainer has loaded its validation data (unless the first epoch does not validate: then it cannot tell, and says
    nothing).

    Without validation there is no loss to read, and Lightning would stop the fit at the end of its first epoch with a
    message that names the metric but not the setting. Nothing is lost by stopping here: the features are cached, and
    the fit run again with a validation split starts at once.
    """
    plateau = any(config.reduce_on_plateau for config in trainer.lr_scheduler_configs)
    # With limit_val_batches 0 Lightning loads no validation data at all: that too validates nothing.
    validates_nothing = trainer.limit_val_batches == 0 or (trainer.val_dataloaders is not None
                                                            and not sum(trainer.num_val_batches))
    if plateau and validates_nothing:
        raise ValueError(f"ReduceLROnPlateau reads {VALIDATION_LOSS}, but this fit validates nothing (no validation "
                         "batches: data.val_fraction 0, or trainer.limit_val_batches 0): give it a validation split "
                         "or choose another model.scheduler")
