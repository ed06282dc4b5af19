"""Loading a vidrnn checkpoint: safely (``weights_only``), and with one clear error for any file that is not one, or
is one of the other task's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import lightning as L

__all__ = ["CLASSIFICATION", "TRACKING", "differing_settings", "load_checkpoint", "load_module", "require_task"]

Module = TypeVar("Module", bound=L.LightningModule)

#: The ``task`` each model's checkpoints record: here, so that code below the model classes (the migration of older
#: checkpoints, :mod:`vidrnn.models.upgrade`) names a task without importing them.
CLASSIFICATION, TRACKING = "classification", "tracking"

#: How a checkpoint of each task is made: said to whoever gives a command the other task's.
_MADE_BY = {
    CLASSIFICATION: "vidrnn fit on a classification config, such as configs/demo.yaml",
    TRACKING: "vidrnn fit on a tracking config (task: tracking, or --task tracking), such as configs/track.yaml",
}


#: What every checkpoint a Lightning fit of a vidrnn model saves holds: its weights and the settings to rebuild it.
_SAVED_BY_FIT = ("state_dict", "hyper_parameters")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint file at ``path`` as plain values (``weights_only=True``: no code in it runs).

    ``ValueError`` naming the file when it is not a PyTorch checkpoint or is corrupt — in place of torch's own
    message, whose advice for a file it cannot read is to load it with ``weights_only=False``: to run what is in it.
    """
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if not _unreadable(error):
            raise
        raise ValueError(f"{path} is not a PyTorch checkpoint of plain values (code in a file is never run), or it is corrupt "
                         f"({type(error).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (it holds a {type(checkpoint).__name__})")
    missing = [key for key in _SAVED_BY_FIT if key not in checkpoint]
    if missing:
        raise ValueError(f"{path} is not a checkpoint of vidrnn fit: it holds no {' or '.join(missing)} (weights saved "
                         "alone, as torch.save(model.state_dict()) saves them, carry no settings to rebuild the model "
                         "with: use the run's checkpoints/best.ckpt)")
    return checkpoint


def require_task(checkpoint: dict[str, Any], task: str, path: str | os.PathLike) -> None:
    """Refuse the checkpoint at ``path`` when it records another task than ``task`` (``classification`` or
    ``tracking``), saying which it is and what is needed.

    Loaded anyway, the other task's checkpoint fails on its weights or its hyperparameters, with a message about
    neither (``Error(s) in loading state_dict``, a missing ``num_classes``). A checkpoint that records no task was not
    saved by vidrnn's models: loading it says what is wrong with it.
    """
    saved = checkpoint.get("task")
    if saved is not None and saved != task:
        raise ValueError(f"{path} is a {saved} checkpoint; this command needs a {task} one (trained with "
                         f"{_MADE_BY[task]})")


def differing_settings(there: Mapping[str, Any], here: Mapping[str, Any], prefix: str) -> list[str]:
    """Each setting recorded both with a checkpoint (``there``) and in this command's settings (``here``) whose values
    differ, as ``PREFIX.NAME: A there, B here``; records within records compared setting by setting, a class by its
    ``class_path``. A setting one side lacks is not compared: the checkpoint is older than the setting, or the
    setting is not the checkpoint's to say (one linked from the data)."""
    differing = []
    for name in [name for name in there if name in here]:
        saved, given, setting = there[name], here[name], f"{prefix}.{name}"
        if isinstance(saved, Mapping) and isinstance(given, Mapping):
            differing += differing_settings(saved, given, setting)
        elif _plain(saved) != _plain(given):
            differing.append(f"{setting}: {_shown(saved)} there, {_shown(given)} here")
    return differing


def _plain(value: Any) -> Any:
    """A tuple as the list a YAML or JSON record holds it as."""
    return list(value) if isinstance(value, tuple) else value


def _shown(value: Any) -> Any:
    """A class given as ``class_path`` and ``init_args`` by its class; anything else as it is."""
    return value.get("class_path", value) if isinstance(value, Mapping) else value


def load_module(module_class: type[Module], path: str | os.PathLike, **overrides: Any) -> Module:
    """``module_class`` restored from the Lightning checkpoint at ``path`` on the CPU, in eval mode.

    ``weights_only=True``: the file's tensors and plain values are read, no code in it runs. ``overrides`` replace
    saved hyperparameters. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for one
    that is no checkpoint (:func:`load_checkpoint`), one of another task than ``module_class.TASK``
    (:func:`require_task`), or one that cannot be loaded as ``module_class`` otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    require_task(load_checkpoint(path), module_class.TASK, path)
    try:
        module = module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True, **overrides)
    except Exception as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(f"{path} cannot be loaded as a {module_class.__name__} checkpoint: "
                         f"{type(error).__name__}: {first_line}") from error
    return module.eval()


def _unreadable(error: Exception) -> bool:
    """Whether ``torch.load`` failed because the file is no checkpoint it can read (not a zip or pickle, truncated,
    holding objects that ``weights_only`` refuses, or bytes its unpickler trips on with a ``KeyError``): anything but
    the file system's own errors. torch's advice for such a file, ``weights_only=False``, is never the answer for a
    file from elsewhere."""
    return not isinstance(error, (OSError, MemoryError))
