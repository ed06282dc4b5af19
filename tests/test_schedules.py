"""Learning-rate schedulers from the config: stepped per epoch or per batch, ReduceLROnPlateau on the validation loss."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR
from torch.utils.data import DataLoader

from conftest import save_untrained
from vidrnn.batches import collate_sequences
from vidrnn.checkpoints import load_module
from vidrnn.models.classifier import VideoClassifier
from vidrnn.models.temporal import EncoderSpec
from vidrnn.models.tracker_module import FrameTracker
from vidrnn.tracker.matching import EVIDENCE_DIM

LR = 0.01


def _clips(count: int, seed: int) -> DataLoader:
    """``count`` random clips of 4 to 6 steps of 8 features, two classes, in batches of 4."""
    rng = np.random.default_rng(seed)
    items = [(rng.normal(size=(4 + k % 3, 8)).astype(np.float32), k % 2, f"clip{k}") for k in range(count)]
    return DataLoader(items, batch_size=4, collate_fn=collate_sequences)


def _trainer(**options: object) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **options)


def _classifier(scheduler: Callable, interval: str = "epoch") -> VideoClassifier:
    return VideoClassifier(2, 8, EncoderSpec(cell="gru", hidden_size=8, projection=8),
                           optimizer=partial(torch.optim.SGD, lr=LR), scheduler=scheduler, scheduler_interval=interval)


class _Recorded(ReduceLROnPlateau):
    """ReduceLROnPlateau that remembers the values it was stepped with, and when."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: list[int], values: list[float],
                 trainer: list[L.Trainer]) -> None:
        # Any loss counts as no better than the best (threshold 10 in absolute terms): every step after the first
        # is a plateau, and with patience 0 halves the rate.
        super().__init__(optimizer, patience=0, factor=0.5, threshold=10.0, threshold_mode="abs")
        self.epochs, self.values, self.trainer = epochs, values, trainer

    def step(self, metrics: float, epoch: int | None = None) -> None:  # type: ignore[override]
        self.epochs.append(self.trainer[0].current_epoch)
        self.values.append(float(metrics))
        super().step(metrics)


def test_reduce_lr_on_plateau_reads_the_validation_loss_after_each_validation() -> None:
    """It was refused by Lightning ("must include a monitor"). Validating every second epoch, it is stepped after
    those epochs only, with that validation's loss: Lightning keeps the last value between validations, and a
    plateau scheduler stepped every epoch would count the same loss twice."""
    epochs: list[int] = []
    values: list[float] = []
    holder: list[L.Trainer] = []
    model = _classifier(lambda optimizer: _Recorded(optimizer, epochs, values, holder))
    trainer = _trainer(max_epochs=4, check_val_every_n_epoch=2)
    holder.append(trainer)
    trainer.fit(model, _clips(12, 0), _clips(6, 1))
    assert epochs == [1, 3]
    assert values[-1] == pytest.approx(float(trainer.callback_metrics["val/loss"]))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(LR * 0.5)  # one plateau: halved once


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_the_scheduler_is_stepped_per_batch_or_per_epoch_as_the_model_says(interval: str) -> None:
    """A scheduler counted in batches (a warm-up, OneCycleLR's total_steps) was stepped once an epoch."""
    model = _classifier(lambda optimizer: StepLR(optimizer, step_size=1, gamma=0.5), interval)
    trainer = _trainer(max_epochs=2)
    trainer.fit(model, _clips(12, 0), _clips(6, 1))
    steps = trainer.global_step if interval == "step" else trainer.current_epoch
    assert trainer.global_step == 6 and steps == {"step": 6, "epoch": 2}[interval]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(LR * 0.5 ** steps)


def test_reduce_lr_on_plateau_is_refused_per_batch_and_in_a_fit_without_validation() -> None:
    plateau = partial(ReduceLROnPlateau, patience=0)
    with pytest.raises(ValueError, match="set model.scheduler_interval to epoch"):
        _trainer(max_epochs=1).fit(_classifier(plateau, "step"), _clips(8, 0), _clips(4, 1))
    trainer = _trainer(max_epochs=1)
    with pytest.raises(ValueError, match=r"this fit validates nothing .*data.val_fraction 0"):
        trainer.fit(_classifier(plateau), _clips(8, 0), DataLoader([], batch_size=4, collate_fn=collate_sequences))
    assert trainer.global_step == 0  # refused before training, not after the first epoch
    trainer = _trainer(max_epochs=1, limit_val_batches=0)  # Lightning then loads no validation data at all
    with pytest.raises(ValueError, match=r"this fit validates nothing .*trainer.limit_val_batches 0"):
        trainer.fit(_classifier(plateau), _clips(8, 0), _clips(4, 1))
    assert trainer.global_step == 0


def test_a_checkpoint_saved_before_scheduler_interval_loads_stepping_per_epoch(tmp_path: Path) -> None:
    path = save_untrained(_classifier(None), tmp_path / "older.ckpt")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    del checkpoint["hyper_parameters"]["scheduler_interval"]
    torch.save(checkpoint, path)
    assert load_module(VideoClassifier, path).hparams.scheduler_interval == "epoch"


def _evidence_windows(count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [{"evidence": torch.randn(4, 6, EVIDENCE_DIM, generator=generator),
             "targets": torch.rand(4, 6, 4, generator=generator) * 0.5 + 0.25,
             "valid": torch.ones(4, 6, dtype=torch.bool)} for _ in range(count)]


def _sequence(steps: int) -> dict[str, torch.Tensor]:
    """One whole validation sequence, as the tracking data module's second validation loader yields it."""
    return {"evidence": torch.randn(steps, EVIDENCE_DIM), "window": torch.tensor(4),
            "windows": torch.from_numpy(np.tile([[160.0, 120.0, 200.0]], (steps, 1))),
            "frame_size": torch.tensor([240, 320]), "truth": torch.tensor([[150.0, 110.0, 20.0, 20.0]] * (steps + 1))}


def test_the_tracker_steps_reduce_lr_on_plateau_on_its_validation_windows_loss() -> None:
    """The tracker validates on two loaders; its window loss is logged as val/loss, the name the scheduler reads,
    not under Lightning's val/loss/dataloader_idx_0."""
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8,
                         optimizer=partial(torch.optim.SGD, lr=LR), scheduler=partial(ReduceLROnPlateau, patience=0))
    trainer = _trainer(max_epochs=2)
    validation = [DataLoader(_evidence_windows(2, 1), batch_size=None), DataLoader([_sequence(8)], batch_size=None)]
    trainer.fit(model, DataLoader(_evidence_windows(3, 0), batch_size=None), validation)
    assert {"val/loss", "val/iou", "val/success_auc"} <= set(trainer.callback_metrics)
    assert trainer.lr_scheduler_configs[0].monitor == "val/loss" and trainer.state.finished
