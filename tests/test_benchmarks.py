"""The benchmark scripts' own logic (their measurements live in benchmarks/RESULTS.md, not here)."""

import importlib.util
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constant_velocity_moves_held_boxes_on_at_the_speed_before_the_hold() -> None:
    track_held = _load("track_held")
    matching = np.array([[10.0 * t, 5.0 * t, 20, 20] for t in range(6)] + [[50.0, 25.0, 20, 20]] * 3 + [[90, 45, 20, 20]])
    held = np.array([False] * 6 + [True] * 3 + [False])
    guessed = track_held.constant_velocity(matching, held)
    np.testing.assert_allclose(guessed[6:9, :2], [[60, 30], [70, 35], [80, 40]])  # 10 px right, 5 down a frame
    np.testing.assert_array_equal(guessed[~held], matching[~held])
    np.testing.assert_array_equal(guessed[:, 2:], matching[:, 2:])
