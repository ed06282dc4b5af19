"""The classification task's LightningCLI: :class:`VideoClassifier` on :class:`VideoDataModule`.

The model's input size and class list are linked from the instantiated data module (its features and its dataset),
and so is the preprocessing pipeline (backbone, sampling, steps), which the model saves as a hyperparameter: a
checkpoint carries everything ``vidrnn classify`` needs. The config describes the model's temporal encoder under
``model.encoder``.
"""

from __future__ import annotations

from operator import methodcaller
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from vidrnn.callbacks import ClipPredictionWriter
from vidrnn.task_cli.commands import VidrnnCommands, add_common_arguments
from vidrnn.task_cli.refusals import as_usage_error, require_checkpoint, usage_error

__all__ = ["VidrnnCLI"]


class VidrnnCLI(VidrnnCommands, LightningCLI):
    """Classification: the data → model links and an optional test run right after fitting."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_common_arguments(parser)
        for source, target in [
            ("data.num_classes", "model.num_classes"),
            ("data.feature_dim", "model.input_dim"),
            ("data.class_names", "model.class_names"),
        ]:
            parser.link_arguments(source, target, apply_on="instantiate")
        # methodcaller, not a lambda: the parser is pickled with the trainer (SaveConfigCallback holds it) by
        # ddp_spawn and every DDP started by spawn, and a local function cannot be pickled.
        parser.link_arguments("data.pipeline", "model.pipeline", compute_fn=methodcaller("to_dict"),
                              apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse and check ``--ckpt_path`` as both tasks do, then refuse an evaluation without one."""
        super().parse_arguments(parser, args)
        require_checkpoint(self.config)

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
            self._check_checkpoint(self._check_batches)
            as_usage_error(self.datamodule.require_fit_data)
        if self.config.get("subcommand") == "fit" and self.model.hparams.init_from is not None:
            self._check_pretrained(self.model.hparams.init_from)
        as_usage_error(self.datamodule.require_writable)

    def _check_split(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a data split other than the checkpoint's (another UCF101 fold, another seed for class folders; the
        same settings over class folders whose videos changed since, where the checkpoint records the clips it was
        fitted on): its test or validation clips would include clips the model trained on
        (:func:`vidrnn.data.splits.check_split`)."""
        from vidrnn.data.splits import check_split

        from vidrnn.data.module import recorded_data_settings

        check_split(recorded_data_settings(checkpoint), self.datamodule.hparams, self.config.subcommand,
                    self._run_config(), self.datamodule.drawn_keys())

    def _check_batches(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a resume whose batches differ from the checkpoint's (:meth:`VideoDataModule.require_resumable`)."""
        from vidrnn.data.module import recorded_data_settings

        self.datamodule.require_resumable(recorded_data_settings(checkpoint) or {}, self._run_config_fix())

    def _check_pretrained(self, init_from: str) -> None:
        """Hold the checkpoint ``model.init_from`` names against this fit before anything slow: its encoder must be
        built like this model's (:func:`pretrained_encoder`, which ``setup("fit")`` runs again to load it), and its
        pretraining must not have seen this fit's test clips (:meth:`VideoDataModule.require_unseen_test_clips`).
        Either would otherwise show only after the features were extracted — or, the second, never."""
        from vidrnn.checkpoints import load_checkpoint
        from vidrnn.models.classifier import pretrained_encoder

        if not Path(init_from).is_file():
            usage_error(f"--model.init_from {init_from}: no such checkpoint file")
        encoder = self.model.encoder
        try:
            pretrained_encoder(init_from, encoder.input_dim, encoder.spec, self.model.pipeline)
        except ValueError as error:
            usage_error(f"--model.init_from {error}")
        as_usage_error(lambda: self.datamodule.require_unseen_test_clips(load_checkpoint(init_from),
                                                                          f"--model.init_from {init_from}"))

    def before_fit(self) -> None:
        """Tell the data module whether the fit ends with a test, so that it checks the test split before training;
        and say the split here, in the process that launches the fit and its test (:meth:`VideoDataModule.say_split`),
        so that neither says it again."""
        self.datamodule.tests_after_fit = self.config.fit.test_after_fit
        self.datamodule.say_split()

    def before_predict(self) -> None:
        self.trainer.callbacks.append(ClipPredictionWriter())


