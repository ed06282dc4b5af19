"""Temporal-order tasks: arrow of time and order verification on any dataset, labels from the clips themselves."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from vidrnn.backbones import BackboneSpec
from vidrnn.data.folders import UNLABELED, unlabeled_index
from vidrnn.data.module import VideoDataModule
from vidrnn.data.order import OrderTask, reverse_steps, shuffle_parts
from vidrnn.data.streams import EpochKey, EpochSampler
from vidrnn.data.synthetic import ORDER_PAIRS, make_classification_dataset
from vidrnn.models.classifier import VideoClassifier, pretrained_encoder
from vidrnn.models.temporal import EncoderSpec, reverse_padded
from vidrnn.sampling import SamplingSpec, segment_indices

from conftest import fit_split_record, write_video


class _Clips(torch.utils.data.Dataset):
    """Three clips of distinct steps ``[t,2]`` (step ``i`` of clip ``c`` is ``(c, i)``), labelled 7."""

    def __init__(self, lengths: tuple[int, ...] = (5, 8, 1)) -> None:
        self.clips = [np.stack([np.full(n, c), np.arange(n)], axis=1).astype(np.float32) for c, n in enumerate(lengths)]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, position: int) -> tuple[np.ndarray, int, str]:
        return self.sample(position, None)

    def sample(self, position: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int, str]:
        return self.clips[position], 7, f"clip{position}"


def test_arrow_of_time_shows_every_clip_as_recorded_and_exactly_reversed() -> None:
    clips = _Clips()
    task = OrderTask(clips, "arrow_of_time", train=False, seed=0)
    assert len(task) == 6
    for clip in range(3):
        backwards, forwards = task[2 * clip], task[2 * clip + 1]
        assert forwards[1] == 1 and backwards[1] == 0
        assert forwards[2] == f"clip{clip}" and backwards[2] == f"clip{clip}@backwards"
        np.testing.assert_array_equal(forwards[0], clips[clip][0])
        np.testing.assert_array_equal(backwards[0], clips[clip][0][::-1])


def test_shuffled_parts_move_whole_and_never_stay_in_order() -> None:
    steps = np.arange(16)[:, None]
    for seed in range(50):
        shuffled = shuffle_parts(steps, 4, np.random.default_rng(seed))[:, 0]
        parts = [tuple(shuffled[k:k + 4]) for k in range(0, 16, 4)]
        assert sorted(parts) == [tuple(range(k, k + 4)) for k in range(0, 16, 4)]
        assert parts != sorted(parts)
    np.testing.assert_array_equal(shuffle_parts(steps[:1], 4, np.random.default_rng(0)), steps[:1])
    np.testing.assert_array_equal(reverse_steps(steps)[:, 0], np.arange(16)[::-1])


def test_order_verification_is_reproducible_in_evaluation_and_varies_in_training() -> None:
    clips = _Clips((12, 12, 12))
    evaluation = OrderTask(clips, "order_verification", train=False, seed=3)
    np.testing.assert_array_equal(evaluation[0][0], OrderTask(clips, "order_verification", False, 3)[0][0])
    assert evaluation[0][2] == "clip0@shuffled" and evaluation[1][1] == 1
    training = OrderTask(clips, "order_verification", train=True, seed=3)
    assert len({tuple(training[EpochKey(epoch, 0)][0][:, 1]) for epoch in range(10)}) > 1  # anew every epoch
    np.testing.assert_array_equal(training[EpochKey(4, 0)][0], training[EpochKey(4, 0)][0])  # one visit, one shuffle


def test_evaluation_shuffles_each_clip_in_its_own_way() -> None:
    """One shuffle for every clip would test order verification on a single arrangement of parts."""
    evaluation = OrderTask(_Clips((12,) * 8), "order_verification", train=False, seed=3)
    shuffles = {tuple(evaluation[2 * clip][0][:, 1]) for clip in range(8)}
    assert len(shuffles) > 4


class _SegmentClips(_Clips):
    """Clips of 40 steps sampled as the data module samples them: 8 segments, centred without a generator."""

    def __init__(self) -> None:
        super().__init__((40, 40))

    def sample(self, position: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int, str]:
        return self.clips[position][segment_indices(40, 8, rng)], 7, f"clip{position}"


@pytest.mark.parametrize("objective", ["arrow_of_time", "order_verification"])
def test_training_samples_new_segment_offsets_every_epoch_and_evaluation_the_centres(objective: str) -> None:
    training = OrderTask(_SegmentClips(), objective, train=True, seed=3)
    for item in (0, 1):  # the altered copy and the clip as recorded
        drawn = {tuple(np.sort(training[EpochKey(epoch, item)][0][:, 1])) for epoch in range(10)}
        assert len(drawn) > 5
    evaluation = OrderTask(_SegmentClips(), objective, train=False, seed=3)
    assert evaluation[1][0][:, 1].tolist() == segment_indices(40, 8).tolist() == [2, 7, 12, 17, 22, 27, 32, 37]


def test_training_shuffles_do_not_depend_on_the_loader_workers() -> None:
    def shuffles(num_workers: int) -> list[list[float]]:
        task = OrderTask(_Clips((16,) * 8), "order_verification", train=True, seed=3)
        loader = torch.utils.data.DataLoader(task, batch_size=2, num_workers=num_workers, collate_fn=list,
                                             sampler=EpochSampler(len(task), seed=3, shuffle=False))
        return [batch[0][0][:, 1].tolist() for batch in loader]  # batch j: clip j shuffled, then as is

    drawn = shuffles(num_workers=0)
    assert len({tuple(shuffled) for shuffled in drawn}) > 1  # clips are shuffled each in their own way
    assert shuffles(num_workers=2) == drawn  # workers copying one generator would repeat each other's


def test_order_tasks_are_refused_with_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="not an order task"):
        OrderTask(_Clips(), "classes", train=False, seed=0)
    with pytest.raises(ValueError, match="at least 2 parts"):
        OrderTask(_Clips(), "order_verification", train=False, seed=0, parts=1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Generated clips with an arrow of time (an object grows, the lights come up, a colour turns) and a cache root.

    Only the first class of each demo order pair: the second is the first played backwards, so with both the
    direction of a clip would say nothing about whether it was reversed.
    """
    root = make_classification_dataset(tmp_path_factory.mktemp("order"), classes=[pair[0] for pair in ORDER_PAIRS],
                                       groups=6, clips_per_group=3, num_frames=12, size=(48, 64), seed=4)
    return root, tmp_path_factory.mktemp("cache")


def _module(generated: tuple[Path, Path], objective: str, **options: object) -> VideoDataModule:
    root, cache = generated
    module = VideoDataModule(
        root=str(root), dataset="ucf101", objective=objective, cache_dir=str(cache),
        backbone=BackboneSpec(input_size=64), sampling=SamplingSpec(strategy="all", short_side=64), steps=12,
        batch_size=16, extract_workers=0, val_fraction=0.2, **options,
    )
    module.prepare_data()
    module.setup("fit")
    return module


def _test_accuracy(module: VideoDataModule, epochs: int, **encoder: object) -> float:
    """Train a small classifier on the module's objective; its accuracy on every test clip shown both ways."""
    L.seed_everything(0)
    spec = EncoderSpec(hidden_size=16, projection=16, input_dropout=0.0, **encoder)
    classifier = VideoClassifier(
        module.num_classes, module.feature_dim, spec, class_names=module.class_names, head_dropout=0.0,
        optimizer=lambda parameters: torch.optim.AdamW(parameters, lr=1e-2),
    )
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0)
    trainer.fit(classifier, datamodule=module)
    return trainer.test(classifier, datamodule=module, verbose=False)[0]["test/acc"]


@pytest.mark.parametrize("objective", ["arrow_of_time", "order_verification"])
def test_mean_pooling_scores_exactly_half_on_an_order_task(generated, objective: str) -> None:
    module = _module(generated, objective)
    assert module.num_classes == 2 and module.class_names[1] in ("forwards", "in order")
    labels = [label for _, label, _ in module._datasets["test"]]
    assert labels == [0, 1] * len(module.split_keys("test"))
    assert _test_accuracy(module, epochs=3, cell="none", pooling="mean") == 0.5


@pytest.mark.slow
def test_a_tiny_recurrent_model_learns_the_arrow_of_time_on_generated_clips(generated) -> None:
    module = _module(generated, "arrow_of_time")
    assert _test_accuracy(module, epochs=40, cell="gru", pooling="mean", inputs="differences") > 0.85


def test_a_fraction_of_the_training_groups_leaves_validation_and_test_alone(generated) -> None:
    full, quarter = _module(generated, "classes"), _module(generated, "classes", train_fraction=0.25)
    assert quarter.split_keys("val") == full.split_keys("val") and quarter.split_keys("test") == full.split_keys("test")
    kept = quarter.split_keys("train")
    assert set(kept) < set(full.split_keys("train"))
    assert {key.split("/")[0] for key in kept} == set(full.class_names)  # every class keeps a group


def test_unlabeled_videos_are_one_class_split_by_group(tmp_path: Path) -> None:
    for group in range(1, 5):
        for clip in range(1, 3):
            write_video(tmp_path / "videos" / f"v_walk_g{group:02d}_c{clip:02d}.avi", 6)
    write_video(tmp_path / "videos" / "session" / "loose.avi", 6)
    index = unlabeled_index(tmp_path / "videos", test_fraction=0.25)
    assert index.classes == [UNLABELED] and len(index.records) == 9
    groups = {record.group for record in index.records}
    assert groups == {f"{UNLABELED}/g0{group}" for group in range(1, 5)} | {f"{UNLABELED}/session"}
    for group in groups:
        assert len({record.split for record in index.records if record.group == group}) == 1
    assert index.counts()["test"] >= 2
    with pytest.raises(ValueError, match="no classes to learn"):
        VideoDataModule(root=str(tmp_path / "videos"), dataset="unlabeled")


@pytest.mark.parametrize(("objective", "kept", "said"), [
    ("arrow_of_time", {"three", "long"}, "3 of 9 clips under {root} are left out of the arrow of time: with fewer than "
                                         "2 cached frames, a clip's altered copy could not differ from it (train 1, "
                                         "val 1, test 1): "),
    ("order_verification", {"long"}, "6 of 9 clips under {root} are left out of order verification: with fewer than "
                                     "4 cached frames, a clip's altered copy could not differ from it (train 2, val 2, "
                                     "test 2): "),
])
def test_clips_too_short_for_their_altered_copy_to_differ_are_left_out_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, objective: str, kept: set[str], said: str) -> None:
    """A 1-frame clip's reversed copy is the clip itself, shown once under each label: contradictory labels in
    training and a coin flip in every test score, without a word."""
    root = tmp_path / "videos"
    for session in (1, 2, 3):  # three recording groups: one trains, one validates, one is tested
        for name, frames in {"one": 1, "three": 3, "long": 8}.items():
            write_video(root / f"s{session}" / f"{name}.avi", frames)
    data = VideoDataModule(root=str(root), dataset="unlabeled", objective=objective, order_parts=4,
                           cache_dir=str(tmp_path / "cache"), backbone=BackboneSpec(input_size=32),
                           sampling=SamplingSpec(strategy="all", short_side=32), steps=8, extract_workers=0)
    data.prepare_data()
    with caplog.at_level("WARNING"):
        data.setup("fit")

    for split in ("train", "val", "test"):
        assert {Path(key).stem for key in data.split_keys(split)} == kept
    assert said.format(root=root) in caplog.text


def test_splits_json_lists_the_clips_left_out_as_too_short_with_their_frames_and_the_frames_needed(
        tmp_path: Path) -> None:
    """They were warned about, but splits.json listed unreadable clips only: after the run nothing said which clips it
    had not used, or why a split held fewer clips than it drew."""
    root = tmp_path / "videos"
    for session in (1, 2, 3):
        for name, frames in {"one": 1, "three": 3, "long": 8}.items():
            write_video(root / f"s{session}" / f"{name}.avi", frames)
    data = VideoDataModule(root=str(root), dataset="unlabeled", objective="order_verification", order_parts=4,
                           cache_dir=str(tmp_path / "cache"), backbone=BackboneSpec(input_size=32),
                           sampling=SamplingSpec(strategy="all", short_side=32), steps=8, extract_workers=0)
    record = fit_split_record(data, tmp_path / "runs")
    too_short = record["too_short"]
    assert sorted(too_short) == ["test", "train", "val"] and all(len(clips) == 2 for clips in too_short.values())
    for split, clips in too_short.items():
        assert not set(clips) & set(record["clip_lists"][split])
        for key, reason in clips.items():
            frames = {"one": "1 cached frame", "three": "3 cached frames"}[Path(key).stem]
            assert reason == f"{frames}, fewer than the 4 order verification needs"
    assert record["unreadable"] == {"train": {}, "val": {}, "test": {}}


def test_an_order_task_whose_clips_are_all_too_short_ends_saying_so(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for session in (1, 2):
        write_video(root / f"s{session}" / "still.avi", 1)
    data = VideoDataModule(root=str(root), dataset="unlabeled", objective="arrow_of_time", val_fraction=0,
                           cache_dir=str(tmp_path / "cache"), backbone=BackboneSpec(input_size=32),
                           sampling=SamplingSpec(strategy="all", short_side=32), steps=8, extract_workers=0)
    data.prepare_data()

    with pytest.raises(ValueError, match=re.escape(
            f"no clip under {root} can be used: 2 of 2 are too short for the arrow of time, with fewer than 2 cached "
            "frames (s1/still.avi; s2/still.avi). The arrow of time needs clips of at least 2 frames")):
        data.setup("fit")


def test_a_pretrained_encoder_starts_the_classifier_when_fitting_and_only_then(generated, tmp_path: Path) -> None:
    order = _module(generated, "arrow_of_time")
    encoder = EncoderSpec(cell="gru", hidden_size=8, projection=8, pooling="mean")
    pipeline = order.pipeline.to_dict()
    pretrained = VideoClassifier(2, order.feature_dim, encoder, class_names=order.class_names, pipeline=pipeline)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(pretrained, datamodule=order)
    path = tmp_path / "order.ckpt"
    trainer.save_checkpoint(path)

    classifier = VideoClassifier(3, order.feature_dim, encoder, pipeline=pipeline, init_from=str(path))
    classifier.setup("test")
    assert not torch.equal(classifier.encoder.rnn.weight_hh_l0, pretrained.encoder.rnn.weight_hh_l0)
    classifier.setup("fit")
    for name, value in pretrained.encoder.state_dict().items():
        torch.testing.assert_close(classifier.encoder.state_dict()[name], value, rtol=0, atol=0)
    assert classifier.head[1].out_features == 3

    with pytest.raises(ValueError, match="hidden_size: 8 there, 16 here"):
        pretrained_encoder(path, order.feature_dim, replace(encoder, hidden_size=16), order.pipeline)
    regularised = replace(encoder, dropout=0.3, input_dropout=0.5)  # dropout rates leave the weights' meaning alone
    weights = pretrained_encoder(path, order.feature_dim, regularised, order.pipeline)
    assert weights.keys() == classifier.encoder.state_dict().keys()


def test_an_antisymmetric_score_swaps_the_probabilities_of_a_clip_and_its_reversal() -> None:
    torch.manual_seed(0)
    model = VideoClassifier(2, 6, EncoderSpec(cell="gru", hidden_size=8, projection=8, pooling="mean"),
                            antisymmetric=True).eval()
    features = torch.randn(3, 7, 6)
    lengths = torch.tensor([7, 4, 2])
    with torch.no_grad():
        forwards = model(features, lengths).softmax(-1)
        backwards = model(reverse_padded(features, lengths), lengths).softmax(-1)
        order_blind = VideoClassifier(2, 6, EncoderSpec(cell="none", pooling="mean"), antisymmetric=True).eval()
        blind = order_blind(features, lengths)
    torch.testing.assert_close(forwards, backwards.flip(-1))
    torch.testing.assert_close(blind.softmax(-1), torch.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="arrow of time only"):
        VideoClassifier(4, 6, antisymmetric=True)
    with pytest.raises(ValueError, match="arrow of time only"):
        VideoClassifier(2, 6, class_names=["shuffled", "in order"], antisymmetric=True)
