"""The data module over the feature cache, the VideoClassifier and their checkpoint contract."""

from __future__ import annotations

import csv
import functools
import json
import pickle
import re
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from conftest import fit_split_record, stating_frames, write_video
from vidrnn.backbones import BackboneSpec
from vidrnn.batches import collate_sequences
from vidrnn.data import module as data_module
from vidrnn.data import synthetic
from vidrnn.data.module import VideoDataModule, _CachedSequences, fitted_clips, recorded_data_settings
from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.data.streams import EpochKey
from vidrnn.data.synthetic import CLASSES, make_classification_dataset
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.data.usable import UnusableData, require_trained_classes
from vidrnn.models.classifier import VideoClassifier
from vidrnn.models.temporal import EncoderSpec
from vidrnn.pipeline import PipelineSpec
from vidrnn.sampling import SamplingSpec, segment_indices


def _module(root: str | Path, cache_dir: str | Path, **options: object) -> VideoDataModule:
    return VideoDataModule(
        root=str(root), dataset="ucf101", cache_dir=str(cache_dir),
        backbone=BackboneSpec(input_size=64), sampling=SamplingSpec(strategy="all", short_side=64),
        **{"steps": 8, "batch_size": 8, "extract_workers": 0, **options},
    )


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory: pytest.TempPathFactory) -> VideoDataModule:
    root = make_classification_dataset(tmp_path_factory.mktemp("demo"), groups=6, clips_per_group=1, num_frames=12,
                                       size=(48, 64), seed=3)
    module = _module(root, tmp_path_factory.mktemp("cache"), val_fraction=0.25)
    module.prepare_data()
    module.setup("fit")
    return module


def test_splits_are_honest_validation_comes_from_train_groups(datamodule: VideoDataModule) -> None:
    def groups(split: str) -> set[str]:
        return {key.split("_g")[1][:2] for key in datamodule.split_keys(split)}

    train, val, test = groups("train"), groups("val"), groups("test")
    assert train and val and test
    assert not (train & test) and not (val & test)
    assert len(datamodule.split_keys("test")) == 2 * 6  # fold 1 tests a third of the 6 groups, all 6 classes
    keys = [k for s in ("train", "val", "test") for k in datamodule.split_keys(s)]
    assert len(keys) == len(set(keys)) == 36


def test_val_fraction_0_trains_on_the_whole_training_side_and_a_fit_skips_validation(datamodule) -> None:
    whole = _module(datamodule.hparams.root, datamodule.hparams.cache_dir, val_fraction=0.0)
    whole.setup("fit")
    assert not whole.split_keys("val")
    assert sorted(whole.split_keys("train")) == sorted(datamodule.split_keys("train") + datamodule.split_keys("val"))
    model = VideoClassifier(whole.num_classes, whole.feature_dim, EncoderSpec(hidden_size=8, projection=8))
    best = ModelCheckpoint(monitor="val/acc", mode="max")  # as the shipped configs have it
    trainer = L.Trainer(max_epochs=1, logger=False, callbacks=[best], enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", default_root_dir=whole.hparams.cache_dir)
    trainer.fit(model, datamodule=whole)
    assert trainer.state.finished and trainer.global_step > 0
    assert not any(name.startswith("val/") for name in trainer.callback_metrics) and not best.best_model_path


@pytest.mark.parametrize("train_fraction", [1.0, 0.5])
def test_the_clips_a_fit_trained_and_validated_on_follow_from_its_settings_alone(datamodule, train_fraction) -> None:
    """What the CLI holds against a classifier's test clips when its encoder was pretrained elsewhere: the groups a
    train_fraction below 1 left unused were never seen. Settings a checkpoint predates take today's defaults."""
    module = _module(datamodule.hparams.root, datamodule.hparams.cache_dir, val_fraction=0.25,
                     train_fraction=train_fraction)
    module.setup("fit")
    fitted = {(module.videos_root / key).resolve() for split in ("train", "val") for key in module.split_keys(split)}
    settings = dict(module.hparams)
    if train_fraction == 1.0:
        del settings["train_fraction"]
    training_side = {record.path.resolve() for record in module.index.split("train")}
    assert fitted_clips(settings) == fitted and (fitted == training_side) == (train_fraction == 1.0)


def test_a_checkpoint_records_the_clips_the_model_was_fitted_on_as_the_splits_drew_them(datamodule) -> None:
    """What validate, test and predict hold their splits against: the same settings draw another split once a class
    folder's videos change, so the settings alone cannot tell."""
    fitted = datamodule.state_dict()["fitted_clips"]
    assert fitted == {split: datamodule.split_keys(split) for split in ("train", "val")}
    assert datamodule.drawn_keys() == {split: datamodule.split_keys(split) for split in ("train", "val", "test")}


def test_the_clips_a_pretraining_was_fitted_on_are_those_its_checkpoint_records(datamodule, tmp_path: Path) -> None:
    """Drawn again from its settings, a pretraining's split would be another one once its folders changed."""
    one = datamodule.split_keys("train")[0]
    state = {**datamodule.state_dict(), "fitted_clips": {"train": [one], "val": []}}
    checkpoint = {"datamodule_hyper_parameters": dict(datamodule.hparams), "VideoDataModule": state}
    assert fitted_clips(recorded_data_settings(checkpoint)) == {(datamodule.videos_root / one).resolve()}
    state["root"] = str(tmp_path / "moved away")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "moved away"))):
        fitted_clips(recorded_data_settings(checkpoint))


def test_byte_identical_videos_across_the_split_or_under_two_labels_are_warned_about_and_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Download copies and a video saved under two class folders: the cache has hashed every file, so a copy on both
    sides of the split (optimistic scores; a test clip copying a validation clip too, as validation chose the
    checkpoint) and identical bytes under two labels (label noise) are said, not refused."""
    root = tmp_path / "videos"
    for group in range(3):
        write_video(root / "a" / f"a_g{group:02d}_c01.avi", 6)  # one video three times, one copy per recording group
        write_video(root / "b" / f"b_g{group:02d}_c01.avi", 3 + group)  # three different videos
    write_video(root / "b" / "b_g00_c02.avi", 6)  # a's video again, under b
    module = VideoDataModule(root=str(root), dataset="folders", cache_dir=str(tmp_path / "cache"),
                             backbone=BackboneSpec(input_size=64), sampling=SamplingSpec(strategy="all", short_side=64),
                             steps=4, extract_workers=0)
    module.prepare_data()
    module.trainer = L.Trainer(logger=CSVLogger(tmp_path / "runs"), accelerator="cpu")  # for the run's log folder
    module.setup("fit")
    split = {key: name for name in ("train", "val", "test") for key in module.split_keys(name)}
    assert [split[f"a/a_g{group:02d}_c01.avi"] for group in range(3)] == ["train", "val", "test"]
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warned == [
        f"1 test clip under {module.videos_root} is a byte-identical copy of a training clip (a/a_g02_c01.avi = "
        "a/a_g00_c01.avi = b/b_g00_c02.avi): the test scores are optimistic by it, as the model trained on the same "
        "video. splits.json lists every copy (identical_copies); remove the copies before training to score only "
        "unseen videos",
        f"1 validation clip under {module.videos_root} is a byte-identical copy of a training clip (a/a_g01_c01.avi "
        "= a/a_g00_c01.avi = b/b_g00_c02.avi): the validation scores are optimistic by it, as the model trained on "
        "the same video. splits.json lists every copy (identical_copies); remove the copies before training to score "
        "only unseen videos",
        f"1 test clip under {module.videos_root} is a byte-identical copy of a validation clip (a/a_g02_c01.avi = "
        "a/a_g01_c01.avi): the test scores are optimistic by it, as the checkpoint was chosen on the same video. "
        "splits.json lists every copy (identical_copies); remove the copies before training to score only unseen "
        "videos",
        f"1 video has byte-identical copies under other labels in {module.videos_root} (a/a_g00_c01.avi = "
        "a/a_g01_c01.avi = a/a_g02_c01.avi = b/b_g00_c02.avi): label noise, the same video taught as two classes. "
        "splits.json lists them (identical_copies); keep one copy, in the class it belongs to"]
    record = json.loads((Path(module.trainer.log_dir) / "splits.json").read_text())
    assert record["identical_copies"] == {
        "test": [{"test": ["a/a_g02_c01.avi"], "train": ["a/a_g00_c01.avi", "b/b_g00_c02.avi"]}],
        "val": [{"val": ["a/a_g01_c01.avi"], "train": ["a/a_g00_c01.avi", "b/b_g00_c02.avi"]}],
        "test_val": [{"test": ["a/a_g02_c01.avi"], "val": ["a/a_g01_c01.avi"]}],
        "different_labels": [["a/a_g00_c01.avi", "a/a_g01_c01.avi", "a/a_g02_c01.avi", "b/b_g00_c02.avi"]]}
    assert record["clip_lists"] == {name: module.split_keys(name) for name in ("train", "val", "test")}


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_a_val_fraction_outside_0_to_1_is_refused_naming_it(fraction: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.val_fraction must be in \[0, 1\)"):
        VideoDataModule(root=str(tmp_path / "never read"), dataset="ucf101", val_fraction=fraction)


@pytest.mark.parametrize("option, value, expected", [
    ("extract_batch_size", 0, "data.extract_batch_size must be at least 1, got 0"),
    ("extract_batch_size", -3, "data.extract_batch_size must be at least 1, got -3"),
    ("extract_workers", -1, "data.extract_workers must be at least 0"),
])
def test_extraction_settings_that_cannot_work_are_refused_naming_them(option: str, value: int, expected: str,
                                                                      tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=expected):
        VideoDataModule(root=str(tmp_path / "never read"), dataset="ucf101", **{option: value})


def test_prepare_data_extracts_again_a_feature_file_truncated_since(tmp_path: Path) -> None:
    """Instead of a fit that dies mid-epoch in numpy, naming no file."""
    root = make_classification_dataset(tmp_path / "data", groups=3, clips_per_group=1, num_frames=4, size=(48, 64),
                                       seed=5, classes=CLASSES[:2])
    first = _module(root, tmp_path / "cache")
    first.prepare_data()
    damaged = next((first.cache.dir / "features").rglob("*.npy"))
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[:200])
    _module(root, tmp_path / "cache").prepare_data()
    assert damaged.read_bytes() == whole


def test_model_facts_come_from_the_data(datamodule: VideoDataModule) -> None:
    assert datamodule.num_classes == 6 and datamodule.feature_dim == 1280
    assert datamodule.class_names[:2] == ["Grow", "Shrink"]


def test_batches_carry_lengths_and_training_offsets_vary_while_evaluation_is_fixed(datamodule) -> None:
    batch = next(iter(datamodule.test_dataloader()))
    assert batch.features.shape[1:] == (8, 1280) and batch.lengths.tolist() == [8] * len(batch.lengths)
    again = next(iter(datamodule.test_dataloader()))
    assert torch.equal(batch.features, again.features)
    train_set = datamodule._datasets["train"]
    draws = {tuple(train_set[EpochKey(epoch, 0)][0].astype(np.float64).sum(axis=1).round(2)) for epoch in range(6)}
    assert len(draws) > 1


class _StepNumbers:
    """A feature cache whose every clip holds its own step numbers, so a sampled clip shows the offsets drawn."""

    def load(self, key: str) -> np.ndarray:
        return np.arange(64, dtype=np.float32)[:, None]


def _drawn_offsets(datamodule: VideoDataModule, num_workers: int, epochs: int) -> list[list[tuple[int, ...]]]:
    """Per epoch, the offsets of each training clip in loading order (batches of one)."""
    module = _module(datamodule.hparams.root, datamodule.hparams.cache_dir, num_workers=num_workers, batch_size=1)
    module._datasets["train"] = _CachedSequences(_StepNumbers(), [f"c{n}" for n in range(8)], [0] * 8, steps=8,
                                                 train=True, seed=0)
    loader = module.train_dataloader()
    drawn = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # as Lightning does before every training epoch
        drawn.append([tuple(batch.features[0, :, 0].int().tolist()) for batch in loader])
    return drawn


def test_training_offsets_are_new_every_epoch_and_do_not_depend_on_the_loader_workers(datamodule) -> None:
    first, second = _drawn_offsets(datamodule, num_workers=0, epochs=2)
    assert len(set(first)) == len(first) and second != first
    assert _drawn_offsets(datamodule, num_workers=2, epochs=2) == [first, second]  # workers copy no generator


def test_collate_pads_to_the_longest_clip() -> None:
    batch = collate_sequences([(np.ones((3, 4), np.float16), 1, "a"), (np.ones((5, 4), np.float16), 0, "b")])
    assert batch.features.shape == (2, 5, 4) and batch.lengths.tolist() == [3, 5]
    assert batch.features[0, 3:].abs().sum() == 0 and batch.labels.tolist() == [1, 0] and batch.keys == ["a", "b"]


def test_mean_class_accuracy_averages_the_classes_the_split_holds() -> None:
    """A class without clips in the split (a one-group class has no validation clips) is not a class at 0 %, even
    when the model predicts it: UCF101's mean class accuracy is over the classes evaluated."""
    from torchmetrics.classification import MulticlassAccuracy

    from vidrnn.models.classifier import MeanClassAccuracy

    metric = MeanClassAccuracy(3)
    metric.update(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 0, 1, 1]))
    metric.update(torch.tensor([1]), torch.tensor([1]))
    assert metric.compute().item() == pytest.approx((1 / 2 + 3 / 3) / 2)
    logits = torch.randn(40, 4)
    labels = torch.arange(40) % 4
    assert MeanClassAccuracy(4)(logits, labels) == pytest.approx(MulticlassAccuracy(4, average="macro")(logits, labels))


def _test_scores(model: VideoClassifier, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """What ``vidrnn test`` reports for these logits: the model's test metrics, as its test step feeds them."""
    model.test_metrics.update(logits, labels)
    return {name: value.item() for name, value in model.test_metrics.compute().items()}


def test_test_accuracy_is_the_share_of_all_clips_right_the_confusion_matrix_trace_over_its_total() -> None:
    """With classes of unequal sizes (4, 1 and 1 clips) the share of clips right (4 of 6) is not the mean of the
    classes' accuracies (3/4, 1 and 0): acc is the former, mean_class_acc the latter."""
    model = VideoClassifier(3, 4, EncoderSpec(hidden_size=8, projection=8))
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 1, 1, 0]), 3).float()
    model.confusion.update(logits, labels)
    matrix = model.confusion.compute()
    scores = _test_scores(model, logits, labels)
    assert scores["test/acc"] == pytest.approx((matrix.trace() / matrix.sum()).item()) == pytest.approx(4 / 6)
    assert scores["test/mean_class_acc"] == pytest.approx((3 / 4 + 1 + 0) / 3)


def test_each_process_of_a_spawned_ddp_run_counts_its_clips_into_metric_states_of_its_own() -> None:
    """ddp_spawn sends the model to its processes pickled, its CPU tensors in memory they all share; Lightning gives
    each its own parameters and buffers, not torchmetrics' states: each rank counted into the others', and the
    reduction over ranks counted every test clip once per process (a confusion matrix of 24 for 12 clips)."""
    model = VideoClassifier(3, 4, EncoderSpec(hidden_size=8, projection=8))
    ranks = [pickle.loads(ForkingPickler.dumps(model)) for _ in range(2)]  # as spawn hands it to two processes
    logits, labels = torch.nn.functional.one_hot(torch.tensor([0, 1]), 3).float(), torch.tensor([0, 1])
    for rank in ranks:
        rank.setup("test")
        rank.confusion.update(logits, labels)
        rank.test_loss.update(torch.tensor(1.0), weight=2)
    assert [int(rank.confusion.compute().sum()) for rank in ranks] == [2, 2]
    assert [rank.test_loss.weight.item() for rank in ranks] == [2, 2]


class _SeenLogits(VideoClassifier):
    """A classifier that keeps the logits of every forward pass, to check what its training steps log."""

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = super().forward(features, lengths)
        self.seen.append(logits.detach().clone())
        return logits


def test_training_accuracy_is_logged_each_step_as_the_share_of_that_batchs_clips_right(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _SeenLogits(3, 4, EncoderSpec(hidden_size=8, projection=8))
    model.seen = []
    batches = [collate_sequences([(np.random.default_rng(seed + item).normal(size=(5, 4)).astype(np.float32),
                                   (seed + item) % 3, f"clip{item}") for item in range(7)]) for seed in range(4)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer = L.Trainer(max_epochs=2, log_every_n_steps=1, logger=CSVLogger(tmp_path), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader)
    with (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert not any(name.startswith("train/acc_") for name in rows[0])  # one column, train/acc
    logged = [float(row["train/acc"]) for row in rows if row["train/acc"]]
    expected = [(logits.argmax(-1) == batch.labels).float().mean().item()
                for logits, batch in zip(model.seen, batches * 2)]
    assert logged == expected and len(set(logged)) > 1


def test_top5_is_the_share_of_clips_whose_class_is_among_their_5_highest_logits() -> None:
    """Of 7 classes, the true class ranks 1st, 2nd, 5th and 6th in the four clips: top-5 3 of 4, top-1 1 of 4."""
    model = VideoClassifier(7, 4, EncoderSpec(hidden_size=8, projection=8))
    logits = torch.zeros(4, 7)
    for label, rank in enumerate([1, 2, 5, 6]):
        others = [c for c in range(7) if c != label]
        order = [*others[:rank - 1], label, *others[rank - 1:]]  # classes from the highest logit down
        logits[label, order] = torch.arange(7, 0, -1).float()
    labels = torch.arange(4)
    assert (logits.topk(5).indices == labels[:, None]).any(1).tolist() == [True, True, True, False]
    scores = _test_scores(model, logits, labels)
    assert scores["test/top5"] == pytest.approx(3 / 4) and scores["test/acc"] == pytest.approx(1 / 4)


@pytest.mark.parametrize("num_classes", [2, 4, 5])
def test_top5_is_not_reported_where_every_class_is_among_the_5_highest(num_classes: int) -> None:
    """With 5 classes or fewer, top_k=min(5, classes) made "top5" the share of clips whose class is among all
    classes: 1.0 whatever the model, reported as if it measured something (ucf101-mini's 4 classes, order tasks' 2)."""
    model = VideoClassifier(num_classes, 4, EncoderSpec(hidden_size=8, projection=8))
    scores = _test_scores(model, torch.eye(num_classes)[[1, 0]], torch.tensor([0, 1]))
    assert sorted(scores) == ["test/acc", "test/mean_class_acc"] and scores["test/acc"] == 0
    assert sorted(model.val_metrics) == ["val/acc", "val/mean_class_acc"]


def test_a_checkpoint_is_refused_for_other_features_but_not_for_another_spelling_of_its_weights_file() -> None:
    """The weights file is compared by its digest (the recorded identity), not by its path: trained with
    weights/r50.pth, tested with /abs/weights/r50.pth is the same model."""
    sampling = SamplingSpec(num_segments=8)

    def pipeline(**backbone) -> dict:
        return PipelineSpec(BackboneSpec(name="resnet50", **backbone), sampling, steps=8).to_dict()

    model = VideoClassifier(2, 16, EncoderSpec(hidden_size=8, projection=8), class_names=["a", "b"],
                            pipeline=pipeline(weights_path="/abs/weights/r50.pth"))
    saved = {**dict(model.hparams), "pipeline": pipeline(weights_path="weights/r50.pth")}
    model._require_same_data(saved, resuming=True)
    with pytest.raises(ValueError, match="features of"):
        model._require_same_data({**saved, "pipeline": pipeline(weights_path="weights/r50.pth", pooling="grid")},
                                 resuming=False)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "none"])
def test_a_clips_logits_do_not_change_when_batched_with_longer_or_shorter_clips(cell: str) -> None:
    torch.manual_seed(0)
    pooling = "mean" if cell == "none" else "last"
    encoder = EncoderSpec(cell=cell, pooling=pooling, num_layers=2, hidden_size=16, projection=16)
    model = VideoClassifier(5, 32, encoder).eval()
    clip = torch.randn(1, 7, 32)
    alone = model(clip, torch.tensor([7]))
    batch = torch.randn(3, 12, 32) * 10
    batch[1, :7] = clip[0]
    together = model(batch, torch.tensor([12, 7, 3]))
    assert (alone[0] - together[1]).abs().max() < 1e-5


def test_checkpoint_holds_everything_inference_needs(datamodule: VideoDataModule, tmp_path: Path) -> None:
    model = VideoClassifier(datamodule.num_classes, datamodule.feature_dim, EncoderSpec(hidden_size=16, projection=16),
                            class_names=datamodule.class_names, pipeline=datamodule.pipeline.to_dict())
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert checkpoint["task"] == "classification" and hparams["class_names"] == datamodule.class_names
    pipeline = PipelineSpec.from_dict(hparams["pipeline"])
    assert pipeline == datamodule.pipeline and pipeline.steps == 8
    assert pipeline.extract_batch_size == datamodule.hparams.extract_batch_size  # vidrnn classify extracts so
    assert EncoderSpec.from_dict(hparams["encoder"]) == EncoderSpec(hidden_size=16, projection=16)
    restored = VideoClassifier.load_from_checkpoint(path, weights_only=True)
    assert restored.pipeline == pipeline and restored.encoder.spec == model.encoder.spec
    features = torch.randn(2, 8, 1280)
    with torch.no_grad():
        assert torch.allclose(restored.eval()(features, torch.tensor([8, 5])), model.eval()(features, torch.tensor([8, 5])))


def test_a_fit_without_training_clips_fails_before_extracting_naming_what_to_check(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "data", groups=3, clips_per_group=1, num_frames=8, size=(48, 64))
    datamodule = VideoDataModule(root=str(root), dataset="ucf101", cache_dir=str(tmp_path / "cache"),
                                 backbone=BackboneSpec(input_size=64), sampling=SamplingSpec(short_side=64), steps=4)
    for record in datamodule.index.split("train"):
        record.path.unlink()  # a root holding the test side only (a partial copy, or the wrong fold's lists)
    datamodule = VideoDataModule(root=str(root), dataset="ucf101", cache_dir=str(tmp_path / "cache"),
                                 backbone=BackboneSpec(input_size=64), sampling=SamplingSpec(short_side=64), steps=4)
    model = VideoClassifier(datamodule.num_classes, 1280, EncoderSpec(hidden_size=8, projection=8))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    with pytest.raises(ValueError, match=r"no training clips in .* \(\d+ test clips\): .*data.root, data.splits or "
                                         r"data.fold \(fold 1\)"):
        trainer.fit(model, datamodule=datamodule)
    assert not datamodule.cache.entries()  # nothing was extracted first
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(model, datamodule=datamodule)  # testing needs only the test side
    assert len(datamodule.cache.entries()) == len(datamodule.index.split("test")) > 0


def test_spatial_maps_are_refused_for_classification_before_the_dataset_is_read(tmp_path: Path) -> None:
    """A classifier reads a vector per frame; maps ([T,C,h,w], the tracker's) were extracted for every clip before the
    model failed with 'features must be [B,T,D]'. The root does not exist: nothing of the dataset was looked at."""
    with pytest.raises(ValueError, match="pooling map .* set data.backbone.pooling to avg .* or grid"):
        VideoDataModule(root=str(tmp_path / "never read"), dataset="ucf101", backbone=BackboneSpec(pooling="map"))


def test_a_fit_that_can_hold_out_no_validation_group_fails_before_extracting_saying_what_to_do(tmp_path: Path) -> None:
    """Validation takes whole groups and leaves each class one to train on: with one recording group per class on the
    training side, the fit validated nothing, saved no best checkpoint and test_after_fit tested the final weights,
    with only Lightning's warnings about an empty loader and a missing val/acc to say so."""
    for label in ("a", "b"):
        for group in (1, 2):  # the test split takes one group of each class, the training side keeps the other
            write_video(tmp_path / "videos" / label / f"v_{label}_g{group:02d}_c01.avi", 4)

    def data(val_fraction: float) -> VideoDataModule:
        return VideoDataModule(root=str(tmp_path / "videos"), dataset="folders", cache_dir=str(tmp_path / "cache"),
                               backbone=BackboneSpec(input_size=32), sampling=SamplingSpec(short_side=32), steps=4,
                               val_fraction=val_fraction, extract_workers=0)

    model = VideoClassifier(2, 1280, EncoderSpec(hidden_size=8, projection=8))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    with pytest.raises(ValueError, match=r"data.val_fraction 0.2 holds out whole recording groups for validation, but "
                                         r"each class of .* has only one training recording group.* or set "
                                         r"--data.val_fraction 0 \(no validation"):
        trainer.fit(model, datamodule=data(0.2))
    assert not (tmp_path / "cache").exists()  # nothing was extracted first
    data(0.0).require_validation_split()


def test_validation_leaves_every_class_a_training_group_whatever_its_fraction(tmp_path: Path) -> None:
    """0.75 of a class's two recording groups rounds to both: validation takes one, and the other trains."""
    for split, groups in (("train", (1, 2)), ("test", (3,))):
        for label in ("a", "b"):
            for group in groups:
                write_video(tmp_path / "videos" / split / label / f"v_{label}_g{group:02d}_c01.avi", 4)
    drawn = _folders_module(tmp_path / "videos", tmp_path / "cache", val_fraction=0.75).drawn_keys()
    for split in ("train", "val"):
        assert sorted(key.split("/")[1] for key in drawn[split]) == ["a", "b"]  # one group of each class
    assert sorted(drawn["train"] + drawn["val"]) == [f"train/{label}/v_{label}_g{group:02d}_c01.avi"
                                                     for label in ("a", "b") for group in (1, 2)]


def test_a_given_val_folder_is_the_validation_split_not_carved_from_train(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With one recording group per class in train/, carving validation out of it was refused; val/ was never read."""
    for split in ("train", "val", "test"):
        for label in ("a", "b"):
            write_video(tmp_path / "videos" / split / label / f"v_{label}_g01_c01.avi", 4)
    data = VideoDataModule(root=str(tmp_path / "videos"), dataset="folders", cache_dir=str(tmp_path / "cache"),
                           backbone=BackboneSpec(input_size=32), sampling=SamplingSpec(short_side=32), steps=4,
                           val_fraction=0.2, extract_workers=0)
    data.require_validation_split()
    with caplog.at_level("INFO"):
        data.prepare_data()
        data.setup("fit")

    assert data.split_keys("val") == ["val/a/v_a_g01_c01.avi", "val/b/v_b_g01_c01.avi"]
    assert data.split_keys("train") == ["train/a/v_a_g01_c01.avi", "train/b/v_b_g01_c01.avi"]
    assert ("split: explicit split: the train/, val/ and test/ folders as given; validation: the val/ folder as given "
            "(val_fraction plays no part); clips: train 2, val 2, test 2") in caplog.text
    fitted = {path.resolve() for split in ("train", "val") for path in (tmp_path / "videos" / split).glob("*/*.avi")}
    assert fitted_clips(data.hparams) == fitted


def test_the_split_is_said_before_extraction_begins_and_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cold cache the split line came only in setup, after every clip was extracted (hours on UCF101)."""
    for split in ("train", "test"):
        for label in ("a", "b"):
            write_video(tmp_path / "videos" / split / label / f"v_{label}_g01_c01.avi", 4)
    data = _folders_module(tmp_path / "videos", tmp_path / "cache", val_fraction=0)
    said_before_extraction = []
    extract = data_module.extract_features

    def extract_noting(*args: object, **kwargs: object) -> object:
        said_before_extraction.append([r.getMessage() for r in caplog.records if r.getMessage().startswith("split: ")])
        return extract(*args, **kwargs)

    monkeypatch.setattr(data_module, "extract_features", extract_noting)
    with caplog.at_level("INFO"):
        data.prepare_data()
        data.setup("fit")

    line = ("split: explicit split: the train/ and test/ folders as given; validation: none (val_fraction=0); clips: "
            "train 2, val 0, test 2; per class (train/val/test): a 1/0/1, b 1/0/1")
    assert said_before_extraction == [[line]]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("split: ")] == [line]


def _folders_module(root: Path, cache: Path, **options: object) -> VideoDataModule:
    return VideoDataModule(root=str(root), dataset="folders", cache_dir=str(cache),
                           backbone=BackboneSpec(input_size=32), sampling=SamplingSpec(short_side=32), steps=4,
                           extract_workers=0, **options)


def _three_groups(root: Path, *labels: str) -> None:
    """Class folders of three recording groups of one 4-frame clip: one is tested, one validates, one trains."""
    for label in labels:
        for group in (1, 2, 3):
            write_video(root / label / f"v_{label}_g{group:02d}_c01.avi", 4)


def _unreadable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a video\n")
    return path


def test_a_fit_of_a_class_whose_name_holds_a_semicolon_is_refused_but_its_index_is_read(tmp_path: Path) -> None:
    """vidrnn classify's CSV joins the top-k labels with ';': "sit; stand;walk" could not be split back into the two
    labels a model of such a class gave. Only training is refused: a model trained on the folder before may still be
    evaluated (renaming the folder would refuse that as other classes)."""
    _three_groups(tmp_path / "videos", "sit; stand", "walk")
    data = _folders_module(tmp_path / "videos", tmp_path / "cache")

    assert data.index.classes == ["sit; stand", "walk"]
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'videos' / 'sit; stand'}: a class name may not hold "
                                                   "';'") + ".*rename the folder"):
        data.require_fit_data()


def test_a_class_with_no_training_clips_is_refused_before_extracting_saying_what_to_do(tmp_path: Path) -> None:
    """A class only in test/ made a head with a class it never trained on, which classify then offered."""
    for split in ("train", "test"):
        _three_groups(tmp_path / "videos" / split, "a", "b")
    write_video(tmp_path / "videos" / "test" / "c" / "v_c_g01_c01.avi", 4)
    data = _folders_module(tmp_path / "videos", tmp_path / "cache", val_fraction=0)
    model = VideoClassifier(3, 1280, EncoderSpec(hidden_size=8, projection=8))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")

    with pytest.raises(ValueError, match=re.escape(
            "class 'c' has no training clips (test 1): a classifier would be built with a class it never trains on, "
            f"and would offer it. Give it training clips or remove its folder ({tmp_path / 'videos' / 'test' / 'c'})")):
        trainer.fit(model, datamodule=data)
    assert not (tmp_path / "cache").exists()  # nothing was extracted first


@pytest.mark.parametrize(("missing", "unlisted", "why"), [
    (1, 2, "the split lists name 1 clip of it, missing from the disk, and its folder holds 2 files they do not name"),
    (0, 0, "the split lists name none of it, and its folder holds none"),
])
def test_a_class_without_any_clip_is_refused_saying_why_and_naming_its_folder(tmp_path: Path, missing: int,
                                                                              unlisted: int, why: str) -> None:
    """A class with no records was said to have no training clips '()' and its folder to be removed '()'."""
    folder = tmp_path / "HandstandPushups"
    index = DatasetIndex(root=tmp_path, classes=["a", "HandstandPushups"],
                         records=[VideoRecord(tmp_path / "a" / "v_a_g01_c01.avi", "a", "g01", "train")], split_rule="r",
                         missing=[folder / f"v_HandStandPushups_g0{n}_c01.avi" for n in range(1, missing + 1)],
                         unlisted=[folder / f"v_{n}.avi" for n in range(unlisted)])

    with pytest.raises(UnusableData) as refusal:
        require_trained_classes(index, index.split("train"))
    assert str(refusal.value) == (f"class 'HandstandPushups' has no clips in any split ({why}): a classifier would be "
                                  "built with a class it never trains on, and would offer it. Give it training clips "
                                  f"or remove its folder ({folder})")


def test_a_class_whose_training_clips_are_all_unreadable_ends_the_fit_before_training_naming_it(
        tmp_path: Path) -> None:
    """Every clip of 'phone' unreadable: the fit trained a 3-way head on two classes, reported phone 0/0/0, tested
    1.0 and exited 0, and classify offered phone."""
    root = tmp_path / "videos"
    _three_groups(root, "a", "b")
    for session in (1, 2, 3):
        _unreadable(root / "phone" / f"s{session}" / "IMG_0001.MOV")
    data = _folders_module(root, tmp_path / "cache")
    data.prepare_data()

    with pytest.raises(ValueError, match=re.escape(
            "class 'phone': 1 training clip, none readable (phone/s")) as refused:
        data.setup("fit")
    message = str(refused.value)
    assert f"every reason in {data.cache.dir / 'errors.json'}" in message
    assert f"fix its videos, or remove its folder ({root / 'phone'})" in message


def test_clips_that_could_not_be_read_are_named_once_with_counts_per_split_and_their_reasons(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "videos"
    _three_groups(root, "a", "b")
    for group in (1, 2, 3):
        _unreadable(root / "a" / f"v_a_g{group:02d}_c02.avi")
    data = _folders_module(root, tmp_path / "cache")
    data.prepare_data()
    with caplog.at_level("WARNING"):
        data.setup("fit")
        data.prepare_data()  # as a fit's test_after_fit runs it
        data.setup("test")

    said = [record.getMessage() for record in caplog.records if "could not be read" in record.getMessage()]
    assert len(said) == 1  # not again when the fit goes on to test
    assert said[0].startswith(f"3 of 9 clips under {root} could not be read and are left out (train 1, val 1, "
                              "test 1): a/v_a_g01_c02.avi (train): cannot be opened as a video")
    assert f"every reason in {data.cache.dir / 'errors.json'}" in said[0]
    assert len(data.split_keys("train")) == 2


def test_splits_json_lists_the_clips_each_split_left_out_as_unreadable_with_their_reasons(tmp_path: Path) -> None:
    """A test clip that could not be decoded was absent from clip_lists and per_class without a trace in splits.json,
    so the record of what a score rests on did not say that the test had a clip fewer than the split drew."""
    root = tmp_path / "videos"
    _three_groups(root, "a", "b")
    broken = {_unreadable(root / "a" / f"v_a_g{group:02d}_c02.avi").relative_to(root).as_posix() for group in (1, 2, 3)}
    record = fit_split_record(_folders_module(root, tmp_path / "cache"), tmp_path / "runs")
    unreadable = record["unreadable"]
    assert sorted(unreadable) == ["test", "train", "val"] and all(len(clips) == 1 for clips in unreadable.values())
    assert {key for clips in unreadable.values() for key in clips} == broken
    for split, clips in unreadable.items():
        assert not set(clips) & set(record["clip_lists"][split])
        assert all(reason.startswith("cannot be opened as a video") for reason in clips.values())


def test_splits_json_lists_the_clips_cut_short_which_are_said_once_as_they_are_extracted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A truncated clip trained and was tested as a whole one, and nothing a fit left behind said otherwise. It is
    said once, when it is extracted (not at each setup or fit that reads it from the cache), and splits.json keeps
    it, with each split's clips."""
    root = tmp_path / "videos"
    _three_groups(root, "a", "b")
    cut = stating_frames(root / "a" / "v_a_g02_c01.avi", 12).relative_to(root).as_posix()
    with caplog.at_level("WARNING"):
        records = [fit_split_record(_folders_module(root, tmp_path / "cache"), tmp_path / "runs") for _ in range(2)]
    said = [message for message in caplog.messages if "frames its container states" in message]
    assert said == [f"{root / cut}: decoded 4 of the 12 frames its container states (a truncated or damaged file?): "
                    "only those 4 were sampled"]  # by the first fit, which extracted it; not by the second
    for record in records:
        (split,) = [name for name, keys in record["clip_lists"].items() if cut in keys]
        assert record["cut_short"] == {name: {cut: said[0].split(": ", 1)[1]} if name == split else {}
                                       for name in ("train", "val", "test")}


def test_a_split_the_stage_needs_with_no_readable_clip_ends_with_an_error_that_names_them(tmp_path: Path) -> None:
    """Every clip unreadable: setup raised 'no features cached ...; prepare_data did not run or every video failed',
    a traceback of 40 lines from vidrnn fit."""
    root = tmp_path / "videos"
    for label in ("a", "b"):
        for session in (1, 2):
            _unreadable(root / label / f"s{session}" / "x.mp4")
    data = _folders_module(root, tmp_path / "cache", val_fraction=0)
    data.prepare_data()

    with pytest.raises(ValueError, match=re.escape(
            f"no clip under {root} can be used: 4 of 4 could not be read (a/s1/x.mp4: cannot be opened as a "
            "video")) as ended:
        data.setup("fit")
    assert f"every reason in {data.cache.dir / 'errors.json'}" in str(ended.value)


def test_a_fit_whose_training_clips_are_all_unreadable_ends_naming_them_while_testing_still_works(
        tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for label in ("a", "b"):
        _unreadable(root / "train" / label / "x.mp4")
        write_video(root / "test" / label / "y.avi", 4)
    data = _folders_module(root, tmp_path / "cache", val_fraction=0)
    data.prepare_data()

    with pytest.raises(ValueError, match=re.escape(
            f"no training clip under {root} can be used: 2 of 2 could not be read (train/a/x.mp4: cannot be opened as "
            "a video")):
        data.setup("fit")
    data.setup("test")
    assert data.split_keys("test") == ["test/a/y.avi", "test/b/y.avi"]


def test_one_class_folder_is_refused_for_a_classifier_but_serves_an_order_task(tmp_path: Path) -> None:
    """torchmetrics refused it only once the model was built: "Expected argument num_classes to be an integer larger
    than 1, but got 1"."""
    root = tmp_path / "videos"
    for group in (1, 2):
        write_video(root / "only" / f"v_only_g{group:02d}_c01.avi", 4)
    with pytest.raises(ValueError, match=re.escape(f"found 1 class folder under {root} (only); a classifier needs at "
                                                   "least 2")):
        VideoDataModule(root=str(root), dataset="folders")
    assert VideoDataModule(root=str(root), dataset="folders", objective="arrow_of_time").num_classes == 2


class _Extracting(Exception):
    """Where prepare_data would begin extracting features."""


def _extracting(*args: object, **kwargs: object) -> None:
    raise _Extracting


def test_the_demo_is_generated_once_the_checks_have_passed_and_another_seeds_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo was generated as the data module was built — before the checks that may refuse the command — and
    generated again over the one there for another data.seed, under the features cached from it."""
    small = functools.partial(synthetic.make_classification_dataset, size=(16, 16))
    monkeypatch.setattr(synthetic, "make_classification_dataset", small)
    monkeypatch.setattr(data_module, "extract_features", _extracting)
    root = tmp_path / "demo"
    datamodule = VideoDataModule(root=str(root), dataset="demo", cache_dir=str(tmp_path / "cache"),
                                 backbone=BackboneSpec(input_size=32), extract_workers=0)
    assert not root.exists() and datamodule.index.counts() == {"train": 192, "test": 96}
    with pytest.raises(_Extracting):
        datamodule.prepare_data()
    generated = ucf101_index(root)
    assert [record.path for record in generated.records] == [record.path for record in datamodule.index.records]
    with pytest.raises(ValueError, match=re.escape(f"{root} holds the demo videos generated with seed 0; seed 1 "
                                                   "generates other videos")):
        VideoDataModule(root=str(root), dataset="demo", seed=1)


def test_a_demo_fit_refuses_the_data_vidrnn_synth_made_with_another_seed_and_keeps_it(tmp_path: Path) -> None:
    """The fit took vidrnn synth's clips (no marker then) for an interrupted generation: it deleted them without a
    word and generated the demo of its own seed in their place."""
    from vidrnn.cli import main

    assert main(["synth", str(tmp_path), "--kind", "classification", "--seed", "1", "--groups", "3",
                 "--clips-per-group", "1", "--frames", "2"]) == 0
    root = tmp_path / "classification"
    before = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
    with pytest.raises(ValueError, match=re.escape(
            f"{root} holds the demo videos generated with seed 1, groups 3, clips_per_group 1, num_frames 2; seed 0 "
            "with the default settings generates other videos")):
        VideoDataModule(root=str(root), dataset="demo", seed=0, cache_dir=str(tmp_path / "cache")).prepare_data()
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*")} == before


def test_wrong_paths_fail_fast_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        VideoDataModule(root=str(tmp_path / "nowhere"), dataset="ucf101")


def test_a_clip_that_failed_is_left_out_of_later_fits_without_decoding_until_its_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    root = make_classification_dataset(tmp_path / "data", groups=3, clips_per_group=1, num_frames=4, size=(48, 64),
                                       seed=5, classes=CLASSES[:2])
    broken = next((root / "UCF-101").rglob("*.avi"))
    broken.write_bytes(b"not a video" * 100)
    _module(root, tmp_path / "cache").prepare_data()

    from vidrnn.data import module as module_of_the_data

    def no_backbone(spec):
        raise AssertionError("nothing should be decoded: every clip is cached or failed with its file unchanged")

    monkeypatch.setattr(module_of_the_data, "build_backbone", no_backbone)
    again = _module(root, tmp_path / "cache")
    with caplog.at_level("WARNING"):
        again.prepare_data()
        again.setup("fit")
    said = [record.getMessage() for record in caplog.records if "could not be read" in record.getMessage()]
    assert len(said) == 1 and "are left out" in said[0] and "decoded again once its file changes" in said[0]
    with pytest.raises(AssertionError, match="nothing should be decoded"):
        _module(root, tmp_path / "cache", retry_failed=True).prepare_data()
    broken.write_bytes(b"still not a video" * 100)
    with pytest.raises(AssertionError, match="nothing should be decoded"):
        _module(root, tmp_path / "cache").prepare_data()


def test_a_checkpoint_of_other_classes_is_refused_naming_how_many_the_list_leaves_out() -> None:
    """The lists were cut at five names without a word: the sixth class read as if it were in the data."""
    trained = [f"class{number}" for number in range(7)]
    model = VideoClassifier(num_classes=7, input_dim=4, class_names=[f"other{number}" for number in range(7)])
    with pytest.raises(ValueError, match=re.escape(
            "(not in the data: class0, class1, class2, class3, class4 and 2 more; not trained on: other0, other1, "
            "other2, other3, other4 and 2 more)")):
        model.check_checkpoint({"hyper_parameters": {"class_names": trained, "num_classes": 7}}, resuming=False)


def test_both_lightning_modules_record_their_task_and_random_state_and_default_to_adamw() -> None:
    """What VidrnnModule keeps in one place: a checkpoint names the model it holds and carries the random state a
    resume takes back; without an optimiser in the config both train with AdamW at 1e-3 over their trained weights."""
    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.random_state import RANDOM_STATE

    for module, task in ((VideoClassifier(3, 16, EncoderSpec(hidden_size=8)), "classification"),
                         (FrameTracker(hidden_size=8), "tracking")):
        checkpoint: dict = {}
        module.on_save_checkpoint(checkpoint)
        assert checkpoint["task"] == task and RANDOM_STATE in checkpoint
        optimizer = module.configure_optimizers()
        assert isinstance(optimizer, torch.optim.AdamW)
        assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (1e-3, 0.01)
        trained = [parameter for parameter in module.parameters() if parameter.requires_grad]
        assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in trained]
