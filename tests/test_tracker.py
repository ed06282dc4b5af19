"""The tracker's parts: search regions, settings, template matching, the recurrent head, and the online/offline runner."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.tracker.geometry import SearchGeometry, SearchWindow, clamp_to_frame, crop_window, validate_box
from vidrnn.tracker.head import RecurrentBoxHead
from vidrnn.tracker.matching import (
    ASPECTS,
    EVIDENCE_DIM,
    SCALES,
    Evidence,
    MatchingRule,
    TemplateMatcher,
    match_evidence,
    peak_positions,
    with_motion_prior,
)
from vidrnn.models.tracker_module import FrameTracker
from vidrnn.tracker.runtime import Tracker, trained_tracker
from vidrnn.tracker.search import MatchingSearch
from vidrnn.tracker.settings import TrackerSettings

#: The matching rule without a scale change or a hold: the answer is the peak at the searched-for size.
PEAK_ONLY = MatchingRule(scale_rate=0.0, hold_below=0.0)

# --- search regions ---------------------------------------------------------------------------------------------------


def test_window_follows_siamfc_context_rule() -> None:
    window = SearchGeometry(context=0.5, search_factor=2.0).window(np.array([10.0, 20.0, 40.0, 40.0]))
    # p = 0.5 * (40 + 40) = 40; context side sqrt(80 * 80) = 80; search side 2 * 80.
    assert (window.cx, window.cy, window.side) == (30.0, 40.0, 160.0)


def test_box_round_trips_through_crop_coordinates() -> None:
    window = SearchWindow(cx=50.0, cy=60.0, side=80.0)
    box = np.array([40.0, 45.0, 20.0, 10.0])
    crop_box = window.box_to_crop(box)
    assert crop_box == pytest.approx([0.375, 0.3125, 0.25, 0.125])
    assert window.box_from_crop(crop_box) == pytest.approx(box)


def test_crop_window_cuts_the_right_pixels_and_fills_outside_with_the_mean() -> None:
    frame = np.zeros((40, 60, 3), dtype=np.uint8)
    frame[10:20, 30:40] = 255  # a white 10x10 square, centre (35, 15)
    crop = crop_window(frame, SearchWindow(cx=35.0, cy=15.0, side=20.0), size=20)
    assert crop.shape == (20, 20, 3)
    assert crop[5:15, 5:15].min() == 255 and crop[:4].max() == 0  # the square sits in the middle, 1:1 scale
    outside = crop_window(frame, SearchWindow(cx=-100.0, cy=-100.0, side=20.0), size=8)
    assert (outside == np.round(frame.reshape(-1, 3).mean(axis=0))).all()


def test_geometry_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="search_factor"):
        SearchGeometry(search_factor=0.5)


def test_first_box_is_validated_before_tracking() -> None:
    with pytest.raises(ValueError, match="4 finite numbers"):
        validate_box([1, 2, 3])
    with pytest.raises(ValueError, match="at least 2x2"):
        validate_box([1, 2, 0, 5])
    with pytest.raises(ValueError, match="outside the 64x48 frame"):
        validate_box([100, 10, 5, 5], (48, 64, 3))


def test_a_box_keeps_its_centre_in_the_frame_and_boxes_whose_centre_is_inside_are_untouched() -> None:
    shape = (48, 64, 3)
    inside = np.array([[10.0, 5.0, 20.0, 10.0], [50.0, 40.0, 20.0, 16.0]])  # the second: half out, centre on the edge
    np.testing.assert_array_equal(clamp_to_frame(inside, shape), inside)
    gone = np.array([[500.0, -300.0, 20.0, 10.0], [-90.0, 20.0, 200.0, 4.0]])
    # Centres (510, -295) and (-58, 22) (after the width is cut to the frame's 64) move to the nearest frame edge.
    assert clamp_to_frame(gone, shape).tolist() == [[54.0, -5.0, 20.0, 10.0], [-32.0, 20.0, 64.0, 4.0]]


# --- matching ---------------------------------------------------------------------------------------------------------


def test_matcher_response_peaks_where_the_template_was_cut() -> None:
    torch.manual_seed(0)
    maps = torch.randn(2, 8, 16, 16)
    matcher = TemplateMatcher(template_cells=3)
    # Template = the 3x3 cells around (row 5, col 9) of map 0, and around (row 12, col 3) of map 1.
    boxes = torch.tensor([[8 / 16, 4 / 16, 3 / 16, 3 / 16], [2 / 16, 11 / 16, 3 / 16, 3 / 16]])
    templates = matcher.template(maps, boxes)
    assert torch.allclose(templates[0], maps[0, :, 4:7, 8:11], atol=1e-5)
    response = matcher(maps, templates)
    assert response.shape == (2, 16, 16)
    assert response[0].flatten().argmax() == 5 * 16 + 9 and response[1].flatten().argmax() == 12 * 16 + 3
    assert response[0, 5, 9] == pytest.approx(1.0, abs=1e-4)  # normalised: a perfect match is a cosine of 1
    # Brightness and contrast do not matter to a normalised correlation (away from the zero-padded border).
    brighter = matcher(maps * 3 + 2, templates)
    assert torch.allclose(brighter[:, 1:-1, 1:-1], response[:, 1:-1, 1:-1], atol=1e-4)


@pytest.mark.parametrize(("width", "height", "shape"), [(1, 1, (5, 5)), (1, 3, (9, 3)), (3, 1, (3, 9)),
                                                         (1, 2, (7, 3)), (1, 81, (45, 1))])
def test_template_is_shaped_like_the_box(width: float, height: float, shape: tuple[int, int]) -> None:
    assert TemplateMatcher(5).kernel_shape(torch.tensor([0.0, 0.0, width, height])) == shape


def test_a_tall_template_is_a_tall_kernel_that_peaks_where_it_was_cut() -> None:
    torch.manual_seed(0)
    maps = torch.randn(1, 8, 16, 16)
    matcher = TemplateMatcher(5)
    box = torch.tensor([[3 / 16, 4 / 16, 3 / 16, 9 / 16]])  # cells 3..5 across, 4..12 down: 1:3, centre (8, 4)
    template = matcher.template(maps, box)
    assert torch.allclose(template[0], maps[0, :, 4:13, 3:6], atol=1e-5)
    response = matcher(maps, template)
    assert response.shape == (1, 16, 16)
    assert response[0].flatten().argmax() == 8 * 16 + 4
    assert response[0, 8, 4] == pytest.approx(1.0, abs=1e-4)
    # Pooling the same box again gives the template itself; a template being compared keeps its own shape.
    assert matcher.similarity(maps, template, box).item() == pytest.approx(1.0, abs=1e-5)
    assert matcher.template(maps, torch.tensor([[0.0, 0.0, 0.5, 0.5]]), template.shape[-2:]).shape == template.shape


def test_peak_is_refined_below_one_cell() -> None:
    response = torch.zeros(1, 8, 8)
    response[0, 4, 4], response[0, 4, 5], response[0, 4, 3] = 1.0, 0.5, 0.0  # true peak right of cell centre
    position, value = peak_positions(response)
    assert value.item() == 1.0
    assert 4.5 / 8 < position[0, 0].item() < 5.0 / 8  # x refined towards the stronger neighbour
    assert position[0, 1].item() == pytest.approx(4.5 / 8)  # y: symmetric neighbours, cell centre


def test_motion_prior_lets_a_slightly_better_edge_match_lose_to_the_centre() -> None:
    response = torch.zeros(1, 16, 16)
    response[0, 8, 8], response[0, 1, 1] = 0.8, 0.9  # the target near the centre, a look-alike at the edge
    assert peak_positions(response)[0][0, 0].item() < 0.2  # raw: the look-alike wins
    penalised = with_motion_prior(response, weight=0.4)
    position, value = peak_positions(response, choice=penalised)
    assert position[0].tolist() == pytest.approx([8.5 / 16, 8.5 / 16])  # the prior chooses the cell ...
    assert value.item() == pytest.approx(0.8)  # ... the raw response gives its value (and sub-cell position)
    hann_centre = torch.hann_window(18, periodic=False)[9] ** 2
    assert penalised[0, 8, 8].item() == pytest.approx(0.8 - 0.4 * (1 - hann_centre.item()), abs=1e-6)
    # Edge cells are penalised, never ruled out; weight 0 changes nothing.
    assert penalised.min().item() > -0.4
    assert torch.equal(with_motion_prior(response, weight=0.0), response)


def test_template_cells_must_be_odd() -> None:
    with pytest.raises(ValueError, match="odd"):
        TemplateMatcher(4)


# --- recurrent head ---------------------------------------------------------------------------------------------------


def _evidence(count: int) -> torch.Tensor:
    torch.manual_seed(0)
    maps, matcher = torch.randn(count, 8, 16, 16), TemplateMatcher(3)
    # Cells 4..6 of map 0 on both axes (aligned with the grid and exact in binary, so the template is exact).
    templates = matcher.template(maps[:1], torch.tensor([[4 / 16, 4 / 16, 3 / 16, 3 / 16]])).expand(count, -1, -1, -1)
    return match_evidence(matcher, maps, templates, torch.full((count, 2), 3 / 16))


def test_evidence_summarises_the_search() -> None:
    evidence = _evidence(4)
    assert evidence.shape == (4, EVIDENCE_DIM) and torch.isfinite(evidence).all()
    # Map 0 is where the template came from: its best peak is a perfect match at the template's centre, and the
    # similarity at the searched-for size (scale 1.0, the middle of SCALES) is the best of the five.
    named = Evidence(evidence[0])
    assert named.peaks[0, 2] == pytest.approx(1.0, abs=1e-4)
    assert named.peak_position.tolist() == pytest.approx([5.5 / 16, 5.5 / 16], abs=0.5 / 16)
    assert named.part("scales").argmax() == SCALES.index(1.0)
    assert named.searched_size.tolist() == pytest.approx([3 / 16, 3 / 16])


def test_evidence_measures_a_change_of_aspect() -> None:
    torch.manual_seed(0)
    maps, matcher = torch.randn(1, 8, 16, 16), TemplateMatcher(3)
    template = matcher.template(maps, torch.tensor([[4 / 16, 4 / 16, 3 / 16, 3 / 16]]))
    # The search believes the target is 1.25 times narrower and taller than it is: stretched by 1.25 in width (and
    # squeezed as much in height), the searched-for box is the template's own box, a perfect match.
    believed = torch.tensor([[3 / 16 / 1.25, 3 / 16 * 1.25]])
    evidence = match_evidence(matcher, maps, template, believed)
    aspects = Evidence(evidence[0]).part("aspects")
    assert ASPECTS[int(aspects.argmax())] == 1.25
    assert float(aspects.max()) == pytest.approx(1.0, abs=1e-3)
    assert float(Evidence(evidence[0]).part("scales")[SCALES.index(1.0)]) < 0.99


def test_head_input_ignores_the_overall_level_of_similarity() -> None:
    """Shifting every cosine similarity of a frame by the same amount (a darker frame, a drifted appearance) changes
    neither what the head reads nor the box it gives."""
    evidence = _evidence(5)
    shifted = evidence.clone()
    view = Evidence(shifted)
    view.part("peak")[:, 2] -= 0.2  # the peak's value ...
    view.part("rivals")[:, 2::3] -= 0.2  # ... and the rivals'
    view.part("scales").sub_(0.2)  # scale and aspect similarities
    view.part("aspects").sub_(0.2)
    view.part("response_level")[:, 0] -= 0.2  # the response's mean (its spread is unchanged)
    torch.testing.assert_close(Evidence(shifted).level_free(), Evidence(evidence).level_free())
    head = RecurrentBoxHead(cell="lstm", hidden_size=16)
    torch.nn.init.normal_(head.out.weight, std=0.1)
    torch.testing.assert_close(head(shifted[None])[0], head(evidence[None])[0])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "none"])
def test_untrained_head_answers_peak_at_the_reference_size(cell: str) -> None:
    evidence = _evidence(6)
    head = RecurrentBoxHead(cell=cell, hidden_size=16, rule=PEAK_ONLY)
    boxes, _ = head(evidence[None])
    assert torch.allclose(boxes[0], head.matching_boxes(evidence), atol=1e-6)
    assert torch.allclose(boxes[0, :, 2:], torch.full((6, 2), 3 / 16), atol=1e-6)


@pytest.mark.parametrize(("response_map", "levels"), [(True, False), (False, True), (True, True)])
def test_heads_that_read_more_start_as_the_matching_answer_and_use_what_they_read(response_map: bool,
                                                                                  levels: bool) -> None:
    evidence = _evidence(5)
    head = RecurrentBoxHead(cell="gru", hidden_size=16, rule=PEAK_ONLY, response_map=response_map, levels=levels)
    torch.testing.assert_close(head(evidence[None])[0][0], head.matching_boxes(evidence))
    torch.nn.init.normal_(head.out.weight, std=0.1)
    changed = Evidence(evidence.clone())
    if response_map:
        changed.part("response_map")[:, 0] += 0.3  # one cell of the coarse map: the summary does not read it
    else:
        changed.part("peak")[:, 2] += 0.3  # every similarity and the response's mean shifted alike: level-free
        changed.part("rivals")[:, 2::3] += 0.3  # ignores it, the levels do not
        changed.part("scales").add_(0.3)
        changed.part("aspects").add_(0.3)
        changed.part("response_level")[:, 0] += 0.3
        torch.testing.assert_close(changed.level_free(), Evidence(evidence).level_free())
    assert not torch.allclose(head(changed.values[None])[0], head(evidence[None])[0])


def test_untrained_head_with_a_scale_rate_answers_the_scaled_matching_box() -> None:
    evidence = _evidence(4)
    Evidence(evidence).part("scales")[:] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.9])  # best at 1.25
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=MatchingRule(scale_rate=0.5, hold_below=0.0))
    boxes, _ = head(evidence[None])
    torch.testing.assert_close(boxes[0], head.matching_boxes(evidence))
    torch.testing.assert_close(boxes[0, :, 2:], torch.full((4, 2), 3 / 16 * 1.25**0.5))


def test_sharpness_is_the_peaks_height_over_the_responses_spread() -> None:
    evidence = Evidence(torch.zeros(1, EVIDENCE_DIM))
    evidence.part("peak")[0, 2] = 0.9
    evidence.part("response_level")[0] = torch.tensor([0.1, 0.2])  # the response's mean and standard deviation
    assert evidence.sharpness().item() == pytest.approx(4.0)
    sharpness = Evidence(_evidence(4)).sharpness()  # map 0 holds the template exactly; maps 1-3 are noise
    assert sharpness[0] > 2 * sharpness[1:].max(), sharpness


def test_a_held_search_answers_the_box_it_was_cut_for() -> None:
    """Below ``hold_below`` the matching-only answer is the searched-for box (centred in its crop, reference size),
    whatever the peak says; above it, the peak."""
    evidence = _evidence(4)
    sharpness = Evidence(evidence).sharpness()
    threshold = float(sharpness[0] + sharpness[1:].max()) / 2  # only map 0 is sharp enough
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=MatchingRule(scale_rate=0.3, hold_below=threshold))
    boxes = head.matching_boxes(evidence)
    free = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=MatchingRule(0.3, 0.0)).matching_boxes(evidence)
    torch.testing.assert_close(boxes[0], free[0])
    held = torch.tensor([0.5 - 3 / 32, 0.5 - 3 / 32, 3 / 16, 3 / 16]).expand(3, 4)
    torch.testing.assert_close(boxes[1:], held)
    torch.testing.assert_close(head(evidence[None])[0][0], boxes)  # the untrained head starts from that answer


def test_online_steps_equal_one_pass_over_the_clip() -> None:
    torch.manual_seed(0)
    head = RecurrentBoxHead(cell="lstm", hidden_size=16)
    torch.nn.init.normal_(head.out.weight, std=0.1)
    evidence = _evidence(5)[None]
    whole, _ = head(evidence)
    state, stepped = None, []
    for step in range(5):
        box, state = head(evidence[:, step : step + 1], state)
        stepped.append(box)
    assert torch.allclose(torch.cat(stepped, dim=1), whole, atol=1e-6)


def test_bidirectional_needs_a_recurrent_cell() -> None:
    with pytest.raises(ValueError, match="bidirectional"):
        RecurrentBoxHead(cell="none", bidirectional=True)


# --- the runner -------------------------------------------------------------------------------------------------------


def _textured_square(num_frames: int, frame_shape: tuple[int, int], texture_side: int, place) -> tuple[list, np.ndarray]:
    """A textured square over a textured background, at ``place(index) -> (x, y, side)``: boxes are known exactly."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 90, (*frame_shape, 3), dtype=np.uint8)
    texture = rng.integers(120, 255, (texture_side, texture_side, 3), dtype=np.uint8)
    frames, boxes = [], []
    for index in range(num_frames):
        x, y, side = place(index)
        frame = background.copy()
        frame[y : y + side, x : x + side] = cv2.resize(texture, (side, side), interpolation=cv2.INTER_NEAREST)
        frames.append(frame)
        boxes.append([x, y, side, side])
    return frames, np.array(boxes, dtype=float)


def _moving_square(num_frames: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    """A 24-px square gliding right and a little down."""
    return _textured_square(num_frames, (120, 160), 24, lambda index: (20 + 6 * index, 40 + 2 * index, 24))


def _growing_square(num_frames: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    """A square that grows by 6.5 % a frame (24 to 48 px) in place."""

    def place(index: int) -> tuple[int, int, int]:
        side = int(round(24 * 1.065**index))
        return 100 - side // 2, 80 - side // 2, side

    return _textured_square(num_frames, (160, 200), 8, place)


@pytest.fixture(scope="module")
def small_backbone():
    return build_backbone(BackboneSpec(pooling="map", layer="blocks.10", input_size=128))


def _settings(template_rate: float = 0.0, scale_rate: float = 0.0, hold_below: float = 0.0) -> TrackerSettings:
    """A 128-px search with a 5-cell template, by default without template update, scale change or hold."""
    return TrackerSettings(geometry=SearchGeometry(size=128), template_cells=5, template_rate=template_rate,
                           scale_rate=scale_rate, hold_below=hold_below)


def _tracker(backbone, head: RecurrentBoxHead | None = None, **settings: float) -> Tracker:
    return Tracker(MatchingSearch(_settings(**settings), backbone=backbone), head)


@pytest.mark.parametrize("template_rate", [0.0, 0.01])
def test_matching_only_tracker_follows_a_moving_square(small_backbone, template_rate: float) -> None:
    frames, truth = _moving_square()
    tracker = _tracker(small_backbone, template_rate=template_rate)
    boxes = np.array(list(tracker.track(iter(frames), truth[0])))
    assert boxes.shape == truth.shape and (boxes[0] == truth[0]).all()
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    true_centres = truth[:, :2] + truth[:, 2:] / 2
    assert np.abs(centres - true_centres).max() < 6.0  # it moved 66 px right; error stays within a few pixels


def test_the_matching_tracker_steers_and_the_head_only_reports(small_backbone) -> None:
    """A head that always reports half a box to the right of the peak: online, its boxes are the matching-only boxes
    moved by exactly that much, frame after frame — the offset does not feed back into where the next search goes."""
    frames, truth = _moving_square()
    matching = _tracker(small_backbone, template_rate=0.01, scale_rate=0.3)
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=MatchingRule(0.3, 0.0))
    with torch.no_grad():
        head.out.bias.copy_(torch.tensor([0.5, 0.0, 0.0, 0.0]))
    reporting = _tracker(small_backbone, head, template_rate=0.01, scale_rate=0.3)
    assert reporting.online
    expected = np.array(list(matching.track(iter(frames), truth[0])))
    expected[1:, 0] += 0.5 * expected[1:, 2]
    np.testing.assert_allclose(np.array(list(reporting.track(iter(frames), truth[0]))), expected, atol=1e-3)


def test_a_head_that_pushes_the_box_away_still_reports_boxes_on_the_frame(small_backbone) -> None:
    frames, truth = _moving_square(4)
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=PEAK_ONLY)
    with torch.no_grad():
        head.out.bias.copy_(torch.tensor([40.0, 40.0, 0.0, 0.0]))  # 40 box widths right and down: far off the frame
    boxes = np.array(list(_tracker(small_backbone, head).track(iter(frames), truth[0])))
    height, width = frames[0].shape[:2]
    centres = boxes[1:, :2] + boxes[1:, 2:] / 2
    np.testing.assert_allclose(centres, [[width, height]] * 3)  # at the frame's corner, not 1000 px away


def test_offline_tracker_gives_one_box_per_frame(small_backbone) -> None:
    frames, truth = _moving_square(6)
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, bidirectional=True, rule=PEAK_ONLY)
    tracker = _tracker(small_backbone, head)
    assert not tracker.online
    boxes = list(tracker.track(iter(frames), truth[0]))
    assert len(boxes) == 6 and np.isfinite(np.array(boxes)).all()


def test_a_held_search_stays_where_it_was_and_keeps_its_template(small_backbone) -> None:
    """With every peak below ``hold_below`` the tracker never moves, resizes or updates its template — the head,
    told the same rule, starts from that held box too."""
    frames, truth = _moving_square(5)
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=MatchingRule(scale_rate=0.3, hold_below=1e6))
    for with_head in (None, head):
        tracker = _tracker(small_backbone, with_head, template_rate=0.25, scale_rate=0.3, hold_below=1e6)
        boxes = np.array(list(tracker.track(iter(frames), truth[0])))
        np.testing.assert_allclose(boxes, np.broadcast_to(truth[0], boxes.shape), atol=1e-4)
    search = tracker.search
    template = search.template(frames[0], truth[0])
    step = search.search([frames[1]], [truth[0]], template)[0]
    assert step.held and search.updated_template(template, step, truth[1]) is template


def test_a_head_trained_for_another_matching_rule_is_refused(small_backbone) -> None:
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=MatchingRule(scale_rate=0.3, hold_below=2.5))
    with pytest.raises(ValueError, match="hold_below=2.5"):
        _tracker(small_backbone, head, scale_rate=0.3)


@pytest.mark.parametrize("change", [{"template_rate": 0.05}, {"template_cells": 7, "scale_rate": 0.5},
                                    {"redetect_after": 3}])
def test_a_trained_head_is_refused_settings_other_than_its_own_naming_each(small_backbone, change: dict) -> None:
    """A head learnt from evidence made with its own settings: another template rate or template size (which the
    matching rule alone did not show) makes other evidence, silently, so every setting is compared; a matching-only
    tracker takes any settings."""
    model = FrameTracker(tracker=_settings(template_rate=0.01).to_dict(), hidden_size=8)
    other = MatchingSearch(replace(model.settings, **change), backbone=small_backbone)
    with pytest.raises(ValueError, match="trained with other tracker settings") as refused:
        trained_tracker(model, other)
    for name, value in change.items():
        assert f"tracker.{name}: {getattr(model.settings, name)} there, {value} here" in str(refused.value)
    assert "--matching-only" in str(refused.value)
    Tracker(other)
    trained_tracker(model, MatchingSearch(model.settings, backbone=small_backbone), redetect_below=0.0)


def test_best_scale_is_the_scale_where_the_template_matches_best() -> None:
    evidence = Evidence(torch.zeros(2, EVIDENCE_DIM))
    evidence.part("scales")[0] = torch.tensor([0.1, 0.2, 0.3, 0.9, 0.1])
    evidence.part("scales")[1] = torch.tensor([0.8, 0.2, 0.3, 0.1, 0.1])
    assert evidence.best_scale().tolist() == pytest.approx([SCALES[3], SCALES[0]])


def test_scale_rate_lets_the_matching_box_follow_a_growing_target(small_backbone) -> None:
    frames, truth = _growing_square()
    final_sides = {}
    for scale_rate in (0.0, 0.3):
        tracker = _tracker(small_backbone, scale_rate=scale_rate)
        final_sides[scale_rate] = np.array(list(tracker.track(iter(frames), truth[0])))[-1, 2]
    assert final_sides[0.0] == truth[0, 2]  # without it the box keeps the first size
    assert abs(final_sides[0.3] - truth[-1, 2]) < abs(final_sides[0.0] - truth[-1, 2]) / 2, final_sides


def test_template_update_moves_the_template_towards_the_new_box_by_its_rate(small_backbone) -> None:
    frames, truth = _moving_square(2)
    search = MatchingSearch(_settings(template_rate=0.25), backbone=small_backbone)
    template = search.template(frames[0], truth[0])
    step = search.search([frames[1]], [truth[0]], template)[0]
    crop_box = torch.tensor(step.window.box_to_crop(truth[1])[None], dtype=torch.float32)
    appearance = search.matcher.template(step.maps, crop_box)
    assert not torch.allclose(appearance, template)
    torch.testing.assert_close(search.updated_template(template, step, truth[1]), 0.75 * template + 0.25 * appearance)
    fixed = MatchingSearch(_settings(template_rate=0.0), backbone=small_backbone)
    assert fixed.updated_template(template, step, truth[1]) is template


@pytest.mark.parametrize(("options", "message"), [
    (dict(template_rate=-0.1), "template_rate must be in"), (dict(template_rate=1.0), "template_rate must be in"),
    (dict(scale_rate=-0.1), "scale_rate must be in"), (dict(scale_rate=1.5), "scale_rate must be in"),
    (dict(hold_below=-1.0), "hold_below must be >= 0"), (dict(template_cells=4), "odd"),
])
def test_settings_out_of_range_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackerSettings(**options)


def test_settings_ask_for_spatial_maps_at_the_crop_size_and_survive_a_checkpoint() -> None:
    settings = TrackerSettings(backbone=BackboneSpec(pooling="avg", layer="blocks.10"), geometry=SearchGeometry(size=320))
    assert (settings.backbone.pooling, settings.backbone.input_size) == ("map", 320)
    assert TrackerSettings.from_dict(settings.to_dict()) == settings


def test_a_search_refuses_a_backbone_its_settings_did_not_ask_for(small_backbone) -> None:
    with pytest.raises(ValueError, match="not the one the settings ask for"):
        MatchingSearch(TrackerSettings(), backbone=small_backbone)  # 448-px settings, a 128-px backbone


def test_a_confident_head_keeps_the_normal_search_and_a_doubting_one_widens_it(small_backbone) -> None:
    """With a head whose confidence is always low, every other frame is a wider search (re-detection), reported as
    the matching box found there; an always-confident head tracks exactly like the reporting head."""
    frames, truth = _moving_square(7)
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=PEAK_ONLY, confidence=True)
    reporting = np.array(list(_tracker(small_backbone, head).track(iter(frames), truth[0])))
    search = MatchingSearch(replace(_settings(), redetect_widen=2.0), backbone=small_backbone)
    widened = _record_widening(search)
    for bias, expected in ((10.0, [1.0] * 6), (-10.0, [1.0, 2.0] * 3)):
        widened.clear()
        with torch.no_grad():
            head.confidence.bias.fill_(bias)
        boxes = np.array(list(Tracker(search, head, redetect_below=0.5).track(iter(frames), truth[0])))
        assert widened == expected
        if bias > 0:
            np.testing.assert_allclose(boxes, reporting, atol=1e-6)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.abs(centres - (truth[:, :2] + truth[:, 2:] / 2)).max() < 8.0  # the wide searches still find it
    with pytest.raises(ValueError, match="confidence"):
        Tracker(search, RecurrentBoxHead(cell="lstm", hidden_size=8, rule=PEAK_ONLY), redetect_below=0.5)


def _record_widening(search: MatchingSearch) -> list[float]:
    """Make ``search`` record how much each of its searches was widened."""
    widened, original = [], search.search
    search.search = lambda *args: widened.append(args[3] if len(args) > 3 else 1.0) or original(*args)
    return widened


def test_a_search_held_for_long_widens_until_the_peak_is_sharp_again(small_backbone) -> None:
    """redetect_after: after that many held searches in a row the region grows; a sharp peak ends it."""
    frames, truth = _moving_square(6)
    settings = replace(_settings(hold_below=1e6), redetect_after=2, redetect_widen=2.0)  # every search is held
    search = MatchingSearch(settings, backbone=small_backbone)
    widened = _record_widening(search)
    list(Tracker(search).track(iter(frames), truth[0]))
    assert widened == [1.0, 1.0, 2.0, 2.0, 2.0]
    assert TrackerSettings(redetect_after=0).identity() == TrackerSettings(redetect_widen=5.0).identity()  # off: moot
    widened.clear()
    never_held = MatchingSearch(replace(_settings(), redetect_after=1), backbone=small_backbone)
    moving = _record_widening(never_held)
    list(Tracker(never_held).track(iter(frames), truth[0]))
    assert moving == [1.0] * 5
