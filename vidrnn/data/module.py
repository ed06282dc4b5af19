"""The Lightning data module for classification: dataset index → feature cache → batches of variable-length sequences.

The slow part (running the CNN over every video) happens once, in ``prepare_data`` on one process per node; every
epoch after that reads small float16 arrays. Time steps are sampled from the cached sequence: random offsets inside
equal segments while training (TSN's augmentation), the segment centres when evaluating, so evaluation is
reproducible.

Splits stay honest: UCF101 uses its official fold, a class-folder dataset its recorded group-keeping split, and the
validation set is carved out of the training side by whole groups, never from the test side.

The labels are the dataset's classes, or (``objective``) a temporal-order task built from the clips themselves
(:mod:`vidrnn.data.order`): arrow of time or order verification, on any dataset, unlabeled folders included.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from vidrnn.backbones import BackboneSpec, build_backbone, feature_precision
from vidrnn.batches import SequenceBatch, collate_sequences
from vidrnn.checkpoints import load_checkpoint, require_task
from vidrnn.data.folders import folder_index, unlabeled_index
from vidrnn.data.order import TASK_NAMES, OrderTask, shortest_alterable
from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.data.splits import (
    FITTED_CLIPS,
    check_split,
    copy_warnings,
    identical_copies,
    named_alike,
    split_counts,
    split_summary,
    validation_rule,
    videos_folder,
    write_split_record,
)
from vidrnn.data.streams import OFFSETS, EpochKey, EpochSampler, draws, key_of, loader_generator, starting_epoch
from vidrnn.data.synthetic import demo_generated, demo_index, ensure_demo_data
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.data.usable import STAGE_SPLITS, UsableClips, require_trained_classes
from vidrnn.devices import resolve_device
from vidrnn.distributed import evaluation_sampler, require_agreement, require_shareable
from vidrnn.features import FeatureCache, extract_features
from vidrnn.files import unwritable
from vidrnn.objectives import LABEL_SEPARATOR, ORDER_CLASSES, Objective
from vidrnn.pipeline import EXTRACT_BATCH_SIZE, PipelineSpec
from vidrnn.sampling import SamplingSpec, segment_indices

__all__ = ["VideoDataModule", "data_settings", "dataset_index", "fitted_clips", "recorded_data_settings"]

logger = logging.getLogger(__name__)


class _CachedSequences(Dataset):
    """Clips of one split, read from the feature cache, ``steps`` time steps sampled per clip."""

    def __init__(self, cache: FeatureCache, keys: list[str], labels: list[int], steps: int, train: bool, seed: int):
        self.cache, self.keys, self.labels = cache, keys, labels
        self.steps, self.train, self.seed = steps, train, seed

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, item: int | EpochKey) -> tuple[np.ndarray, int, str]:
        """Training draws new segment offsets at every visit (:mod:`vidrnn.data.streams`); evaluation takes the
        centres."""
        key = key_of(item)
        return self.sample(key.index, draws(self.seed, OFFSETS, key) if self.train else None)

    def sample(self, position: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int, str]:
        """Clip ``position``'s steps: offsets drawn from ``rng``, or the segments' centres without one."""
        features = self.cache.load(self.keys[position])
        chosen = segment_indices(len(features), self.steps, rng)
        return features[chosen], self.labels[position], self.keys[position]


def _unit(record: VideoRecord) -> tuple[str, str]:
    """What moves between train and validation as a whole: the clip's (class, group), or the clip alone."""
    return record.label, record.group or record.path.name


def _require_classes(index: DatasetIndex, objective: Objective) -> None:
    """A classifier of the dataset's classes needs two of them; with one, torchmetrics would refuse it only once the
    model is built, saying "Expected argument num_classes to be an integer larger than 1" (an order objective makes its
    own two classes, so one class folder is fine there)."""
    if objective == "classes" and len(index.classes) < 2:
        raise ValueError(f"found {len(index.classes)} class folder under {index.root} ({', '.join(index.classes)}); a "
                         "classifier needs at least 2")


def _sample_groups(records: list[VideoRecord], fraction: float, seed: int, spare: int) -> set[tuple[str, str]]:
    """About ``fraction`` of each class's (class, group) units, at least one, drawn with ``seed``.

    ``spare`` units of each class are never drawn (validation must leave a class something to train on); a class
    with no more units than that gives none.

    One generator draws for every class in name order, so a class that gains or loses a recording group changes the
    draws of the classes after it too (a folder's test groups, drawn per class, stay for unchanged classes). Kept so:
    a draw per class would change the validation split, and so the chosen checkpoints, of every run made so far.
    """
    chosen: set[tuple[str, str]] = set()
    rng = random.Random(seed)
    for label in sorted({record.label for record in records}):
        groups = sorted({_unit(record)[1] for record in records if record.label == label})
        if len(groups) <= spare:
            continue
        count = min(len(groups) - spare, max(1, round(fraction * len(groups))))
        chosen |= {(label, group) for group in rng.sample(groups, count)}
    return chosen


def _fit_splits(index: DatasetIndex, settings: Mapping[str, Any]) -> dict[str, list[VideoRecord]]:
    """The training side of ``index`` as a fit with a data module's ``settings`` (its hyperparameters) divides it:
    ``train`` and ``val``, whole groups each (a ``train_fraction`` below 1 leaves the other groups unused). Validation
    clips the index gives (an explicit split's ``val/`` folder) are the validation split as they are, and
    ``val_fraction`` plays no part."""
    train_records, given = index.split("train"), index.split("val")
    val_fraction, train_fraction, seed = settings["val_fraction"], settings["train_fraction"], settings["seed"]
    # Any fraction above 0 holds out at least a group per class; 0 holds out none.
    held_out = _sample_groups(train_records, val_fraction, seed, spare=1) if val_fraction > 0 and not given else set()
    train = [r for r in train_records if _unit(r) not in held_out]
    if train_fraction < 1.0:
        # Drawn with another seed than validation, from the groups left for training.
        kept = _sample_groups(train, train_fraction, seed + 1, spare=0)
        train = [r for r in train if _unit(r) in kept]
    return {"train": train, "val": given or [r for r in train_records if _unit(r) in held_out]}


def dataset_index(settings: Mapping[str, Any]) -> DatasetIndex:
    """The clips a data module with ``settings`` (its hyperparameters) reads, split into train and test.

    Nothing is written: a demo not generated yet is indexed as it will be (:func:`demo_index`), so that the checks a
    command makes before any work can refuse it before anything is generated (:meth:`VideoDataModule.prepare_data`
    generates it); a demo folder holding another seed's videos is refused, as generating would replace them.
    """
    dataset, root, seed = settings["dataset"], settings["root"], settings["seed"]
    if dataset == "demo":
        generated = demo_generated(root, seed, setting="data.root")
        return ucf101_index(root, fold=settings["fold"]) if generated else demo_index(root, settings["fold"])
    if dataset == "ucf101":
        return ucf101_index(root, settings["splits"], settings["fold"])
    if dataset == "unlabeled":
        return unlabeled_index(root, test_fraction=settings["test_fraction"], seed=seed)
    return folder_index(root, test_fraction=settings["test_fraction"], seed=seed)


def data_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """A data module's settings: ``given`` over the defaults of those it leaves out (or, recorded by an older
    version, predates), so that :func:`dataset_index` reads them as a data module made with ``given`` would."""
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(VideoDataModule.__init__).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    return {**defaults, **given}


def fitted_clips(settings: Mapping[str, Any]) -> set[Path]:
    """The resolved paths of the clips a fit with a data module's ``settings`` trained and validated on — those of
    another run, as its checkpoint records them (:func:`recorded_data_settings`). Its record of those clips where it
    holds one (:data:`~vidrnn.data.splits.FITTED_CLIPS`): drawn again from the settings, the split of folders changed
    since would be another one. Else from the index alone (settings it predates take today's defaults): nothing is
    decoded, extracted or generated.

    Raises ``FileNotFoundError`` or ``ValueError`` when the data cannot be found or indexed here (moved, or never here).
    """
    settings = data_settings(settings)
    if FITTED_CLIPS in settings:
        return _recorded_clips(settings)
    index = dataset_index(settings)
    return {record.path.resolve() for records in _fit_splits(index, settings).values() for record in records}


def _recorded_clips(settings: Mapping[str, Any]) -> set[Path]:
    """The resolved paths of the fitted clips ``settings`` record, where their videos folder is found here."""
    folder = videos_folder(settings)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the videos folder it was trained on is not found here")
    return {(folder / key).resolve() for keys in settings[FITTED_CLIPS].values() for key in keys}


def recorded_data_settings(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The data settings a classification checkpoint was trained with (Lightning's ``datamodule_hyper_parameters``),
    with what :meth:`VideoDataModule.state_dict` adds where it holds it: the resolved root and split lists (checkpoints
    of older versions give the paths as they were typed) and the clips it was fitted on (``fitted_clips``; older ones
    record none); ``None`` when it records none."""
    settings = checkpoint.get(L.LightningDataModule.CHECKPOINT_HYPER_PARAMS_KEY)
    if settings is None:
        return None
    resolved = checkpoint.get(VideoDataModule.__qualname__) or {}
    return {**settings, **{name: value for name, value in resolved.items() if value is not None}}


#: The data settings that are paths, which a checkpoint may record as typed: relative to where its fit ran.
_PATH_SETTINGS = ("root", "splits", "cache_dir")

#: What a checkpoint records of the directory its fit ran in (:meth:`VideoDataModule.state_dict`).
FIT_DIRECTORY = "fit_directory"


def _paths_from(recorded: Mapping[str, Any], directory: str | os.PathLike) -> dict[str, str]:
    """The path settings of ``recorded`` read from ``directory``: a relative one joined to it, an absolute one (or
    one starting with ``~``) as it is."""
    return {name: str(Path(directory, Path(recorded[name]).expanduser()))
            for name in _PATH_SETTINGS if recorded.get(name) is not None}


def _fit_directory_here(recorded: Mapping[str, Any]) -> str:
    """The directory a checkpoint's fit ran in, which its relative paths start from, where it is found here; else
    (a checkpoint copied from another machine, or older than that record) the current one, said where recorded."""
    recorded_here = recorded.get(FIT_DIRECTORY)
    if recorded_here is not None and not Path(recorded_here).is_dir():
        relative = [name for name in _PATH_SETTINGS if recorded.get(name) is not None
                    and not Path(recorded[name]).expanduser().is_absolute()]
        logger.warning("%s, the directory its fit ran in, is not here: the paths it records relative to it (%s) are "
                       "read from the current directory", recorded_here, ", ".join(relative) or "none")
        return "."
    return recorded_here or "."


class VideoDataModule(L.LightningDataModule):
    """Video classification data over a feature cache.

    Args:
        root: UCF101 (the ``UCF-101`` folder or its parent), a folder of class folders, a folder of videos without
            labels (``dataset: unlabeled``), or where the demo data is generated on first use (``dataset: demo``; in
            ``prepare_data``, once the checks that may refuse the command have passed).
        dataset: ``ucf101`` (official split lists), ``folders`` (``root/<class>/**/<video>``), ``unlabeled`` (every
            video under ``root``; order objectives only) or ``demo``.
        objective: what the labels are: ``classes`` (the dataset's), or a temporal-order task whose labels come from
            the clips themselves — ``arrow_of_time`` (forwards or backwards) or ``order_verification`` (in order or
            shuffled parts). Every clip then appears in both versions, so an order-blind model scores exactly 50 %.
        order_parts: order verification: the number of parts a clip is cut into before they are shuffled.
        splits: UCF101 split lists folder; default ``ucfTrainTestlist`` beside ``UCF-101``.
        fold: UCF101 official split (1, 2 or 3).
        test_fraction: class folders only: share of each class's clips held out for testing, taken as whole recording
            groups (as close as they allow: with unequal groups the share of groups differs).
        val_fraction: share of each class's training groups held out for validation (whole groups, at least one per
            class that has two; a fit where no class has two is refused). 0: no validation split, the model trains on
            the whole training side (UCF101's official training list); a fit then skips validation, so a checkpoint
            monitoring ``val/...`` saves none (use the unmonitored ``latest.ckpt``) and ``test_after_fit`` tests the
            final weights. Where the root gives a ``val/`` folder beside ``train/`` and ``test/``, that is the
            validation split and this plays no part.
        train_fraction: share of each class's remaining training groups that is used (whole groups, seeded): the
            small-labelled-data setting. Validation and test are unchanged.
        cache_dir: feature cache root.
        backbone: the frozen CNN; its spec is stored with the features and in checkpoints.
        sampling: which frames are decoded and cached per video.
        steps: time steps the model sees per clip, sampled from the cached frames (random segment offsets when
            training, centred otherwise).
        batch_size, num_workers: for the sequence loaders (features are small; 0 workers is often fastest).
        extract_batch_size, extract_workers (default: one per available core), device: for building the cache in
            ``prepare_data``. The batch size and the device's precision are part of the cache's key (they change the
            stored numbers): ``vidrnn extract`` fills the same cache with the same ``--batch-size`` and device. The
            batch size also travels in the pipeline, so ``vidrnn classify`` extracts new videos the same way.
        retry_failed: decode again the videos that failed before although their files have not changed (a decoder
            killed for memory, a network drive that was away); by default they are left out at once.
        seed: the validation split, and every epoch's training order and segment offsets (drawn from the seed, the
            epoch and the clip: the same with any number of loader workers or DDP ranks, and after a resume). For
            class folders (``folders``) it also draws the test split, unless the root holds ``train/`` and ``test/``,
            and for ``unlabeled`` videos always (their folders are recording groups): test and predict a checkpoint
            with the seed it was trained with, or its test clips include clips it trained on (``vidrnn test|predict``
            refuse another one). For the demo it also seeds the videos: a root holds one seed's demo, and another seed
            is refused there (give it another root).
    """

    def __init__(
        self,
        root: str = "data/demo",
        dataset: Literal["ucf101", "folders", "unlabeled", "demo"] = "demo",
        objective: Objective = "classes",
        order_parts: int = 4,
        splits: str | None = None,
        fold: int = 1,
        test_fraction: float = 0.3,
        val_fraction: float = 0.2,
        train_fraction: float = 1.0,
        cache_dir: str = "vidrnn-cache",
        backbone: BackboneSpec = BackboneSpec(),
        sampling: SamplingSpec = SamplingSpec(strategy="segments", num_segments=16),
        steps: int = 16,
        batch_size: int = 32,
        num_workers: int = 0,
        extract_batch_size: int = EXTRACT_BATCH_SIZE,
        extract_workers: int | None = None,
        device: str = "auto",
        retry_failed: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        extracting_on = resolve_device(device)
        #: What the model is told of its input (linked into its checkpoint by the CLI); validated here, first.
        self.pipeline = PipelineSpec(backbone, sampling, steps, extract_batch_size, feature_precision(extracting_on))
        if dataset == "unlabeled" and objective == "classes":
            raise ValueError("an unlabeled dataset has no classes to learn; use objective arrow_of_time or "
                             "order_verification")
        if not 0.0 < train_fraction <= 1.0:
            raise ValueError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1) (0: no validation split), got {val_fraction}")
        if extract_workers is not None and extract_workers < 0:
            raise ValueError(f"data.extract_workers must be at least 0 (0: decode in the main process), got "
                             f"{extract_workers}")
        # Checkpoints are loaded with weights_only=True, which admits plain containers only: store the specs as dicts.
        self.save_hyperparameters(ignore=["backbone", "sampling"])
        self.hparams.update(backbone=backbone.to_dict(), sampling=sampling.to_dict())
        self.index = dataset_index(self.hparams)  # fails fast on wrong paths, before any slow work
        _require_classes(self.index, objective)
        self.cache = FeatureCache(cache_dir, backbone, sampling, self.index.root, extracting_on, extract_batch_size)
        self._feature_dim: int | None = None
        self._clips: dict[str, _CachedSequences] = {}
        self._split_said = False
        self._datasets: dict[str, _CachedSequences | OrderTask] = {}

    # -- what the model needs to know (linked into the model's hyperparameters by the CLI) --------------------

    @property
    def class_names(self) -> list[str]:
        if self.hparams.objective in ORDER_CLASSES:
            return list(ORDER_CLASSES[self.hparams.objective])
        return list(self.index.classes)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_dim(self) -> int:
        """Length of a frame's feature vector; read from the cache when it exists, else from the backbone."""
        if self._feature_dim is None:
            entry = next(iter(self.cache.entries().values()), None)
            if entry is not None:
                self._feature_dim = int(np.prod(entry["shape"][1:]))
            else:
                self._feature_dim = build_backbone(self.pipeline.backbone).feature_dim
        return self._feature_dim

    # -- Lightning hooks ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What Lightning keeps of this module in a checkpoint beside its hyperparameters
        (:func:`recorded_data_settings`): the data root and split lists resolved, since a relative path names other
        folders wherever a later run starts; and, once set up, the clips the model is trained and validated on (keys
        relative to the videos folder): the same settings draw another split once videos are added to or removed
        from a class folder, and only this list tells a later run's test clips from those
        (:func:`vidrnn.data.splits.check_split`). Also the directory the run started in (``fit_directory``), from
        which the paths it keeps as typed (``cache_dir``) are read by :meth:`from_checkpoint`."""
        hp = self.hparams
        state: dict[str, Any] = {"root": str(Path(hp.root).expanduser().resolve()),
                                 "splits": str(Path(hp.splits).expanduser().resolve()) if hp.splits else None,
                                 FIT_DIRECTORY: str(Path.cwd())}
        if self._clips:
            state[FITTED_CLIPS] = {split: list(self._clips[split].keys) for split in ("train", "val")}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the recorded paths are for checks on a checkpoint (:func:`recorded_data_settings`)."""

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, stage: str = "test", relative_to: str | os.PathLike | None = None,
                        **changes: Any) -> VideoDataModule:
        """The data a classification checkpoint was trained with, for analysis outside the CLI (notebooks).

        Its recorded settings with the root and split lists resolved (:func:`recorded_data_settings`: a relative
        root then names the same folder from anywhere), and ``changes`` on top — ``root`` when the videos have moved.
        The paths a checkpoint records as typed — always its ``cache_dir``, the root and split lists too for a
        checkpoint older than their resolved record — are relative to the directory its fit ran in, which it records
        (``fit_directory``): they are read from there, or from ``relative_to`` where given (for a checkpoint older
        than that record, or one whose directory is not on this machine, the current directory, said), so that the fit's feature cache is found and not
        extracted again elsewhere. ``changes`` are read as given, from the current directory.
        Changes that make ``stage``'s split another one than the model was trained and chosen with (``fold``,
        ``seed`` of class folders, ...), and a split that holds clips it was fitted on (videos added or removed
        since), are refused as ``vidrnn test`` refuses them (:func:`vidrnn.data.splits.check_split`): the scores
        would include clips it trained on. A demo dataset no longer there is generated again (after that check).
        """
        checkpoint = load_checkpoint(path)
        require_task(checkpoint, "classification", path)
        recorded = recorded_data_settings(checkpoint)
        if recorded is None:
            raise ValueError(f"{path} records no data settings: it was not written by vidrnn fit with its data module")
        directory = relative_to if relative_to is not None else _fit_directory_here(recorded)
        recorded.update(_paths_from(recorded, directory))
        paths = {name: recorded[name] for name in _PATH_SETTINGS if name in recorded}
        data = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True, **{**paths, **changes})
        check_split(recorded, data.hparams, stage, reads=data.drawn_keys())
        data._generate_demo()  # its clips are read from here on, also without prepare_data
        return data

    def prepare_data(self) -> None:
        """Extract features of every clip not yet cached (Lightning runs this on one process per node)."""
        hp = self.hparams
        if self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING:
            self.require_fit_data()  # before extracting the test clips, minutes or hours
        self._generate_demo()
        self.say_split()  # before the hashing and extraction below, which take hours on a cold UCF101
        items = self.index.video_items()
        cached, failed_before = self.cache.settled(items, hp.retry_failed)  # named by setup, per split, with the rest
        if len(cached) + len(failed_before) == len(items):
            self.cache.record_renewed()  # files found with new times but their old bytes: no hashing next time
            self.cache.finalize()
        else:
            backbone = build_backbone(self.pipeline.backbone)  # videos that fail are named by setup, per split
            extract_features(items, self.cache, backbone, device=resolve_device(hp.device),
                             num_workers=hp.extract_workers, rank=0, world_size=1, retry_failed=hp.retry_failed)

    def _generate_demo(self) -> None:
        """Generate the demo dataset where it is asked for and not there yet: once the checks that may refuse the
        command have passed (in ``prepare_data``; in :meth:`from_checkpoint` after its split check), not as the
        module is built (its index is known without it)."""
        if self.hparams.dataset == "demo":
            ensure_demo_data(self.hparams.root, seed=self.hparams.seed)

    def require_writable(self) -> None:
        """Refuse (``ValueError``), before any work, a folder ``prepare_data`` would write and this user cannot: the
        demo's while it is not generated, the cache's while videos wait to be extracted into it
        (:meth:`FeatureCache.require_writable`). Either would fail only at the first write, in a traceback. Called by
        the CLI once every other check has passed."""
        hp = self.hparams
        if hp.dataset == "demo" and not demo_generated(hp.root, hp.seed, setting="data.root"):
            reason = unwritable(Path(hp.root).expanduser().parent)
            if reason is not None:
                raise ValueError(f"data.root {hp.root}: {reason}, and the demo data is to be generated there; choose "
                                 "a data.root this user can write")
        self.cache.require_writable(self.index.video_items(), hp.retry_failed)

    def _require_training_clips(self) -> None:
        """A fit needs a training side; a root, split list or fold that leaves none would otherwise fail later, inside
        a DataLoader, with a message that names none of them."""
        if not self.index.split("train"):
            hp = self.hparams
            where = (f"data.root, data.splits or data.fold (fold {hp.fold})" if hp.dataset in ("ucf101", "demo")
                     else "data.root or data.test_fraction")
            raise ValueError(f"no training clips in {self.index.root} ({len(self.index.split('test'))} test clips): "
                             f"a fit needs both sides of the split; check {where}")

    def require_resumable(self, recorded: Mapping[str, Any], fix: str) -> None:
        """Refuse (``ValueError``) to resume a fit whose checkpoint's data settings (``recorded``:
        :func:`recorded_data_settings`) batched its clips otherwise: the epochs after the resume would draw other
        batches, and the fit would not end with the weights the uninterrupted one would have. ``fix`` says where its
        settings are: ``batch_size``, and ``train_fraction``, which keeps other training groups. (Its split and its
        input are held to the checkpoint's by the split and model checks.)"""
        if not recorded:
            return
        there = {"train_fraction": 1.0, **recorded}  # a checkpoint older than the setting trained on every group
        differing = [f"data.{name}: {there[name]} there, {self.hparams[name]} here" for name in ("batch_size",
                     "train_fraction") if there.get(name) is not None and there[name] != self.hparams[name]]
        if differing:
            raise ValueError(f"the checkpoint was trained in other batches ({'; '.join(differing)}): the epochs after "
                             "the resume would draw other batches than the uninterrupted fit and end with other "
                             f"weights. Resume with the data settings it was trained with ({fix}), or start a new fit "
                             "without --ckpt_path")

    def require_unseen_test_clips(self, checkpoint: Mapping[str, Any], source: str) -> None:
        """Refuse (``ValueError``) an encoder pretrained on any of the clips this module tests on, to start a
        classifier from: ``checkpoint`` is the pretraining's, ``source`` how the messages name it
        (``--model.init_from PATH``).

        Temporal pretraining needs no labels, so it can run over any videos — ``data.dataset unlabeled`` over the
        UCF101 folder draws its own test groups, not the official fold's — and then the classifier's test accuracy is
        optimistic without a word. The pretraining's training and validation clips are those its checkpoint records,
        or for older checkpoints those its recorded settings (``datamodule_hyper_parameters``) draw, by index alone
        (:func:`fitted_clips`), and compared by resolved path; read from another videos folder, by name
        (:func:`~vidrnn.data.splits.named_alike`). Where they cannot be (no settings recorded, the data moved), a
        warning says the check was not made; a checkpoint of an older version that recorded its root as typed,
        relatively, may have meant another folder where the pretraining ran, so a match there is a warning (newer
        ones record it resolved: :meth:`state_dict`).
        """
        settings = recorded_data_settings(checkpoint)
        resolved = VideoDataModule.__qualname__ in checkpoint  # else the root may be recorded as typed, relative
        hp = self.hparams
        same_split = (f"data.dataset {hp.dataset} with this fit's data.splits and data.fold ({hp.fold})"
                      if hp.dataset in ("ucf101", "demo") else
                      f"data.dataset {hp.dataset} with this fit's data.root, data.test_fraction and data.seed")
        if settings is not None and FITTED_CLIPS in settings and videos_folder(settings) != videos_folder(hp):
            # Pretrained on another copy of the videos, maybe: its clips' paths cannot match, their names can.
            fitted = [key for keys in settings[FITTED_CLIPS].values() for key in keys]
            try:
                named_alike(fitted, self.drawn_keys()["test"], settings, hp, "test clips of this fit",
                            "pretrained on", f"Pretrain on the training side of this fit's split: {same_split}")
            except ValueError as error:
                raise ValueError(f"{source}: {error}") from None
            return  # under another folder, no clip of its can be one of this fit's by path
        try:
            if settings is None:
                raise ValueError("it records no data module settings")
            seen = fitted_clips(settings)
        except (FileNotFoundError, ValueError) as error:
            rank_zero_warn(f"{source}: whether its pretraining saw this fit's test clips cannot be checked ({error}); "
                           "the test scores are honest only if it did not")
            return
        test = {record.path.resolve() for record in self.index.split("test")}
        seen_test = sorted(test & seen)
        if seen_test and not resolved and not Path(settings["root"]).is_absolute():
            # Recorded as given: relative to wherever the pretraining ran, which need not be here.
            rank_zero_warn(f"{source}: its data root was recorded as {settings['root']!r}, relative to where it was "
                           f"pretrained; read from here, its clips include {len(seen_test)} of this fit's test clips "
                           f"(such as {seen_test[0]}). If it was pretrained from this directory, its test scores "
                           "would be optimistic: pretrain on the training side of this fit's split")
            return
        if seen_test:
            raise ValueError(f"{source} was pretrained on {len(seen_test)} of this fit's {len(test)} test clips (such "
                             f"as {seen_test[0]}): its test scores would be optimistic. Pretrain on the training side "
                             f"of this fit's split: {same_split}")

    def require_fit_data(self) -> None:
        """Refuse a fit its index cannot serve, before anything slow: no training clips, a class without any (only in
        an explicit split's ``test/``), a validation split that can hold nothing. Called where a fit starts, before
        extraction, and by ``vidrnn fit`` before it builds the trainer's run (which makes each a usage error)."""
        self._require_training_clips()
        if self.hparams.objective == "classes":
            require_trained_classes(self.index, self.index.split("train"))
            self._require_separable_class_names()
        self.require_validation_split()

    def _require_separable_class_names(self) -> None:
        """Refuse to train on a class whose name holds :data:`~vidrnn.objectives.LABEL_SEPARATOR`: the model would
        write labels that ``vidrnn classify``'s CSV cannot tell apart. Only a fit is refused: a model trained on such a
        class before may still be evaluated (its folder keeps its name), and classify refuses its CSV itself."""
        joined = [name for name in self.index.classes if LABEL_SEPARATOR in name]
        if joined:
            raise ValueError(f"{self.index.root / joined[0]}: a class name may not hold {LABEL_SEPARATOR!r}, which "
                             "joins the labels of vidrnn classify's CSV rows (topk_labels); rename the folder")

    def setup(self, stage: str | None = None) -> None:
        """Build each split's dataset from the clips the cache can serve (:class:`UsableClips`): those left out are
        said once; a split ``stage`` needs with none left, or (fitting a classifier) a class without a training clip,
        ends the run before training (:class:`~vidrnn.data.usable.UnusableData`)."""
        if stage == "fit":
            self.require_fit_data()
        hp = self.hparams
        order_task = hp.objective in ORDER_CLASSES
        usable = UsableClips.sort(self._split_records(), self.index, self.cache,
                                  shortest_alterable(hp.objective, hp.order_parts) if order_task else 1,
                                  TASK_NAMES.get(hp.objective, ""))
        self._require_same_splits(usable.usable)  # before any refusal one rank alone might reach
        usable.require(STAGE_SPLITS.get(stage, ()))
        if stage == "fit" and not order_task:
            usable.require_classes()
        first_setup = not self._clips
        if first_setup:
            self.say_split()
            usable.report()
        for name, present in usable.usable.items():
            keys = [self.index.key(r) for r in present]
            labels = [self.index.label_index(r) for r in present]
            clips = _CachedSequences(self.cache, keys, labels, hp.steps, name == "train", hp.seed)
            self._clips[name] = clips
            if hp.objective == "classes":
                self._datasets[name] = clips
            else:
                self._datasets[name] = OrderTask(clips, hp.objective, name == "train", hp.seed, hp.order_parts)
        if first_setup:
            self._report_splits(usable.unreadable_reasons(), usable.too_short_reasons(), usable.cut_short_notes())
        if stage == "fit":
            self._require_shareable_evaluations()

    def _require_same_splits(self, splits: Mapping[str, Sequence[VideoRecord]]) -> None:
        """Under several processes, refuse (:class:`~vidrnn.distributed.RanksDisagree`, on every rank) ``splits``, the
        clips each rank is about to shard, where they differ between ranks: each builds them from its own node's copy
        of ``data.root``, so a copy lacking a clip would have clips counted twice and others never, without a word."""
        require_agreement({f"the {name} split": [f"{self.index.key(record)} ({record.label})" for record in records]
                           for name, records in splits.items()},
                          f"Every node must hold the same videos under data.root ({self.hparams.root}): a node's copy "
                          "of it differs (a clip missing or added), or its data settings do. Make the copies alike, "
                          "then run the same command on every node")

    #: Whether the fit tests its best checkpoint when it ends (``test_after_fit``, which ``vidrnn fit`` sets here): its
    #: test split is then checked before training, with its validation split.
    tests_after_fit = False

    def _require_shareable_evaluations(self) -> None:
        """Under several processes, refuse before training the splits the fit will evaluate that hold fewer items than
        processes (:func:`~vidrnn.distributed.require_shareable`): the validation split would fail at the first
        validation, the test split only once training is over, its results lost."""
        require_shareable(len(self._datasets.get("val", ())), "the val split",
                          "Hold out more validation clips (data.val_fraction, or a val/ folder) or fit with fewer "
                          "--trainer.devices")
        if self.tests_after_fit:
            require_shareable(len(self._datasets.get("test", ())), "test_after_fit: the test split",
                              "Fit with --test_after_fit false, then test the best checkpoint in one process: vidrnn "
                              "test --config RUN/config.yaml --ckpt_path RUN/checkpoints/best.ckpt --trainer.devices 1")

    def require_validation_split(self) -> None:
        """Refuse a ``val_fraction`` above 0 that can hold out nothing: validation takes whole recording groups and
        leaves every class one to train on, so when no class has two on the training side the split is empty. The
        fit would then validate nothing, its monitored checkpoint (``best.ckpt``) would never be saved and
        ``test_after_fit`` would test the final weights, with only Lightning's warnings about an empty loader and a
        missing ``val/`` metric to say so. Called where a fit starts, before extraction, and by ``vidrnn fit`` before it
        builds the trainer's run."""
        hp = self.hparams
        train = self.index.split("train")
        if self.index.split("val"):
            return  # the split gives its validation clips (val/)
        if hp.val_fraction > 0 and train and not _sample_groups(train, hp.val_fraction, hp.seed, spare=1):
            raise ValueError(
                f"data.val_fraction {hp.val_fraction} holds out whole recording groups for validation, but each class "
                f"of {self.index.root} has only one training recording group, which it needs for training: nothing "
                "can be held out, so the fit would validate nothing and save no best checkpoint. Add recording groups "
                "(clips whose names carry _gNN_, or sub-folders of a class folder), or set --data.val_fraction 0 (no "
                "validation: latest.ckpt is kept, and test_after_fit tests the final weights)")

    def _split_records(self) -> dict[str, list[VideoRecord]]:
        """Each split's clips (``train``, ``val``, ``test``) as the index and settings draw them, readable or not."""
        return {**_fit_splits(self.index, self.hparams), "test": self.index.split("test")}

    def drawn_keys(self) -> dict[str, list[str]]:
        """Each split's clip keys as drawn before anything is extracted or read: what a command is about to read,
        which a checkpoint's fitted clips are held against (:func:`vidrnn.data.splits.check_split`)."""
        return {name: [self.index.key(record) for record in records] for name, records in self._split_records().items()}

    def _report_splits(self, unreadable: Mapping[str, Mapping[str, str]], too_short: Mapping[str, Mapping[str, str]],
                       cut_short: Mapping[str, Mapping[str, str]]) -> None:
        """Say once, on rank 0, the byte-identical videos on both sides of the split or under two labels, and keep the
        split (its rule, its clips per split and class, said as the run starts: :meth:`say_split`) in the run's log folder as ``splits.json``, beside
        ``config.yaml``, with each split's clips and those it left out (``unreadable`` and, on an order task,
        ``too_short``: by split, clip and reason), and those it read that held far fewer frames than their containers
        state (``cut_short``):
        the numbers every score rests on, and the lists another run's split can be compared with."""
        hp = self.hparams
        rule = self._split_rule()
        labels = {name: [self.index.classes[label] for label in clips.labels] for name, clips in self._clips.items()}
        counts = split_counts(labels, self.index.classes)
        trainer = self.trainer
        # On every rank: under DDP, Lightning broadcasts the log folder from rank 0.
        log_dir = trainer.log_dir if trainer is not None and trainer.logger is not None else None
        if rank_zero_only.rank != 0:
            return
        clip_lists = {name: list(clips.keys) for name, clips in self._clips.items()}
        copies = identical_copies(clip_lists, labels, self._source_digests())
        if hp.objective != "classes":  # the labels trained are the clips' order, not these
            copies["different_labels"] = []
        for message in copy_warnings(copies, self.index.root):
            logger.warning(message)
        if log_dir is not None:
            missing, unlisted = ([path.relative_to(self.index.root).as_posix() for path in paths]
                                 for paths in (self.index.missing, self.index.unlisted))
            write_split_record(Path(log_dir) / "splits.json", rule, self.index.root, counts, clip_lists, copies,
                               missing, unreadable, too_short=too_short, cut_short=cut_short,
                               test_groups=self.index.recording_groups(clip_lists.get("test", ())), unlisted=unlisted)

    def _split_rule(self) -> str:
        """How the split was made: the index's rule and the validation rule the settings add."""
        hp = self.hparams
        validation = validation_rule(hp.val_fraction, hp.train_fraction, hp.seed, given=bool(self.index.split("val")))
        return f"{self.index.split_rule}; {validation}"

    def say_split(self) -> None:
        """Say the split as drawn — its rule, its clips per split and class — once a run, on rank 0: where it starts
        (:meth:`prepare_data`, before any file is hashed or extracted), or in the first :meth:`setup` of a module whose
        data was not prepared. ``vidrnn fit`` says it before Lightning launches any process: ``ddp_spawn`` sends each
        launch (the fit, then its test) this process's module, so a split said in the first launch would be said again
        by the second. Clips later found unreadable are said by setup and left out of ``splits.json``."""
        if self._split_said:
            return
        self._split_said = True
        labels = {name: [record.label for record in records] for name, records in self._split_records().items()}
        rank_zero_info(split_summary(self._split_rule(), split_counts(labels, self.index.classes)))

    def _source_digests(self) -> dict[str, str]:
        """The SHA-256 of each cached video's bytes, by key, where the cache recorded it (older caches did not)."""
        return {key: entry["source_sha256"] for key, entry in self.cache.entries().items() if "source_sha256" in entry}

    def _loader(self, split: str) -> DataLoader:
        dataset = self._datasets[split]
        training = split == "train"
        return DataLoader(dataset, batch_size=self.hparams.batch_size,
                          sampler=EpochSampler(len(dataset), self.hparams.seed, shuffle=True,
                                               epoch=starting_epoch(self.trainer)) if training
                          else evaluation_sampler(dataset, f"the {split} split"),
                          generator=loader_generator(self.hparams.seed),
                          num_workers=self.hparams.num_workers, collate_fn=collate_sequences,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def transfer_batch_to_device(self, batch: SequenceBatch, device: torch.device, dataloader_idx: int) -> SequenceBatch:
        return batch.to(device)

    def split_keys(self, split: str) -> list[str]:
        """Cache keys (paths relative to the videos root) of one split's clips, in index order.

        With an order objective the loader yields each clip twice (altered copy first), so these are its clips, not
        its rows.
        """
        return list(self._clips[split].keys)

    @property
    def videos_root(self) -> Path:
        return self.index.root
