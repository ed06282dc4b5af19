"""What both tasks' Lightning commands share: their common arguments, and a LightningCLI mixin that finds usage errors
before anything slow, seeds, logs and resumes runs, says how a stopped command can go on, and tests after fitting."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.seed import max_seed_value
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from vidrnn.exit_codes import EXIT_INTERRUPTED
from vidrnn.files import denied, unwritable
from vidrnn.task_cli.refusals import (
    TOP_LEVEL_OPTIMIZER,
    checkpoint_from_a_config,
    last_given,
    refuse_checkpoint_keyword,
    refuse_no_logger,
    refuse_top_level_optimizer,
    usage_error,
)

if TYPE_CHECKING:
    from vidrnn.runs import RunFolder

__all__ = ["Task", "VidrnnCommands", "add_common_arguments"]


Task = Literal["classification", "tracking"]


def add_common_arguments(parser: LightningArgumentParser) -> None:
    """Add what both tasks' commands take: ``--task``, which chose the parser and is kept in the run's ``config.yaml``;
    ``--test_after_fit``; and the top-level optimiser keys of older configs, read only to be refused."""
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
    # (refuse_top_level_optimizer). Suppressed: not in --help, nor in --print_config and config.yaml unless given.
    for name in TOP_LEVEL_OPTIMIZER:
        parser.add_argument(f"--{name}", type=Optional[Any], default=argparse.SUPPRESS, help=argparse.SUPPRESS)


#: ``--ckpt_path`` values that name no file: Lightning finds those checkpoints itself.
_CKPT_KEYWORDS = ("best", "last", "hpc", "registry")


class VidrnnCommands:
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
            usage_error("seed_everything true draws a seed in each process when several are launched together "
                        "(torchrun, SLURM), and the run's config.yaml would record rank 0's alone: give the seed, "
                        "such as --seed_everything 1234")
        if config.get("seed_everything") is True and (rank_zero_only.rank == 0 or "PL_GLOBAL_SEED" not in os.environ):
            config["seed_everything"] = secrets.randbelow(max_seed_value + 1)
            resumed = self.subcommand == "fit" and config.get("ckpt_path")
            rank_zero_info(f"seed_everything true: drew the seed {config['seed_everything']} " + (
                "(unused: a resumed fit goes on with the random state its checkpoint saved)" if resumed
                else "(the run's config.yaml records it)"))
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
        other task's, or the keyword ``best`` or ``last`` where Lightning would find no such checkpoint
        (:func:`refuse_checkpoint_keyword`), before anything slow: the data module would extract the whole dataset
        first, and Lightning would fail only then (on the other task's checkpoint: on hyperparameters that name
        neither task)."""
        from vidrnn.checkpoints import load_checkpoint, require_task

        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            refuse_top_level_optimizer(self.config[subcommand])
            refuse_no_logger(subcommand, self.config[subcommand])
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path in ("best", "last") and not Path(ckpt_path).is_file():
            refuse_checkpoint_keyword(subcommand, ckpt_path, self.config[subcommand].trainer.get("default_root_dir"))
        if not ckpt_path or (str(ckpt_path).split(":")[0] in _CKPT_KEYWORDS and not Path(ckpt_path).is_file()):
            return
        if last_given(sys.argv[1:] if args is None else list(args), "--ckpt") != str(ckpt_path):
            checkpoint_from_a_config(subcommand, ckpt_path)
        if not Path(ckpt_path).is_file():
            usage_error(f"--ckpt_path {ckpt_path}: no such checkpoint file")
        if str(ckpt_path).split(":")[0] in _CKPT_KEYWORDS:  # a file so named, which Lightning would read as its keyword
            ckpt_path = self.config[subcommand]["ckpt_path"] = str(Path(ckpt_path).absolute())
        try:
            self.checkpoint_path = ckpt_path
            self.checkpoint = load_checkpoint(ckpt_path)
            require_task(self.checkpoint, self.model_class.TASK, ckpt_path)
        except ValueError as error:
            usage_error(str(error))
        # LightningCLI merges the checkpoint's hyperparameters into the config next, and would fail on keys it no
        # longer knows without saying why: an older shape is refused first, saying how to convert it.
        self._check_checkpoint(lambda checkpoint: self._require_current(checkpoint.get("hyper_parameters", {})))
        if subcommand == "fit":
            self._check_checkpoint(self._require_model_settings)
            arguments = sys.argv[1:] if args is None else list(args)
            self._check_checkpoint(lambda checkpoint: self._require_run_seed(arguments))

    @staticmethod
    def _require_current(hparams: dict[str, Any]) -> None:
        """Refuse a checkpoint's ``hparams`` saved in an older shape of the task's model, saying how to convert them
        (a ``ValueError``)."""
        raise NotImplementedError

    def _run_config(self) -> Path | None:
        """The ``config.yaml`` of the run the ``--ckpt_path`` checkpoint was saved in, or ``None`` where there is none
        beside its ``checkpoints/`` folder (moved out of its run)."""
        config = Path(self.checkpoint_path).absolute().parent.parent / "config.yaml"
        return config if config.is_file() else None

    def _run_config_fix(self) -> str:
        """Where a resume finds the settings the checkpoint was trained with, for a refusal to name."""
        config = self._run_config()
        return f"--config {config}" if config else "the config.yaml of the run that trained it"

    def _require_run_seed(self, arguments: list[str]) -> None:
        """Hold a resumed fit to the ``seed_everything`` its run's ``config.yaml`` records: the fit goes on with the
        random state its checkpoint saved (clip order, segment offsets, dropout), so another seed would be ignored,
        while ``config.resumed_at_step_N.yaml`` recorded it as used. A seed given as ``--seed_everything N`` on the
        command line (``arguments``) is refused; one from a config file (the run began with ``--seed_everything N``
        or ``true``, its resume reads the config's) and ``true`` (a fresh seed) become the run's. A run without its
        ``config.yaml``, or one that records no seed, is not compared. Any ``--seed...`` argument counts as given
        (argparse takes ``--seed_every 5`` and ``05``)."""
        given, config = self.config.fit.get("seed_everything"), self._run_config()
        if config is None:
            return
        recorded = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("seed_everything")
        if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded == given:
            return
        if isinstance(given, bool) or not any(argument.startswith("--seed") for argument in arguments):
            self.config.fit.seed_everything = recorded
            return
        raise ValueError(f"this resume gives another seed (seed_everything: {recorded} there, {given} here): a "
                         "resumed fit goes on with the random state its checkpoint saved (clip order, segment "
                         "offsets, dropout), so the seed would be ignored, while config.resumed_at_step_N.yaml "
                         f"recorded it as used. Leave --seed_everything out, and the resume takes the seed its "
                         f"{self._run_config_fix()} records, or start a new fit without --ckpt_path")

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
            usage_error(denied(error))
        except (FileExistsError, FileNotFoundError, ValueError, WeightsUnavailableError) as error:
            usage_error(str(error))
        except (MisconfigurationException, ModuleNotFoundError) as error:  # what the Trainer says of its settings
            usage_error(f"the trainer's settings ask for what this machine lacks ({error}): set --trainer.accelerator "
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
                    usage_error(f"{folder}: {reason}; a resumed fit goes on in its own run folder: make it writable "
                                f"for this user, or copy {version} to a folder this user can write (keeping its "
                                f"{run.name}/version_{run.version}/ layout) and resume from the copy's "
                                "checkpoints/latest.ckpt")
        # A resumed run writes in its version folder alone (checked above), whatever default_root_dir says.
        places = [] if run else [*(logger.save_dir for logger in self.trainer.loggers), self.trainer.default_root_dir]
        folders = {os.path.abspath(folder) for folder in places if folder and "://" not in str(folder)}
        for folder in sorted(folders):
            reason = unwritable(Path(folder))
            if reason is not None:
                usage_error(f"{folder}: {reason}; the run writes its logs and checkpoints there: choose a folder "
                            "this user can write (--trainer.default_root_dir)")

    def _check_checkpoint(self, check: Callable[[dict[str, Any]], None]) -> None:
        """Run ``check`` on the ``--ckpt_path`` checkpoint, when one was read; what it refuses ends the command as a
        usage error naming the file."""
        if self.checkpoint is None:
            return
        try:
            check(self.checkpoint)
        except ValueError as error:
            usage_error(f"{self.checkpoint_path}: {error}")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer as configured (:meth:`_run_logger`). A fit resumed from a checkpoint in a run's ``checkpoints/``
        folder goes on in that run (:mod:`vidrnn.runs`), and records its settings beside the run's ``config.yaml``,
        which stays the record of the run's first ones. Processes spawned or forked from this one write into the run
        folder chosen here (:func:`vidrnn.runs.settle_versions`)."""
        from vidrnn.runs import ContinuedCheckpoints, resumed_config_name, settle_versions

        if "logger" not in kwargs:
            kwargs["logger"] = self._run_logger()
        if self._resumed_run() is not None:
            self.save_config_kwargs["config_filename"] = resumed_config_name(self.checkpoint)
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand == "fit" and self.checkpoint_path is not None:
            trainer.callbacks.append(ContinuedCheckpoints(Path(self.checkpoint_path).parent))
        settle_versions(trainer)
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
            usage_error(f"{self.checkpoint_path}: {error}")
        rank_zero_info(f"resuming the run in {run.path}: its checkpoints and metrics go on there")
        return logger

    def after_fit(self) -> None:
        """With ``test_after_fit``, test the best checkpoint: that of the first ``ModelCheckpoint`` with a ``monitor``,
        wherever it stands among the callbacks (Lightning's ``ckpt_path="best"`` asks the first ``ModelCheckpoint``,
        which, listed first, would be the one keeping ``latest.ckpt``, and test the final weights as if the best); the
        final weights where no checkpoint was chosen by a score (no validation split), saying so. Its rows go on in
        the fit's ``metrics.csv`` (:func:`vidrnn.runs.keep_logged_rows`)."""
        from vidrnn.runs import keep_logged_rows

        if not self.config.fit.test_after_fit:
            return
        best = next((callback for callback in self.trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint)
                     and callback.monitor and callback.best_model_path), None)
        if best is not None:
            rank_zero_info(f"testing the best checkpoint by {best.monitor}: {best.best_model_path}")
        else:
            rank_zero_info("testing the final weights: no checkpoint was chosen by a validation score")
        keep_logged_rows(self.trainer)
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


