"""The tracker's networks: match a first-frame template in each search crop, then read the matches over time.

Per frame, the frozen CNN turns a search crop (see :mod:`vidrnn.search_region`) into a feature map. The target's
appearance is taken once, from the first frame's map, with ``torchvision.ops.roi_align`` on its box. A normalised
cross-correlation of that template over each new map gives a **response map**: high where the frame looks like the
target. Its peak alone is a tracker — the *matching-only* ablation, no training at all (:func:`peak_positions`).

:class:`RecurrentBoxHead` reads, frame after frame, the whole response map, its peak and the search region's scale,
and regresses the box as a correction to the peak. What a recurrent state can add that a single frame cannot:
motion continuity (a second peak far from where the target was heading is a distractor), memory through occlusion
(when the response collapses, keep the course), and a size that changes smoothly. ``cell="none"`` gives the same
head without recurrence (a per-frame MLP), so the table can separate "learned" from "recurrent".
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from vidrnn.models.temporal import _RNN_CLASSES

__all__ = ["RecurrentBoxHead", "TemplateMatcher", "TrackerCell", "peak_positions", "xywh_to_xyxy"]

TrackerCell = Literal["rnn", "lstm", "gru", "none"]


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    return torch.cat([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], dim=-1)


class TemplateMatcher(nn.Module):
    """Template extraction (``roi_align``) and normalised cross-correlation over a feature map.

    Normalised (zero mean, unit norm, per template and per map patch) so the response is a cosine similarity in
    ``[-1, 1]`` that does not depend on how bright or contrasted a frame is — the scale a head can learn thresholds on.
    """

    def __init__(self, template_cells: int = 5) -> None:
        super().__init__()
        if template_cells < 1 or template_cells % 2 == 0:
            raise ValueError(f"template_cells must be a positive odd number (a centred kernel), got {template_cells}")
        self.template_cells = template_cells

    def template(self, maps: Tensor, boxes: Tensor) -> Tensor:
        """Pool ``maps [N,C,H,W]`` inside crop-normalised ``boxes [N,4]`` (``x,y,w,h``) to ``[N,C,k,k]``."""
        height, width = maps.shape[-2:]
        scale = boxes.new_tensor([width, height, width, height])
        rois = torch.cat([torch.arange(len(boxes), device=maps.device, dtype=maps.dtype)[:, None],
                          xywh_to_xyxy(boxes.to(maps.dtype)) * scale], dim=1)
        return roi_align(maps, rois, output_size=self.template_cells, spatial_scale=1.0, sampling_ratio=-1,
                         aligned=True)

    def forward(self, maps: Tensor, templates: Tensor) -> Tensor:
        """Response ``[N,H,W]``: cosine similarity of each map patch with its own template (row ``i`` with ``i``)."""
        count, channels, height, width = maps.shape
        size = self.template_cells
        template = templates - templates.mean(dim=(1, 2, 3), keepdim=True)
        template = template / template.flatten(1).norm(dim=1).clamp_min(1e-6)[:, None, None, None]
        dot = F.conv2d(maps.reshape(1, count * channels, height, width), template, padding=size // 2, groups=count)
        ones = maps.new_ones(1, channels, size, size)
        patch_sum = F.conv2d(maps, ones, padding=size // 2)
        patch_square_sum = F.conv2d(maps * maps, ones, padding=size // 2)
        variance = patch_square_sum - patch_sum**2 / (channels * size * size)
        return (dot.reshape(count, 1, height, width) / variance.clamp_min(1e-6).sqrt()).squeeze(1)


def peak_positions(response: Tensor) -> tuple[Tensor, Tensor]:
    """The response's maximum per map: crop-normalised ``(u, v)`` ``[N,2]`` and its value ``[N]``.

    Refined below one cell by a parabola through the peak and its neighbours on each axis, so a stride-16 map does not
    quantise positions to 16-pixel steps.
    """
    count, height, width = response.shape
    flat_index = response.flatten(1).argmax(dim=1)
    row, col = flat_index // width, flat_index % width
    rows = torch.arange(count, device=response.device)

    def offset(values_before: Tensor, values_peak: Tensor, values_after: Tensor) -> Tensor:
        curvature = values_before - 2 * values_peak + values_after
        shift = 0.5 * (values_before - values_after) / torch.where(curvature < -1e-6, curvature, -1e-6)
        return shift.clamp(-0.5, 0.5)

    row_before, row_after = (row - 1).clamp(min=0), (row + 1).clamp(max=height - 1)
    col_before, col_after = (col - 1).clamp(min=0), (col + 1).clamp(max=width - 1)
    peak = response[rows, row, col]
    dy = offset(response[rows, row_before, col], peak, response[rows, row_after, col])
    dx = offset(response[rows, row, col_before], peak, response[rows, row, col_after])
    u = (col.to(response.dtype) + 0.5 + dx) / width
    v = (row.to(response.dtype) + 0.5 + dy) / height
    return torch.stack([u, v], dim=1), peak


class RecurrentBoxHead(nn.Module):
    """Per-frame match evidence ``[B,T,F]`` → boxes ``[B,T,4]`` (crop-normalised ``x, y, w, h``).

    Input per frame (see :meth:`evidence`): the response map, its refined peak and value, and the log of the box size
    the crop was cut for. The output is a correction to the peak (centre offset) and a log-scale change of that size,
    starting at exactly "peak, same size" (the last layer starts at zero), so training begins from the matching-only
    tracker and can only learn what improves on it.

    ``bidirectional`` reads the whole clip in both directions (offline analysis); the unidirectional head runs online,
    one frame at a time, carrying its ``state`` (:meth:`forward` with ``T = 1``).
    """

    def __init__(
        self,
        map_cells: int,
        cell: TrackerCell = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in ("rnn", "lstm", "gru", "none"):
            raise ValueError(f"cell must be rnn, lstm, gru or none, got {cell!r}")
        if cell == "none" and bidirectional:
            raise ValueError("cell='none' reads frames one by one: bidirectional needs a recurrent cell")
        self.cell, self.bidirectional = cell, bidirectional
        self.evidence_dim = map_cells * map_cells + 5
        self.embed = nn.Sequential(nn.Linear(self.evidence_dim, hidden_size), nn.ReLU())
        if cell == "none":
            self.rnn = None
            self.temporal = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU())
            out_dim = hidden_size
        else:
            self.rnn = _RNN_CLASSES[cell](
                hidden_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            out_dim = hidden_size * (2 if bidirectional else 1)
        self.out = nn.Linear(out_dim, 4)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def evidence(response: Tensor, reference_size: Tensor) -> Tensor:
        """Build one frame's input vector ``[N,F]`` from its response ``[N,H,W]`` and crop-normalised ``(w, h)``."""
        position, peak = peak_positions(response)
        return torch.cat([response.flatten(1), position, peak[:, None], reference_size.log()], dim=1)

    def _parts(self, evidence: Tensor) -> tuple[Tensor, Tensor]:
        """The peak position ``[...,2]`` and the searched-for size ``[...,2]`` recorded in the evidence."""
        cells = self.evidence_dim - 5
        return evidence[..., cells : cells + 2], evidence[..., -2:].exp()

    def peak_boxes(self, evidence: Tensor) -> Tensor:
        """The matching-only answer for the same evidence: the peak, at the searched-for size."""
        position, size = self._parts(evidence)
        return torch.cat([position - size / 2, size], dim=-1)

    def forward(self, evidence: Tensor, state: object = None) -> tuple[Tensor, object]:
        """Boxes ``[B,T,4]`` for evidence ``[B,T,F]``; returns the recurrent state after the last step too."""
        hidden = self.embed(evidence)
        if self.rnn is None:
            hidden, state = self.temporal(hidden), None
        else:
            hidden, state = self.rnn(hidden, state)
        correction = self.out(hidden)
        position, size = self._parts(evidence)
        centre = position + correction[..., :2] * size
        size = size * correction[..., 2:].clamp(-2.0, 2.0).exp()
        return torch.cat([centre - size / 2, size], dim=-1), state
