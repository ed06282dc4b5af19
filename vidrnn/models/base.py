"""What both LightningModules share: the task a checkpoint records, the random state a resumed fit takes back, and
the optimiser and scheduler the config names — one place, so that a classifier and a tracker resume and train
alike."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import Metric

from vidrnn.random_state import RANDOM_STATE, random_state, restore_random_state
from vidrnn.schedules import require_validation, scheduler_config

__all__ = ["VidrnnModule"]


class VidrnnModule(L.LightningModule):
    """A LightningModule of vidrnn. Subclasses name their ``TASK``, set ``optimizer`` and ``scheduler`` (the config's
    callables, or ``None``) and ``hparams.scheduler_interval``, and put a checkpoint's random state in
    ``_saved_random_state`` when it is loaded (:func:`~vidrnn.random_state.state_to_resume`)."""

    TASK: ClassVar[str]
    optimizer: OptimizerCallable | None
    scheduler: LRSchedulerCallable | None
    _saved_random_state: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        """Give this process metric states of its own (a reset makes fresh tensors). ``ddp_spawn`` on a CPU sends the
        model pickled, its tensors in memory every process shares; Lightning unshares parameters and buffers, but
        torchmetrics' states are neither: each rank counted its clips into the others' states too, and the reduction
        over ranks then counted every clip once per process."""
        for module in self.modules():
            if isinstance(module, Metric):
                module.reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Beside the hyperparameters (which must stay constructor arguments for LightningCLI), so tools opening a
        # checkpoint know which model it holds, and a resume draws on as the uninterrupted fit would.
        checkpoint["task"] = self.TASK
        checkpoint[RANDOM_STATE] = random_state()

    def on_train_start(self) -> None:
        require_validation(self.trainer)
        restore_random_state(self._saved_random_state)
        self._saved_random_state = None

    def configure_optimizers(self) -> Any:
        """The config's optimiser over the trained parameters (AdamW, lr 1e-3, when it names none) and its scheduler,
        stepped as :func:`~vidrnn.schedules.scheduler_config` says."""
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        optimizer = self.optimizer(parameters) if self.optimizer else torch.optim.AdamW(parameters, lr=1e-3)
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler_config(
            self.scheduler(optimizer), self.hparams.scheduler_interval, self.trainer.check_val_every_n_epoch)}
