"""How a learning-rate scheduler from the config is stepped: the one rule both LightningModules hand to Lightning;
and when a fit cannot go on (no validation for a plateau scheduler, a loss that is no longer a number).

A config names the scheduler (``model.scheduler``), but only the module can say when Lightning steps it: per epoch
or per batch (``model.scheduler_interval``: a warm-up in steps, ``OneCycleLR`` over ``total_steps`` batches), and,
for ``ReduceLROnPlateau``, which value it reads. Both modules log their validation loss as :data:`VALIDATION_LOSS`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import Trainer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

__all__ = ["VALIDATION_LOSS", "SchedulerInterval", "TrainingDiverged", "require_finite_loss", "require_validation",
           "scheduler_config"]

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


class TrainingDiverged(FloatingPointError):
    """The training loss is not a number: the fit failed. ``vidrnn fit`` ends with its message and exit status 1."""


def require_finite_loss(loss: torch.Tensor, trainer: Trainer) -> None:
    """Stop a fit at the first training step whose loss is NaN or infinite (on any DDP rank: all stop together).

    Its weights are then no longer numbers, and every later step would be the same: Lightning trained on to the last
    epoch, tested at chance and ended with exit status 0 — a failed run that looked like a result. The features stay
    cached; the fit run again with another setting starts at once.
    """
    if not trainer.strategy.reduce_boolean_decision(not bool(torch.isfinite(loss)), all=False):
        return
    advice = ("--trainer.precision 16-true keeps the weights in float16, where AdamW's eps (1e-8) is 0 and its first "
              "step divides by zero: use --trainer.precision bf16-mixed or 32-true (the default)"
              if trainer.precision == "16-true" else
              "lower the learning rate (--model.optimizer.lr) or clip the gradients (--trainer.gradient_clip_val)")
    raise TrainingDiverged(f"the training loss is {loss.item()} at epoch {trainer.current_epoch}, step "
                           f"{trainer.global_step}: the weights are no longer numbers, and nothing trained from them "
                           f"would be; {advice}")
