"""The tracker's networks: match a first-frame template in each search crop, then read the matches over time.

Per frame, the frozen CNN turns a search crop (see :mod:`vidrnn.search_region`) into a feature map. The target's
appearance is taken once, from the first frame's map, with ``torchvision.ops.roi_align`` on its box. A normalised
cross-correlation of that template over each new map gives a **response map**: high where the frame looks like the
target. Its peak alone is a tracker — the *matching-only* ablation, no training at all (:func:`peak_positions`).

:class:`RecurrentBoxHead` reads, frame after frame, a compact summary of each search — the strongest peaks of the
response, how well the template matches at five scales and four aspects around the best one, the size the search was
cut for (see :func:`match_evidence`) — and regresses the box as a correction to the peak. What a recurrent state can add that a single frame cannot:
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

__all__ = [
    "ASPECTS",
    "EVIDENCE_DIM",
    "MOTION_PRIOR",
    "SCALES",
    "RecurrentBoxHead",
    "TemplateMatcher",
    "TrackerCell",
    "best_scale",
    "match_evidence",
    "peak_positions",
    "peak_sharpness",
    "with_motion_prior",
    "xywh_to_xyxy",
]

TrackerCell = Literal["rnn", "lstm", "gru", "none"]

#: Relative target sizes at which the template is compared around the peak (the head's evidence of a size change).
SCALES = (0.8, 0.9, 1.0, 1.1, 1.25)
#: Width factors at which the template is compared around the peak at the searched-for area (height divided by the
#: same factor): the head's evidence of a change of aspect, which the matching-only box, scaled evenly, cannot follow.
ASPECTS = (0.8, 0.9, 1.1, 1.25)
#: Peaks reported per frame: the best one and the strongest rivals, where a distractor or the lost target may be.
PEAKS = 3
#: Largest log-size correction of the matching box's width or height. Generated targets change by about 0.005 per
#: frame on average and by up to ~0.06 where the frame's edge cuts their box. The bound dates from heads whose box
#: placed the next search, where an unbounded size compounded its errors (a box grew 14-fold in 40 frames on a real
#: sequence); now the matching box steers, and the bound keeps a head that meets unfamiliar evidence near it.
MAX_SCALE_STEP = 0.1
#: Weight of the motion prior on the response: a Hann window centred where the search was placed (the previous
#: matching box) is added as ``MOTION_PRIOR * (window - 1)`` when choosing the peak, so a rival at the crop's edge
#: must beat the target by up to this much cosine similarity to win — SiamFC's cosine window. Chosen among 0, 0.2,
#: 0.4, 0.6, 0.8, 1 on the generated training and validation sequences: matching-only success AUC 0.711 and 0.753 at
#: 0, 0.751 and 0.765 at 0.6, flat from there to 1 (0.753, 0.765); the smallest weight on that plateau.
MOTION_PRIOR = 0.6
#: Length of one frame's evidence vector (see :func:`match_evidence`).
EVIDENCE_DIM = 3 * PEAKS + len(SCALES) + len(ASPECTS) + 2 + 2
#: Length of what the head reads of it (see :func:`level_free`).
LEVEL_FREE_DIM = 3 * PEAKS + len(SCALES) + len(ASPECTS) + 2


def best_scale(evidence: Tensor) -> Tensor:
    """The relative size among :data:`SCALES` at which the template matches best, per frame: ``[...]`` from
    evidence ``[..., EVIDENCE_DIM]``."""
    similarities = evidence[..., 3 * PEAKS:3 * PEAKS + len(SCALES)]
    return evidence.new_tensor(SCALES)[similarities.argmax(dim=-1)]


def _heights(values: Tensor, evidence: Tensor) -> Tensor:
    """Response values ``[..., K]`` as heights above the frame's response mean, in units of its spread."""
    return (values - evidence[..., -4:-3]) / evidence[..., -3:-2].clamp_min(1e-3)


def peak_sharpness(evidence: Tensor) -> Tensor:
    """How far the best peak stands out of its response, per frame: ``[...]`` from evidence ``[..., EVIDENCE_DIM]``.

    The peak's height above the response's mean in standard deviations — MOSSE's peak-to-sidelobe ratio in spirit.
    It does not depend on how bright, blurred or changed the frame is, only on whether one place clearly looks like
    the template: it collapses when the target is hidden (on generated sequences a median of 8 in frames where the
    target is clear, under 3 where the occluder hides most of it).
    """
    return _heights(evidence[..., 2:3], evidence)[..., 0]


def level_free(evidence: Tensor) -> Tensor:
    """The head's view of the evidence ``[..., EVIDENCE_DIM]``: what it says about *where* and *how large*, without
    how strongly the frame resembles the template overall → ``[..., LEVEL_FREE_DIM]``.

    The level of the cosine similarities moves with everything that is not the target's position — lighting, blur,
    the camera's noise, how far the appearance has drifted from the first frame — and generated training clips and
    real footage differ most in exactly that. So the head reads the peaks as heights above the response's mean in
    units of its spread (:func:`peak_sharpness` for each) and the scale and aspect similarities as differences from
    the similarity at the searched-for size; positions and the searched-for size are kept as they are.
    """
    peaks = 3 * PEAKS
    positions = evidence[..., :peaks].unflatten(-1, (PEAKS, 3))
    heights = _heights(positions[..., 2], evidence)
    shapes = evidence[..., peaks:peaks + len(SCALES) + len(ASPECTS)]
    at_reference = shapes[..., SCALES.index(1.0):SCALES.index(1.0) + 1]
    return torch.cat([positions[..., :2].flatten(-2), heights, shapes - at_reference, evidence[..., -2:]], dim=-1)


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    return torch.cat([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], dim=-1)


class TemplateMatcher(nn.Module):
    """Template extraction (``roi_align``) and normalised cross-correlation over a feature map.

    Normalised (zero mean, unit norm, per template and per map patch) so the response is a cosine similarity in
    ``[-1, 1]`` that does not depend on how bright or contrasted a frame is — the scale a head can learn thresholds on.

    The template is shaped like the target: about ``template_cells`` cells on the side of a square box, with
    ``rows / cols`` following the box's aspect (a pedestrian 1:3 box gives ``9 x 3`` at 5 cells). A square template
    of a tall target is mostly background, and its best match is wherever that background recurs. On the generated
    validation sequences the shaped template lifted matching-only success AUC from 0.818 to 0.837 at a 320-px crop
    (see ``benchmarks/RESULTS.md`` for the whole grid).
    """

    def __init__(self, template_cells: int = 5) -> None:
        super().__init__()
        if template_cells < 1 or template_cells % 2 == 0:
            raise ValueError(f"template_cells must be a positive odd number (a centred kernel), got {template_cells}")
        self.template_cells = template_cells

    def kernel_shape(self, box: Tensor) -> tuple[int, int]:
        """``(rows, cols)`` of the template for a box ``(x, y, w, h)``: odd (a centred kernel), ``rows x cols`` close
        to ``template_cells**2`` and ``cols / rows`` close to ``w / h``."""
        aspect = float(box[2] / box[3])

        def nearest_odd(value: float) -> int:
            return max(1, 2 * round((value - 1) / 2) + 1)

        return nearest_odd(self.template_cells / aspect**0.5), nearest_odd(self.template_cells * aspect**0.5)

    def template(self, maps: Tensor, boxes: Tensor, shape: tuple[int, int] | None = None) -> Tensor:
        """Pool ``maps [N,C,H,W]`` inside crop-normalised ``boxes [N,4]`` (``x,y,w,h``) to ``[N,C,rows,cols]``.

        ``shape`` defaults to :meth:`kernel_shape` of the first box: templates that are correlated together in one
        batch share one kernel shape, so pass one box per target (or the shape of the template being updated).
        """
        height, width = maps.shape[-2:]
        scale = boxes.new_tensor([width, height, width, height])
        rois = torch.cat([torch.arange(len(boxes), device=maps.device, dtype=maps.dtype)[:, None],
                          xywh_to_xyxy(boxes.to(maps.dtype)) * scale], dim=1)
        shape = tuple(shape) if shape is not None else self.kernel_shape(boxes[0])
        return roi_align(maps, rois, output_size=shape, spatial_scale=1.0, sampling_ratio=-1, aligned=True)

    def similarity(self, maps: Tensor, templates: Tensor, boxes: Tensor) -> Tensor:
        """Cosine similarity (zero-mean) of each template with the map pooled inside ``boxes [N,4]`` → ``[N]``."""
        pooled = self.template(maps, boxes, templates.shape[-2:])
        centred = [value - value.mean(dim=(1, 2, 3), keepdim=True) for value in (pooled, templates)]
        return F.cosine_similarity(centred[0].flatten(1), centred[1].flatten(1), dim=1, eps=1e-6)

    def forward(self, maps: Tensor, templates: Tensor) -> Tensor:
        """Response ``[N,H,W]``: cosine similarity of each map patch with its own template (row ``i`` with ``i``)."""
        count, channels, height, width = maps.shape
        rows, cols = templates.shape[-2:]
        padding = (rows // 2, cols // 2)
        template = templates - templates.mean(dim=(1, 2, 3), keepdim=True)
        template = template / template.flatten(1).norm(dim=1).clamp_min(1e-6)[:, None, None, None]
        dot = F.conv2d(maps.reshape(1, count * channels, height, width), template, padding=padding, groups=count)
        ones = maps.new_ones(1, channels, rows, cols)
        patch_sum = F.conv2d(maps, ones, padding=padding)
        patch_square_sum = F.conv2d(maps * maps, ones, padding=padding)
        variance = patch_square_sum - patch_sum**2 / (channels * rows * cols)
        return (dot.reshape(count, 1, height, width) / variance.clamp_min(1e-6).sqrt()).squeeze(1)


def _refine(response: Tensor, row: Tensor, col: Tensor) -> tuple[Tensor, Tensor]:
    """Crop-normalised ``(u, v)`` of cells ``(row, col)``, refined below one cell by a parabola on each axis."""
    count, height, width = response.shape
    rows = torch.arange(count, device=response.device)

    def offset(before: Tensor, peak: Tensor, after: Tensor) -> Tensor:
        curvature = before - 2 * peak + after
        shift = 0.5 * (before - after) / torch.where(curvature < -1e-6, curvature, -1e-6)
        return shift.clamp(-0.5, 0.5)

    peak = response[rows, row, col]
    dy = offset(response[rows, (row - 1).clamp(min=0), col], peak, response[rows, (row + 1).clamp(max=height - 1), col])
    dx = offset(response[rows, row, (col - 1).clamp(min=0)], peak, response[rows, row, (col + 1).clamp(max=width - 1)])
    u = (col.to(response.dtype) + 0.5 + dx) / width
    v = (row.to(response.dtype) + 0.5 + dy) / height
    return torch.stack([u, v], dim=1), peak


def peak_positions(response: Tensor, choice: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The response's maximum per map: crop-normalised ``(u, v)`` ``[N,2]`` and its value ``[N]``.

    Refined below one cell by a parabola through the peak and its neighbours on each axis, so a stride-16 map does not
    quantise positions to 16-pixel steps. ``choice`` (same shape) picks the cell instead — the response with a motion
    prior (:func:`with_motion_prior`) — while position and value still come from ``response``: the prior decides
    which peak is the target, and does not pull the chosen peak towards the centre.
    """
    width = response.shape[-1]
    flat_index = (response if choice is None else choice).flatten(1).argmax(dim=1)
    return _refine(response, flat_index // width, flat_index % width)


def _strongest_peaks(response: Tensor, count: int) -> Tensor:
    """``[N, count, 3]``: ``(u, v, value)`` of the ``count`` highest local maxima (cell centres), best first.

    Local maxima are cells equal to the maximum of their 3x3 neighbourhood; a map with fewer repeats its last one.
    """
    width = response.shape[-1]
    is_peak = response == F.max_pool2d(response[:, None], 3, stride=1, padding=1)[:, 0]
    scores = torch.where(is_peak, response, torch.finfo(response.dtype).min).flatten(1)
    values, index = scores.topk(count, dim=1)
    values = torch.where(values > -2, values, values[:, :1])  # fewer peaks than asked: repeat the best
    index = torch.where(scores.gather(1, index) > -2, index, index[:, :1])
    u = (index % width).to(response.dtype).add(0.5) / width
    v = (index // width).to(response.dtype).add(0.5) / response.shape[-2]
    return torch.stack([u, v, response.flatten(1).gather(1, index)], dim=2)


def with_motion_prior(response: Tensor, weight: float = MOTION_PRIOR) -> Tensor:
    """``response [N,H,W]`` minus ``weight`` x (1 - a Hann window peaking at the crop's centre).

    The search crop is centred on where the target was, and a target rarely jumps to the crop's edge in one frame: a
    look-alike there should need a clearly better match to win. The window is strictly positive at the edge cells
    (a Hann of ``H + 2`` points without its zero ends), so the prior never rules a cell out.
    """
    height, width = response.shape[-2:]
    rows = torch.hann_window(height + 2, periodic=False, dtype=response.dtype, device=response.device)[1:-1]
    cols = torch.hann_window(width + 2, periodic=False, dtype=response.dtype, device=response.device)[1:-1]
    return response + weight * (torch.outer(rows, cols) - 1)


def match_evidence(matcher: TemplateMatcher, maps: Tensor, templates: Tensor, reference_size: Tensor) -> Tensor:
    """One frame's search summarised for the head: ``[N, EVIDENCE_DIM]`` from maps ``[N,C,H,W]`` and templates.

    Layout: the refined best peak ``(u, v)`` and its value; the next :data:`PEAKS` - 1 local maxima ``(u, v, value)``;
    the template's similarity to the map around the best peak at each of :data:`SCALES` times ``reference_size`` (the
    crop-normalised ``(w, h)`` the search was cut for), then at the same area stretched by each of :data:`ASPECTS`
    in width (and squeezed as much in height); the response's mean and standard deviation; the log of
    ``reference_size``. Peaks are ranked after :func:`with_motion_prior` (the rivals' values include it); the best
    one's position and value are the raw response's. A summary rather than the whole response map: a few dozen
    numbers generalise from generated training data, where a head reading 256 raw cells learned the training
    sequences by heart.
    """
    response = matcher(maps, templates)
    prior = with_motion_prior(response)
    position, peak = peak_positions(response, choice=prior)
    rivals = _strongest_peaks(prior, PEAKS)[:, 1:].flatten(1)
    similarities = []
    for scale in SCALES:
        size = reference_size * scale
        similarities.append(matcher.similarity(maps, templates, torch.cat([position - size / 2, size], dim=1)))
    for factor in ASPECTS:
        size = reference_size * reference_size.new_tensor([factor, 1 / factor])
        similarities.append(matcher.similarity(maps, templates, torch.cat([position - size / 2, size], dim=1)))
    statistics = torch.stack([response.flatten(1).mean(dim=1), response.flatten(1).std(dim=1)], dim=1)
    return torch.cat([position, peak[:, None], rivals, torch.stack(similarities, dim=1), statistics,
                      reference_size.log()], dim=1)


class RecurrentBoxHead(nn.Module):
    """Per-frame match evidence ``[B,T,F]`` → boxes ``[B,T,4]`` (crop-normalised ``x, y, w, h``).

    Input per frame: :func:`match_evidence`, read through :func:`level_free`. The output is a correction of the
    matching-only answer (:meth:`matching_boxes`) as a centre offset and a log-scale change, starting at exactly that
    answer (the last layer starts at zero), so training begins from the matching-only tracker and can only learn what
    improves on it. The learned size change is at most :data:`MAX_SCALE_STEP` (log) per side, relative to the
    matching box.

    While the search is *held* — the peak stands less than ``hold_below`` standard deviations out of its response
    (:func:`peak_sharpness`), so the tracker keeps the search where it was — the matching-only answer is the box the
    search was cut for, and the head's correction is where it believes the hidden target has gone since: the one
    answer a single frame cannot give and a recurrent state, which saw the target move before it vanished, can.

    ``bidirectional`` reads the whole clip in both directions (offline analysis); the unidirectional head runs online,
    one frame at a time, carrying its ``state`` (:meth:`forward` with ``T = 1``).
    """

    def __init__(
        self,
        cell: TrackerCell = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        scale_rate: float = 0.0,
        hold_below: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= scale_rate <= 1.0:
            raise ValueError(f"scale_rate must be in [0, 1], got {scale_rate}")
        if hold_below < 0.0:
            raise ValueError(f"hold_below must be >= 0 (0: never hold the search), got {hold_below}")
        self.scale_rate, self.hold_below = scale_rate, hold_below
        if cell not in ("rnn", "lstm", "gru", "none"):
            raise ValueError(f"cell must be rnn, lstm, gru or none, got {cell!r}")
        if cell == "none" and bidirectional:
            raise ValueError("cell='none' reads frames one by one: bidirectional needs a recurrent cell")
        self.cell, self.bidirectional = cell, bidirectional
        self.embed = nn.Sequential(nn.Linear(LEVEL_FREE_DIM, hidden_size), nn.ReLU())
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

    def _parts(self, evidence: Tensor) -> tuple[Tensor, Tensor]:
        """Centre ``(u, v)`` and size ``(w, h)`` of the matching-only answer: the best peak at the searched-for size
        moved ``scale_rate`` of the way towards the best-matching scale — or, where the search is held, the box the
        search was cut for (centred in its crop)."""
        searched = evidence[..., -2:].exp()
        held = (peak_sharpness(evidence) < self.hold_below)[..., None]
        position = torch.where(held, torch.full_like(searched, 0.5), evidence[..., :2])
        size = searched * torch.where(held, 1.0, best_scale(evidence)[..., None] ** self.scale_rate)
        return position, size

    def matching_boxes(self, evidence: Tensor) -> Tensor:
        """The matching-only answer for the same evidence (what :class:`~vidrnn.tracking.Tracker` does without a
        head, with the same ``scale_rate`` and ``hold_below``)."""
        position, size = self._parts(evidence)
        return torch.cat([position - size / 2, size], dim=-1)

    def forward(self, evidence: Tensor, state: object = None) -> tuple[Tensor, object]:
        """Boxes ``[B,T,4]`` for evidence ``[B,T,F]``; returns the recurrent state after the last step too."""
        hidden = self.embed(level_free(evidence))
        if self.rnn is None:
            hidden, state = self.temporal(hidden), None
        else:
            hidden, state = self.rnn(hidden, state)
        correction = self.out(hidden)
        position, size = self._parts(evidence)
        centre = position + correction[..., :2] * size
        size = size * (MAX_SCALE_STEP * torch.tanh(correction[..., 2:])).exp()
        return torch.cat([centre - size / 2, size], dim=-1), state
