"""LightningCLI for ``vidrnn fit|validate|test|predict``: configs in YAML, the data module wired to the model.

Two tasks share the commands. A config says which one it is with a top-level ``task:`` key (``classification``, the
default, or ``tracking``); ``--task`` on the command line says it too. Each task has its own model, data module and
links:

* classification — :class:`VideoClassifier` on :class:`VideoDataModule`. The model's input size and class list are
  linked from the instantiated data module (its features and its dataset), and so are the backbone and sampling
  specs, which the model saves as hyperparameters: a checkpoint carries everything ``vidrnn classify`` needs.
* tracking — :class:`FrameTracker` on :class:`TrackingDataModule`; the backbone spec, search geometry and template
  size are linked the same way, so the evidence the model was trained on is the evidence ``vidrnn track`` computes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal, get_args

import yaml
from lightning.pytorch.cli import LightningCLI

from vidrnn.callbacks import ClipPredictionWriter

__all__ = ["Task", "TrackingCLI", "VidrnnCLI", "run_lightning_cli", "task_of"]

Task = Literal["classification", "tracking"]


def _add_common_arguments(parser) -> None:
    parser.add_argument(
        "--task", type=Task, default="classification",
        help="which model and data module the config is for: classification (default) or tracking",
    )
    parser.add_argument(
        "--test_after_fit", type=bool, default=False,
        help="after fit, evaluate the best checkpoint on the test split and print its metrics",
    )


class _TestAfterFit:
    def after_fit(self) -> None:
        if self.config.fit.test_after_fit:
            has_best = bool(self.trainer.checkpoint_callback and self.trainer.checkpoint_callback.best_model_path)
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if has_best else None)


class VidrnnCLI(_TestAfterFit, LightningCLI):
    """Classification: the data → model links and an optional test run right after fitting."""

    def add_arguments_to_parser(self, parser) -> None:
        _add_common_arguments(parser)
        for source, target in [
            ("data.num_classes", "model.num_classes"),
            ("data.feature_dim", "model.input_dim"),
            ("data.class_names", "model.class_names"),
            ("data.steps", "model.steps"),
        ]:
            parser.link_arguments(source, target, apply_on="instantiate")
        parser.link_arguments("data.backbone_spec", "model.backbone", compute_fn=lambda spec: spec.to_dict(),
                              apply_on="instantiate")
        parser.link_arguments("data.sampling_spec", "model.sampling", compute_fn=lambda spec: spec.to_dict(),
                              apply_on="instantiate")

    def before_predict(self) -> None:
        self.trainer.callbacks.append(ClipPredictionWriter())


class TrackingCLI(_TestAfterFit, LightningCLI):
    """Tracking: the backbone and search geometry travel from the data module to the model."""

    def add_arguments_to_parser(self, parser) -> None:
        _add_common_arguments(parser)
        parser.link_arguments("data.backbone_spec", "model.backbone", compute_fn=lambda spec: spec.to_dict(),
                              apply_on="instantiate")
        parser.link_arguments("data.geometry", "model.geometry", compute_fn=asdict, apply_on="instantiate")
        parser.link_arguments("data.template_cells", "model.template_cells", apply_on="instantiate")
        parser.link_arguments("data.template_rate", "model.template_rate", apply_on="instantiate")
        parser.link_arguments("data.scale_rate", "model.scale_rate", apply_on="instantiate")
        parser.link_arguments("data.hold_below", "model.hold_below", apply_on="instantiate")


def _config_paths(args: Sequence[str]) -> list[Path]:
    paths = []
    for position, arg in enumerate(args):
        if arg == "--config" and position + 1 < len(args):
            paths.append(Path(args[position + 1]))
        elif arg.startswith("--config="):
            paths.append(Path(arg.split("=", 1)[1]))
    return paths


def task_of(args: Sequence[str]) -> Task:
    """The task a command line asks for: the last ``--task`` given, else the last config file's ``task:`` key."""
    task: str = "classification"
    for path in _config_paths(args):
        if path.is_file():
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(values, dict) and "task" in values:
                task = values["task"]
    for position, arg in enumerate(args):
        if arg == "--task" and position + 1 < len(args):
            task = args[position + 1]
        elif arg.startswith("--task="):
            task = arg.split("=", 1)[1]
    if task not in get_args(Task):
        raise SystemExit(f"vidrnn: unknown task {task!r}; use one of: {', '.join(get_args(Task))}")
    return task  # type: ignore[return-value]


def run_lightning_cli(args: list[str]) -> LightningCLI:
    """Run one LightningCLI command (``fit``, ``validate``, ``test`` or ``predict``) with its arguments."""
    if task_of(args) == "tracking":
        from vidrnn.data.tracking_module import TrackingDataModule
        from vidrnn.models.frame_tracker import FrameTracker

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
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "vidrnn"},
    )
