"""FrameTracker: the Lightning wrapper that trains the recurrent box head on cached match evidence.

Training sees windows of evidence (:class:`~vidrnn.data.tracking_datamodule.EvidenceWindows`); the loss is
``torchvision.ops`` L1 + generalised IoU on the crop-normalised boxes of the frames where the target is visible.
Validation reports the mean IoU of the head and, beside it, of the matching-only answer on the same crops, and the
success AUC and precision at 20 px of both over whole validation sequences (the matching run's cached evidence: the
boxes the tracker reports online), so a run shows at once whether the head improves on what it was given. Whole sequences are scored outside the module, by
tracking them online (:mod:`vidrnn.tracker.evaluation`; ``vidrnn test`` does it with this module's head).

The module holds the head and the tracker's settings, never the frozen CNN: a checkpoint is the head's weights plus
the settings (plain values, ``weights_only`` loading), and :func:`vidrnn.tracker.runtime.load_tracker` rebuilds the CNN from them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection
from torchvision.ops import box_convert, generalized_box_iou_loss

from vidrnn.checkpoints import TRACKING, load_checkpoint, load_module, require_task
from vidrnn.metrics import paired_iou, score_sequence
from vidrnn.models.base import VidrnnModule
from vidrnn.models.upgrade import (CONVERT, current_tracker_hyperparameters, tracker_overrides,
                                   tracker_settings_one_by_one)
from vidrnn.random_state import state_to_resume
from vidrnn.schedules import SchedulerInterval, require_finite_loss
from vidrnn.tracker.geometry import boxes_from_crops, clamp_to_frame
from vidrnn.tracker.head import ON_TARGET_IOU, RecurrentBoxHead, TrackerCell
from vidrnn.tracker.settings import TrackerSettings

__all__ = ["FrameTracker", "load_frame_tracker"]


class FrameTracker(VidrnnModule):
    """A box per frame from the first frame's box.

    Args:
        tracker: the matching tracker's settings (:class:`~vidrnn.tracker.settings.TrackerSettings` as a dict), set
            from the data module by the CLI: the evidence it cached is the evidence the model reads when it tracks,
            and the head corrects the matching box the simulated runs followed. Saved, so a checkpoint alone can
            track.
        cell: ``lstm``, ``gru``, ``rnn`` or ``none`` (a per-frame head without recurrence: the "learned but not
            recurrent" ablation).
        hidden_size, num_layers, bidirectional, dropout: the recurrent head (see :class:`RecurrentBoxHead`).
        response_map, levels: what the head reads besides the evidence's summary: the coarse response map, the
            similarity levels (see :class:`RecurrentBoxHead`).
        confidence: the head also answers whether the matching box is still on the target (binary cross-entropy
            beside the box loss); redetect_below: the tracker built from this model searches the re-detection region
            (``tracker.redetect_widen`` times wider) when that confidence falls below it (0: never; see
            :class:`~vidrnn.tracker.runtime.Tracker`).
            ``bidirectional`` tracks offline (whole clip, then boxes); otherwise online, frame by frame.
        giou_weight: weight of the generalised-IoU loss beside L1.
        optimizer, scheduler: from the config (class_path + init_args); default AdamW(lr=1e-3) and no scheduler.
            ``ReduceLROnPlateau`` reads the validation windows' loss (``val/loss``) after each validation.
        scheduler_interval: step the scheduler after every ``epoch`` (default) or every optimiser ``step``, as its
            settings count (:func:`~vidrnn.schedules.scheduler_config`).
    """

    #: What its checkpoints record as their ``task``, and what loading one requires
    #: (:func:`~vidrnn.checkpoints.require_task`).
    TASK: ClassVar[str] = TRACKING

    def __init__(
        self,
        tracker: dict[str, Any] | None = None,
        cell: TrackerCell = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        response_map: bool = False,
        levels: bool = False,
        confidence: bool = False,
        redetect_below: float = 0.0,
        giou_weight: float = 1.0,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: SchedulerInterval = "epoch",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.settings = TrackerSettings.from_dict(tracker or {})
        self.head = RecurrentBoxHead(cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                                     bidirectional=bidirectional, dropout=dropout, rule=self.settings.rule,
                                     response_map=response_map, levels=levels, confidence=confidence)
        self.optimizer, self.scheduler = optimizer, scheduler
        # Means over whole validation sequences, each weighing the same; as metrics their sums and counts are reduced
        # over DDP ranks, which hold different numbers of sequences (each is tracked exactly once).
        # A recurrent head is also scored as it was trained: training reads windows of a few steps, each from a fresh
        # state, while tracking carries the state through the whole sequence (hundreds of steps): "_reset" restarts
        # it every window, so the two protocols can be told apart from what recurrence adds.
        suffixes = ("", "_matching") if cell == "none" else ("", "_matching", "_reset")
        self.sequence_scores = MetricCollection({f"val/{name}{suffix}": MeanMetric()
                                                 for name in ("success_auc", "precision_20")
                                                 for suffix in suffixes}, compute_groups=False)

    def forward(self, evidence: Tensor) -> Tensor:
        """Boxes ``[B,T,4]`` (crop-normalised) for evidence ``[B,T,EVIDENCE_DIM]`` read in one pass."""
        return self.head(evidence)[0]

    def _step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        evidence, valid = batch["evidence"], batch["valid"]
        boxes, logits, _ = self.head.read(evidence)
        predicted, targets = boxes[valid], batch["targets"][valid]
        if valid.any():
            l1 = F.l1_loss(predicted, targets)
            giou = generalized_box_iou_loss(box_convert(predicted, "xywh", "xyxy"), box_convert(targets, "xywh", "xyxy"),
                                            reduction="mean")
            loss = l1 + self.hparams.giou_weight * giou
        else:  # no visible target in the batch: no box to aim at (the mean loss of no boxes is NaN, and so the epoch's)
            loss = boxes.sum() * 0
        metrics = {}
        if logits is not None:
            # On target: the matching box overlaps the true box enough; absent or missed targets are not on it.
            with torch.no_grad():
                on_target = valid & (paired_iou(self.head.matching_boxes(evidence), batch["targets"]) >= ON_TARGET_IOU)
            confidence = F.binary_cross_entropy_with_logits(logits, on_target.float())
            loss = loss + confidence
            metrics[f"{prefix}confidence_loss"] = confidence
        metrics[f"{prefix}loss"] = loss
        if valid.any():
            with torch.no_grad():
                metrics[f"{prefix}iou"] = paired_iou(predicted, targets).mean()
                metrics[f"{prefix}iou_matching"] = paired_iou(self.head.matching_boxes(evidence)[valid], targets).mean()
        # Without the loader's index Lightning would add (validation has two loaders): val/loss, which a plateau
        # scheduler reads (vidrnn.schedules), as the classifier logs it.
        self.log_dict(metrics, prog_bar=True, batch_size=int(valid.sum()), sync_dist=prefix != "train/",
                      add_dataloader_idx=False)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        loss = self._step(batch, "train/")
        require_finite_loss(loss, self.trainer)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_index: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == 0:
            self._step(batch, "val/")
            return
        # A whole sequence's matching run: the head's boxes there are what the tracker reports online.
        frame_shape = tuple(int(value) for value in batch["frame_size"])
        truth = batch["truth"].cpu().numpy()
        windows = batch["windows"].cpu().numpy()
        for suffix, crop_boxes in self.sequence_answers(batch["evidence"], int(batch["window"])).items():
            boxes = clamp_to_frame(boxes_from_crops(crop_boxes.detach().cpu().numpy(), windows), frame_shape)
            score = score_sequence(np.concatenate([truth[:1], boxes]), truth)
            self.sequence_scores[f"val/success_auc{suffix}"].update(score.success_auc)
            self.sequence_scores[f"val/precision_20{suffix}"].update(score.precision_20)
        self.log_dict(self.sequence_scores, batch_size=1, add_dataloader_idx=False)

    def sequence_answers(self, evidence: Tensor, window: int) -> dict[str, Tensor]:
        """Crop boxes ``[T,4]`` for a whole sequence's evidence, by the suffix of the scores they make: the head as it
        tracks (its state carried through), the matching answer (``_matching``), and a recurrent head as it was trained
        (``_reset``: windows of ``window`` steps, each from a fresh state)."""
        answers = {"": self(evidence[None])[0], "_matching": self.head.matching_boxes(evidence)}
        if self.hparams.cell != "none":
            answers["_reset"] = torch.cat([self(evidence[None, start : start + window])[0]
                                           for start in range(0, len(evidence), window)])
        return answers

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Every load passes here (load_from_checkpoint, a Trainer's ckpt_path) before the weights are loaded.
        self.check_checkpoint(checkpoint)
        self._saved_random_state = state_to_resume(self, checkpoint)

    def check_checkpoint(self, checkpoint: dict[str, Any], settings: TrackerSettings | None = None) -> None:
        """Refuse a checkpoint whose head was trained with other tracker settings than ``settings`` (default: this
        model's; the CLI passes the data module's, whose evidence the head will read): the head would read evidence
        made otherwise than the evidence it learnt from, and correct a matching box computed otherwise — without an
        error anywhere. A checkpoint loaded with its own settings (``vidrnn track``, ``vidrnn test``) always passes; one
        of the older shape passes where its settings, converted, are these (:func:`load_frame_tracker` loads it so)."""
        saved = checkpoint.get("hyper_parameters", {})
        current = current_tracker_hyperparameters(saved)
        if "tracker" not in current:  # no settings recorded: nothing to hold them to
            return
        fix = (CONVERT if tracker_settings_one_by_one(saved)
               else "set data.tracker as the checkpoint has it, or train a new head")
        TrackerSettings.from_dict(current["tracker"] or {}).check_head_reads(settings or self.settings, fix)


def load_frame_tracker(path: str | os.PathLike) -> FrameTracker:
    """The ``FrameTracker`` of the checkpoint at ``path``, older shapes converted
    (:func:`~vidrnn.models.upgrade.tracker_overrides`): the one load that ``vidrnn track``, ``vidrnn test`` and the benchmarks make (the LightningCLI commands refuse an
    older shape before they get here, pointing to ``vidrnn upgrade``). ``weights_only``; errors as
    :func:`~vidrnn.checkpoints.load_module` raises them."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = load_checkpoint(path)
    require_task(checkpoint, FrameTracker.TASK, path)
    return load_module(FrameTracker, path, **tracker_overrides(checkpoint.get("hyper_parameters", {})))
