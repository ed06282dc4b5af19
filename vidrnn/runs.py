"""A fit's run folder (``ROOT/lightning_logs/version_N/``), continued by a fit resumed from one of its checkpoints.

Lightning starts a new ``version_N`` for every fit, a resumed one included. There, ``ModelCheckpoint`` does not take
back the best score it recorded (its folder has changed), so the first epoch after the resume became ``best.ckpt``
however good it was, and ``test_after_fit`` tested it; the run's ``metrics.csv`` was split over two folders, and the
steps run again after the last checkpoint were in both. A fit resumed from ``.../version_N/checkpoints/X.ckpt``
therefore writes into that ``version_N`` again, with the logger it was configured with where that logger can
(:func:`continued_logger`: :class:`RunLogger` continues its ``metrics.csv`` from the checkpoint's step), and
:class:`ContinuedCheckpoints` gives each ``ModelCheckpoint`` back its state — also where the run recorded its folder
under another spelling (absolute, relative to another working directory) or before it was moved. The run's
``config.yaml`` stays the record of its first settings (:class:`RunConfig`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

from vidrnn.files import atomic_write_bytes

__all__ = ["ContinuedCheckpoints", "RunConfig", "RunFolder", "RunLogger", "continued_logger", "fresh_logger",
           "keep_logged_rows", "logged_step", "resume_checkpoint", "resumed_config_name", "run_folder",
           "settle_versions"]


class RunFolder(NamedTuple):
    """``root/name/version_{version}``: where Lightning's loggers put a run (``name`` is ``lightning_logs``)."""

    root: str
    name: str
    version: int

    @property
    def path(self) -> Path:
        return Path(self.root, self.name, f"version_{self.version}")


def run_folder(checkpoint: str | os.PathLike) -> RunFolder | None:
    """The run whose ``checkpoints/`` folder holds ``checkpoint``, or ``None`` for a file kept anywhere else. Read
    from the absolute path, so that ``checkpoints/latest.ckpt`` typed inside the run's folder is that run's too."""
    path = Path(checkpoint).absolute()
    version = re.fullmatch(r"version_(\d+)", path.parent.parent.name)
    if path.parent.name != "checkpoints" or version is None:
        return None
    return RunFolder(str(path.parents[3]), path.parents[2].name, int(version.group(1)))


def logged_step(checkpoint: dict[str, Any]) -> int:
    """The step the first row logged after resuming from ``checkpoint`` carries: rows of the run from this step on
    were logged after it was saved, by steps the resumed fit runs again."""
    return checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"]


def resume_checkpoint(trainer: Trainer) -> str | None:
    """The checkpoint a stopped fit resumes from: the newest that a ``ModelCheckpoint`` keeps of every epoch (one
    without ``monitor``, as the configs' ``latest.ckpt``) or as ``last.ckpt``; ``None`` before any was written. A
    monitored best is no place to go on from: the epochs after it would run again."""
    saved = [path for callback in trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint)
             for path in (callback.last_model_path, "" if callback.monitor else callback.best_model_path)
             if path and os.path.isfile(path)]
    return max(saved, key=os.path.getmtime, default=None)


class RunLogger(CSVLogger):
    """Lightning's CSV logger (``metrics.csv``), on disk at every checkpoint, and able to continue a run.

    Lightning writes the rows every 100 steps: a run killed between two would leave its checkpoint ahead of its
    ``metrics.csv``, and the resumed run's file with a gap. ``continue_from``: the step a resumed fit starts at
    (:func:`logged_step`); the run's rows logged before it are kept, the others dropped (the fit logs them again), where
    Lightning's own writer would delete the file.
    """

    def __init__(self, save_dir: str | os.PathLike, name: str = "lightning_logs", version: int | None = None,
                 continue_from: float | None = None, **kwargs: Any) -> None:
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self._continue_from = continue_from

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = (ExperimentWriter(self.log_dir) if self._continue_from is None else
                                _ContinuedWriter(self.log_dir, self._continue_from))
        return self._experiment

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        self.save()

    def keep_logged_rows(self) -> None:
        """Have the writer made next keep every row of the run's ``metrics.csv`` (:func:`keep_logged_rows`)."""
        self._continue_from = math.inf


def fresh_logger(configured: Any, spec: Any, default_root: str) -> Any:
    """The logger of a fit that starts a run: the ``configured`` one, where none is (``None`` or ``True``) a
    :class:`RunLogger` under ``default_root``, and a configured ``CSVLogger`` as a :class:`RunLogger` with its
    settings (``spec``: its config), so that its ``metrics.csv`` keeps up with the checkpoints as the default's does."""
    if configured in (None, True):
        return RunLogger(default_root)
    if type(configured) is CSVLogger:
        return RunLogger(**{**spec.init_args.as_dict(), **(spec.get("dict_kwargs") or {})})
    return configured


def settle_versions(trainer: Trainer) -> None:
    """Give the trainer's CSV and TensorBoard loggers their ``version_N`` now, where Lightning's launcher starts the
    processes from this one (``ddp_spawn``, ``ddp_fork``): each launch sends them its logger as it stands, so a
    version left open was chosen by each launch's rank 0 apart, and ``test_after_fit``'s, finding the fit's folder,
    wrote its results into a new one. ``ddp``'s processes run the command again, each choosing as this one does."""
    if not _launched_from_here(trainer):
        return
    for logger in trainer.loggers:
        if isinstance(logger, (CSVLogger, TensorBoardLogger)):
            logger.version  # read, the next free version is chosen and kept


def keep_logged_rows(trainer: Trainer) -> None:
    """Have the next launch of the trainer's processes keep the rows the last one wrote into ``metrics.csv``: each
    launch's rank 0 makes its own writer, which would delete the fit's rows as ``test_after_fit`` begins. One process
    (or ``ddp``) keeps one writer, which appends."""
    if not _launched_from_here(trainer):
        return
    for logger in trainer.loggers:
        if isinstance(logger, RunLogger):
            logger.keep_logged_rows()


def _launched_from_here(trainer: Trainer) -> bool:
    """Whether Lightning's launcher starts the trainer's processes from this one (spawned or forked), sending each
    launch the trainer as it stands here."""
    return isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)


def continued_logger(configured: Any, spec: Any, run: RunFolder, step: int) -> Logger:
    """The logger of a fit resumed at ``step`` from a checkpoint of ``run``: the ``configured`` one (``None`` or
    ``True``: vidrnn's default), made from its config ``spec`` with the run's folder as its version. A CSV logger goes
    on as a :class:`RunLogger`, TensorBoard's purging the events of the steps run again. Any other logger (several, or
    one that takes no version) would write elsewhere, and the run's best checkpoint would start afresh there: a
    ``ValueError`` says so and what to do."""
    default = configured in (None, True)
    kind = RunLogger if default or type(configured) in (CSVLogger, RunLogger) else type(configured)
    if kind not in (RunLogger, TensorBoardLogger):
        what = f"{len(configured)} loggers" if isinstance(configured, list) else kind.__name__
        raise ValueError(f"a fit resumed from a run's checkpoint goes on in that run ({run.path}), and {what} cannot "
                         "write into it (vidrnn's default logger, Lightning's CSVLogger and TensorBoardLogger can): "
                         "resume with one of those, or copy the checkpoint out of the run's checkpoints/ folder to "
                         "resume into a new run whose best checkpoint starts afresh")
    given = {} if default else {**spec.init_args.as_dict(), **(spec.get("dict_kwargs") or {})}
    place = {"save_dir": run.root, "name": run.name, "version": run.version}
    return kind(**{**given, **place, **({"continue_from": step} if kind is RunLogger else {"purge_step": step})})


def resumed_config_name(checkpoint: dict[str, Any]) -> str:
    """The file a fit resumed from ``checkpoint`` records its settings in, beside its run's ``config.yaml``."""
    return f"config.resumed_at_step_{logged_step(checkpoint)}.yaml"


class RunConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml`` of a run. A fit's holds no ``ckpt_path``: the settings of a fresh run, which
    ``--config`` reproduces (recorded, the checkpoint made ``vidrnn fit --config R/config.yaml`` resume that run,
    training nothing and testing again as if reproduced). An evaluation's keeps it: the record of which checkpoint its
    confusion matrix, predictions or scores are of."""

    def __init__(self, parser: Any, config: Any, **kwargs: Any) -> None:
        super().__init__(parser, config.clone(), **kwargs)
        evaluated = self.config.get("ckpt_path")
        # As a path from anywhere: as typed it is relative to where the command ran.
        self._evaluated = str(Path(evaluated).resolve()) if evaluated and Path(evaluated).is_file() else evaluated

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if "ckpt_path" in self.config:
            self.config.ckpt_path = None if stage == "fit" else self._evaluated
        super().setup(trainer, pl_module, stage)


class _ContinuedWriter(ExperimentWriter):
    """Lightning's writer of ``metrics.csv``, keeping the rows of an existing file that were logged before a step;
    resuming a fit (a finite step), none of an earlier test after fit, which the resumed fit makes again (under
    ``ddp_spawn`` it was logged at step 0, as the launching process's trainer never steps)."""

    def __init__(self, log_dir: str, continue_from: float) -> None:
        self._continue_from = continue_from
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Where Lightning's writer warns about a folder with files and deletes ``metrics.csv``, rewrite the file with
        the rows before the resumed step, at once and atomically: a run stopped again before its next save keeps
        them."""
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            resumed = math.isfinite(self._continue_from)
            kept = [row for row in reader if int(row["step"]) < self._continue_from
                    and not (resumed and any(row[key] for key in row if key.startswith("test/")))]
            self.metrics_keys = list(reader.fieldnames or [])
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, text.getvalue().encode())


class ContinuedCheckpoints(Callback):
    """Give each ``ModelCheckpoint`` that writes into ``folder`` — the folder of the checkpoint a fit resumes from —
    its state back: best score, best and k-th best files.

    ``ModelCheckpoint`` takes them back only when the folder it recorded is spelled as the one it writes to now, and
    otherwise starts a new best from the first epoch after the resume, overwriting the run's ``best.ckpt``. A run
    records its folder as its ``default_root_dir`` was given; resumed from another working directory, through another
    spelling of the path, or after the folder was moved, the recorded paths name the same files under another name:
    they are moved to the name used now before the state is loaded.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).resolve()

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("callbacks", {})
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            if state and isinstance(callback, ModelCheckpoint) and Path(callback.dirpath).resolve() == self.folder:
                states[callback.state_key] = _moved_state(state, state["dirpath"], callback.dirpath)


def _moved_state(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A ``ModelCheckpoint`` state whose files under ``old`` are named under ``new``."""
    def moved(path: str) -> str:
        relative = os.path.relpath(path, old) if path else os.pardir
        return path if relative.startswith(os.pardir) else os.path.join(new, relative)

    paths = {key: moved(state[key]) for key in ("best_model_path", "kth_best_model_path", "last_model_path")
             if key in state}
    return {**state, **paths, "dirpath": new,
            "best_k_models": {moved(path): score for path, score in state.get("best_k_models", {}).items()}}
