"""The benchmark scripts' own logic (their measurements live in benchmarks/RESULTS.md, not here)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # as when a script runs: its folder is importable
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conditions_sort_frames_by_what_the_truth_and_the_matching_evidence_show() -> None:
    from vidrnn.tracker.matching import EVIDENCE_DIM, Evidence

    track_conditions = _load("track_conditions")
    truth = np.array([[10.0, 10, 20, 20]] * 5 + [[np.nan] * 4] * 2 + [[10.0, 10, 20, 20]] * 20)
    truth[3, 0] += 10  # moves half its size in one frame (and back the next)
    held = np.zeros(len(truth), dtype=bool)
    held[6] = held[9] = True
    evidence = Evidence(torch.zeros(len(truth) - 1, EVIDENCE_DIM))
    evidence.part("response_level")[:] = torch.tensor([0.0, 1.0])  # mean 0, spread 1: heights are the values
    evidence.part("peak")[:, 2] = 5.0
    evidence.part("rivals")[:, 2] = 1.0
    evidence.part("rivals")[10, 2] = 4.5  # frame 11: a rival nearly as high as the best peak
    masks = track_conditions.conditions(truth, held, evidence.values)
    assert np.flatnonzero(masks["after absence"]).tolist() == list(range(7, 22))  # 15 frames after the NaN run
    assert np.flatnonzero(masks["held"]).tolist() == [9]  # frame 6 is absent: it never counts
    assert np.flatnonzero(masks["fast motion"]).tolist() == [3, 4]
    assert np.flatnonzero(masks["look-alike"]).tolist() == [11]
    assert masks["all"].sum() == len(truth) - 1 - 2  # not the given first frame, not the absent ones
    assert not (masks["other"] & (masks["held"] | masks["after absence"])).any()
