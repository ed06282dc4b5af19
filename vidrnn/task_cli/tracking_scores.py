"""``vidrnn test`` of a tracker: the test sequences tracked online by the tracker and its matching-only ablation,
each rank its share, scored, gathered, printed and written to ``tracking_scores.csv``; sequences that could not be
scored end the command with exit status 3."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info

from vidrnn.exit_codes import EXIT_SOME_FAILED

if TYPE_CHECKING:
    import torch

    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.tracker.evaluation import ScoreRow

__all__ = ["end_unscored", "report_scores", "say_tracked_in_one_process", "score_sequences", "trackers_under_test"]


def say_tracked_in_one_process(trainer: Trainer) -> None:
    """Say where ``vidrnn test`` tracks in one process although ``trainer`` was configured for several."""
    from vidrnn.distributed import world

    if trainer.world_size > 1 and world()[1] == 1:
        rank_zero_info(f"vidrnn test of a tracker tracks the test sequences in this one process, not in the "
                       f"{trainer.world_size} of --trainer.devices and --trainer.num_nodes: only a DDP fit's "
                       "test_after_fit shares them among its processes")


def report_scores(rows: list[ScoreRow], trainer: Trainer) -> Path | None:
    """Print the rows' summary and write them to ``tracking_scores.csv`` in the run's log folder (on rank 0); the
    file's path, or ``None`` where there is no log folder or nothing was scored."""
    from vidrnn.tracker.evaluation import summary_lines, write_scores

    log_dir = trainer.log_dir  # on every rank: under DDP, Lightning broadcasts it from rank 0
    path = Path(log_dir) / "tracking_scores.csv" if log_dir is not None and rows else None
    if trainer.is_global_zero:
        for line in summary_lines(rows):
            print(line)
        if path is not None:
            write_scores(rows, path)
            rank_zero_info(f"per-sequence tracking scores written to {path}")
    return path


def trackers_under_test(model: FrameTracker, device: torch.device) -> dict[str, Callable[..., Any]]:
    """What ``vidrnn test`` scores, by name: the tracker ``model`` stands for and its matching-only ablation, sharing
    one search (one frozen CNN) on ``device``."""
    from vidrnn.tracker.runtime import Tracker, trained_tracker
    from vidrnn.tracker.search import MatchingSearch

    search = MatchingSearch(model.settings, device)
    return {"vidrnn": trained_tracker(model, search).track, "matching": Tracker(search).track}


def score_sequences(trackers: dict[str, Callable[..., Any]], sequences: list[Any],
                    test_folder: Path) -> tuple[list[ScoreRow], list[Any]]:
    """Every rank's share of ``sequences`` tracked and scored, gathered on every rank: the rows in the sequences'
    order, followed by the means where every sequence was scored (a mean without the others would be a smaller
    benchmark's), and the sequences that could not be."""
    from vidrnn.data.tracking_datamodule import SAME_SEQUENCES
    from vidrnn.distributed import gather_rows, rank_share, require_agreement
    from vidrnn.tracker.evaluation import sequence_rows, with_means

    order = {sequence.name_under(test_folder): position for position, sequence in enumerate(sequences)}
    require_agreement({"the test sequences": list(order)}, SAME_SEQUENCES)
    made = sequence_rows(trackers, rank_share(sequences), root=test_folder)
    rows, unscored = gather_rows(made.rows), gather_rows(made.unscored)
    rows = sorted(rows, key=lambda row: order[row.sequence])
    return (rows if unscored else with_means(rows)), unscored


def end_unscored(unscored: Sequence[Any], total: int, written: Path | None, say: bool) -> NoReturn:
    """End ``vidrnn test`` of a tracker with exit status 3, naming (where ``say``: on rank 0) the test sequences it
    could not track and why, and where the others' scores are (``written``: the CSV, if one was)."""
    from vidrnn.tracker.evaluation import unscored_text

    if say:
        scored = total - len(unscored)
        kept = (f"{written} holds the other {scored}, without means: they would be a smaller benchmark's"
                if written is not None else f"the other {scored} scored, not written: no log folder" if scored
                else "none scored")
        print(f"vidrnn test: error: {len(unscored)} of {total} test sequences not scored ({kept}): "
              f"{unscored_text(unscored)}; fix or remove them to score the whole benchmark", file=sys.stderr)
    raise SystemExit(EXIT_SOME_FAILED)


