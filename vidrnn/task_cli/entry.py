"""Which task a command line asks for, and the entry point that runs that task's LightningCLI."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import Any, get_args

import jsonargparse
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from vidrnn.callbacks import PREDICTION_COLUMNS
from vidrnn.exit_codes import EXIT_FAILED, EXIT_USAGE
from vidrnn.task_cli.classification import VidrnnCLI
from vidrnn.task_cli.commands import Task
from vidrnn.task_cli.refusals import usage_error
from vidrnn.task_cli.tracking import TrackingCLI

__all__ = ["command_settings", "run_lightning_cli", "task_of"]


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
        usage_error(f"{culprit} is not valid YAML or not a readable config file: {error}")
    if task not in get_args(Task):
        usage_error(f"unknown task {task!r}; use one of: {', '.join(get_args(Task))}")
    return task  # type: ignore[return-value]


def run_lightning_cli(args: list[str]) -> LightningCLI:
    """Run one LightningCLI command (``fit``, ``validate``, ``test`` or ``predict``) with its arguments.

    Data that turns out unable to serve the command once its videos were read (no readable clip in a split it needs,
    a class without a readable training clip: :class:`~vidrnn.data.usable.UnusableData`) ends it with its message
    and exit status 1, without a traceback: the message names the clips and what to do, a traceback adds nothing. So
    does a fit whose training loss is no longer a number (:class:`~vidrnn.schedules.TrainingDiverged`).
    An evaluation with fewer items than processes (:class:`~vidrnn.distributed.TooFewToShare`) ends it likewise, as
    a usage error (exit status 2): the same command in one process runs it; so do ranks that built different splits
    (:class:`~vidrnn.distributed.RanksDisagree`), said by every rank.
    """
    from vidrnn.data.usable import UnusableData
    from vidrnn.distributed import RanksDisagree, TooFewToShare
    from vidrnn.schedules import TrainingDiverged

    try:
        return _run_task_cli(args)
    except (UnusableData, TooFewToShare, TrainingDiverged, RanksDisagree) as error:
        # Every rank finds it; one says it, but ranks that disagree each say it, in each node's log.
        if rank_zero_only.rank == 0 or isinstance(error, RanksDisagree):
            print(f"vidrnn {args[0]}: error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE if isinstance(error, (TooFewToShare, RanksDisagree)) else EXIT_FAILED) from None


def _run_task_cli(args: list[str]) -> LightningCLI:
    """The LightningCLI of the task the command line asks for (:func:`task_of`), run."""
    cli_class, model_class, data_class = _task_classes(task_of(args))
    return cli_class(
        model_class,
        data_class,
        args=None if args == sys.argv[1:] else args,  # from the shell, let LightningCLI read sys.argv itself
        **_cli_options(),
    )


def _task_classes(task: Task) -> tuple[type[LightningCLI], type, type]:
    """The task's LightningCLI, model and data module classes, imported on demand (torch, the models, the data)."""
    if task == "tracking":
        from vidrnn.data.tracking_datamodule import TrackingDataModule
        from vidrnn.models.tracker_module import FrameTracker

        return TrackingCLI, FrameTracker, TrackingDataModule
    from vidrnn.data.module import VideoDataModule
    from vidrnn.models.classifier import VideoClassifier

    return VidrnnCLI, VideoClassifier, VideoDataModule


def _cli_options() -> dict[str, Any]:
    """How every task's LightningCLI is built, for the commands and for :func:`command_settings` alike, so that the
    settings read without running are those a run gets (the seed's default among them)."""
    from vidrnn.runs import RunConfig

    return {
        "seed_everything_default": 0,
        "save_config_callback": RunConfig,
        "save_config_kwargs": {"overwrite": True},
        "parser_kwargs": {"prog": "vidrnn",
                          **{command: {"description": text} for command, text in _DESCRIPTIONS.items()}},
        # The optimiser and scheduler are the model's (model.optimizer, model.scheduler, which the configs set): a
        # top-level --optimizer would replace them and silently drop the config's scheduler.
        "auto_configure_optimizers": False,
    }


def command_settings(args: Sequence[str]) -> jsonargparse.Namespace:
    """The settings ``vidrnn fit ARGS`` runs with, read by its task's own LightningCLI parser, as the run reads them:
    config files, group files (``--data FILE``, ``--data.backbone FILE``, a config's ``data: FILE``) and ``--KEY``
    options in command-line order over the code's defaults. Nothing is seeded or made, so it costs a parse, not a
    model or a dataset: for a script that starts runs to check their settings before the first (the benchmarks).
    The values are not validated (the runs add what completes them, such as a logger's ``save_dir``); an option
    the parser does not take, or a group file it cannot read, raises ``jsonargparse.ArgumentError``."""
    return _settings_parser(task_of(args)).parse_args(list(args), _skip_validation=True)


@functools.cache
def _settings_parser(task: Task) -> jsonargparse.ArgumentParser:
    """The main parser of the task's LightningCLI (the settings every command takes), built once per process by the
    CLI itself with ``run=False`` and nothing seeded or instantiated; its usage errors are raised, not exited on."""
    cli_class, model_class, data_class = _task_classes(task)

    class ParserOnly(cli_class):  # type: ignore[misc, valid-type]
        def parse_arguments(self, parser: jsonargparse.ArgumentParser, args: object) -> None:
            """Nothing parsed here: :func:`command_settings` parses each command line with the parser."""
            self.config = jsonargparse.Namespace()

        def _set_seed(self) -> None:
            """No seed: nothing runs."""

        def _add_instantiators(self) -> None:
            """No instantiators: nothing is made."""

        def instantiate_classes(self) -> None:
            """Nothing made: only the parser is wanted."""

    options = _cli_options()
    options["parser_kwargs"] = {**options["parser_kwargs"], "exit_on_error": False}
    return ParserOnly(model_class, data_class, run=False, **options).parser
