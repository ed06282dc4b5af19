"""Where tensors go: one rule for the ``device`` option of every command, data module and loader."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` means CUDA when available, else the CPU; anything else is taken as a torch device name.

    A CUDA device without an index is the GPU of this process's ``LOCAL_RANK`` (0 when unset): under ``torchrun`` or
    Lightning's DDP every process on a node would otherwise crowd onto ``cuda:0``. An explicit index is kept as given.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device
