"""Template matching on frozen CNN maps, and the evidence one search leaves for a learned head.

Per frame, the frozen CNN turns a search crop (see :mod:`vidrnn.tracker.geometry`) into a feature map. The target's
appearance is taken once, from the first frame's map, with ``torchvision.ops.roi_align`` on its box. A normalised
cross-correlation of that template over each new map gives a **response map**: high where the frame looks like the
target. Its peak, with the size moved towards the best-matching scale, is a tracker on its own — the *matching-only*
rule (:class:`MatchingRule`), no training at all.

Each search is also summarised as an :class:`Evidence` record — the strongest peaks of the response, how well the
template matches at five scales and four aspects around the best one, the response's level and spread, the size the
search was cut for — which is what a learned head reads (:mod:`vidrnn.tracker.head`) and what training caches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_convert, roi_align

__all__ = [
    "ASPECTS",
    "EVIDENCE_DIM",
    "EVIDENCE_LAYOUT",
    "LEVEL_FREE_DIM",
    "MOTION_PRIOR",
    "PEAKS",
    "RESPONSE_GRID",
    "SCALES",
    "Evidence",
    "TemplateMatcher",
    "MatchingRule",
    "match_evidence",
    "peak_positions",
    "with_motion_prior",
]

#: Relative target sizes at which the template is compared around the peak (the head's evidence of a size change).
SCALES = (0.8, 0.9, 1.0, 1.1, 1.25)
#: Width factors at which the template is compared around the peak at the searched-for area (height divided by the
#: same factor): the head's evidence of a change of aspect, which the matching-only box, scaled evenly, cannot follow.
ASPECTS = (0.8, 0.9, 1.1, 1.25)
#: Peaks reported per frame: the best one and the strongest rivals, where a distractor or the lost target may be.
PEAKS = 3
#: Weight of the motion prior on the response: a Hann window centred where the search was placed (the previous
#: matching box) is added as ``MOTION_PRIOR * (window - 1)`` when choosing the peak, so a rival at the crop's edge
#: must beat the target by up to this much cosine similarity to win — SiamFC's cosine window. Chosen among 0, 0.2,
#: 0.4, 0.6, 0.8, 1 on the generated training and validation sequences: matching-only success AUC 0.711 and 0.753 at
#: 0, 0.751 and 0.765 at 0.6, flat from there to 1 (0.753, 0.765); the smallest weight on that plateau.
MOTION_PRIOR = 0.6

#: Side of the coarse response map kept in the evidence (the response max-pooled to RESPONSE_GRID x RESPONSE_GRID
#: cells): where every candidate is, for a head that learns to tell the target from look-alikes over time.
RESPONSE_GRID = 9

#: The parts of one frame's evidence vector, in order, with their lengths (see :func:`match_evidence`).
EVIDENCE_LAYOUT = {
    "peak": 3,  # the refined best peak: u, v (crop-normalised) and its response value
    "rivals": 3 * (PEAKS - 1),  # the next strongest local maxima: u, v, value each
    "scales": len(SCALES),  # template similarity around the peak at each of SCALES x the searched-for size
    "aspects": len(ASPECTS),  # ... at the searched-for area stretched by each of ASPECTS in width
    "response_level": 2,  # the response's mean and standard deviation
    "log_searched_size": 2,  # log of the crop-normalised (w, h) the search was cut for
    "response_map": RESPONSE_GRID**2,  # the response max-pooled to a coarse grid, row by row
}
#: Length of one frame's evidence vector.
EVIDENCE_DIM = sum(EVIDENCE_LAYOUT.values())
#: Length of the summary a head reads of it (see :meth:`Evidence.level_free`).
LEVEL_FREE_DIM = EVIDENCE_DIM - 2 - RESPONSE_GRID**2
_SLICES: dict[str, slice] = {}
for _name, _length in EVIDENCE_LAYOUT.items():
    _start = max((part.stop for part in _SLICES.values()), default=0)
    _SLICES[_name] = slice(_start, _start + _length)


class Evidence:
    """A named view of evidence values ``[..., EVIDENCE_DIM]`` — the form that is cached, batched and windowed.

    Evidence travels as plain tensors (and arrays in the cache); this view is the one place that knows where each
    part lies in them, so the matching rule, the head and the analyses read ``evidence.peak_position`` instead of
    index arithmetic.
    """

    def __init__(self, values: Tensor) -> None:
        if values.shape[-1] != EVIDENCE_DIM:
            raise ValueError(f"evidence has {EVIDENCE_DIM} values per frame, got shape {tuple(values.shape)}")
        self.values = values

    @staticmethod
    def assemble(**parts: Tensor) -> Tensor:
        """Concatenate ``[N, length]`` parts named as in :data:`EVIDENCE_LAYOUT` into ``[N, EVIDENCE_DIM]``."""
        if set(parts) != set(EVIDENCE_LAYOUT):
            raise ValueError(f"evidence needs exactly the parts {list(EVIDENCE_LAYOUT)}, got {sorted(parts)}")
        return torch.cat([parts[name] for name in EVIDENCE_LAYOUT], dim=-1)

    def part(self, name: str) -> Tensor:
        return self.values[..., _SLICES[name]]

    @property
    def peak_position(self) -> Tensor:
        """``[..., 2]``: the best peak's crop-normalised ``(u, v)``."""
        return self.part("peak")[..., :2]

    @property
    def peaks(self) -> Tensor:
        """``[..., PEAKS, 3]``: ``(u, v, value)`` of the best peak and its rivals, best first."""
        return torch.cat([self.part("peak"), self.part("rivals")], dim=-1).unflatten(-1, (PEAKS, 3))

    @property
    def searched_size(self) -> Tensor:
        """``[..., 2]``: the crop-normalised ``(w, h)`` the search was cut for."""
        return self.part("log_searched_size").exp()

    def heights(self, values: Tensor) -> Tensor:
        """Response values ``[..., K]`` as heights above the frame's response mean, in units of its spread."""
        mean, spread = self.part("response_level").split(1, dim=-1)
        return (values - mean) / spread.clamp_min(1e-3)

    def sharpness(self) -> Tensor:
        """How far the best peak stands out of its response, ``[...]``.

        The peak's height above the response's mean in standard deviations — MOSSE's peak-to-sidelobe ratio in
        spirit. It does not depend on how bright, blurred or changed the frame is, only on whether one place clearly
        looks like the template: it collapses when the target is hidden (on generated sequences a median of 8 in
        frames where the target is clear, under 3 where the occluder hides most of it).
        """
        return self.heights(self.part("peak")[..., 2:3])[..., 0]

    def best_scale(self) -> Tensor:
        """``[...]``: the relative size among :data:`SCALES` at which the template matches best."""
        return self.values.new_tensor(SCALES)[self.part("scales").argmax(dim=-1)]

    def level_free(self) -> Tensor:
        """What the evidence says about *where* and *how large*, without how strongly the frame resembles the
        template overall → ``[..., LEVEL_FREE_DIM]``.

        The level of the cosine similarities moves with everything that is not the target's position — lighting,
        blur, the camera's noise, how far the appearance has drifted from the first frame. So peaks become heights
        above the response's mean in units of its spread (:meth:`sharpness` for each) and the scale and aspect
        similarities differences from the similarity at the searched-for size; positions and the searched-for size
        are kept as they are.
        """
        peaks = self.peaks
        shapes = torch.cat([self.part("scales"), self.part("aspects")], dim=-1)
        at_reference = self.part("scales")[..., SCALES.index(1.0):SCALES.index(1.0) + 1]
        return torch.cat([peaks[..., :2].flatten(-2), self.heights(peaks[..., 2]), shapes - at_reference,
                          self.part("log_searched_size")], dim=-1)

    def levels(self) -> Tensor:
        """``[..., 4]``: what :meth:`level_free` leaves out — the best peak's cosine similarity, the response's mean and
        spread, and the template's similarity at the searched-for size. On their own they say little (lighting,
        blur and drift move them); against their own history in the same sequence a drop says the tracker may have
        left the target — something only a head with memory can read."""
        at_reference = self.part("scales")[..., SCALES.index(1.0):SCALES.index(1.0) + 1]
        return torch.cat([self.part("peak")[..., 2:3], self.part("response_level"), at_reference], dim=-1)

    def response_heights(self) -> Tensor:
        """``[..., RESPONSE_GRID**2]``: the coarse response map as heights above its mean in units of its spread (free
        of the overall level, like :meth:`level_free`)."""
        return self.heights(self.part("response_map"))


@dataclass(frozen=True)
class MatchingRule:
    """How the matching-only tracker answers one search — the rule every tracker and every head starts from.

    Normally the box's centre is the response's peak and its size moves ``scale_rate`` (in log) towards the
    best-matching scale (SiamFC's damped scale search; 0: the size stays). While the peak stands less than
    ``hold_below`` standard deviations out of its response (:meth:`Evidence.sharpness`; 0: never) the target is
    probably hidden, and the answer is the searched-for box itself (centre of the crop, same size): the search waits
    where the target was last seen instead of jumping to the best look-alike, often the occluder.
    """

    scale_rate: float = 0.3
    hold_below: float = 2.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.scale_rate <= 1.0:
            raise ValueError(f"scale_rate must be in [0, 1], got {self.scale_rate}")
        if self.hold_below < 0.0:
            raise ValueError(f"hold_below must be >= 0 (0: never hold the search), got {self.hold_below}")

    def answer(self, evidence: Evidence) -> tuple[Tensor, Tensor, Tensor]:
        """The box's crop-normalised centre ``[..., 2]``, its size as a factor of the searched-for size ``[...]``,
        and whether the search is held ``[...]``."""
        held = evidence.sharpness() < self.hold_below
        centre = torch.where(held[..., None], torch.full_like(evidence.peak_position, 0.5), evidence.peak_position)
        factor = torch.where(held, torch.ones_like(held, dtype=evidence.values.dtype),
                             evidence.best_scale() ** self.scale_rate)
        return centre, factor, held


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

    def __init__(self, template_cells: int) -> None:
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
                          box_convert(boxes.to(maps.dtype), "xywh", "xyxy") * scale], dim=1)
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

    Layout (:data:`EVIDENCE_LAYOUT`, read through :class:`Evidence`): the refined best peak ``(u, v)`` and its value; the next :data:`PEAKS` - 1 local maxima ``(u, v, value)``;
    the template's similarity to the map around the best peak at each of :data:`SCALES` times ``reference_size`` (the
    crop-normalised ``(w, h)`` the search was cut for), then at the same area stretched by each of :data:`ASPECTS`
    in width (and squeezed as much in height); the response's mean and standard deviation; the log of
    ``reference_size``; the response max-pooled to :data:`RESPONSE_GRID` cells a side. Peaks are ranked after
    :func:`with_motion_prior` (the rivals' values include it); the best one's position and value are the raw
    response's. Heads read the summary by default: a few dozen numbers generalised from generated training data,
    where a head reading 256 raw cells learned the 48 training sequences by heart; the coarse map is there for heads
    trained on real sequences (``response_map`` of :class:`~vidrnn.tracker.head.RecurrentBoxHead`).
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
    similarities = torch.stack(similarities, dim=1)
    return Evidence.assemble(
        peak=torch.cat([position, peak[:, None]], dim=1),
        rivals=rivals,
        scales=similarities[:, :len(SCALES)],
        aspects=similarities[:, len(SCALES):],
        response_level=torch.stack([response.flatten(1).mean(dim=1), response.flatten(1).std(dim=1)], dim=1),
        log_searched_size=reference_size.log(),
        response_map=F.adaptive_max_pool2d(response[:, None], RESPONSE_GRID).flatten(1),
    )
