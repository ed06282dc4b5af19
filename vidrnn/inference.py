"""Classifying new videos with a trained checkpoint, exactly as training and ``vidrnn test`` saw its clips.

A :class:`~vidrnn.models.classifier.VideoClassifier` checkpoint carries everything inference needs: class names and
the preprocessing pipeline (:class:`~vidrnn.pipeline.PipelineSpec`: backbone spec, sampling spec, number of time
steps). :class:`Predictor` replays the training pipeline on new input, step for step:

1. choose frame indices with the checkpoint's :class:`~vidrnn.sampling.SamplingSpec`, keep the centred ``steps`` of
   them (:func:`~vidrnn.sampling.segment_indices` without a generator: what the data module's evaluation loaders read
   of a cached clip) and decode those at its size (the same :func:`~vidrnn.video.read_sampled` call feature extraction makes, in
   decoding processes): memory stays at ``steps`` frames a video however long it is;
2. run the frozen CNN in fixed-size batches packed across videos (the extractor's batcher, so a frame's features do
   not depend on its batch neighbours), of the size the training features were extracted in (the checkpoint's
   ``extract_batch_size``: a batch of another size rounds them differently);
3. round the features through float16, because the feature cache stores float16 — without this, predictions would
   differ slightly from what ``vidrnn test`` reports for the same clip;
4. run the recurrent classifier.

Unreadable videos become :class:`PredictionFailure` values instead of exceptions, so a batch of thousands goes on.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from vidrnn.backbones import FrozenBackbone, build_backbone, feature_precision
from vidrnn.batches import collate_sequences
from vidrnn.checkpoints import load_checkpoint, load_module
from vidrnn.devices import resolve_device, start_copy_to_host
from vidrnn.embedding import EmbeddedVideo, FailedVideo, FixedBatcher, VideoItem, embed_videos
from vidrnn.models.classifier import VideoClassifier
from vidrnn.pipeline import EXTRACT_BATCH_SIZE, PipelineSpec
from vidrnn.sampling import SamplingSpec, segment_indices
from vidrnn.video import CutShort, resize_frame

__all__ = ["Prediction", "PredictionFailure", "Predictor"]

#: :meth:`Predictor.predict` runs the recurrent classifier over the clips finished so far together, once there are this
#: many or the first of them has waited ``CLASSIFY_WAIT_S`` seconds (checked whenever a video finishes, embedded or
#: failed): one clip at a time, its few small operations and three copies back to the host cost a GPU ~8 ms a clip —
#: more than the CNN and the decoders (82 clips/s against 320 on an H200); the wait is bounded so that a slow machine
#: still hands out results as they come.
CLASSIFY_GROUP = 64
CLASSIFY_WAIT_S = 1.0


@dataclasses.dataclass
class Prediction:
    """The model's reading of one video.

    ``probabilities [K]``: class probabilities for the clip. ``top_labels`` / ``top_probabilities``: the ``top_k``
    most likely classes, best first. ``frame_indices [t]``: the source frames the classifier saw (after sampling and
    the centred ``steps``); ``frames_used`` is their number. ``duration``: seconds, from the probe (0 for frames
    passed in directly without a frame rate). ``step_probabilities [t,K]``: the head applied after each step
    (:meth:`VideoClassifier.step_probabilities`); ``step_outputs [t,H]``: the encoder's per-step outputs.
    ``cut_short``: where the video held far fewer frames than its container states (a truncated file, classified
    from the frames it holds, with a warning), how many it held of how many; else None.
    """

    path: str | None
    probabilities: np.ndarray
    top_labels: list[str]
    top_probabilities: np.ndarray
    frame_indices: np.ndarray
    duration: float
    step_probabilities: np.ndarray
    step_outputs: np.ndarray
    cut_short: CutShort | None = None

    ok: ClassVar[bool] = True

    @property
    def frames_used(self) -> int:
        return len(self.frame_indices)

    @property
    def label(self) -> str:
        """The most likely class."""
        return self.top_labels[0]


@dataclasses.dataclass
class PredictionFailure:
    """A video that could not be classified, and why (the decoder's :class:`~vidrnn.video.VideoReadError` reason)."""

    path: str
    reason: str

    ok: ClassVar[bool] = False


def _as_cached(features: torch.Tensor) -> np.ndarray:
    """The features as a round trip through the cache would return them: float16 storage, float32 for the model."""
    return features.numpy().astype(np.float16).astype(np.float32)


class Predictor:
    """A trained classifier with its frozen backbone, sampling and step count, ready for new videos.

    Build it with :meth:`from_checkpoint`. ``batch_size`` is the number of frames per CNN batch the predictions run
    with unless told otherwise: from a checkpoint, the batch its training features were extracted in (its
    ``data.extract_batch_size``; for an older checkpoint the data module's setting saved beside it, else 32), which gives results that match
    ``vidrnn test`` to the last bit.
    """

    def __init__(self, model: VideoClassifier, backbone: FrozenBackbone, sampling: SamplingSpec, steps: int,
                 device: torch.device, batch_size: int = EXTRACT_BATCH_SIZE) -> None:
        self.model = model.eval().to(device)
        self.backbone = backbone.to(device)
        self.sampling, self.steps, self.device, self.batch_size = sampling, steps, device, batch_size

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto") -> Predictor:
        """Load a ``VideoClassifier`` checkpoint (``weights_only``: no code runs from the file) and its backbone.

        Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a classifier
        checkpoint, or one that does not record the backbone or sampling it was trained with (those cannot be
        guessed without silently wrong predictions).
        """
        model = load_module(VideoClassifier, path)
        pipeline = model.pipeline
        if pipeline is None:
            raise ValueError(f"checkpoint {path} does not record its backbone and sampling specs; it cannot classify "
                             "videos (train it with the data module linked, as 'vidrnn fit' does)")
        device = resolve_device(device)
        _warn_if_other_precision(path, pipeline, device)
        return cls(model, build_backbone(pipeline.backbone), pipeline.sampling, pipeline.steps, device,
                   _extraction_batch_size(path, model))

    def _batch_size(self, batch_size: int | None) -> int:
        """The batch size a call asked for, else the one its features were trained with (:attr:`batch_size`)."""
        return self.batch_size if batch_size is None else batch_size

    @property
    def class_names(self) -> list[str]:
        """Class names in the order of the probabilities."""
        return self.model.class_names

    # -- one clip already in memory --------------------------------------------------------------------------------

    def predict_frames(self, frames: np.ndarray, fps: float | None = None, *, top_k: int = 5,
                       batch_size: int | None = None) -> Prediction:
        """Classify a whole clip the caller decoded: uint8 RGB ``[T,H,W,3]``, every frame, in order.

        The checkpoint's sampling and steps pick frames from these as they would from the file (``fps``, the source frame
        rate, is needed only for fps-based sampling and for the duration), and each picked frame is resized to the
        sampling's short side with the decoder's own resize (area interpolation when shrinking). ``batch_size``:
        frames per CNN batch (default: :attr:`batch_size`).
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"expected uint8 RGB frames [T,H,W,3] with T >= 1, got {frames.dtype} {frames.shape}")
        if self.sampling.strategy == "fps" and not fps:
            raise ValueError("this checkpoint samples frames by time (strategy 'fps'): pass the clip's fps")
        sampled = self.sampling.indices(len(frames), fps or 0.0)
        indices = sampled[segment_indices(len(sampled), self.steps)]
        resized = np.stack([resize_frame(frame, self.sampling.short_side) for frame in frames[indices]])
        decoded = {"indices": indices, "fps": fps or 0.0, "frames": len(frames), "cut_short": None}
        pending = EmbeddedVideo(VideoItem(Path("<frames>"), "<frames>"), decoded)
        crops = self.backbone.preprocess.resize_and_crop(resized)  # as in embed_videos: uint8, normalised in batches
        with FixedBatcher(self.backbone, self._batch_size(batch_size), self.device) as batcher:
            finished = batcher.add(pending, crops) + batcher.flush()
        return dataclasses.replace(self._classify(finished, top_k)[0], path=None)

    # -- many video files ------------------------------------------------------------------------------------------

    def predict(self, paths: Iterable[str | os.PathLike], *, batch_size: int | None = None,
                num_workers: int | None = None, top_k: int = 5) -> Iterator[Prediction | PredictionFailure]:
        """Classify video files, yielding one result per path as it finishes (not necessarily in input order; finished
        clips are classified a few at a time, see :data:`CLASSIFY_GROUP`). Clips already embedded when the run ends
        with an error (or Ctrl-C) are still yielded before the error goes on.

        Decoding runs in ``num_workers`` processes (default: one per available core) while the CNN runs here in
        batches of ``batch_size`` frames (default: :attr:`batch_size`) packed across videos. A video that cannot be
        read yields a :class:`PredictionFailure`; one that held far fewer frames than its container states is
        classified from the frames it holds, said in a warning naming it and in its prediction's ``cut_short``.
        """
        items = [VideoItem(Path(path), str(path)) for path in paths]
        finished: list[EmbeddedVideo] = []
        waiting_since = 0.0
        try:
            for video in embed_videos(items, self.sampling, self.backbone, device=self.device, steps=self.steps,
                                      batch_size=self._batch_size(batch_size), num_workers=num_workers):
                if isinstance(video, FailedVideo):
                    yield PredictionFailure(video.item.key, video.reason)
                else:
                    if video.decoded["cut_short"] is not None:
                        warnings.warn(f"{video.item.key}: {video.decoded['cut_short']}", stacklevel=2)
                    if not finished:
                        waiting_since = time.monotonic()
                    finished.append(video)
                if finished and (len(finished) >= CLASSIFY_GROUP
                                 or time.monotonic() - waiting_since >= CLASSIFY_WAIT_S):
                    group, finished = finished, []
                    yield from self._classify(group, top_k)
        except (Exception, KeyboardInterrupt):
            yield from self._classify(finished, top_k)  # the clips already embedded are not lost with the run
            raise
        yield from self._classify(finished, top_k)

    # -- the recurrent classifier ----------------------------------------------------------------------------------

    def _classify(self, finished: Sequence[EmbeddedVideo], top_k: int) -> list[Prediction]:
        """Run the classifier over videos whose CNN features are complete, as one padded batch."""
        if not finished:
            return []
        sequences = [(_as_cached(pending.features), 0, pending.item.key) for pending in finished]
        batch = collate_sequences(sequences)
        features = batch.features.to(self.device)
        with torch.no_grad():
            encoded = self.model.encode(features, batch.lengths)  # once, for the clips' and the steps' readings
            readings = (self.model.clip_logits(encoded, features, batch.lengths).softmax(-1),
                        self.model.step_probabilities(encoded), encoded.steps)
        copies = [start_copy_to_host(reading) for reading in readings]  # one wait for the three, not three
        if copies[-1][1] is not None:
            copies[-1][1].synchronize()
        # Copied out of pinned memory, which must not stay locked for as long as a caller keeps the predictions.
        probabilities, step_probabilities, step_outputs = (host.numpy().copy() for host, _ in copies)
        k = min(top_k, len(self.class_names))
        results = []
        for row, pending in enumerate(finished):
            length = len(pending.decoded["indices"])
            order = np.argsort(-probabilities[row], kind="stable")[:k]
            decoded = pending.decoded
            fps = float(decoded["fps"])
            results.append(Prediction(
                path=pending.item.key,
                probabilities=probabilities[row],
                top_labels=[self.class_names[i] for i in order],
                top_probabilities=probabilities[row][order],
                frame_indices=np.asarray(decoded["indices"]),
                duration=decoded["frames"] / fps if fps > 0 else 0.0,
                step_probabilities=step_probabilities[row, :length],
                step_outputs=step_outputs[row, :length],
                cut_short=decoded["cut_short"],
            ))
        return results


def _warn_if_other_precision(path: str | os.PathLike, pipeline: PipelineSpec, device: torch.device) -> None:
    """Say where ``device`` computes features at another precision than the training features of the checkpoint at
    ``path`` were made at (fp16 autocast on CUDA, fp32 elsewhere; unknown for a checkpoint older than that record):
    they round otherwise, so the predictions differ a little from those ``vidrnn test`` made on the training machine."""
    here = feature_precision(device)
    if pipeline.precision is not None and pipeline.precision != here:
        warnings.warn(f"{path}: its training features were made at {pipeline.precision}, this device computes {here}: "
                      "predictions may differ slightly from the trained model's scores (classify on a device of the "
                      "training's kind to match them)", stacklevel=3)


def _extraction_batch_size(path: str | os.PathLike, model: VideoClassifier) -> int:
    """The CNN batch size the model's training features were extracted in: its pipeline record, or, for a checkpoint
    saved before that record held it, the data module's setting Lightning saved beside it (configs/ucf101.yaml
    extracted in batches of 128), else :data:`~vidrnn.pipeline.EXTRACT_BATCH_SIZE`."""
    if "extract_batch_size" in (model.hparams.get("pipeline") or {}):
        return model.pipeline.extract_batch_size
    data = load_checkpoint(path).get("datamodule_hyper_parameters") or {}
    return int(data.get("extract_batch_size", EXTRACT_BATCH_SIZE))
