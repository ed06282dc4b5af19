"""FrameTracker: the Lightning wrapper that trains the recurrent box head on top of frozen-CNN template matching.

Training sees windows of cached match evidence (:class:`~vidrnn.data.tracking_module.EvidenceWindows`); the loss is
``torchvision.ops`` L1 + generalised IoU on the crop-normalised boxes of the frames where the target is visible.
Validation reports the mean IoU of the head and, beside it, of the matching-only peak on the same crops, so a run
shows at once whether the head improves on what it was given. Test tracks whole sequences online, as ``vidrnn track``
does, and reports OTB success AUC, precision at 20 px and mean IoU (:mod:`vidrnn.metrics`) for the trained tracker
and for its matching-only ablation, per sequence in ``tracking_scores.csv`` in the run's log folder.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchvision.ops import box_iou, generalized_box_iou_loss

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.tracking import TrackingSequence
from vidrnn.metrics import SequenceScore, mean_scores, score_sequence
from vidrnn.models.tracker import RecurrentBoxHead, TemplateMatcher, TrackerCell, xywh_to_xyxy
from vidrnn.search_region import SearchGeometry
from vidrnn.tracking import Tracker

__all__ = ["FrameTracker"]

logger = logging.getLogger(__name__)


def _paired_iou(boxes: Tensor, targets: Tensor) -> Tensor:
    return box_iou(xywh_to_xyxy(boxes), xywh_to_xyxy(targets)).diagonal()


class FrameTracker(L.LightningModule):
    """A box per frame from the first frame's box.

    Args:
        backbone, geometry, template_cells, template_rate, scale_rate, hold_below: set from the data module by the
            CLI (the evidence it caches must be the evidence the model computes when it tracks, and the head
            corrects the matching-only box the simulated runs followed), and saved so a checkpoint alone can track.
            ``hold_below`` defaults to 0 (never hold) here, unlike the data module's 2.5: a checkpoint saved before
            the setting existed holds no value for it and must keep tracking as it was trained.
        cell: ``lstm``, ``gru``, ``rnn`` or ``none`` (a per-frame head without recurrence: the "learned but not
            recurrent" ablation).
        hidden_size, num_layers, bidirectional, dropout: the recurrent head (see :class:`RecurrentBoxHead`).
            ``bidirectional`` tracks offline (whole clip, then boxes); otherwise online, frame by frame.
        giou_weight: weight of the generalised-IoU loss beside L1.
        test_ablation: at test time also run the matching-only tracker, for the comparison table.
    """

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        geometry: dict[str, Any] | None = None,
        template_cells: int = 7,
        template_rate: float = 0.01,
        scale_rate: float = 0.3,
        hold_below: float = 0.0,
        cell: TrackerCell = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        giou_weight: float = 1.0,
        test_ablation: bool = True,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.geometry = SearchGeometry(**(geometry or {}))
        spec = BackboneSpec(**{**(backbone or {"layer": "blocks.10"}), "pooling": "map",
                               "input_size": self.geometry.size})
        self.backbone = build_backbone(spec)
        self.matcher = TemplateMatcher(template_cells)
        self.head = RecurrentBoxHead(cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                                     bidirectional=bidirectional, dropout=dropout, scale_rate=scale_rate,
                                     hold_below=hold_below)
        self.optimizer, self.scheduler = optimizer, scheduler
        self._test_rows: list[dict[str, Any]] = []

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Only the trained part: the frozen backbone is rebuilt from its spec, so checkpoints stay small."""
        state = super().state_dict(*args, **kwargs)
        return {key: value for key, value in state.items() if not key.startswith("backbone.")}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        full = {**{f"backbone.{key}": value for key, value in self.backbone.state_dict().items()}, **state_dict}
        return super().load_state_dict(full, strict=strict, assign=assign)

    def tracker(self, *, matching_only: bool = False, template_rate: float | None = None) -> Tracker:
        """The runnable tracker of this model (or its matching-only ablation, which ignores the head); the template
        follows the target at the rate the model was trained with unless ``template_rate`` says otherwise."""
        head = None if matching_only else self.head
        rate = self.hparams.template_rate if template_rate is None else template_rate
        return Tracker(self.backbone, self.geometry, self.matcher, head, device=self.device, template_rate=rate,
                       scale_rate=self.hparams.scale_rate, hold_below=self.hparams.hold_below)

    def forward(self, evidence: Tensor) -> Tensor:
        """Boxes ``[B,T,4]`` (crop-normalised) for evidence ``[B,T,F]`` read in one pass."""
        return self.head(evidence)[0]

    def _step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        evidence, valid = batch["evidence"], batch["valid"]
        predicted, targets = self(evidence)[valid], batch["targets"][valid]
        l1 = F.l1_loss(predicted, targets)
        giou = generalized_box_iou_loss(xywh_to_xyxy(predicted), xywh_to_xyxy(targets), reduction="mean")
        loss = l1 + self.hparams.giou_weight * giou
        with torch.no_grad():
            iou = _paired_iou(predicted, targets).mean()
            peak_iou = _paired_iou(self.head.matching_boxes(evidence)[valid], targets).mean()
        self.log_dict({f"{prefix}loss": loss, f"{prefix}iou": iou, f"{prefix}iou_matching": peak_iou},
                      prog_bar=True, batch_size=int(valid.sum()), sync_dist=prefix != "train/")
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        return self._step(batch, "train/")

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._step(batch, "val/")

    def _track(self, sequence: TrackingSequence, *, matching_only: bool) -> SequenceScore:
        frames = (frame for _, chunk in sequence.iter_frames() for frame in chunk)
        boxes = np.array(list(self.tracker(matching_only=matching_only).track(frames, sequence.boxes[0])))
        return score_sequence(boxes, sequence.boxes)

    def test_step(self, sequence: TrackingSequence, batch_index: int) -> None:
        runs = {"": self._track(sequence, matching_only=False)}
        if self.hparams.test_ablation:
            runs["matching_"] = self._track(sequence, matching_only=True)
        for prefix, score in runs.items():
            self.log_dict({f"test/{prefix}{name}": value for name, value in score.to_dict().items() if name != "frames"},
                          batch_size=1, sync_dist=True)
            self._test_rows.append({"sequence": sequence.name, "tracker": prefix.rstrip("_") or "vidrnn",
                                    **score.to_dict()})

    def on_test_epoch_end(self) -> None:
        rows, self._test_rows = self._test_rows, []
        for tracker in sorted({row["tracker"] for row in rows}):
            own = [SequenceScore(**{k: v for k, v in row.items() if k not in ("sequence", "tracker")})
                   for row in rows if row["tracker"] == tracker]
            rows.append({"sequence": "MEAN", "tracker": tracker, **mean_scores(own).to_dict()})
        if self.trainer.is_global_zero and self.trainer.logger is not None and self.trainer.log_dir is not None:
            path = Path(self.trainer.log_dir) / "tracking_scores.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            logger.info("per-sequence tracking scores written to %s", path)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["task"] = "tracking"

    def configure_optimizers(self) -> Any:
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        optimizer = self.optimizer(parameters) if self.optimizer else torch.optim.AdamW(parameters, lr=1e-3)
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "epoch"}}
