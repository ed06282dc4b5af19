"""The tracking task's LightningCLI: :class:`FrameTracker` on :class:`TrackingDataModule`.

The tracker's settings (backbone, search geometry, template, matching rule) are linked from the data module to the
model, so the evidence the model was trained on is the evidence ``vidrnn track`` computes. ``test`` tracks whole
sequences online (:mod:`vidrnn.task_cli.tracking_scores`) rather than running Lightning's test loop: a sequence
is a stream of frames, not a batch.
"""

from __future__ import annotations

import argparse
from operator import methodcaller
from typing import TYPE_CHECKING, Any

from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_warn

from vidrnn.task_cli.commands import VidrnnCommands, add_common_arguments
from vidrnn.task_cli.refusals import usage_error
from vidrnn.task_cli.tracking_scores import (
    end_unscored,
    report_scores,
    say_tracked_in_one_process,
    score_sequences,
    trackers_under_test,
)

if TYPE_CHECKING:
    from vidrnn.data.tracking_datamodule import TrackingDataModule
    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.tracker.evaluation import ScoreRow

__all__ = ["TrackingCLI"]


class TrackingArgumentParser(LightningArgumentParser):
    """The tracking CLI's parser, whose :meth:`dump` takes ``data.retry_refused`` as ``data.retry_failed``."""

    def dump(self, cfg: Any, *args: Any, **kwargs: Any) -> str:
        """Dump ``cfg`` with ``data.retry_refused`` taken as ``data.retry_failed`` (:func:`_take_retry_refused`):
        ``--print_config`` dumps the parsed settings before :meth:`TrackingCLI.parse_arguments` takes the older name,
        and printed ``retry_failed: false`` for a config whose run retries."""
        cfg = cfg.clone()
        _take_retry_refused(cfg)
        return super().dump(cfg, *args, **kwargs)


class TrackingCLI(VidrnnCommands, LightningCLI):
    """Tracking: the tracker's settings travel from the data module to the model; ``test`` tracks whole sequences."""

    cached = "the simulated tracking runs made so far"
    caching_nothing = ("test",)  # it tracks the test sequences online, caching nothing

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parser_class=TrackingArgumentParser, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_common_arguments(parser)
        # methodcaller, not a lambda: ddp_spawn pickles the parser with the trainer (as the classification CLI says).
        parser.link_arguments("data.settings", "model.tracker", compute_fn=methodcaller("to_dict"),
                              apply_on="instantiate")
        # The older name of data.retry_failed, read only to be taken as it (_take_retry_refused; --print_config
        # prints it so: TrackingArgumentParser); suppressed: not in --help.
        parser.add_argument("--data.retry_refused", type=bool, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    @staticmethod
    def _require_current(hparams: dict[str, Any]) -> None:
        from vidrnn.models.upgrade import require_current_tracker

        require_current_tracker(hparams)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse and check ``--ckpt_path`` as both tasks do, take ``data.retry_refused`` as ``data.retry_failed``
        (:func:`_take_retry_refused`), then refuse ``predict``, which tracking has no answer for: it simulated every
        training sequence's runs (an hour and more) before Lightning found no ``predict_dataloader``, in a
        traceback."""
        super().parse_arguments(parser, args)
        _take_retry_refused(self.config[self.config.subcommand] if self.config.get("subcommand") else self.config)
        if self.config.get("subcommand") == "predict":
            usage_error("vidrnn predict is for classification. A tracker's boxes for a video come from vidrnn track "
                        "VIDEO --box x,y,w,h --ckpt CKPT, and its scores on sequences with ground truth from vidrnn "
                        "test --config CONFIG --ckpt_path CKPT --data.test_root DIR")

    def instantiate_classes(self) -> None:
        """Make the data module, model and trainer, then hold a ``fit``/``validate`` ``--ckpt_path`` checkpoint against
        the data module's tracker settings (:meth:`FrameTracker.check_checkpoint`) before ``prepare_data`` caches
        evidence with settings its head was not trained on (LightningCLI gives the model the checkpoint's own
        settings, so the data's are the ones to compare). ``test`` tracks with the checkpoint's own settings. Then
        hold it against the data the command reads (:meth:`_check_data`)."""
        super().instantiate_classes()
        if self.config.get("subcommand") != "test":
            self._check_checkpoint(lambda checkpoint: self.model.check_checkpoint(checkpoint, self.datamodule.settings))
        self._check_checkpoint(self._check_data)

    def _check_data(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, before any run is simulated or sequence tracked, a resumed fit on other data than the checkpoint's
        (:meth:`TrackingDataModule.require_resumable`), and a test or validation on sequences it was fitted on
        (:meth:`TrackingDataModule.require_unseen`); a checkpoint older than that record is used as it is, saying once
        that this cannot be checked."""
        from vidrnn.data.tracking_datamodule import fitted_record

        record = fitted_record(checkpoint)
        if record is None:
            rank_zero_warn(f"{self.checkpoint_path}: the checkpoint records no training sequences (saved by an older "
                           f"vidrnn), so whether vidrnn {self.subcommand} reads sequences it was fitted on cannot be "
                           "checked")
        elif self.subcommand == "fit":
            self.datamodule.require_resumable(record, self._run_config_fix())
        else:
            self.datamodule.require_unseen(record, "val" if self.subcommand == "validate" else "test")

    def before_fit(self) -> None:
        """Before any run is simulated (minutes), refuse a fit on more processes than validation sequences, which
        every validation would fail on (:func:`~vidrnn.distributed.require_shareable`, a usage error; Lightning has
        not launched the processes yet, its trainer counts them); with ``test_after_fit``, refuse test sequences that
        cannot be tracked and scored before training, not after it (a usage error, as ``vidrnn test`` says it)."""
        from vidrnn.distributed import require_shareable

        require_shareable(len(self.datamodule.sequences("val")), "the validation sequences",
                          "Hold out more validation sequences (a val/ folder) or fit with fewer --trainer.devices",
                          processes=self.trainer.world_size)
        if self.config.fit.test_after_fit:
            _test_sequences(self.datamodule)

    def test(self, model: FrameTracker, datamodule: TrackingDataModule, ckpt_path: str | None = None,
             **_: Any) -> list[ScoreRow]:
        """Track every test sequence online with the tracker the model stands for (its head and re-detection threshold,
        built as ``vidrnn track --ckpt`` builds it; ``ckpt_path``'s, loaded as it loads it, older shapes converted)
        and without the head (the matching-only ablation); write ``tracking_scores.csv`` into the run's log folder,
        each sequence named by its path under the test folder, and return the rows. In a DDP fit's ``test_after_fit``
        each rank tracks its share of the sequences; every rank returns all rows, rank 0 prints and writes them.
        ``vidrnn test`` itself starts no processes (only the trainer's own loops do, and this is none), so it tracks
        every sequence in one, and says so where the trainer was configured for several. Test sequences the data
        module refuses (nothing to track or score) end the command as a usage error; a sequence whose frames cannot
        be read, found as it is tracked, is named and the others scored, and the command then ends with exit status 3
        naming it."""
        from vidrnn.models.tracker_module import load_frame_tracker

        sequences = _test_sequences(datamodule)
        if ckpt_path:
            model = load_frame_tracker(ckpt_path)
        say_tracked_in_one_process(self.trainer)
        rows, unscored = score_sequences(trackers_under_test(model, self.trainer.strategy.root_device), sequences,
                                         datamodule.test_folder)
        path = report_scores(rows, self.trainer)
        if unscored:
            end_unscored(unscored, len(sequences), path, self.trainer.is_global_zero)
        return rows


def _take_retry_refused(config: Any) -> None:
    """Take ``data.retry_refused`` in the command's ``config``, the tracking data module's older name of
    ``retry_failed`` (the classification data module's), as ``retry_failed``, with a warning naming it: the
    ``config.yaml`` of every tracking run saved before the rename records it, and jsonargparse would end such a
    command with "unrecognized arguments". A retry asked by either name is made."""
    if "data.retry_refused" in config:
        retry = config.data.pop("retry_refused")
        config.data.retry_failed = config.data.retry_failed or retry
        rank_zero_warn("data.retry_refused is now data.retry_failed (as for classification): rename it in the config "
                       "or command line; this run takes it as that", category=FutureWarning)


def _test_sequences(datamodule: Any) -> list:
    """The tracking data module's test sequences; a test folder it refuses (no sequences, a malformed or unreadable
    one, one that cannot be tracked and scored) ends the command as a usage error with its message, not a
    traceback."""
    from vidrnn.video import VideoReadError

    try:
        return datamodule.sequences("test")
    except (FileNotFoundError, ValueError, VideoReadError) as error:
        usage_error(str(error))


