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
