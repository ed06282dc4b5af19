"""Checkpoints saved by an older vidrnn: how each task's older shape is told, refused and converted.

The one home of checkpoint migration, for both tasks, and what ``vidrnn upgrade`` calls (:func:`upgrade_checkpoint`).
Lightning drops hyperparameters a class no longer takes, so a checkpoint of an older shape would load with default
settings (silently, where the shapes of the weights happen to match): the models refuse it on every load
(:func:`require_current_classifier`, :func:`require_current_tracker`), and a tracker's load that can convert it
(:func:`tracker_overrides`) does.

It sits below the model classes, which call it as they load, and above what it converts with
(:class:`~vidrnn.models.temporal.EncoderSpec`), so it names the tasks by :mod:`vidrnn.checkpoints`' constants.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vidrnn.checkpoints import CLASSIFICATION, TRACKING, load_checkpoint, require_task
from vidrnn.files import atomic_write
from vidrnn.models.temporal import EncoderSpec
from vidrnn.pipeline import PipelineSpec
from vidrnn.tracker.settings import TrackerSettings

__all__ = [
    "CONVERT", "current_tracker_hyperparameters", "is_tracker_checkpoint", "require_current_classifier",
    "require_current_tracker", "tracker_settings_one_by_one", "tracker_overrides", "upgrade_checkpoint",
]

#: How to make a checkpoint of an older shape one that every command reads.
CONVERT = "convert it once with: vidrnn upgrade OLD.ckpt NEW.ckpt"

#: Hyperparameters of classifier checkpoints saved before the encoder and the pipeline travelled as one record each.
_FLAT_ENCODER = ("cell", "nonlinearity", "inputs", "kernel_size", "hidden_size", "num_layers", "bidirectional",
                 "dropout", "input_dropout", "projection", "input_norm", "pooling", "residual")
_FLAT_PIPELINE = ("backbone", "sampling", "steps")

#: Hyperparameters of tracker checkpoints saved before the settings travelled as one record (``tracker``).
_SEPARATE_SETTINGS = ("backbone", "geometry", "template_cells", "template_rate", "scale_rate", "hold_below")


def require_current_classifier(hparams: dict[str, Any]) -> None:
    """Refuse, saying how to convert them, a classifier checkpoint's ``hparams`` in the shape saved before
    ``encoder`` and ``pipeline`` were records (their settings one by one).

    Loading them as they are would be wrong silently: the encoder would be built with default settings, and when its
    shapes happen to match, the weights would load.
    """
    if "encoder" not in hparams and any(name in hparams for name in _FLAT_ENCODER + _FLAT_PIPELINE):
        raise ValueError("saved by an older vidrnn, with the encoder's settings one by one (cell, hidden_size, ...) "
                         f"instead of under encoder; {CONVERT}")


def tracker_settings_one_by_one(hparams: dict[str, Any]) -> bool:
    """Whether a tracker checkpoint's ``hparams`` store the tracker's settings one by one (the older shape)."""
    return "tracker" not in hparams and any(name in hparams for name in _SEPARATE_SETTINGS)


def require_current_tracker(hparams: dict[str, Any]) -> None:
    """Refuse, saying how to convert them, a tracker checkpoint's ``hparams`` in the shape that stored the tracker's
    settings one by one: LightningCLI merges a checkpoint's hyperparameters into the config, which no longer has those
    keys, and failed on them without saying why."""
    if tracker_settings_one_by_one(hparams):
        raise ValueError("saved by an older vidrnn, with the tracker's settings one by one (backbone, geometry, "
                         f"template_rate, ...) instead of under tracker; {CONVERT}")


def is_tracker_checkpoint(checkpoint: dict[str, Any]) -> bool:
    """Whether ``checkpoint`` holds a tracker: its recorded task, or, in a checkpoint saved before the task was
    recorded (every one of the older shape), settings only a tracker has."""
    if "task" in checkpoint:
        return checkpoint["task"] == TRACKING
    hparams = checkpoint.get("hyper_parameters", {})
    return "tracker" in hparams or any(name in hparams for name in _SEPARATE_SETTINGS if name != "backbone")


def current_tracker_hyperparameters(hparams: dict[str, Any]) -> dict[str, Any]:
    """A tracker checkpoint's ``hparams`` in today's shape: the settings of one saved before they were one record,
    stored one by one, become ``tracker`` (``hold_below`` absent: saved before it existed, so it never held); today's
    shape as it is. Lightning would drop those settings for the defaults, which its head never read."""
    if not tracker_settings_one_by_one(hparams):
        return dict(hparams)
    values = {name: hparams[name] for name in _SEPARATE_SETTINGS if hparams.get(name) is not None}
    rest = {name: value for name, value in hparams.items() if name not in _SEPARATE_SETTINGS}
    return {**rest, "tracker": TrackerSettings.from_dict({"hold_below": 0.0, **values}).to_dict()}


def tracker_overrides(hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters to load a tracker checkpoint's ``hparams`` with so that it tracks as it was trained: its
    settings as one ``tracker`` record where they were stored one by one; none for today's shape."""
    if not tracker_settings_one_by_one(hparams):
        return {}
    return {"tracker": current_tracker_hyperparameters(hparams)["tracker"]}


def upgrade_checkpoint(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Write the classifier or tracker checkpoint at ``source`` to ``target`` with its hyperparameters in today's
    shape; weights, optimiser state and everything else copied as they are (``vidrnn upgrade``). ``ValueError`` for
    one already in today's shape, or no vidrnn checkpoint."""
    checkpoint = load_checkpoint(source)
    if is_tracker_checkpoint(checkpoint):
        _upgrade_tracker(checkpoint, source)
    else:
        _upgrade_classifier(checkpoint, source)
    atomic_write(Path(target), lambda file: torch.save(checkpoint, file))


def _upgrade_tracker(checkpoint: dict[str, Any], source: str | os.PathLike) -> None:
    """The tracker ``checkpoint`` read from ``source`` with its settings as one record, in place."""
    require_task(checkpoint, TRACKING, source)
    if not tracker_settings_one_by_one(checkpoint.get("hyper_parameters", {})):
        raise ValueError(f"{source} is already in today's shape")
    checkpoint["hyper_parameters"] = current_tracker_hyperparameters(checkpoint["hyper_parameters"])


def _upgrade_classifier(checkpoint: dict[str, Any], source: str | os.PathLike) -> None:
    """The classifier ``checkpoint`` read from ``source`` in today's shape, in place: the flat encoder settings become
    ``encoder`` (settings the checkpoint predates keep the values they had then: their defaults, which are today's),
    ``backbone``, ``sampling`` and ``steps`` become ``pipeline`` (left out when the checkpoint lacks the specs)."""
    require_task(checkpoint, CLASSIFICATION, source)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    if "encoder" in hparams:
        raise ValueError(f"{source} is already in today's shape")
    hparams["encoder"] = EncoderSpec.from_dict({name: hparams.pop(name) for name in _FLAT_ENCODER
                                                if name in hparams}).to_dict()
    backbone, sampling, steps = hparams.pop("backbone", None), hparams.pop("sampling", None), hparams.pop("steps", 16)
    if backbone is not None and sampling is not None:
        # The CNN batch its features were extracted in: the data module's setting, saved beside (else the default).
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        batch = {"extract_batch_size": data["extract_batch_size"]} if "extract_batch_size" in data else {}
        pipeline = PipelineSpec.from_dict({"backbone": backbone, "sampling": sampling, "steps": steps, **batch})
        hparams["pipeline"] = pipeline.to_dict()
    checkpoint["hyper_parameters"] = hparams
