"""Loading a vidrnn checkpoint: safely (``weights_only``), and with one clear error for any file that is not one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import lightning as L

__all__ = ["load_module"]

Module = TypeVar("Module", bound=L.LightningModule)


def load_module(module_class: type[Module], path: str | os.PathLike, **overrides: Any) -> Module:
    """``module_class`` restored from the Lightning checkpoint at ``path`` on the CPU, in eval mode.

    ``weights_only=True``: the file's tensors and plain values are read, no code in it runs. ``overrides`` replace
    saved hyperparameters. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for one
    that cannot be loaded as ``module_class`` (torch reports foreign or corrupt files with many exception types).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        module = module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True, **overrides)
    except Exception as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(f"{path} cannot be loaded as a {module_class.__name__} checkpoint: "
                         f"{type(error).__name__}: {first_line}") from error
    return module.eval()
