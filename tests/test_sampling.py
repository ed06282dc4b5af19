from __future__ import annotations

import numpy as np
import pytest

from vidrnn.sampling import SamplingSpec, cap_evenly, segment_indices


def test_centred_segments_are_deterministic_and_one_per_segment() -> None:
    assert segment_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert segment_indices(100, 4).tolist() == segment_indices(100, 4).tolist()


def test_random_segments_stay_inside_their_segment_and_follow_the_seed() -> None:
    draws = [segment_indices(100, 4, np.random.default_rng(seed)) for seed in range(50)]
    for draw in draws:
        assert all(25 * k <= index < 25 * (k + 1) for k, index in enumerate(draw))
    assert len({tuple(d) for d in draws}) > 40
    again = segment_indices(100, 4, np.random.default_rng(3))
    assert again.tolist() == draws[3].tolist()


def test_short_video_yields_each_frame_once_instead_of_inventing_repeats() -> None:
    assert segment_indices(5, 16).tolist() == [0, 1, 2, 3, 4]


def test_stride_and_all() -> None:
    assert SamplingSpec(strategy="stride", stride=10).indices(35, 25.0).tolist() == [0, 10, 20, 30]
    assert SamplingSpec(strategy="all").indices(4, 25.0).tolist() == [0, 1, 2, 3]


def test_target_fps_takes_frames_at_that_rate_of_source_time() -> None:
    spec = SamplingSpec(strategy="fps", fps=5.0)
    assert spec.indices(26, 25.0).tolist() == [0, 5, 10, 15, 20, 25]
    ntsc = spec.indices(60, 29.97)
    assert np.diff(ntsc).min() >= 5 and np.diff(ntsc).max() <= 6 and len(ntsc) == 11
    assert spec.indices(10, 2.0).tolist() == list(range(10))  # never faster than the source


def test_target_fps_takes_the_frame_each_sampling_time_falls_in_never_one_past_the_last() -> None:
    """At 29.97 fps, 5 fps samples every 5.994 frames: times 0, 5.994, ... 59.94 fall in frames 0, 5, ... 59 (of 0
    to 59); rounded, the last would be frame 60, which the video does not have."""
    indices = SamplingSpec(strategy="fps", fps=5.0).indices(60, 29.97)
    assert indices.max() < 60
    assert indices.tolist() == [0, 5, 11, 17, 23, 29, 35, 41, 47, 53, 59]


def test_cap_keeps_frames_spread_over_the_whole_video() -> None:
    capped = cap_evenly(np.arange(1000), 10)
    assert len(capped) == 10 and capped[0] < 100 and capped[-1] >= 900
    assert SamplingSpec(strategy="all", max_frames=8).indices(800, 25.0).tolist() == [50 + 100 * k for k in range(8)]
    assert cap_evenly(np.arange(5), 10).tolist() == [0, 1, 2, 3, 4]


def test_spec_round_trips_through_a_plain_dict() -> None:
    spec = SamplingSpec(strategy="fps", fps=4.0, max_frames=32, short_side=128)
    assert SamplingSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "kwargs",
    [{"strategy": "random"}, {"strategy": "fps"}, {"num_segments": 0}, {"stride": 0}, {"max_frames": 0}, {"short_side": 0}],
)
def test_invalid_specs_fail_at_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingSpec(**kwargs)


@pytest.mark.parametrize(("num_frames", "num_segments"), [(17, 16), (33, 32), (40, 32), (47, 24), (100, 4)])
def test_random_offsets_never_take_a_frame_twice(num_frames: int, num_segments: int) -> None:
    """Segments narrower than two frames used to share frames between neighbours (33 frames in 32 segments: a repeat
    in 999 of 1,000 draws), which an ``inputs: differences`` model saw as a still moment that was never filmed."""
    # Segment k holds the frames j with k * num_frames / num_segments <= j < (k + 1) * num_frames / num_segments.
    first = [-(-k * num_frames // num_segments) for k in range(num_segments + 1)]
    for seed in range(200):
        drawn = segment_indices(num_frames, num_segments, np.random.default_rng(seed)).tolist()
        assert all(first[k] <= index < first[k + 1] for k, index in enumerate(drawn)), drawn


def test_random_offsets_of_whole_frame_segments_are_drawn_as_before() -> None:
    """Where every segment spans a whole number of frames (the configs' 32 frames in 16 steps) the draws are those of
    earlier versions, so their results stay reproducible."""
    for seed in range(20):
        points = np.arange(16) * 2 + np.random.default_rng(seed).random(16) * 2
        assert segment_indices(32, 16, np.random.default_rng(seed)).tolist() == np.floor(points).astype(int).tolist()
