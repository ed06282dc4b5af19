"""Where tensors go: one rule for the ``device`` option of every command, data module and loader; and how results
come back from a GPU without holding up the CPU."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device", "start_copy_to_host"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` means CUDA when available, else the CPU; anything else is taken as a torch device name.

    A CUDA device without an index is the GPU of this process's ``LOCAL_RANK`` (0 when unset): under ``torchrun`` or
    Lightning's DDP every process on a node would otherwise crowd onto ``cuda:0``. An explicit index is kept as given.
    A CUDA device this machine does not have is a ``ValueError`` now, not an error from deep inside the first
    operation that uses it.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        seen = f"only {torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "no CUDA device"
        raise ValueError(f"device {device}, but PyTorch sees {seen}: use auto or cpu")
    return device


def start_copy_to_host(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying a GPU tensor to the host without waiting for it: into pinned memory, on the current stream of the
    tensor's own GPU (which need not be the current device: ``--device cuda:1`` on one process). The event marks when
    the copy is there; waiting on it sleeps (a blocking event) where ``.cpu()`` would spin a core that the decoding
    processes need. A tensor on the host comes back as it is, with no event."""
    if tensor.device.type != "cuda":
        return tensor.cpu(), None
    with torch.cuda.device(tensor.device):
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        copied = torch.cuda.Event(blocking=True)
        copied.record()
    return host, copied
