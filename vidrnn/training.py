"""LightningCLI for ``vidrnn fit|validate|test|predict``: configs in YAML, the data module wired to the model.

The model's input size and class list are not configured by hand: they are linked from the instantiated data module
(its features and its dataset), and so are the backbone and sampling specs, which the model saves as
hyperparameters. A checkpoint therefore carries everything ``vidrnn classify`` needs.
"""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI

from vidrnn.callbacks import ClipPredictionWriter
from vidrnn.data.module import VideoDataModule
from vidrnn.models.classifier import VideoClassifier

__all__ = ["VidrnnCLI", "run_lightning_cli"]


class VidrnnCLI(LightningCLI):
    """LightningCLI with the data → model links and an optional test run right after fitting."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--test_after_fit", type=bool, default=False,
            help="after fit, evaluate the best checkpoint on the test split and print its metrics",
        )
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

    def after_fit(self) -> None:
        if self.config.fit.test_after_fit:
            has_best = bool(self.trainer.checkpoint_callback and self.trainer.checkpoint_callback.best_model_path)
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if has_best else None)


def run_lightning_cli(args: list[str]) -> VidrnnCLI:
    """Run one LightningCLI command (``fit``, ``validate``, ``test`` or ``predict``) with its arguments."""
    return VidrnnCLI(
        VideoClassifier,
        VideoDataModule,
        args=None if args == sys.argv[1:] else args,  # from the shell, let LightningCLI read sys.argv itself
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "vidrnn"},
    )
