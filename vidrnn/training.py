"""LightningCLI for ``vidrnn fit|validate|test|predict``: configs in YAML, the data module wired to the model.

Two tasks share the commands. A config says which one it is with a top-level ``task:`` key (``classification``, the
default, or ``tracking``); ``--task`` on the command line says it too. Each task has its own model, data module and
links:

* classification — :class:`VideoClassifier` on :class:`VideoDataModule`. The model's input size and class list are
  linked from the instantiated data module (its features and its dataset), and so is the preprocessing pipeline
  (backbone, sampling, steps), which the model saves as a hyperparameter: a checkpoint carries everything
  ``vidrnn classify`` needs. The config describes the model's temporal encoder under ``model.encoder``.
* tracking — :class:`FrameTracker` on :class:`TrackingDataModule`; the tracker's settings (backbone, search
  geometry, template, matching rule) are linked the same way, so the evidence the model was trained on is the
  evidence ``vidrnn track`` computes. ``test`` tracks whole sequences online (:mod:`vidrnn.tracker.evaluation`)
  rather than running Lightning's test loop: a sequence is a stream of frames, not a batch.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Optional, get_args

import jsonargparse
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.seed import max_seed_value
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from vidrnn.callbacks import PREDICTION_COLUMNS, ClipPredictionWriter
from vidrnn.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SOME_FAILED, EXIT_USAGE
from vidrnn.files import denied, unwritable

if TYPE_CHECKING:
    import torch

    from vidrnn.data.module import VideoDataModule
    from vidrnn.data.tracking_datamodule import TrackingDataModule
    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.runs import RunFolder
    from vidrnn.tracker.evaluation import ScoreRow

__all__ = ["Task", "TrackingCLI", "VidrnnCLI", "run_lightning_cli", "task_of"]


Task = Literal["classification", "tracking"]


def _add_common_arguments(parser: LightningArgumentParser) -> None:
    parser.add_argument(
        "--task", type=Task, default="classification",
        help="which model and data module the config is for: classification (default) or tracking",
    )
    parser.add_argument(
        "--test_after_fit", type=bool, default=False,
        help="after fit, evaluate the best checkpoint on the test split and print its metrics",
    )
    # LightningCLI wrote these two, unset, into every config.yaml saved before the optimiser became the model's alone:
    # read, so that those runs can still be tested and resumed with their config; a value is refused
    # (_refuse_top_level_optimizer). Suppressed: not in --help, nor in --print_config and config.yaml unless given.
    for name in _TOP_LEVEL_OPTIMIZER:
        parser.add_argument(f"--{name}", type=Optional[Any], default=argparse.SUPPRESS, help=argparse.SUPPRESS)


#: Top-level keys of configs saved by LightningCLI's automatic optimiser set-up, which vidrnn does not use.
_TOP_LEVEL_OPTIMIZER = ("optimizer", "lr_scheduler")


def _refuse_top_level_optimizer(config: Any) -> None:
    """A top-level ``optimizer`` replaced the config's ``model.optimizer`` and dropped its scheduler (LightningCLI's
    automatic set-up, with only a warning): now the model's are the only ones, and a value here, from a config file or
    the command line, says where it goes."""
    given = [name for name in _TOP_LEVEL_OPTIMIZER if config.get(name) is not None]
    if given:
        _usage_error(f"{given[0]} (at the top level of a config, or --{given[0]}) is not a setting of vidrnn: the "
                     "optimiser and its scheduler are the model's; set --model.optimizer (e.g. --model.optimizer SGD "
                     "--model.optimizer.lr 0.1) and --model.scheduler, or model.optimizer and model.scheduler in a "
                     "config")


def _refuse_no_logger(subcommand: str, config: Any) -> None:
    """Without a logger there is no run folder: every command wrote its ``config.yaml`` (and a fit its checkpoints)
    over the one before in ``trainer.default_root_dir``, and the split record and confusion matrix were not written."""
    if config.trainer.get("logger") is False:
        _usage_error(f"--trainer.logger false: vidrnn {subcommand} writes its record into the logger's version_N "
                     "folder (config.yaml; a fit's splits.json, metrics and checkpoints; a test's confusion matrix or "
                     "tracking scores; predictions.csv); without one it would overwrite the record of the command "
                     "before in trainer.default_root_dir, and leave out the split record and the confusion matrix. "
                     "Leave --trainer.logger out (vidrnn's CSV logger), or choose another logger")


def _last_given(arguments: list[str], option: str) -> str | None:
    """The value the command line gives last to an option beginning with ``option`` (``--ckpt_path X``,
    ``--ckpt_path=X``, an abbreviation), or ``None``. Whether it is the one parsed tells where the parsed one came
    from: a config file given after it overrides it."""
    given = None
    for position, argument in enumerate(arguments):
        if argument.startswith(option):
            name, equals, value = argument.partition("=")
            given = value if equals else (arguments[position + 1] if position + 1 < len(arguments) else None)
    return given


def _checkpoint_from_a_config(subcommand: str, ckpt_path: str) -> None:
    """A ``ckpt_path`` read from a config file rather than given as ``--ckpt_path``: the ``config.yaml`` of a run that
    an older vidrnn resumed records the checkpoint it resumed from, and an evaluation's the one it evaluated. A fit
    would resume that run silently, training nothing and testing again as if reproduced: refused. An evaluation is
    told which checkpoint it scores."""
    from vidrnn.distributed import say_once

    if subcommand == "fit":
        _usage_error(f"ckpt_path {ckpt_path} comes from a config file, not from --ckpt_path: fitting with it would "
                     "resume that run, not start a new one (older vidrnn versions wrote the checkpoint a resumed run "
                     f"went on from into its config.yaml). Give --ckpt_path {ckpt_path} to resume it, or --ckpt_path "
                     "null for a new run")
    say_once(f"vidrnn {subcommand}: evaluating {ckpt_path}, named by ckpt_path in a config file (not --ckpt_path)")


def _usage_error(message: str) -> NoReturn:
    """End the command as a usage error: the message on stderr, exit status 2, no traceback."""
    print(f"vidrnn: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


#: ``--ckpt_path`` values that name no file: Lightning finds those checkpoints itself.
_CKPT_KEYWORDS = ("best", "last", "hpc", "registry")

#: The commands that evaluate a trained classifier: without a checkpoint they would score its random initial weights.
_EVALUATIONS = ("validate", "test", "predict")

#: What ``vidrnn validate|test|predict --help`` say, instead of the first lines of the Trainer methods' docstrings.
_DESCRIPTIONS = {
    "validate": "Evaluate a checkpoint (--ckpt_path; required for classification) on the validation split and print "
                "its metrics.",
    "test": "Evaluate a checkpoint (--ckpt_path; required for classification) on the test split and print its "
            "metrics. Classification writes confusion_matrix.csv and .png into the run's log folder, tracking "
            "tracking_scores.csv (without --ckpt_path, tracking scores an untrained head, which answers as the "
            "matching tracker).",
    "predict": "Classify the test split's clips with a checkpoint (--ckpt_path, required) and write predictions.csv "
               "into the run's log folder (trainer.default_root_dir/lightning_logs/version_N/): a row per clip with "
               "its true label, the predicted label and that label's probability (columns "
               f"{', '.join(PREDICTION_COLUMNS)}); on a temporal-order task two rows per clip, the clip as "
               "recorded and its reversed or shuffled copy (clip@backwards, clip@shuffled). Classification only.",
}


class _VidrnnCommands:
    """What both tasks' commands share: usage errors found before anything slow, and a test run right after fitting."""

    #: The checkpoint ``--ckpt_path`` names and its path, read while the arguments are checked; ``None`` without
    #: one, or for a keyword (``last``, ``best``) that Lightning resolves itself.
    checkpoint: dict[str, Any] | None = None
    checkpoint_path: str | None = None
    #: What the task's cache keeps of a stopped command's work, as its stop line names it.
    cached: str = "the features extracted so far"
    #: Commands that keep nothing in the cache: stopped, they start over.
    caching_nothing: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Run the command as LightningCLI does. Stopped by Ctrl-C or SIGTERM, it ends with exit status 130 or 143 and
        a line saying what was kept and how to go on: Lightning ended a fit stopped by Ctrl-C with status 1 and one
        stopped by SIGTERM with 0, as if it had finished (:mod:`vidrnn.signals`)."""
        from vidrnn.signals import sigterm_stops, stop_status

        with sigterm_stops():
            try:
                super().__init__(*args, **kwargs)
            except BaseException as error:
                status = stop_status(error)
                if status is None:
                    raise
                self._say_stopped(status)
                raise SystemExit(status) from None

    def _set_seed(self) -> None:
        """Seed as LightningCLI does, but draw a fresh seed for ``seed_everything: true``, which ``--help`` says is a
        random seed and Lightning's ``seed_everything`` made 0 every time: runs varied that way were one run. The seed
        drawn is said and written into the config, so the run's ``config.yaml`` reproduces it. A process of rank > 0
        that Lightning's DDP launched takes rank 0's (``PL_GLOBAL_SEED``, inherited), as Lightning does."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        processes = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)
        if config.get("seed_everything") is True and processes > 1 and "PL_GLOBAL_SEED" not in os.environ:
            # torchrun, SLURM: the processes start apart, before any process group could share a drawn seed.
            _usage_error("seed_everything true draws a seed in each process when several are launched together "
                         "(torchrun, SLURM), and the run's config.yaml would record rank 0's alone: give the seed, "
                         "such as --seed_everything 1234")
        if config.get("seed_everything") is True and (rank_zero_only.rank == 0 or "PL_GLOBAL_SEED" not in os.environ):
            config["seed_everything"] = secrets.randbelow(max_seed_value + 1)
            rank_zero_info(f"seed_everything true: drew the seed {config['seed_everything']} (the run's config.yaml "
                           "records it)")
        super()._set_seed()

    def _say_stopped(self, status: int) -> None:
        """Say on stderr (from rank 0) how the command was stopped, what it kept and how to go on."""
        from vidrnn.runs import resume_checkpoint

        trainer: Trainer | None = getattr(self, "trainer", None)
        if trainer is not None and not trainer.is_global_zero:
            return
        command = getattr(self, "subcommand", None)  # unset while the arguments are parsed
        checkpoint = resume_checkpoint(trainer) if command == "fit" and trainer is not None else None
        cached = None if command in self.caching_nothing else self.cached
        print(f"\nvidrnn{' ' + command if command else ''}: {_stopped(status, command, checkpoint, cached)}",
              file=sys.stderr)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse as LightningCLI does, then refuse a ``--ckpt_path`` that names no file, no checkpoint or one of the
        other task's, before anything slow: the data module would extract the whole dataset first, and Lightning
        would fail only then (on the other task's checkpoint: on hyperparameters that name neither task)."""
        from vidrnn.checkpoints import load_checkpoint, require_task

        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            _refuse_top_level_optimizer(self.config[subcommand])
            _refuse_no_logger(subcommand, self.config[subcommand])
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if subcommand in _EVALUATIONS and ckpt_path in ("best", "last") and not Path(ckpt_path).is_file():
            _usage_error(f"--ckpt_path {ckpt_path} names the {ckpt_path} checkpoint of a fit run by this same command, "
                         f"and vidrnn {subcommand} runs none (a tracker would be scored untrained): give the "
                         f"checkpoint's path, such as runs/.../checkpoints/{ckpt_path}.ckpt")
        if not ckpt_path or (str(ckpt_path).split(":")[0] in _CKPT_KEYWORDS and not Path(ckpt_path).is_file()):
            return
        if _last_given(sys.argv[1:] if args is None else list(args), "--ckpt") != str(ckpt_path):
            _checkpoint_from_a_config(subcommand, ckpt_path)
        if not Path(ckpt_path).is_file():
            _usage_error(f"--ckpt_path {ckpt_path}: no such checkpoint file")
        try:
            self.checkpoint_path = ckpt_path
            self.checkpoint = load_checkpoint(ckpt_path)
            require_task(self.checkpoint, self.model_class.TASK, ckpt_path)
        except ValueError as error:
            _usage_error(str(error))
        # LightningCLI merges the checkpoint's hyperparameters into the config next, and would fail on keys it no
        # longer knows without saying why: an older shape is refused first, saying how to convert it.
        self._check_checkpoint(lambda checkpoint: self._require_current(checkpoint.get("hyper_parameters", {})))
        if subcommand == "fit":
            self._check_checkpoint(self._require_model_settings)

    @staticmethod
    def _require_current(hparams: dict[str, Any]) -> None:
        """Refuse a checkpoint's ``hparams`` saved in an older shape of the task's model, saying how to convert them
        (a ``ValueError``)."""
        raise NotImplementedError

    def _require_model_settings(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a resumed fit whose model settings differ from the checkpoint's, naming each.

        LightningCLI merges the checkpoint's hyperparameters over the config, and the optimiser's and the scheduler's
        state (learning rate included) come back from the checkpoint: another cell, size or learning rate would be
        ignored without a word, and written into the run's ``config.yaml`` as if used. The hyperparameters leave out
        the optimiser and the scheduler (callables); the run's ``config.yaml`` records them (:func:`_run_optimization`).
        The trainer's settings (``max_epochs`` and the like) may change.
        """
        from vidrnn.checkpoints import differing_settings

        given = self.config.fit.model.as_dict()
        config = Path(self.checkpoint_path).absolute().parent.parent / "config.yaml"
        recorded = {**checkpoint.get("hyper_parameters", {}), **_run_optimization(config, self.checkpoint_path)}
        differing = differing_settings(recorded, given, "model")
        if not differing:
            return
        same = (f"--config {config}, changing only the trainer's" if config.is_file() else
                "the config.yaml of the run that trained it")
        start = (f" (--model.init_from {self.checkpoint_path} starts its encoder from this checkpoint's)"
                 if "init_from" in given else "")
        raise ValueError(f"a resumed fit goes on with the checkpoint's model, optimiser and scheduler, so these "
                         f"settings of this command would be ignored ({'; '.join(differing)}). Resume with the "
                         f"settings it was trained with ({same}), or start a new fit without --ckpt_path{start}")

    def instantiate_classes(self) -> None:
        """Make the data module, model and trainer as LightningCLI does; a setting or path they refuse (a data root
        that does not exist or that this user may not read, a split list without clips, a demo folder holding
        something else, a device this machine lacks — the data's or the trainer's —, backbone weights it would have to
        download) ends the command as a usage error with their message, before anything slow, instead of a
        traceback."""
        from vidrnn.backbones import WeightsUnavailableError

        try:
            super().instantiate_classes()
        except PermissionError as error:
            _usage_error(denied(error))
        except (FileExistsError, FileNotFoundError, ValueError, WeightsUnavailableError) as error:
            _usage_error(str(error))
        except (MisconfigurationException, ModuleNotFoundError) as error:  # what the Trainer says of its settings
            _usage_error(f"the trainer's settings ask for what this machine lacks ({error}): set --trainer.accelerator "
                         "cpu, or auto (a GPU where there is one), and no more --trainer.devices than it has")
        self._require_writable_run_folders()

    def _require_writable_run_folders(self) -> None:
        """Refuse a run folder this user cannot write (``trainer.default_root_dir``, a logger's ``save_dir``; for a
        resumed fit, the run's own ``version_N`` folder, where it goes on) before anything slow: Lightning makes the
        log folder only after ``prepare_data`` has extracted the whole dataset, and failed there in a traceback."""
        run = self._resumed_run()
        if run is not None:
            version = run.path
            for folder in (version, version / "checkpoints"):
                reason = unwritable(folder)
                if reason is not None:
                    _usage_error(f"{folder}: {reason}; a resumed fit goes on in its own run folder: make it writable "
                                 f"for this user, or copy {version} to a folder this user can write (keeping its "
                                 f"{run.name}/version_{run.version}/ layout) and resume from the copy's "
                                 "checkpoints/latest.ckpt")
        # A resumed run writes in its version folder alone (checked above), whatever default_root_dir says.
        places = [] if run else [*(logger.save_dir for logger in self.trainer.loggers), self.trainer.default_root_dir]
        folders = {os.path.abspath(folder) for folder in places if folder and "://" not in str(folder)}
        for folder in sorted(folders):
            reason = unwritable(Path(folder))
            if reason is not None:
                _usage_error(f"{folder}: {reason}; the run writes its logs and checkpoints there: choose a folder "
                             "this user can write (--trainer.default_root_dir)")

    def _check_checkpoint(self, check: Callable[[dict[str, Any]], None]) -> None:
        """Run ``check`` on the ``--ckpt_path`` checkpoint, when one was read; what it refuses ends the command as a
        usage error naming the file."""
        if self.checkpoint is None:
            return
        try:
            check(self.checkpoint)
        except ValueError as error:
            _usage_error(f"{self.checkpoint_path}: {error}")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer as configured (:meth:`_run_logger`). A fit resumed from a checkpoint in a run's ``checkpoints/``
        folder goes on in that run (:mod:`vidrnn.runs`), and records its settings beside the run's ``config.yaml``,
        which stays the record of the run's first ones."""
        from vidrnn.runs import ContinuedCheckpoints, resumed_config_name

        if "logger" not in kwargs:
            kwargs["logger"] = self._run_logger()
        if self._resumed_run() is not None:
            self.save_config_kwargs["config_filename"] = resumed_config_name(self.checkpoint)
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand == "fit" and self.checkpoint_path is not None:
            trainer.callbacks.append(ContinuedCheckpoints(Path(self.checkpoint_path).parent))
        return trainer

    def _resumed_run(self) -> RunFolder | None:
        """The run a fit resumed from one of its checkpoints goes on in; ``None`` for other commands and fits."""
        from vidrnn.runs import run_folder

        return run_folder(self.checkpoint_path) if self.subcommand == "fit" and self.checkpoint_path else None

    def _run_logger(self) -> Any:
        """The configured logger; where none is, one that always writes ``metrics.csv`` (Lightning's default is
        TensorBoard's wherever tensorboard happens to be installed, and the README, the notebooks and the benchmarks
        read ``metrics.csv``), and a CSV logger one that writes it at every checkpoint (:func:`vidrnn.runs.fresh_logger`).
        For a resumed run, that logger going on in the run's folder, or a usage error where it
        cannot (:func:`vidrnn.runs.continued_logger`)."""
        from vidrnn.runs import continued_logger, fresh_logger, logged_step

        trainer = self._get(self.config_init, "trainer", default={})
        run = self._resumed_run()
        if run is None:
            return fresh_logger(trainer.get("logger"), self._get(self.config, "trainer").get("logger"),
                                trainer.get("default_root_dir") or os.getcwd())
        try:
            logger = continued_logger(trainer.get("logger"), self._get(self.config, "trainer").get("logger"), run,
                                      logged_step(self.checkpoint))
        except ValueError as error:
            _usage_error(f"{self.checkpoint_path}: {error}")
        rank_zero_info(f"resuming the run in {run.path}: its checkpoints and metrics go on there")
        return logger

    def after_fit(self) -> None:
        """With ``test_after_fit``, test the best checkpoint: that of the first ``ModelCheckpoint`` with a ``monitor``,
        wherever it stands among the callbacks (Lightning's ``ckpt_path="best"`` asks the first ``ModelCheckpoint``,
        which, listed first, would be the one keeping ``latest.ckpt``, and test the final weights as if the best); the
        final weights where no checkpoint was chosen by a score (no validation split), saying so."""
        if not self.config.fit.test_after_fit:
            return
        best = next((callback for callback in self.trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint)
                     and callback.monitor and callback.best_model_path), None)
        if best is not None:
            rank_zero_info(f"testing the best checkpoint by {best.monitor}: {best.best_model_path}")
        else:
            rank_zero_info("testing the final weights: no checkpoint was chosen by a validation score")
        test = getattr(self, "test", self.trainer.test)  # the subcommand's own method, as LightningCLI picks it
        test(model=self.model, datamodule=self.datamodule, ckpt_path=best.best_model_path if best else None)


def _run_optimization(config: Path, checkpoint_path: str) -> dict[str, Any]:
    """The optimiser and scheduler settings of the run whose ``config.yaml`` this is; where there is none (the
    checkpoint was moved out of its run), a warning says that they cannot be held to the run's."""
    if not config.is_file():
        rank_zero_warn(f"{checkpoint_path}: no config.yaml of its run beside it, so this resume cannot hold "
                       "--model.optimizer and --model.scheduler to the run's: the checkpoint's optimiser and scheduler "
                       "go on as they were, whatever they say")
        return {}
    model = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("model") or {}
    return {name: model[name] for name in ("optimizer", "scheduler") if name in model}


def _stopped(status: int, command: str | None, checkpoint: str | None, cached: str | None) -> str:
    """How a command was stopped (``status``: 130 or 143), what it kept and how to go on; ``checkpoint``: the one a
    stopped fit resumes from, if it saved one; ``cached``: what the task's cache holds of the work done so far
    (``None``: the command caches nothing)."""
    how = "interrupted (Ctrl-C)" if status == EXIT_INTERRUPTED else "stopped by SIGTERM"
    if command is None:
        return f"{how} before it began"
    if cached is None:
        return f"{how}; it keeps nothing of its work: the same command starts over"
    if checkpoint is not None:
        return (f"{how}; {cached} stay in the cache, and the last finished epoch in its "
                f"checkpoint: resume with the same command and --ckpt_path {checkpoint}")
    before = " before any epoch finished" if command == "fit" else ""
    return f"{how}{before}; {cached} stay in the cache: the same command goes on from there"


def _as_usage_error(check: Callable[[], None]) -> None:
    """Run ``check``; what it refuses (a ``ValueError``) ends the command as a usage error with its message."""
    try:
        check()
    except ValueError as error:
        _usage_error(str(error))


def _require_checkpoint(config: Any) -> None:
    """Refuse ``vidrnn validate|test|predict`` of a classifier without ``--ckpt_path``: Lightning would score the
    model's random initial weights, print their accuracy and write a confusion matrix without a word of warning.
    (``fit --test_after_fit`` tests through the trainer, not through these commands, and is not affected.)"""
    subcommand = config.get("subcommand")
    if subcommand in _EVALUATIONS and not config[subcommand].get("ckpt_path"):
        _usage_error(f"vidrnn {subcommand} needs --ckpt_path (a checkpoint from vidrnn fit: "
                     "runs/.../checkpoints/best.ckpt)")


class VidrnnCLI(_VidrnnCommands, LightningCLI):
    """Classification: the data → model links and an optional test run right after fitting."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        _add_common_arguments(parser)
        for source, target in [
            ("data.num_classes", "model.num_classes"),
            ("data.feature_dim", "model.input_dim"),
            ("data.class_names", "model.class_names"),
        ]:
            parser.link_arguments(source, target, apply_on="instantiate")
        parser.link_arguments("data.pipeline", "model.pipeline", compute_fn=lambda spec: spec.to_dict(),
                              apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse and check ``--ckpt_path`` as both tasks do, then refuse an evaluation without one."""
        super().parse_arguments(parser, args)
        _require_checkpoint(self.config)

    @staticmethod
    def _require_current(hparams: dict[str, Any]) -> None:
        from vidrnn.models.upgrade import require_current_classifier

        require_current_classifier(hparams)

    def instantiate_classes(self) -> None:
        """Make the data module, model and trainer as both tasks do, then hold the ``--ckpt_path`` checkpoint against
        the model built from the data (its classes, backbone, sampling and steps): what loading it would refuse ends
        the command now, as a usage error, and what it would warn about is said now — before ``prepare_data``
        extracts the dataset's features for a model that cannot read them (:meth:`VideoClassifier.check_checkpoint`,
        the one comparison, which the trainer's load makes again). Its data settings too, where they decide the split
        the command reads; what a fit needs of its index (training clips for every class, a validation split that
        holds something when it is asked for: :meth:`VideoDataModule.require_fit_data`); and the encoder a fit starts
        from (`model.init_from`: :meth:`_check_pretrained`); and, last, the folders ``prepare_data`` would write
        (:meth:`VideoDataModule.require_writable`)."""
        super().instantiate_classes()
        resuming = self.subcommand == "fit"
        self._check_checkpoint(lambda checkpoint: self.model.check_checkpoint(checkpoint, resuming=resuming))
        self._check_checkpoint(self._check_split)
        if self.config.get("subcommand") == "fit":
            _as_usage_error(self.datamodule.require_fit_data)
        if self.config.get("subcommand") == "fit" and self.model.hparams.init_from is not None:
            self._check_pretrained(self.model.hparams.init_from)
        _as_usage_error(self.datamodule.require_writable)

    def _check_split(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a data split other than the checkpoint's (another UCF101 fold, another seed for class folders; the
        same settings over class folders whose videos changed since, where the checkpoint records the clips it was
        fitted on): its test or validation clips would include clips the model trained on
        (:func:`vidrnn.data.splits.check_split`)."""
        from vidrnn.data.splits import check_split

        from vidrnn.data.module import recorded_data_settings

        config = Path(self.checkpoint_path).absolute().parent.parent / "config.yaml"
        check_split(recorded_data_settings(checkpoint), self.datamodule.hparams, self.config.subcommand,
                    config if config.is_file() else None, self.datamodule.drawn_keys())

    def _check_pretrained(self, init_from: str) -> None:
        """Hold the checkpoint ``model.init_from`` names against this fit before anything slow: its encoder must be
        built like this model's (:func:`pretrained_encoder`, which ``setup("fit")`` runs again to load it), and its
        pretraining must not have seen this fit's test clips (:meth:`VideoDataModule.require_unseen_test_clips`).
        Either would otherwise show only after the features were extracted — or, the second, never."""
        from vidrnn.checkpoints import load_checkpoint
        from vidrnn.models.classifier import pretrained_encoder

        if not Path(init_from).is_file():
            _usage_error(f"--model.init_from {init_from}: no such checkpoint file")
        encoder = self.model.encoder
        try:
            pretrained_encoder(init_from, encoder.input_dim, encoder.spec, self.model.pipeline)
        except ValueError as error:
            _usage_error(f"--model.init_from {error}")
        _as_usage_error(lambda: self.datamodule.require_unseen_test_clips(load_checkpoint(init_from),
                                                                          f"--model.init_from {init_from}"))

    def before_fit(self) -> None:
        """Tell the data module whether the fit ends with a test, so that it checks the test split before training."""
        self.datamodule.tests_after_fit = self.config.fit.test_after_fit

    def before_predict(self) -> None:
        self.trainer.callbacks.append(ClipPredictionWriter())


class TrackingCLI(_VidrnnCommands, LightningCLI):
    """Tracking: the tracker's settings travel from the data module to the model; ``test`` tracks whole sequences."""

    cached = "the simulated tracking runs made so far"
    caching_nothing = ("test",)  # it tracks the test sequences online, caching nothing

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        _add_common_arguments(parser)
        parser.link_arguments("data.settings", "model.tracker", compute_fn=lambda settings: settings.to_dict(),
                              apply_on="instantiate")

    @staticmethod
    def _require_current(hparams: dict[str, Any]) -> None:
        from vidrnn.models.upgrade import require_current_tracker

        require_current_tracker(hparams)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse and check ``--ckpt_path`` as both tasks do, then refuse ``predict``, which tracking has no answer
        for: it simulated every training sequence's runs (an hour and more) before Lightning found no
        ``predict_dataloader``, in a traceback."""
        super().parse_arguments(parser, args)
        if self.config.get("subcommand") == "predict":
            _usage_error("vidrnn predict is for classification. A tracker's boxes for a video come from vidrnn track "
                         "VIDEO --box x,y,w,h --ckpt CKPT, and its scores on sequences with ground truth from vidrnn "
                         "test --config CONFIG --ckpt_path CKPT --data.test_root DIR")

    def instantiate_classes(self) -> None:
        """Make the data module, model and trainer, then hold a ``fit``/``validate`` ``--ckpt_path`` checkpoint against
        the data module's tracker settings (:meth:`FrameTracker.check_checkpoint`) before ``prepare_data`` caches
        evidence with settings its head was not trained on (LightningCLI gives the model the checkpoint's own
        settings, so the data's are the ones to compare). ``test`` tracks with the checkpoint's own settings."""
        super().instantiate_classes()
        if self.config.get("subcommand") != "test":
            self._check_checkpoint(lambda checkpoint: self.model.check_checkpoint(checkpoint, self.datamodule.settings))

    def before_fit(self) -> None:
        """With ``test_after_fit``, refuse test sequences that cannot be tracked and scored before training, not after
        it (a usage error, as ``vidrnn test`` says it)."""
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
        _say_tracked_in_one_process(self.trainer)
        rows, unscored = _score_sequences(_test_trackers(model, self.trainer.strategy.root_device), sequences,
                                          datamodule.test_folder)
        path = _report_scores(rows, self.trainer)
        if unscored:
            _end_unscored(unscored, len(sequences), path, self.trainer.is_global_zero)
        return rows


def _say_tracked_in_one_process(trainer: Trainer) -> None:
    """Say where ``vidrnn test`` tracks in one process although ``trainer`` was configured for several."""
    from vidrnn.distributed import world

    if trainer.world_size > 1 and world()[1] == 1:
        rank_zero_info(f"vidrnn test of a tracker tracks the test sequences in this one process, not in the "
                       f"{trainer.world_size} of --trainer.devices and --trainer.num_nodes: only a DDP fit's "
                       "test_after_fit shares them among its processes")


def _report_scores(rows: list[ScoreRow], trainer: Trainer) -> Path | None:
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


def _test_trackers(model: FrameTracker, device: torch.device) -> dict[str, Callable[..., Any]]:
    """What ``vidrnn test`` scores, by name: the tracker ``model`` stands for and its matching-only ablation, sharing
    one search (one frozen CNN) on ``device``."""
    from vidrnn.tracker.runtime import Tracker, trained_tracker
    from vidrnn.tracker.search import MatchingSearch

    search = MatchingSearch(model.settings, device)
    return {"vidrnn": trained_tracker(model, search).track, "matching": Tracker(search).track}


def _score_sequences(trackers: dict[str, Callable[..., Any]], sequences: list[Any],
                     test_folder: Path) -> tuple[list[ScoreRow], list[Any]]:
    """Every rank's share of ``sequences`` tracked and scored, gathered on every rank: the rows in the sequences'
    order, followed by the means where every sequence was scored (a mean without the others would be a smaller
    benchmark's), and the sequences that could not be."""
    from vidrnn.distributed import gather_rows, rank_share
    from vidrnn.tracker.evaluation import sequence_rows, with_means

    order = {sequence.name_under(test_folder): position for position, sequence in enumerate(sequences)}
    made = sequence_rows(trackers, rank_share(sequences), root=test_folder)
    rows, unscored = gather_rows(made.rows), gather_rows(made.unscored)
    rows = sorted(rows, key=lambda row: order[row.sequence])
    return (rows if unscored else with_means(rows)), unscored


def _test_sequences(datamodule: Any) -> list:
    """The tracking data module's test sequences; a test folder it refuses (no sequences, a malformed or unreadable
    one, one that cannot be tracked and scored) ends the command as a usage error with its message, not a
    traceback."""
    from vidrnn.video import VideoReadError

    try:
        return datamodule.sequences("test")
    except (FileNotFoundError, ValueError, VideoReadError) as error:
        _usage_error(str(error))


def _end_unscored(unscored: Sequence[Any], total: int, written: Path | None, say: bool) -> NoReturn:
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


def _task_arguments(args: Sequence[str]) -> list[str]:
    """The command line's config files (``-c``/``--config``) and ``--task`` options, in their order, each written
    ``--OPTION VALUE``: found by argparse, which LightningCLI's parser is built on, so every spelling it takes
    (``-c X``, ``-cX``, ``-c=X``, ``--config=X``, an abbreviation) is found here too."""
    found: list[str] = []

    class Keep(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            found.extend((f"--{self.dest}", values))

    finder = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    finder.add_argument("-c", "--config", action=Keep)
    finder.add_argument("--task", action=Keep)
    try:
        finder.parse_known_args(list(args))
    except argparse.ArgumentError:
        pass  # an option without its value: LightningCLI's parser says so
    return found


def _readable_config(reader: jsonargparse.ArgumentParser, config: str) -> bool:
    """Whether ``reader`` reads ``config`` (a file or a YAML string) on its own: to name the one that fails."""
    try:
        reader.parse_args(["--config", config], _skip_validation=True)
    except jsonargparse.ArgumentError:
        return False
    return True


def task_of(args: Sequence[str]) -> Task:
    """The task a command line asks for: ``task`` as jsonargparse reads it from the config files and ``--task``
    options, later ones overriding earlier ones. It chooses the parser that reads the rest (a tracking config's keys
    are errors to the classification one), so only these options are read here, by jsonargparse itself: a config file
    or a config string, as ``--config`` takes it."""
    reader = jsonargparse.ArgumentParser(exit_on_error=False)
    reader.add_argument("-c", "--config", action=jsonargparse.ActionConfigFile)
    reader.add_argument("--task", type=str, default="classification")
    given = _task_arguments(args)
    try:  # the configs' other keys are the task's parser's to check
        task = reader.parse_args(given, _skip_validation=True).task
    except jsonargparse.ArgumentError as error:
        configs = [value for option, value in zip(given[::2], given[1::2]) if option == "--config"]
        culprit = next((config for config in configs if not _readable_config(reader, config)), " ".join(configs))
        _usage_error(f"{culprit} is not valid YAML or not a readable config file: {error}")
    if task not in get_args(Task):
        _usage_error(f"unknown task {task!r}; use one of: {', '.join(get_args(Task))}")
    return task  # type: ignore[return-value]


def run_lightning_cli(args: list[str]) -> LightningCLI:
    """Run one LightningCLI command (``fit``, ``validate``, ``test`` or ``predict``) with its arguments.

    Data that turns out unable to serve the command once its videos were read (no readable clip in a split it needs,
    a class without a readable training clip: :class:`~vidrnn.data.usable.UnusableData`) ends it with its message
    and exit status 1, without a traceback: the message names the clips and what to do, a traceback adds nothing. So
    does a fit whose training loss is no longer a number (:class:`~vidrnn.schedules.TrainingDiverged`).
    An evaluation with fewer items than processes (:class:`~vidrnn.distributed.TooFewToShare`) ends it likewise, as
    a usage error (exit status 2): the same command in one process runs it.
    """
    from vidrnn.data.usable import UnusableData
    from vidrnn.distributed import TooFewToShare
    from vidrnn.schedules import TrainingDiverged

    try:
        return _run_task_cli(args)
    except (UnusableData, TooFewToShare, TrainingDiverged) as error:
        if rank_zero_only.rank == 0:  # every rank finds it; one says it
            print(f"vidrnn {args[0]}: error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE if isinstance(error, TooFewToShare) else EXIT_FAILED) from None


def _run_task_cli(args: list[str]) -> LightningCLI:
    """The LightningCLI of the task the command line asks for (:func:`task_of`), run."""
    from vidrnn.runs import RunConfig

    if task_of(args) == "tracking":
        from vidrnn.data.tracking_datamodule import TrackingDataModule
        from vidrnn.models.tracker_module import FrameTracker

        cli_class, model_class, data_class = TrackingCLI, FrameTracker, TrackingDataModule
    else:
        from vidrnn.data.module import VideoDataModule
        from vidrnn.models.classifier import VideoClassifier

        cli_class, model_class, data_class = VidrnnCLI, VideoClassifier, VideoDataModule
    return cli_class(
        model_class,
        data_class,
        args=None if args == sys.argv[1:] else args,  # from the shell, let LightningCLI read sys.argv itself
        seed_everything_default=0,
        save_config_callback=RunConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "vidrnn", **{command: {"description": text} for command, text in _DESCRIPTIONS.items()}},
        # The optimiser and scheduler are the model's (model.optimizer, model.scheduler, which the configs set): a
        # top-level --optimizer would replace them and silently drop the config's scheduler.
        auto_configure_optimizers=False,
    )
