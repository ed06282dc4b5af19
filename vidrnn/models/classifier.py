"""VideoClassifier: the Lightning wrapper that trains a temporal encoder + linear head on cached features.

The model itself is plain PyTorch (:class:`~vidrnn.models.temporal.TemporalEncoder` and a linear head); this module
adds the loss, optimiser, metrics and the test-time confusion matrix. Its hyperparameters also carry what inference
needs and the training data defined — class names, backbone spec, sampling spec, steps per clip — so a checkpoint
alone is enough to classify new videos.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from vidrnn.batches import SequenceBatch
from vidrnn.objectives import ORDER_CLASSES
from vidrnn.models.temporal import Cell, EncoderOutput, Inputs, Pooling, TemporalEncoder, reverse_padded

__all__ = ["VideoClassifier", "pretrained_encoder"]

logger = logging.getLogger(__name__)


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "mean_class_acc": MulticlassAccuracy(num_classes, average="macro"),
        },
        prefix=prefix,
        # Compute groups would merge metrics whose states happen to agree after the first batch (top-1 and top-5
        # when every first prediction is right), and report one metric's value under both names.
        compute_groups=False,
    )


#: Hyperparameters that fix the encoder's weights' shapes and meaning: a pretrained encoder must agree on all of them.
_ENCODER_SETTINGS = ("input_dim", "cell", "nonlinearity", "inputs", "kernel_size", "hidden_size", "num_layers",
                     "bidirectional", "projection", "input_norm", "pooling", "residual", "backbone")


def pretrained_encoder(path: str | Path, hparams: dict[str, Any]) -> dict[str, Tensor]:
    """The encoder weights of the checkpoint at ``path``, refused unless its encoder is built like ``hparams``'s.

    The backbone must match too: an encoder trained on one CNN's features means nothing on another's. Settings a
    checkpoint predates take their defaults.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    saved = checkpoint.get("hyper_parameters", {})
    defaults = {name: parameter.default for name, parameter in inspect.signature(VideoClassifier).parameters.items()}
    differing = [name for name in _ENCODER_SETTINGS
                 if saved.get(name, defaults[name]) != hparams.get(name, defaults[name])]
    if differing:
        detail = ", ".join(f"{name}: {saved.get(name, defaults[name])!r} there, {hparams.get(name, defaults[name])!r} here"
                           for name in differing)
        raise ValueError(f"{path}: its encoder differs from this model's ({detail})")
    prefix = "encoder."
    return {key[len(prefix):]: value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)}


class VideoClassifier(L.LightningModule):
    """A label per clip from a sequence of frame features.

    Args:
        num_classes, input_dim, class_names, backbone, sampling, steps: set from the data module by the CLI (they
            must match the features, and they travel in the checkpoint).
        cell: ``rnn`` (with ``nonlinearity`` tanh or relu), ``lstm``, ``gru``, ``conv`` (temporal convolution), or
            ``none`` for the non-recurrent mean-of-features baseline.
        inputs, kernel_size, hidden_size, num_layers, bidirectional, dropout, input_dropout, projection, input_norm,
            pooling, residual: the temporal encoder (see :class:`TemporalEncoder`). With ``residual`` the learned share of the recurrent
            output is logged as ``train/residual_scale``: how much temporal context the model chose to add.
        antisymmetric: arrow of time only (two classes, backwards and forwards): score a clip against itself played
            backwards, ``logits(x) - logits(reverse(x))``. Then reversing a clip exactly swaps its two
            probabilities, so the model is consistent by construction and an order-blind encoder is at 0.5 for
            every clip. ``step_probabilities`` reads the forward pass alone.
        head_dropout: dropout before the linear classifier.
        label_smoothing: cross-entropy label smoothing.
        init_from: a checkpoint whose encoder starts this model's encoder when fitting begins (temporal
            pretraining: fit on an order objective, then on the classes from there). Its encoder must have the same
            settings; its head is not used. Loaded in ``setup("fit")``, before Lightning restores a checkpoint to
            resume from, so resuming keeps the resumed weights, and never when a finished model is only loaded.
        optimizer, scheduler: from the config (class_path + init_args); default AdamW(lr=1e-3, weight_decay=0.01)
            and no scheduler.
    """

    def __init__(
        self,
        num_classes: int,
        input_dim: int,
        class_names: list[str] | None = None,
        backbone: dict[str, Any] | None = None,
        sampling: dict[str, Any] | None = None,
        steps: int = 16,
        cell: Cell = "lstm",
        nonlinearity: Literal["tanh", "relu"] = "tanh",
        inputs: Inputs = "frames",
        kernel_size: int = 3,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        input_dropout: float = 0.1,
        projection: int | None = 256,
        input_norm: bool = True,
        pooling: Pooling = "last",
        residual: bool = False,
        antisymmetric: bool = False,
        head_dropout: float = 0.2,
        label_smoothing: float = 0.1,
        init_from: str | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        arrow = ORDER_CLASSES["arrow_of_time"]
        if antisymmetric and (num_classes != 2 or (class_names is not None and tuple(class_names) != arrow)):
            raise ValueError(f"antisymmetric scores a clip against its reversal: for the arrow of time only (classes "
                             f"{', '.join(arrow)}), not {class_names or num_classes}")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.encoder = TemporalEncoder(
            input_dim, cell=cell, nonlinearity=nonlinearity, inputs=inputs, kernel_size=kernel_size,
            hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, input_dropout=input_dropout, projection=projection,
            input_norm=input_norm, pooling=pooling, residual=residual,
        )
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.encoder.output_dim, num_classes))
        self.loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.val_metrics = _metrics(num_classes, "val/")
        self.test_metrics = _metrics(num_classes, "test/")
        self.confusion = MulticlassConfusionMatrix(num_classes)
        #: Set by GradientNormLogger: keep the input features' gradient so per-time-step norms can be logged.
        self.track_input_gradients = False
        self.last_input_features: Tensor | None = None
        self.last_input_lengths: Tensor | None = None

    @property
    def class_names(self) -> list[str]:
        return self.hparams.class_names or [str(k) for k in range(self.hparams.num_classes)]

    def encode(self, features: Tensor, lengths: Tensor) -> EncoderOutput:
        """The encoder's pooled, per-step and attention outputs (for analysis and per-frame probabilities)."""
        return self.encoder(features, lengths)

    def forward(self, features: Tensor, lengths: Tensor) -> Tensor:
        """Clip logits ``[B,K]`` from padded features ``[B,T,D]`` and their lengths."""
        logits = self.head(self.encoder(features, lengths).pooled)
        if not self.hparams.antisymmetric:
            return logits
        return logits - self.head(self.encoder(reverse_padded(features, lengths), lengths).pooled)

    def step_probabilities(self, features: Tensor, lengths: Tensor) -> Tensor:
        """Class probabilities after each frame ``[B,T,K]``: the head applied to each step's encoder output.

        For ``pooling="last"`` with a unidirectional encoder, step ``t`` is exactly the prediction the model would make
        had the clip ended there; for other settings it is the head's reading of each step's representation.
        """
        return self.head(self.encoder(features, lengths).steps).softmax(-1)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.init_from is not None:
            self.encoder.load_state_dict(pretrained_encoder(self.hparams.init_from, self.hparams))
            logger.info("encoder initialised from %s", self.hparams.init_from)

    def training_step(self, batch: SequenceBatch, batch_index: int) -> Tensor:
        features = batch.features
        if self.track_input_gradients:
            features = features.clone().requires_grad_(True)
            features.retain_grad()
            self.last_input_features, self.last_input_lengths = features, batch.lengths
        logits = self(features, batch.lengths)
        loss = self.loss(logits, batch.labels)
        accuracy = (logits.argmax(-1) == batch.labels).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": accuracy}, prog_bar=True, batch_size=len(batch.labels))
        if self.encoder.residual_scale is not None:
            self.log("train/residual_scale", self.encoder.residual_scale.detach(), batch_size=len(batch.labels))
        return loss

    def _evaluate(self, batch: SequenceBatch, metrics: MetricCollection, prefix: str) -> Tensor:
        logits = self(batch.features, batch.lengths)
        loss = self.loss(logits, batch.labels)
        metrics.update(logits, batch.labels)
        # sync_dist: under DDP each rank sees a shard; the logged loss must be the mean over all of them.
        self.log(f"{prefix}loss", loss, prog_bar=True, batch_size=len(batch.labels), sync_dist=True)
        self.log_dict(metrics, prog_bar=True, batch_size=len(batch.labels))
        return logits

    def validation_step(self, batch: SequenceBatch, batch_index: int) -> None:
        self._evaluate(batch, self.val_metrics, "val/")

    def test_step(self, batch: SequenceBatch, batch_index: int) -> None:
        logits = self._evaluate(batch, self.test_metrics, "test/")
        self.confusion.update(logits, batch.labels)

    def on_test_epoch_end(self) -> None:
        from vidrnn.plots import save_confusion_matrix

        matrix = self.confusion.compute().cpu()
        self.confusion.reset()
        if self.trainer.is_global_zero and self.trainer.logger is not None and self.trainer.log_dir is not None:
            csv_path, png_path = save_confusion_matrix(matrix, self.class_names, Path(self.trainer.log_dir))
            logger.info("confusion matrix written to %s and %s", csv_path, png_path)

    def predict_step(self, batch: SequenceBatch, batch_index: int) -> dict[str, Any]:
        probabilities = self(batch.features, batch.lengths).softmax(-1)
        return {"keys": batch.keys, "probabilities": probabilities.cpu(), "labels": batch.labels.cpu()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Beside the hyperparameters (which must stay constructor arguments for LightningCLI), so tools opening a
        # checkpoint know which model it holds.
        checkpoint["task"] = "classification"

    def configure_optimizers(self) -> Any:
        if self.optimizer is None:
            optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)
        else:
            optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "epoch"}}
