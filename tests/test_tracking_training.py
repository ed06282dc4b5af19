"""Tracking end to end: cached simulated runs, `vidrnn fit/test` with task: tracking, and `vidrnn track`."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader

from conftest import refused_as_usage_error, run_with_reader_gone, save_untrained, write_video
from vidrnn.cli import main
from vidrnn.data.synthetic_tracking import make_tracking_sequences, render_tracking_frame, sample_tracking_scene
from vidrnn.data.streams import EpochKey
from vidrnn.data.tracking_datamodule import EvidenceWindows, TrackingDataModule
from vidrnn.exit_codes import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_SOME_FAILED, EXIT_USAGE
from vidrnn.data.tracking_sequences import load_sequence
from vidrnn.models.classifier import VideoClassifier
from vidrnn.checkpoints import load_module
from vidrnn.models.tracker_module import FrameTracker, load_frame_tracker
from vidrnn.schedules import TrainingDiverged
from vidrnn.metrics import SequenceScore, iou_per_frame, score_sequence
from vidrnn.track import WorkingScale, working_scale
from vidrnn.tracker import evaluation
from vidrnn.tracker.evaluation import evaluate
from vidrnn.tracker.geometry import SearchGeometry, validate_box
from vidrnn.tracker.matching import EVIDENCE_DIM
from vidrnn.tracker.runtime import Tracker, load_tracker
from vidrnn.tracker.search import MatchingSearch
from vidrnn.tracker.settings import TrackerSettings
from vidrnn.tracker.simulation import simulate_runs
from vidrnn.task_cli.entry import run_lightning_cli, task_of
from vidrnn.task_cli.tracking import TrackingCLI
from vidrnn.video import read_frames

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SIZE = (96, 128)


@pytest.fixture(scope="module")
def tracking_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tracking")
    for offset, (split, count, frames) in enumerate([("train", 10, 32), ("val", 2, 32), ("test", 3, 40)]):
        make_tracking_sequences(root / split, num_sequences=count, num_frames=frames, seed=10 + offset)
    return root


@pytest.fixture(scope="module")
def config(tracking_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("track-cli")
    values = {
        "task": "tracking",
        "seed_everything": 0,
        "data": {
            "root": str(tracking_root), "cache_dir": str(work / "cache"), "walks": 3,
            "tracker": {"geometry": {"size": 256}, "template_cells": 5},  # a third of the default's pixels: fast
            "window": 8, "train_windows": 256, "val_windows": 32, "batch_size": 32, "device": "cpu",
        },
        "model": {"cell": "lstm", "hidden_size": 32, "confidence": True, "optimizer": {
            "class_path": "torch.optim.AdamW", "init_args": {"lr": 0.003}}},
        "trainer": {
            "max_epochs": 10, "accelerator": "cpu", "default_root_dir": str(work / "runs"), "enable_progress_bar": False,
            "enable_model_summary": False, "gradient_clip_val": 1.0,
        },
    }
    path = work / "track.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_configs_name_their_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert task_of(["fit", "--config", str(CONFIGS / "track_demo.yaml")]) == "tracking"
    assert task_of(["fit", "--config", str(CONFIGS / "demo.yaml")]) == "classification"
    assert task_of(["fit", "--config", str(CONFIGS / "demo.yaml"), "--task", "tracking"]) == "tracking"
    with pytest.raises(SystemExit) as refused:
        task_of(["fit", "--task=segmentation"])
    assert refused.value.code == EXIT_USAGE and "unknown task 'segmentation'" in capsys.readouterr().err


@pytest.mark.parametrize("given", [
    ["-c", "{track}"], ["-c{track}"], ["-c={track}"], ["--config={track}"], ["--conf", "{track}"],
    ["-c", "task: tracking"],  # a config given as a string, as jsonargparse takes it
    ["--config", "{classify}", "-c", "{track}"],
    ["-c", "{track}", "--config", "{classify}"],  # demo.yaml names no task: the first config's stays
    ["--task", "classification", "-c", "{track}"],  # the last word wins, as jsonargparse merges them
])
def test_every_spelling_of_the_config_option_chooses_the_task(given: list[str]) -> None:
    """``-c`` (LightningCLI's usage line: ``[-c CONFIG]``) was not read, so ``vidrnn fit -c track_demo.yaml`` was
    parsed as classification and failed on the tracker's keys."""
    paths = {"track": str(CONFIGS / "track_demo.yaml"), "classify": str(CONFIGS / "demo.yaml")}
    assert task_of(["fit", *(arg.format(**paths) for arg in given)]) == "tracking"


def test_a_later_task_overrides_an_earlier_config() -> None:
    assert task_of(["fit", "-c", str(CONFIGS / "track_demo.yaml"), "--task", "classification"]) == "classification"


def test_a_config_that_cannot_be_read_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        task_of(["fit", "-c", str(tmp_path / "missing.yaml")])
    assert refused.value.code == EXIT_USAGE and "missing.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--config", "-c"])
def test_track_demo_config_parses(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["fit", option, str(CONFIGS / "track_demo.yaml"), "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task"] == "tracking" and printed["trainer"]["gradient_clip_val"] > 0
    assert printed["model"]["cell"] == "lstm" and printed["data"]["tracker"]["geometry"]["size"] == 448


def test_missing_folders_fail_before_anything_slow(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train/ and val/"):
        TrackingDataModule(root=str(tmp_path / "nowhere"))


@pytest.mark.parametrize(("options", "message"), [(dict(template_rate=1.0), "template_rate must be in"),
                                                   (dict(scale_rate=2.0), "scale_rate must be in"),
                                                   (dict(hold_below=-0.5), "hold_below must be >= 0")])
def test_rates_outside_their_range_fail_before_anything_slow(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackingDataModule(tracker=TrackerSettings(**options))


def _interrupt(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(("command", "where", "said"), [
    ("fit", (TrackingDataModule, "prepare_data"), " before any epoch finished; the simulated tracking runs made so "
                                                  "far stay in the cache: the same command goes on from there"),
    ("test", (evaluation, "sequence_rows"), "; it keeps nothing of its work: the same command starts over"),
])
def test_a_stopped_tracking_command_says_what_it_kept(command: str, where: tuple, said: str, config: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The stop line said "the features extracted so far" for tracking, whose cache holds simulated runs — and
    vidrnn test of a tracker, which tracks online, caches nothing at all."""
    monkeypatch.setattr(*where, _interrupt)
    with pytest.raises(SystemExit) as stopped:
        main([command, "--config", str(config)])
    assert stopped.value.code == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"vidrnn {command}: interrupted (Ctrl-C){said}"


def test_vidrnn_test_refuses_the_best_keyword_which_names_no_checkpoint_outside_a_fit(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--ckpt_path best`` found no best checkpoint in a fresh command and scored the untrained head, exit 0."""
    with pytest.raises(SystemExit) as refused:
        main(["test", "--config", str(config), "--ckpt_path", "best"])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert "--ckpt_path best names the best checkpoint of a fit run by this same command" in error


def test_predict_is_refused_for_tracking_before_anything_slow(
        config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """It simulated every training sequence's runs (an hour and more on a CPU) before Lightning failed on the missing
    predict_dataloader, in a traceback."""
    def simulating(_: TrackingDataModule) -> None:
        raise AssertionError("prepare_data ran")
    monkeypatch.setattr(TrackingDataModule, "prepare_data", simulating)
    with pytest.raises(SystemExit) as refused:
        main(["predict", "--config", str(config)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert "vidrnn predict is for classification. A tracker's boxes for a video come from vidrnn track" in error


def test_simulated_runs_cover_every_frame_and_mask_absent_targets(tmp_path: Path) -> None:
    folder = make_tracking_sequences(tmp_path, num_sequences=1, num_frames=10, size=SIZE, seed=3)[0]
    truth = (folder / "groundtruth_rect.txt").read_text().splitlines()
    truth[4] = "NaN,NaN,NaN,NaN"  # the target leaves the view in frame 5 (0-based 4)
    (folder / "groundtruth_rect.txt").write_text("\n".join(truth) + "\n")
    sequence = load_sequence(folder)
    geometry = SearchGeometry(size=96)
    search = MatchingSearch(TrackerSettings(geometry=geometry, template_cells=5, template_rate=0.0, scale_rate=0.0,
                                            hold_below=0.0))
    frames = (frame for _, chunk in sequence.iter_frames() for frame in chunk)
    runs = simulate_runs(search, sequence.name, frames, sequence.boxes, walks=3, rng=np.random.default_rng(0),
                         position_jitter=0.0, scale_jitter=0.0)
    assert runs.evidence.shape == (3, 9, EVIDENCE_DIM) and runs.targets.shape == (3, 9, 4)
    assert np.isfinite(runs.evidence).all()
    assert runs.valid.shape == (3, 9) and not runs.valid[:, 3].any()  # frame 4: absent
    # Without error, walks 1 and 2 search around the previous true box: identical runs, and each target lies where
    # the crop's geometry says it must.
    assert np.allclose(runs.evidence[1], runs.evidence[2]) and runs.valid[1:, [0, 1, 2, 4]].all()
    expected = geometry.window(sequence.boxes[1]).box_to_crop(sequence.boxes[2])
    assert runs.targets[1, 1] == pytest.approx(expected, abs=1e-5)
    # Walk 0 is the matching-only tracker online: its first search is around the given box, like the others; later
    # ones follow its own peaks (its searches, and so its targets, differ from the true-box walks).
    assert np.allclose(runs.evidence[0, 0], runs.evidence[1, 0])
    assert not np.allclose(runs.targets[0, 1:], runs.targets[1, 1:])
    windows = EvidenceWindows([runs], window=4, length=5, seed=0, train=False)
    item = windows[0]
    assert item["evidence"].shape == (4, EVIDENCE_DIM) and item["valid"].dtype == torch.bool
    again = EvidenceWindows([runs], window=4, length=5, seed=0, train=False)
    assert torch.equal(windows[1]["evidence"], again[1]["evidence"])


def test_a_step_whose_target_centre_leaves_the_search_region_on_one_axis_is_no_training_step(tmp_path: Path) -> None:
    """In frame 3 the target jumps left, 0.7 of the search region's side, and not up or down: searched around frame
    2's box, its centre lies left of the crop (x below 0) while y is inside; no evidence could say where it went."""
    folder = make_tracking_sequences(tmp_path, num_sequences=1, num_frames=6, size=SIZE, seed=3)[0]
    sequence = load_sequence(folder)
    geometry = SearchGeometry(size=96)
    truth = sequence.boxes.copy()
    truth[3] = truth[2] - [0.7 * geometry.window(truth[2]).side, 0, 0, 0]
    target = geometry.window(truth[2]).box_to_crop(truth[3])
    centre = target[:2] + target[2:] / 2
    assert centre[0] < 0 < centre[1] < 1
    search = MatchingSearch(TrackerSettings(geometry=geometry, template_cells=5, template_rate=0.0, scale_rate=0.0,
                                            hold_below=0.0))
    frames = (frame for _, chunk in sequence.iter_frames() for frame in chunk)
    runs = simulate_runs(search, sequence.name, frames, truth, walks=3, rng=np.random.default_rng(0),
                         position_jitter=0.0, scale_jitter=0.0)
    assert runs.targets[1, 2] == pytest.approx(target, abs=1e-5)  # walks 1 and 2 search around the true box
    assert runs.valid[1:, :2].all() and not runs.valid[1:, 2].any()


def test_training_windows_follow_the_seed_the_epoch_and_the_item() -> None:
    """The distributed sampler gives each rank other items, and each item's window is drawn from its own key: the
    ranks train on different windows (a stream seeded alike on every rank would give N GPUs one GPU's windows N
    times over), another set every epoch, the same after a resume."""
    from vidrnn.tracker.simulation import EvidenceRuns

    steps = 50
    runs = EvidenceRuns("toy", np.arange(2 * steps * EVIDENCE_DIM, dtype=np.float32).reshape(2, steps, EVIDENCE_DIM),
                        np.zeros((2, steps, 4), np.float32), np.ones((2, steps), bool), np.zeros((2, steps, 3)),
                        np.array([64, 64]))

    def starts(seed: int, epoch: int) -> list[float]:
        windows = EvidenceWindows([runs], window=4, length=8, seed=seed, train=True)
        return [float(windows[EpochKey(epoch, index)]["evidence"][0, 0]) for index in range(8)]

    assert starts(1, epoch=0) == starts(1, epoch=0)
    assert len(set(starts(1, epoch=0))) > 4  # items (and so ranks) draw windows of their own
    assert starts(1, epoch=0) != starts(1, epoch=1) and starts(1, epoch=0) != starts(2, epoch=0)


@pytest.mark.slow
def test_tiny_tracker_learns_and_follows_the_target(config: Path, tracking_root: Path, capsys,
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fit (cache + training) and test through the CLI; the trained tracker follows the target far better than a
    box that stays where it started, and the scores land in tracking_scores.csv."""
    cli = run_lightning_cli(["fit", "--config", str(config), "--test_after_fit", "true"])
    cache = Path(yaml.safe_load(config.read_text())["data"]["cache_dir"])
    assert len(list(cache.rglob("*.npz"))) == 12  # one cached file per train and val sequence

    log_dir = Path(cli.trainer.log_dir)
    rows = list(csv.DictReader((log_dir / "tracking_scores.csv").open()))
    assert {row["tracker"] for row in rows} == {"vidrnn", "matching"}
    assert sum(row["sequence"] == "MEAN" for row in rows) == 2 and len(rows) == 2 * 3 + 2
    means = {row["tracker"]: row for row in rows if row["sequence"] == "MEAN"}
    tracked_iou = float(means["vidrnn"]["mean_iou"])
    staying = []
    for folder in sorted((tracking_root / "test").iterdir()):
        sequence = load_sequence(folder)
        still = np.repeat(sequence.boxes[:1], sequence.num_frames, axis=0)
        staying.append(np.nanmean(iou_per_frame(still, sequence.boxes)[1:]))
    # Measured: tracked 0.852, a box that stays put 0.082, the matching-only ablation 0.857. The head reports beside
    # the matching tracker that steers the searches, so it must not fall clearly below it (while its own boxes
    # steered, this tiny head scored 0.29-0.59 against matching's 0.56-0.62).
    assert tracked_iou > np.mean(staying) + 0.15, (tracked_iou, np.mean(staying))
    assert tracked_iou > float(means["matching"]["mean_iou"]) - 0.02, means

    # Validation scores whole sequences from the matching run's cached evidence: the same boxes the tracker reports
    # when it runs online over the decoded frames.
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    loaders = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint, verbose=False)
    validated = {name: value for metrics in loaders for name, value in metrics.items()}
    online = evaluate({"vidrnn": load_tracker(checkpoint, device="cpu").track}, cli.datamodule.sequences("val"),
                      progress=False)[-1]
    assert validated["val/success_auc"] == pytest.approx(online.score.success_auc, abs=1e-3), (validated, online)
    assert 0 <= validated["val/success_auc_reset"] <= 1  # the LSTM as trained: its state afresh every window

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["task"] == "tracking"
    assert not any(key.startswith("backbone.") for key in state["state_dict"])  # the frozen CNN is rebuilt, not saved
    # The settings travel from the data module into the checkpoint as one record. A checkpoint saved before that
    # stored them one by one, and one saved before hold_below existed tracks as it was trained, never holding.
    settings = state["hyper_parameters"]["tracker"]
    assert settings["hold_below"] == 2.5 and settings["geometry"]["size"] == 256
    older = _saved_one_by_one(Path(checkpoint), Path(checkpoint).with_name("before-settings.ckpt"))
    older_settings = load_tracker(older, device="cpu").settings
    assert older_settings.hold_below == 0.0 and older_settings.geometry.size == 256
    _track_cli(Path(checkpoint), tracking_root, capsys)
    _refuses_the_data_it_was_fitted_on(Path(checkpoint), config, tracking_root, tmp_path, capsys, monkeypatch)


def _refuses_the_data_it_was_fitted_on(checkpoint: Path, config: Path, tracking_root: Path, work: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracker's checkpoint recorded no sequences: vidrnn test scored it on its own training sequences whenever the
    test folder was not under the config's root (exit 0), and a resume took another root (train and val swapped),
    seed, window or walk count without a word, validating on what it had trained on. Sequences are matched by their
    ground truth, so a namesake in another dataset (the test split's Synth01 is not the training split's) is
    scored, and a copy under another name is refused."""
    def working(*_: object, **__: object) -> None:
        raise AssertionError("the command started working")
    monkeypatch.setattr(TrackingDataModule, "prepare_data", working)
    monkeypatch.setattr(evaluation, "sequence_rows", working)
    record = torch.load(checkpoint, map_location="cpu", weights_only=True)["TrackingDataModule"]
    assert [name for name, _ in record["fitted_sequences"]["val"]] == ["Synth01", "Synth02"]
    assert len(record["fitted_sequences"]["train"]) == 10 and record["fit_settings"]["window"] == 8

    copies = work / "copies"
    shutil.copytree(tracking_root / "val" / "Synth02", copies / "renamed")
    resume = ["fit", "--config", str(config), "--ckpt_path", str(checkpoint)]
    test = ["test", "--config", str(config), "--ckpt_path", str(checkpoint)]
    error = refused_as_usage_error([*test, "--data.test_root", str(copies)], capsys)
    assert f"the test sequence renamed ({copies / 'renamed'}) is the validation sequence Synth02 (the same ground " \
           "truth)" in error and "Score it on sequences it neither trained nor validated on (data.test_root)" in error
    error = refused_as_usage_error([*test, "--data.test_root", str(tracking_root / "train")], capsys)
    assert "the test sequence Synth10" in error

    swapped = work / "swapped"
    swapped.mkdir()
    (swapped / "train").symlink_to(tracking_root / "val")
    (swapped / "val").symlink_to(tracking_root / "train")
    error = refused_as_usage_error([*resume, "--data.root", str(swapped)], capsys)
    assert "the checkpoint was trained and validated on other sequences (training sequences here that it was not " \
           "fitted on: Synth01, Synth02; training sequences it was fitted on that are not here: Synth01, " in error
    error = refused_as_usage_error(["validate", *test[1:], "--data.root", str(swapped)], capsys)
    assert "the validation sequence Synth03" in error
    error = refused_as_usage_error([*resume, "--data.seed", "3", "--data.walks", "2"], capsys)
    assert "the checkpoint was trained with other data settings (data.seed: 0 there, 3 here; data.walks: 3 there, 2 " \
           "here): the epochs after the resume would train and validate on other windows" in error


@pytest.mark.parametrize("name", ["track.yaml", "track_demo.yaml"])
def test_the_tracking_configs_log_per_layer_gradient_norms(name: str, config: Path, tmp_path: Path) -> None:
    """The README says gradient norms are in the metrics of every run, but the tracking configs' trainers logged
    none. A fit with their callbacks now logs the tracker's per-layer norms (before clipping) and the total; a
    FrameTracker exposes no input features, so no per-position norms."""
    values = yaml.safe_load(config.read_text())
    values["data"] |= {"train_windows": 64, "val_windows": 8}
    values["trainer"] |= {"max_epochs": 1, "log_every_n_steps": 1, "default_root_dir": str(tmp_path),
                          "callbacks": yaml.safe_load((CONFIGS / name).read_text())["trainer"]["callbacks"]}
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(values), encoding="utf-8")
    cli = run_lightning_cli(["fit", "--config", str(tiny)])
    rows = list(csv.DictReader((Path(cli.trainer.log_dir) / "metrics.csv").open()))
    logged = {key for row in rows for key, value in row.items() if key.startswith("grad_norm/") and value}
    assert "grad_norm/total" in logged and any(key.endswith(".weight_hh_l0") for key in logged), logged
    assert not any("input_pos" in key for key in logged)


def _saved_one_by_one(checkpoint: Path, target: Path) -> Path:
    """``checkpoint`` as vidrnn saved it before the tracker's settings were one record: each a hyperparameter of its
    own, no ``hold_below`` and no recorded ``task`` (neither existed yet)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state.pop("task", None)
    hyper = dict(state["hyper_parameters"])
    settings = TrackerSettings.from_dict(hyper.pop("tracker") or {}).to_dict()
    hyper.update({key: settings[key] for key in ("backbone", "geometry", "template_cells", "template_rate",
                                                 "scale_rate")})
    torch.save({**state, "hyper_parameters": hyper}, target)
    return target


def _older_tracker(folder: Path) -> Path:
    """An untrained tracker's checkpoint in the shape saved before the settings were one record, its template
    following the target at 0.05 (the default: 0.01)."""
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5, "template_rate": 0.05}, hidden_size=8)
    return _saved_one_by_one(save_untrained(model, folder / "current.ckpt"), folder / "older.ckpt")


def _recorded_trackers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Tracker]:
    """The trackers ``vidrnn test`` scores, by name, recorded instead of tracking anything."""
    used: dict[str, Tracker] = {}

    def record(trackers, sequences, progress=True, root=None):
        used.update({name: track.__self__ for name, track in trackers.items()})
        return evaluation.SequenceRows()

    monkeypatch.setattr(evaluation, "sequence_rows", record)
    return used


def test_vidrnn_test_tracks_an_older_checkpoint_with_its_own_settings(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The test command loaded it without converting its settings: the defaults (template_rate 0.01, holding below
    2.5) tracked in place of those it was trained with, while vidrnn track used its own."""
    older = _older_tracker(tmp_path)
    used = _recorded_trackers(monkeypatch)
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), log_dir=None,
                              is_global_zero=False, world_size=1)
    datamodule = SimpleNamespace(sequences=lambda split: [], test_folder=tmp_path)
    TrackingCLI.test(SimpleNamespace(trainer=trainer), FrameTracker(), datamodule, ckpt_path=str(older))
    settings = used["vidrnn"].settings
    assert settings == load_tracker(older, device="cpu").settings
    assert settings.template_rate == 0.05 and settings.hold_below == 0.0


def test_an_older_tracker_checkpoint_loads_converted_or_is_refused_never_with_other_settings(
        tmp_path: Path) -> None:
    """Loaded as a plain LightningModule, its settings one by one were dropped for the defaults without a word."""
    older = _older_tracker(tmp_path)
    with pytest.raises(ValueError, match="vidrnn upgrade OLD.ckpt NEW.ckpt"):
        load_module(FrameTracker, older)
    with pytest.raises(ValueError, match="vidrnn upgrade OLD.ckpt NEW.ckpt"):  # a trainer's ckpt_path loads it so
        FrameTracker().on_load_checkpoint(torch.load(older, map_location="cpu", weights_only=True))
    assert load_frame_tracker(older).settings.template_rate == 0.05


@pytest.mark.parametrize("command", ["test", "validate", "fit"])
def test_lightning_commands_refuse_an_older_tracker_checkpoint_saying_how_to_convert_it(
        command: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """LightningCLI merges a checkpoint's hyperparameters into the config and failed on these, printing its whole
    usage and "does not accept option 'model.backbone.name'"."""
    older = _older_tracker(tmp_path)
    with pytest.raises(SystemExit) as refused:
        main([command, "--config", str(config), "--ckpt_path", str(older)])
    error = capsys.readouterr().err.strip()
    assert refused.value.code == EXIT_USAGE and error.startswith(f"vidrnn: error: {older}: saved by an older vidrnn")
    assert error.endswith("convert it once with: vidrnn upgrade OLD.ckpt NEW.ckpt") and "usage:" not in error


def _with_retry_refused(checkpoint: Path) -> Path:
    """``checkpoint`` recording data settings beside its hyperparameters with ``retry_refused``, the tracking data
    module's name for ``retry_failed`` before the two data modules shared it (a tracking fit records none: its data
    module keeps no hyperparameters; the readers of a checkpoint must not trip on them all the same)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({**state, "datamodule_hyper_parameters": {"retry_refused": True}}, checkpoint)
    return checkpoint


def test_vidrnn_upgrade_converts_an_older_tracker_checkpoint(config: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    older, converted = _with_retry_refused(_older_tracker(tmp_path)), tmp_path / "converted.ckpt"
    assert main(["upgrade", str(older), str(converted)]) == 0
    assert main(["upgrade", str(converted), str(tmp_path / "again.ckpt")]) == EXIT_USAGE
    hyper = torch.load(converted, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hyper["tracker"] == load_frame_tracker(older).settings.to_dict() and "template_rate" not in hyper
    used = _recorded_trackers(monkeypatch)
    with pytest.warns(UserWarning, match="the checkpoint records no training sequences .saved by an older vidrnn., so "
                                         "whether vidrnn test reads sequences it was fitted on cannot be checked"):
        assert main(["test", "--config", str(config), "--ckpt_path", str(converted)]) == 0
    assert used["vidrnn"].settings.template_rate == 0.05 and used["vidrnn"].settings.hold_below == 0.0


@pytest.mark.parametrize(("recorded", "given", "retries"), [
    (True, [], True),  # a run's config.yaml records every data setting: this key in each one saved before
    (False, [], False),
    (False, ["--data.retry_failed", "true"], True),  # either name asking for a retry retries
    (None, ["--data.retry_refused", "true"], True),
])
def test_the_older_name_retry_refused_still_runs_saying_the_new_one(
        recorded: bool | None, given: list[str], retries: bool, config: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracking data module's ``retry_refused`` is now ``retry_failed``, as the classification one names it. A
    config.yaml of an older run, or a command line, that says ``data.retry_refused`` runs as it asked (rather than
    ending in "unrecognized arguments"), warned to say ``data.retry_failed``; so does a checkpoint that records the
    older name among its data settings."""
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    if recorded is not None:
        values["data"]["retry_refused"] = recorded
    older_config = tmp_path / "config.yaml"
    older_config.write_text(yaml.safe_dump(values), encoding="utf-8")
    checkpoint = _with_retry_refused(save_untrained(FrameTracker(hidden_size=8), tmp_path / "tracker.ckpt"))
    _recorded_trackers(monkeypatch)
    with pytest.warns(FutureWarning, match=r"data\.retry_refused is now data\.retry_failed"):
        cli = run_lightning_cli(["test", "--config", str(older_config), "--ckpt_path", str(checkpoint),
                                 "--trainer.default_root_dir", str(tmp_path / "runs"), *given])
    assert cli.datamodule.retry_failed is retries
    assert "retry_refused" not in cli.config.test.data and cli.config.test.data.retry_failed is retries


@pytest.mark.parametrize(("recorded", "given"), [(True, []), (None, ["--data.retry_refused", "true"])])
def test_print_config_shows_the_older_retry_refused_as_the_retry_failed_the_run_takes(
        recorded: bool | None, given: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--print_config`` printed ``retry_failed: false`` for an older config saying ``retry_refused: true``, which
    the run itself takes as ``retry_failed: true``: it must print the settings the run would use."""
    values = yaml.safe_load((CONFIGS / "track_demo.yaml").read_text(encoding="utf-8"))
    if recorded is not None:
        values["data"]["retry_refused"] = recorded
    older_config = tmp_path / "config.yaml"
    older_config.write_text(yaml.safe_dump(values), encoding="utf-8")
    with pytest.warns(FutureWarning, match=r"data\.retry_refused is now data\.retry_failed"), \
            pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(older_config), *given, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert done.value.code == 0
    assert printed["data"]["retry_failed"] is True and "retry_refused" not in printed["data"]


def _write_clip(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _track_cli(checkpoint: Path, tracking_root: Path, capsys) -> None:
    """`vidrnn track` on a short generated video: one row per frame, a rendered video, online and streaming."""
    work = checkpoint.parent
    scene = sample_tracking_scene(np.random.default_rng(7), 20, (240, 320))
    video = work / "clip.mp4"
    _write_clip(video, [render_tracking_frame(scene, index) for index in range(20)])
    box = ",".join(str(value) for value in scene.ground_truth()[0])
    output, rendered = work / "boxes.csv", work / "boxes.mp4"
    code = main(["track", str(video), "--ckpt", str(checkpoint), "--box", box, "--output", str(output),
                 "--render", str(rendered), "--device", "cpu"])
    assert code == 0
    rows = list(csv.DictReader(output.open()))
    assert [int(row["frame"]) for row in rows] == list(range(20))
    boxes = np.array([[float(row[key]) for key in "xywh"] for row in rows])
    assert np.isfinite(boxes).all() and (boxes[:, 2:] >= 2).all() and (boxes[:, 2] <= 320).all()
    assert boxes[0] == pytest.approx(scene.ground_truth()[0])
    capture = cv2.VideoCapture(str(rendered))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    capture.release()


def test_a_batch_without_a_visible_target_gives_a_finite_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation windows are fixed by seed: one batch with the target absent throughout made val/loss NaN every
    epoch (the mean box loss of no boxes), while the confidence still has something to learn."""
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8, confidence=True)
    logged = {}
    monkeypatch.setattr(model, "log_dict", lambda metrics, **options: logged.update(metrics))
    batch = {"evidence": torch.randn(2, 4, EVIDENCE_DIM), "targets": torch.rand(2, 4, 4),
             "valid": torch.zeros(2, 4, dtype=torch.bool)}
    loss = model._step(batch, "val/")
    assert torch.isfinite(loss) and all(torch.isfinite(value) for value in logged.values())
    loss.backward()
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters() if parameter.grad is not None)


def test_a_tracking_fit_whose_training_loss_is_nan_stops_saying_why(tmp_path: Path) -> None:
    """A NaN training loss (diverged weights, float16 AdamW under --trainer.precision 16-true) trained on to the last
    epoch and saved NaN weights as if a result; the fit now stops at that step (vidrnn fit ends with exit status 1)."""
    torch.manual_seed(0)
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8)
    batch = {"evidence": torch.randn(2, 4, EVIDENCE_DIM), "targets": torch.rand(2, 4, 4) + 1,
             "valid": torch.ones(2, 4, dtype=torch.bool)}
    broken = {**batch, "evidence": torch.full_like(batch["evidence"], float("nan"))}
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    with pytest.raises(TrainingDiverged, match="the training loss is nan at epoch 0, step 1: "):
        trainer.fit(model, train_dataloaders=DataLoader([batch, broken, batch], batch_size=None))


def test_a_gpu_this_machine_lacks_is_a_usage_error_for_tracking_too(config: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """It ended in Lightning's MisconfigurationException traceback ("No supported gpu backend found!")."""
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--trainer.accelerator", "gpu"])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert "No supported gpu backend found!" in error and "set --trainer.accelerator cpu" in error


@pytest.mark.parametrize("cell", ["lstm", "none"])
def test_validation_scores_a_recurrent_head_also_with_its_state_reset_every_training_window(
        cell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trained on windows from a fresh state, tracked with the state carried through the whole sequence: "_reset"
    reads the sequence as training did. A window as long as the sequence is the whole-sequence reading."""
    torch.manual_seed(0)
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, cell=cell, hidden_size=8).eval()
    monkeypatch.setattr(model, "log_dict", lambda *args, **options: None)
    for parameter in model.head.parameters():  # as if trained: an untrained head's correction starts at zero
        torch.nn.init.normal_(parameter, std=0.5)
    steps, evidence = 12, torch.randn(12, EVIDENCE_DIM)
    with torch.no_grad():
        whole, windowed = model.sequence_answers(evidence, steps), model.sequence_answers(evidence, 3)
        if cell == "none":
            assert set(windowed) == {"", "_matching"}  # no state to reset
            return
        assert torch.equal(whole["_reset"], whole[""]) and torch.equal(windowed[""], whole[""])
        expected = torch.cat([model(evidence[None, start : start + 3])[0] for start in range(0, steps, 3)])
        assert torch.equal(windowed["_reset"], expected) and not torch.allclose(windowed["_reset"], whole[""])
        batch = {"evidence": evidence, "windows": torch.from_numpy(np.tile([[160.0, 120.0, 200.0]], (steps, 1))),
                 "frame_size": torch.tensor([240, 320]), "truth": torch.tensor([[150.0, 110.0, 20.0, 20.0]] * 13),
                 "window": torch.tensor(3)}
        model.validation_step(batch, 0, dataloader_idx=1)
    assert "val/success_auc_reset" in {name for name, metric in model.sequence_scores.items() if metric.update_count}


def test_vidrnn_test_scores_the_tracker_vidrnn_track_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vidrnn test --ckpt_path` tracks with the checkpoint's head and its re-detection threshold, as `vidrnn track
    --ckpt` does; the matching-only ablation beside it has neither."""
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8, confidence=True,
                         redetect_below=0.4)
    checkpoint = tmp_path / "track.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": "2.0.0"}, checkpoint)
    used = {}

    def record(trackers, sequences, progress=True, root=None):
        used.update({name: track.__self__ for name, track in trackers.items()})
        return evaluation.SequenceRows()

    monkeypatch.setattr(evaluation, "sequence_rows", record)
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), log_dir=None,
                              is_global_zero=False, world_size=1)
    datamodule = SimpleNamespace(sequences=lambda split: [], test_folder=tmp_path)
    TrackingCLI.test(SimpleNamespace(trainer=trainer), FrameTracker(), datamodule, ckpt_path=str(checkpoint))
    tracked = load_tracker(checkpoint, device="cpu")
    assert used["vidrnn"].redetect_below == tracked.redetect_below == 0.4 and used["vidrnn"].head is not None
    assert used["vidrnn"].settings == tracked.settings
    assert used["matching"].head is None and used["matching"].redetect_below == 0.0


def test_vidrnn_test_counts_the_sequences_its_means_average(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A sequence without a frame to score (NaN) stays out of the mean: the summary must not count it as averaged."""
    scored, unscored = SequenceScore(7, 0.5, 0.6, 1.0), SequenceScore(0, float("nan"), float("nan"), float("nan"))
    rows = [evaluation.ScoreRow(name, tracker, score, 10.0) for name, score in (("A", scored), ("B", unscored))
            for tracker in ("vidrnn", "matching")]
    monkeypatch.setattr(evaluation, "sequence_rows",
                        lambda trackers, sequences, progress=True, root=None: evaluation.SequenceRows(rows))
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), log_dir=None,
                              is_global_zero=True, world_size=1)
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8)
    sequences = [SimpleNamespace(name_under=lambda root, name=name: name) for name in ("A", "B")]
    datamodule = SimpleNamespace(sequences=lambda split: sequences, test_folder=Path("bench"))
    TrackingCLI.test(SimpleNamespace(trainer=trainer), model, datamodule)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("(1 sequences, 7 frames; 1 without a frame to score, not in the mean)" in line
                                   for line in lines), lines


def test_vidrnn_test_of_a_tracker_says_it_tracks_in_one_process_under_the_ddp_strategy(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Its test bypasses the trainer, which alone starts the processes: with --trainer.devices 2 it tracked in one
    process without a word, while the docs said the sequences were shared across ranks."""
    monkeypatch.setattr(evaluation, "sequence_rows",
                        lambda trackers, sequences, progress=True, root=None: evaluation.SequenceRows([]))
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), log_dir=None,
                              is_global_zero=False, world_size=2)
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8)
    with caplog.at_level("INFO"):
        TrackingCLI.test(SimpleNamespace(trainer=trainer), model,
                         SimpleNamespace(sequences=lambda split: [], test_folder=Path("bench")))
    assert "tracks the test sequences in this one process, not in the 2 of --trainer.devices" in caplog.text


def _one_frame_left(sequence: Path) -> None:
    for image in ("0002.jpg", "0003.jpg"):
        (sequence / "img" / image).unlink()


def _first_box_outside(sequence: Path) -> None:
    truth = sequence / "groundtruth_rect.txt"
    truth.write_text("\n".join(["1000,1,8,8", *truth.read_text().splitlines()[1:]]) + "\n")


@pytest.mark.parametrize(("spoil", "reason"), [
    (_one_frame_left, "nothing to track: one frame with its box"),
    (_first_box_outside, f"the first box [999.0, 0.0, 8.0, 8.0] lies outside the {SIZE[1]}x{SIZE[0]} frame"),
])
def test_vidrnn_test_refuses_an_untrackable_test_sequence_as_a_usage_error(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil, reason: str) -> None:
    """A one-frame test sequence came out of a ValueError traceback, and one whose first box lies outside the frame
    out of one once every other sequence was tracked (their scores lost); now each is named before tracking, with
    status 2, as the CLI's other refusals are."""
    bench = tmp_path / "bench"
    make_tracking_sequences(bench, num_sequences=1, num_frames=4, size=SIZE, seed=4)
    single = make_tracking_sequences(tmp_path / "one", num_sequences=1, num_frames=3, size=SIZE, seed=5)[0]
    spoil(single)
    single.rename(bench / "Single")
    with pytest.raises(SystemExit) as refused:
        main(["test", "--config", str(config), "--data.test_root", str(bench)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert error.startswith(f"vidrnn: error: {bench}: test sequences that cannot be tracked and scored: Single: "
                            f"{reason}"), error


def test_vidrnn_test_scores_every_readable_sequence_and_names_those_it_could_not_track(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sequence whose frames change size raised only when tracking reached it, and every sequence tracked before
    was lost; two sequences of one name in different folders were one name in tracking_scores.csv. Now each
    sequence is named by its path under the test root, the others are scored and written, and the command ends with
    status 3 naming the sequence it could not track and why."""
    bench = tmp_path / "bench"
    for seed, folder in enumerate(("a", "b", "c")):
        made = make_tracking_sequences(tmp_path / "made", num_sequences=1, num_frames=3, size=SIZE, seed=seed)[0]
        (bench / folder).mkdir(parents=True)
        made.rename(bench / folder / "Seq")
    resized = bench / "c" / "Seq" / "img" / "0002.jpg"
    cv2.imwrite(str(resized), np.zeros((SIZE[0] // 2, SIZE[1] // 2, 3), np.uint8))
    for split in ("train", "val"):
        make_tracking_sequences(tmp_path / split, num_sequences=1, num_frames=3, size=SIZE, seed=len(split))
    datamodule = TrackingDataModule(root=str(tmp_path), test_root=str(bench), cache_dir=str(tmp_path / "cache"))
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), log_dir=str(tmp_path / "log"),
                              is_global_zero=True, world_size=1)
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8)
    with pytest.raises(SystemExit) as ended:
        TrackingCLI.test(SimpleNamespace(trainer=trainer), model, datamodule)
    assert ended.value.code == EXIT_SOME_FAILED
    rows = list(csv.DictReader((tmp_path / "log" / "tracking_scores.csv").open()))
    # No MEAN rows: they would be those of a smaller benchmark than the one named.
    assert [(row["sequence"], row["tracker"]) for row in rows] == [
        ("a/Seq", "vidrnn"), ("a/Seq", "matching"), ("b/Seq", "vidrnn"), ("b/Seq", "matching")]
    assert rows[0]["success_auc"] != rows[2]["success_auc"]  # two sequences, not one scored twice
    error = capsys.readouterr().err
    assert (f"vidrnn test: error: 1 of 3 test sequences not scored ({tmp_path / 'log' / 'tracking_scores.csv'} "
            "holds the other 2, without means: they would be a smaller benchmark's): "
            f"c/Seq: {resized.parent}: frame 1 is") in error, error


def test_a_fit_that_ends_with_a_test_refuses_an_untrackable_test_sequence_before_training(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The usage error came only after the whole fit had trained."""
    for split in ("train", "val", "test"):
        made = make_tracking_sequences(tmp_path / split, num_sequences=1, num_frames=3, size=SIZE, seed=len(split))
    for image in ("0002.jpg", "0003.jpg"):  # the test sequence keeps its first frame alone
        (made[0] / "img" / image).unlink()

    def training(_: TrackingDataModule) -> None:
        raise AssertionError("prepare_data ran")
    monkeypatch.setattr(TrackingDataModule, "prepare_data", training)
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--data.root", str(tmp_path), "--test_after_fit", "true"])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert "test sequences that cannot be tracked and scored" in error and "nothing to track" in error


def test_a_fit_on_more_processes_than_validation_sequences_is_refused_before_any_run_is_simulated(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Under DDP with 2 processes and 1 validation sequence the refusal came once every training run was simulated,
    advising to "evaluate it in one process", which a fit cannot, and left a run folder holding its config alone."""
    for split in ("train", "val"):
        make_tracking_sequences(tmp_path / split, num_sequences=1, num_frames=3, size=SIZE, seed=len(split))

    def simulating(_: TrackingDataModule) -> None:
        raise AssertionError("prepare_data ran")
    monkeypatch.setattr(TrackingDataModule, "prepare_data", simulating)
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(config), "--data.root", str(tmp_path), "--trainer.accelerator", "cpu",
              "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.default_root_dir", str(runs)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert "the validation sequences holds 1 item to evaluate, fewer than the 2 processes" in error
    assert "Hold out more validation sequences (a val/ folder) or fit with fewer --trainer.devices" in error
    assert not runs.exists()


def test_the_benchmarks_evaluation_refuses_to_average_without_a_sequence_it_could_not_track(tmp_path: Path) -> None:
    """The benchmarks' ``evaluate`` tracks every sequence, then names those it could not, rather than print means of
    a smaller benchmark than the one named."""
    folders = make_tracking_sequences(tmp_path, num_sequences=2, num_frames=3, size=SIZE, seed=6)
    cv2.imwrite(str(folders[1] / "img" / "0003.jpg"), np.zeros((8, 8, 3), np.uint8))
    sequences = [load_sequence(folder) for folder in folders]
    staying = {"staying": lambda frames, box: [box for _ in frames]}
    made = evaluation.sequence_rows(staying, sequences, progress=False, root=tmp_path)
    assert [row.sequence for row in made.rows] == [folders[0].name]
    assert [item.sequence for item in made.unscored] == [folders[1].name] and "frame 2 is 8x8" in made.unscored[0].reason
    with pytest.raises(ValueError, match=rf"1 of 2 sequences not scored: {folders[1].name}: .*frame 2 is 8x8"):
        evaluate(staying, sequences, progress=False)


def test_a_sequence_whose_first_box_a_tracker_refuses_is_scored_as_an_error_row_the_others_kept(tmp_path: Path) -> None:
    """vidrnn test tracked every other sequence (a minute), then a tracker's refusal of a first box outside the frame
    ended it in a traceback, exit status 1, without tracking_scores.csv: the other sequences' scores lost."""
    folders = make_tracking_sequences(tmp_path, num_sequences=2, num_frames=3, size=SIZE, seed=6)
    good, moved = (load_sequence(folder) for folder in folders)
    moved = dataclasses.replace(moved, boxes=moved.boxes + [3 * SIZE[1], 0, 0, 0], frame_size=None)

    def refusing(frames, box):
        yield validate_box(box, next(frames).shape)
        yield from (box for _ in frames)

    made = evaluation.sequence_rows({"refusing": refusing}, [good, moved], progress=False, root=tmp_path)
    assert [row.sequence for row in made.rows] == [good.name]
    assert [item.sequence for item in made.unscored] == [moved.name]
    assert "lies outside the" in made.unscored[0].reason


def test_evaluation_leaves_out_frames_whose_target_is_absent_and_scores_the_frames_lost_0(tmp_path: Path) -> None:
    """Of 6 frames, the given first and the two whose target is absent (NaN) are left out, and the frame the tracker
    lost (NaN) scores 0: 3 frames, 2 of them right. Truth and boxes swapped, the frame it lost would be left out and
    the absent ones would count as lost: 4 frames, 2 right."""
    folder = make_tracking_sequences(tmp_path, num_sequences=1, num_frames=6, size=SIZE, seed=1)[0]
    box = np.array([10.0, 10.0, 20.0, 20.0])
    truth = np.array([box, box, [np.nan] * 4, box, [np.nan] * 4, box])
    sequence = dataclasses.replace(load_sequence(folder), boxes=truth)

    def loses_frame_3(frames, first_box):
        return [np.full(4, np.nan) if index == 3 else first_box for index, _ in enumerate(frames)]

    row, mean = evaluate({"stub": loses_frame_3}, [sequence], progress=False)
    assert (row.sequence, row.tracker, mean.sequence) == (sequence.name, "stub", "MEAN")
    assert row.score == mean.score == SequenceScore(frames=3, mean_iou=pytest.approx(2 / 3),
                                                    success_auc=pytest.approx(2 * 20 / 21 / 3),
                                                    precision_20=pytest.approx(2 / 3))


def test_track_cli_refuses_bad_input_before_decoding(tmp_path: Path, capsys) -> None:
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    assert main(["track", str(video), "--box", "1,1,0,5", "--matching-only"]) == 2
    assert "at least 2x2" in capsys.readouterr().err
    output = tmp_path / "kept.csv"
    output.write_text("earlier results\n")
    assert main(["track", str(video), "--box", "70,1,8,8", "--ckpt", str(tmp_path / "none.ckpt"),
                 "--output", str(output)]) == 2
    assert "outside the 64x48 frame" in capsys.readouterr().err
    assert output.read_text() == "earlier results\n"  # refused before the output was opened
    assert main(["track", str(video), "--box", "1,1,8,8", "--ckpt", str(tmp_path / "none.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["track", str(video), "--box", "1,2,3"])
    assert main(["track", str(video), "--box", "1,1,6,6", "--max-side", "16", "--output", str(output)]) == 2
    assert "working size 16x12: the first box must be at least 2x2" in capsys.readouterr().err
    assert output.read_text() == "earlier results\n"
    with pytest.raises(SystemExit):
        main(["track", str(video), "--box", "1,1,6,6", "--max-side", "-1"])


def test_track_under_torchrun_is_refused_once_before_anything_is_read(tmp_path: Path, capsys,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank tracked the same video and wrote the same CSV at once."""
    from lightning.pytorch.utilities import rank_zero_only

    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    output = tmp_path / "boxes.csv"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("vidrnn.tracker.runtime.load_tracker", _never_called)
    for rank in (1, 0):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        assert main(["track", str(video), "--box", "1,1,8,8", "--output", str(output)]) == EXIT_USAGE
        said = capsys.readouterr().err
        if rank:
            assert said == ""  # one message, from rank 0
    assert said.startswith("vidrnn track: error: launched as 2 processes (WORLD_SIZE=2), but track runs in one")
    assert not output.exists()


def test_track_refuses_outputs_that_name_one_file_or_the_video_itself(tmp_path: Path, capsys) -> None:
    """``--output same.mp4 --render same.mp4`` wrote the boxes, then the video over them (exit 0, no boxes left
    anywhere); ``--render`` or ``--output`` naming the input video replaced it with ``--overwrite``."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    original = video.read_bytes()
    same = tmp_path / "same.mp4"
    base = ["track", str(video), "--box", "10,10,20,20", "--device", "cpu"]
    assert main([*base, "--output", str(same), "--render", str(same)]) == EXIT_USAGE
    assert f"--output and --render both name {same}" in capsys.readouterr().err
    assert not same.exists()
    for option in ("--render", "--output"):
        other = "--output" if option == "--render" else "--render"
        named = ["--overwrite", option, str(tmp_path / "." / "clip.mp4"), other, str(tmp_path / f"other{option[2]}.mp4")]
        assert main([*base, *named]) == EXIT_USAGE
        assert f"{option} {tmp_path / '.' / 'clip.mp4'} is the video being tracked" in capsys.readouterr().err
        assert video.read_bytes() == original
    # The same file under another name (a hard link) was truncated, and so was a frame of a frames folder.
    os.link(video, tmp_path / "linked.mp4")
    assert main([*base, "--overwrite", "--output", str(tmp_path / "linked.mp4")]) == EXIT_USAGE
    assert "is the video being tracked" in capsys.readouterr().err and video.read_bytes() == original
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        cv2.imwrite(str(frames / f"{index:05d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    first = (frames / "00001.jpg").read_bytes()
    assert main(["track", str(frames), "--box", "10,10,20,20", "--device", "cpu", "--overwrite", "--output",
                 str(frames / "00001.jpg")]) == EXIT_USAGE
    assert f"--output {frames / '00001.jpg'} is one of the frames being tracked" in capsys.readouterr().err
    assert (frames / "00001.jpg").read_bytes() == first
    # A symbolic link looping on itself, or into a missing folder, ended in OSError's traceback (--render: after
    # tracking every frame).
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    (tmp_path / "nowhere.csv").symlink_to(tmp_path / "missing" / "boxes.csv")
    for option, path in (("--render", tmp_path / "loop.mp4"), ("--output", tmp_path / "nowhere.csv")):
        other = ["--output", str(tmp_path / "fine.csv")] if option == "--render" else []
        assert main([*base, *other, option, str(path)]) == EXIT_USAGE
        assert f"{option} {path} is a link to nothing it can write through" in capsys.readouterr().err
    assert not (tmp_path / "fine.csv").exists()


def test_track_takes_a_first_box_partly_off_the_left_edge(tmp_path: Path) -> None:
    """``--box -5,10,40,40`` ended in argparse's "expected one argument": a value that begins with "-" was taken for
    an option."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    output = tmp_path / "boxes.csv"
    assert main(["track", str(video), "--box", "-5,10,20,20", "--output", str(output), "--device", "cpu"]) == 0
    assert _read_boxes(output)[0].tolist() == [-5, 10, 20, 20]


def test_track_refuses_an_existing_output_unless_told_to_overwrite_it(tmp_path: Path, capsys) -> None:
    """It truncated an earlier run's boxes (by default boxes.csv) as it started, without a word."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    output, rendered = tmp_path / "boxes.csv", tmp_path / "boxes.mp4"
    output.write_text("earlier results\n")
    command = ["track", str(video), "--box", "10,10,20,20", "--output", str(output), "--device", "cpu"]
    assert main(command) == EXIT_USAGE
    assert f"vidrnn track: error: {output} already exists: give another --output, or --overwrite" in \
        capsys.readouterr().err
    assert output.read_text() == "earlier results\n"
    rendered.write_bytes(b"earlier video")
    assert main([*command[:-4], "--output", str(tmp_path / "new.csv"), "--render", str(rendered)]) == EXIT_USAGE
    assert f"{rendered} already exists: give another --render, or --overwrite" in capsys.readouterr().err
    assert not (tmp_path / "new.csv").exists() and rendered.read_bytes() == b"earlier video"
    assert main([*command, "--render", str(rendered), "--overwrite"]) == 0
    assert len(_read_boxes(output)) == 3 and rendered.read_bytes() != b"earlier video"
    # A folder is no output: it ended in IsADirectoryError's traceback with --overwrite.
    assert main([*command[:-3], str(tmp_path), "--overwrite"]) == EXIT_USAGE
    assert f"vidrnn track: error: --output {tmp_path} is a folder: give a file's path inside it" in \
        capsys.readouterr().err


def test_track_writes_its_boxes_alone_to_standard_output(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """``--output /dev/stdout`` was refused as an existing file when stdout was redirected to one, and the closing
    line printed into the CSV."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    assert main(["track", str(video), "--box", "10,10,20,20", "--output", "/dev/stdout", "--device", "cpu"]) == 0
    captured = capfd.readouterr()
    assert captured.out.splitlines() == ["frame,x,y,w,h", *[f"{frame},10.00,10.00,20.00,20.00" for frame in range(3)]]
    assert "3 boxes written to /dev/stdout" in captured.err


def test_track_stops_quietly_when_the_reader_of_its_boxes_has_gone(tmp_path: Path) -> None:
    """``vidrnn track ... --output /dev/stdout | head -2`` said "error: [Errno 32] Broken pipe", exit status 1."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    status, said = run_with_reader_gone("track", str(video), "--box", "10,10,20,20", "--output", "/dev/stdout",
                                        "--device", "cpu")
    assert status == EXIT_BROKEN_PIPE
    assert "Broken pipe" not in said and "BrokenPipeError" not in said and "error" not in said


def test_track_refuses_to_override_the_settings_a_head_was_trained_with(tmp_path: Path, capsys) -> None:
    """--template-rate with a trained head made evidence unlike what the head learnt from, without a word; without
    the head (--matching-only) any rate is the user's choice."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    checkpoint = save_untrained(FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8),
                                tmp_path / "tracker.ckpt")
    output = tmp_path / "boxes.csv"
    common = ["track", str(video), "--box", "10,10,20,20", "--ckpt", str(checkpoint), "--template-rate", "0.05",
              "--output", str(output), "--device", "cpu"]
    assert main(common) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "vidrnn track: error: the checkpoint's head was trained with other tracker settings (tracker.template_rate: " \
           "0.01 there, 0.05 here)" in error and "--matching-only" in error
    assert not output.exists()
    assert main([*common, "--matching-only"]) == 0
    assert len(output.read_text().splitlines()) == 3 + 1


def test_track_refuses_a_classification_checkpoint_saying_which_it_is(tmp_path: Path, capsys) -> None:
    """It used to stop at 'Error(s) in loading state_dict for FrameTracker:', which says neither."""
    video = tmp_path / "clip.mp4"
    _write_clip(video, [np.zeros((48, 64, 3), np.uint8)] * 3)
    checkpoint = save_untrained(VideoClassifier(2, 8), tmp_path / "classifier.ckpt")
    assert main(["track", str(video), "--box", "1,1,8,8", "--ckpt", str(checkpoint),
                 "--output", str(tmp_path / "boxes.csv")]) == EXIT_USAGE
    assert capsys.readouterr().err == (f"vidrnn track: error: {checkpoint} is a classification checkpoint; this "
                                       "command needs a tracking one (trained with vidrnn fit on a tracking config "
                                       "(task: tracking, or --task tracking), such as configs/track.yaml)\n")
    assert not (tmp_path / "boxes.csv").exists()


def test_without_a_checkpoint_the_matching_tracker_writes_a_row_per_frame(tmp_path: Path) -> None:
    folder = make_tracking_sequences(tmp_path, num_sequences=1, num_frames=8, size=SIZE, seed=1)[0]
    sequence = load_sequence(folder)
    box = ",".join(str(value) for value in sequence.boxes[0])
    rows = []
    for flags in ([], ["--matching-only"]):
        output = tmp_path / f"boxes{len(flags)}.csv"
        assert main(["track", str(folder / "img"), "--box", box, *flags, "--output", str(output)]) == 0
        rows.append(output.read_text())
    assert len(rows[0].splitlines()) == 8 + 1 and rows[0] == rows[1]


def _zero_frames(video: Path, frames: range) -> Path:
    """Zero the data of ``frames`` in an MJPG AVI (its ``00dc`` chunks), as a bad sector or a broken download leaves
    them: the decoder passes over them and numbers the frames after them as decoded."""
    data = bytearray(video.read_bytes())
    chunks, at = [], data.find(b"movi")
    while (at := data.find(b"00dc", at + 1)) >= 0:
        chunks.append(at)
    for index in frames:
        size = struct.unpack_from("<I", data, chunks[index] + 4)[0]
        data[chunks[index] + 8 : chunks[index] + 8 + size] = bytes(size)
    video.write_bytes(bytes(data))
    return video


def _frames_changing_size(folder: Path) -> Path:
    """A folder of 6 frames: 0-2 at 64x48 pixels, 3-5 at 32x24."""
    folder.mkdir(parents=True)
    for index in range(6):
        size = (48, 64) if index < 3 else (24, 32)
        cv2.imwrite(str(folder / f"{index + 1:04d}.jpg"), np.full((*size, 3), 10 * index, dtype=np.uint8))
    return folder


@pytest.mark.parametrize(("kind", "kept", "says"), [
    ("damaged", 3, "frames from 3 on could not be decoded"),
    ("resized", 3, "frame 3 is 32x24 pixels, the first frame read 64x48"),
])
def test_track_stops_at_a_frame_it_cannot_number_or_size_as_the_video_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, kept: int, says: str) -> None:
    """A damaged stretch was passed over and the frames after it numbered as decoded (a 20-frame video with frames
    5-7 zeroed gave 17 rows, 0-16); frames of another size were resized to the first's, and their boxes written in
    its pixels. Either way rows no longer said where the target was: the command now ends there, with exit status 1,
    naming the file and the frame, and keeps the rows of the frames before it."""
    if kind == "damaged":
        video = _zero_frames(write_video(tmp_path / "clip.avi", 8, size=(48, 64)), range(3, 5))
    else:
        video = _frames_changing_size(tmp_path / "img")
    output = tmp_path / "boxes.csv"
    assert main(["track", str(video), "--box", "10,10,20,20", "--output", str(output), "--device", "cpu"]) == EXIT_FAILED
    error = capsys.readouterr().err
    assert f"vidrnn track: error: {video}" in error and says in error, error
    assert f"{output} holds the boxes of frames 0-{kept - 1}" in error, error
    assert [int(row["frame"]) for row in csv.DictReader(output.open())] == list(range(kept))


def _read_boxes(path: Path) -> np.ndarray:
    """The ``x, y, w, h`` rows of a CSV that ``vidrnn track`` wrote."""
    return np.array([[float(row[key]) for key in "xywh"] for row in csv.DictReader(path.open())])


def _write_gliding_card(path: Path, num_frames: int) -> np.ndarray:
    """A 320x240 clip of a textured 60x60 card gliding over a smooth gradient — a scene that looks alike at any
    resolution — and the card's box in every frame."""
    rng = np.random.default_rng(0)
    card = np.kron(rng.integers(0, 256, (6, 6, 3)), np.ones((10, 10, 1))).astype(np.uint8)
    background = np.broadcast_to(np.linspace(40, 200, 320).astype(np.uint8)[None, :, None], (240, 320, 3))
    frames, boxes = [], []
    for index in range(num_frames):
        x, y = 60 + 4 * index, 80 + 2 * index
        frame = background.copy()
        frame[y : y + 60, x : x + 60] = card
        frames.append(frame)
        boxes.append((x, y, 60, 60))
    _write_clip(path, frames)
    return np.array(boxes, dtype=np.float64)


def test_working_scale_keeps_the_longer_side_within_the_limit() -> None:
    scale = working_scale(3840, 2160, 1280)
    assert scale.size == (720, 1280) and scale.x == scale.y == pytest.approx(1 / 3)
    assert scale.up(scale.down([300.0, 150.0, 90.0, 60.0])) == pytest.approx([300, 150, 90, 60])
    assert working_scale(1080, 1920, 1280).size == (1280, 720)  # portrait: the height is the longer side
    assert working_scale(1280, 720, 1280) == working_scale(7680, 4320, 0) == WorkingScale()


def test_track_decodes_at_the_working_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video larger than --max-side reaches the tracker at the working size (memory), while the given box and the
    written ones stay in the video's pixels and match tracking at full resolution — which a video within the limit
    (here, the default's) gets, decoded as it is."""
    video = tmp_path / "card.mp4"
    truth = _write_gliding_card(video, 8)
    seen: list[tuple[int, ...]] = []
    track = Tracker.track

    def recording(self: Tracker, frames, box):
        return track(self, (seen.append(frame.shape) or frame for frame in frames), box)

    monkeypatch.setattr(Tracker, "track", recording)
    box = ",".join(str(value) for value in truth[0])
    half_csv, full_csv, rendered = tmp_path / "half.csv", tmp_path / "full.csv", tmp_path / "half.mp4"
    assert main(["track", str(video), "--box", box, "--max-side", "160", "--render", str(rendered), "--output",
                 str(half_csv), "--device", "cpu"]) == 0
    assert main(["track", str(video), "--box", box, "--output", str(full_csv), "--device", "cpu"]) == 0
    assert seen == [(120, 160, 3)] * 8 + [(240, 320, 3)] * 8
    half, full = _read_boxes(half_csv), _read_boxes(full_csv)
    assert half[0] == pytest.approx(truth[0]) and full[0] == pytest.approx(truth[0])
    assert np.abs(half - full).max() <= 2.5, (half, full)  # measured: 1.9 px at most, in the size
    assert np.abs(full - truth).max() <= 3.0, (full, truth)

    capture = cv2.VideoCapture(str(rendered))
    ok, first = capture.read()
    assert ok and first.shape == (120, 160, 3) and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    capture.release()
    change = np.abs(cv2.cvtColor(first, cv2.COLOR_BGR2RGB).astype(int) - read_frames(video, [0], size=(120, 160))[0])
    assert change[40, 32:58].mean() > 30 and change[100].mean() < 15  # the box (30, 40, 30, 30) drawn, nothing else


def _hide_first_box(folder: Path) -> None:
    """Mark the target of the OTB sequence in ``folder`` absent in its first frame."""
    truth = folder / "groundtruth_rect.txt"
    lines = truth.read_text().splitlines()
    truth.write_text("\n".join(["NaN,NaN,NaN,NaN", *lines[1:]]) + "\n")


def test_sequences_without_a_first_box_are_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for split in ("train", "val"):
        make_tracking_sequences(tmp_path / split, num_sequences=2, num_frames=4, size=SIZE, seed=2)
    _hide_first_box(tmp_path / "train" / "Synth02")
    module = TrackingDataModule(root=str(tmp_path))
    assert [sequence.name for sequence in module.sequences("train")] == ["Synth01"]
    assert "no box in the first frame" in caplog.text


def test_a_sequence_whose_frames_change_size_is_left_out_once_and_remembered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some GOT-10k videos change resolution midway; their boxes are in each frame's own pixels, so the sequence
    cannot train. It must not stop the fit: left out with a warning naming it, and the verdict is cached, so every
    process of a distributed fit reads it and a later fit does not decode the sequence again."""
    for split in ("train", "val"):
        make_tracking_sequences(tmp_path / split, num_sequences=2, num_frames=6, size=SIZE, seed=2)
    resized = sorted((tmp_path / "train" / "Synth02" / "img").glob("*.jpg"))[3]
    cv2.imwrite(str(resized), cv2.resize(cv2.imread(str(resized)), (SIZE[1] // 2, SIZE[0] // 2)))
    settings = {"root": str(tmp_path), "cache_dir": str(tmp_path / "cache"), "window": 4, "device": "cpu",
                "tracker": TrackerSettings(template_cells=5)}
    module = TrackingDataModule(**settings)
    module.prepare_data()
    assert [sequence.name for sequence, _ in module._split_runs("train")] == ["Synth01"]
    assert "Synth02: left out of train" in caplog.text and "must share a size" in caplog.text
    assert str(tmp_path / "train" / "Synth02" / "img") in caplog.text
    assert len(module.train_dataloader().dataset.runs) == 1

    caplog.clear()
    monkeypatch.setattr("vidrnn.data.tracking_datamodule.simulate_runs", _never_called)
    again = TrackingDataModule(**settings)
    again.prepare_data()
    assert [sequence.name for sequence, _ in again._split_runs("train")] == ["Synth01"]
    assert "Synth02: left out of train" in caplog.text

    monkeypatch.undo()
    tried = []
    monkeypatch.setattr("vidrnn.data.tracking_datamodule.simulate_runs",
                        lambda search, name, *args: tried.append(name) or simulate_runs(search, name, *args))
    retried = TrackingDataModule(**settings, retry_failed=True)  # a passing read error: asked to try again
    retried.prepare_data()
    assert tried == ["Synth02"] and [sequence.name for sequence, _ in retried._split_runs("train")] == ["Synth01"]
    monkeypatch.undo()

    cv2.imwrite(str(resized), cv2.resize(cv2.imread(str(resized)), (SIZE[1], SIZE[0])))  # fixed: simulated again
    fixed = TrackingDataModule(**settings)
    fixed.prepare_data()
    assert [sequence.name for sequence, _ in fixed._split_runs("train")] == ["Synth01", "Synth02"]


def _never_called(*args, **kwargs):
    raise AssertionError("simulated again")


def test_test_sequences_without_a_first_box_arerefused_as_usage_error(tmp_path: Path) -> None:
    """Leaving a test sequence out would score a smaller benchmark than the one named."""
    for split in ("train", "val", "test"):
        make_tracking_sequences(tmp_path / split, num_sequences=3, num_frames=4, size=SIZE, seed=2)
    for name in ("Synth01", "Synth03"):
        _hide_first_box(tmp_path / "test" / name)
    with pytest.raises(ValueError, match=r"Synth01, Synth03.*first frame"):
        TrackingDataModule(root=str(tmp_path)).sequences("test")


@pytest.mark.realdata
def test_matching_only_tracker_follows_a_real_pedestrian(shared_data: Path) -> None:
    """A regression guard on real video (OTB Crossing, evaluation only): the untrained tracker keeps a 17x50-px
    pedestrian in a 360x240 frame. Measured: success AUC 0.589 with 256-px crops and a square 5-cell template
    (2026-11-27), 0.735 with the defaults, 448-px crops and a template shaped like the box (2026-11-29)."""
    sequence = load_sequence(shared_data / "tracking" / "otb" / "Crossing")
    frames = (frame for _, chunk in sequence.iter_frames() for frame in chunk)
    boxes = np.array(list(load_tracker(None, device="cpu").track(frames, sequence.boxes[0])))
    score = score_sequence(boxes, sequence.boxes)
    assert score.precision_20 > 0.9 and score.success_auc > 0.65, score


@pytest.mark.realdata
@pytest.mark.slow
def test_a_tracker_trained_on_real_sequences_tracks_a_real_video(shared_data: Path, tmp_path: Path, capsys) -> None:
    """The real-sequence path end to end on two short sequences of tracking-train (MP4 + TLD gt.txt): one trains,
    one is held out whole by name (``val_sequences``), reached through symbolic links; then ``vidrnn track`` follows
    the training sequence's deer with the checkpoint. Measured (2026-11-30): mean IoU 0.712."""
    root = tmp_path / "sequences"
    for name in ("Deer", "wakeboard7"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(shared_data / "tracking-train" / name, target_is_directory=True)
    cli = run_lightning_cli([
        "fit", "--config", str(CONFIGS / "track.yaml"), "--data.root", str(root), "--data.val_sequences",
        "[wakeboard7]", "--data.cache_dir", str(tmp_path / "cache"), "--data.tracker.geometry.size", "256",
        "--data.tracker.template_cells", "5", "--data.train_windows", "64", "--data.val_windows", "32",
        "--data.device", "cpu", "--model.hidden_size", "16", "--trainer.max_epochs", "2",
        "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false",
    ])
    module = cli.datamodule
    assert [sequence.name for sequence in module.sequences("train")] == ["Deer"]
    assert [sequence.name for sequence in module.sequences("val")] == ["wakeboard7"]
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    deer = load_sequence(shared_data / "tracking-train" / "Deer")
    output = tmp_path / "deer.csv"
    box = ",".join(str(value) for value in deer.boxes[0])
    assert main(["track", str(deer.frames), "--box", box, "--ckpt", checkpoint, "--output", str(output),
                 "--device", "cpu"]) == 0
    rows = list(csv.DictReader(output.open()))
    boxes = np.array([[float(row[key]) for key in "xywh"] for row in rows])
    assert len(boxes) == deer.num_frames == 71
    assert np.nanmean(iou_per_frame(boxes, deer.boxes)[1:]) > 0.4


def test_a_head_trained_with_other_tracker_settings_is_refused_before_any_evidence_is_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Its evidence would be made otherwise than what it learnt from, without an error anywhere."""
    checkpoint = save_untrained(FrameTracker(), tmp_path / "tracker.ckpt")  # the default settings

    def no_caching(self) -> None:
        raise AssertionError("nothing should be cached for a checkpoint that is refused")

    monkeypatch.setattr(TrackingDataModule, "prepare_data", no_caching)
    with pytest.raises(SystemExit) as refused:
        main(["validate", "--task", "tracking", "--data.demo_dir", str(tmp_path / "demo"), "--data.cache_dir",
              str(tmp_path / "cache"), "--data.tracker.template_rate", "0.05", "--ckpt_path", str(checkpoint)])
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error
    assert "other tracker settings (tracker.template_rate: 0.01 there, 0.05 here)" in error
    assert FrameTracker.load_from_checkpoint(checkpoint, weights_only=True).settings == FrameTracker().settings


def test_an_opencv_tracker_gets_bgr_frames_and_an_integer_box_and_reports_loss_as_nan() -> None:
    """``opencv_tracker`` is the benchmarks' and the notebook's one wrapper of OpenCV's trackers: OpenCV takes BGR
    frames and an integer box, and a target it reports lost must score IoU 0 (NaN), not its last box."""
    seen: dict[str, list] = {"init": [], "update": []}

    class Recorder:
        def init(self, frame: np.ndarray, box: tuple) -> None:
            seen["init"].append((frame.copy(), box))

        def update(self, frame: np.ndarray) -> tuple[bool, tuple]:
            seen["update"].append(frame.copy())
            return (len(seen["update"]) == 1, (5, 6, 7, 8))

    frames = [np.zeros((4, 4, 3), dtype=np.uint8) for _ in range(3)]
    for index, frame in enumerate(frames):
        frame[..., 0] = 10 * (index + 1)  # red in RGB: the last channel in BGR
    boxes = list(evaluation.opencv_tracker(Recorder)(iter(frames), np.array([1.4, 2.6, 3.0, 4.5])))

    (first, box), = seen["init"]
    assert box == (1, 3, 3, 4) and all(isinstance(value, int) for value in box)
    assert (first[..., 2] == 10).all() and (first[..., 0] == 0).all()
    assert [frame[0, 0, 2] for frame in seen["update"]] == [20, 30]
    assert boxes[0].tolist() == [1.4, 2.6, 3.0, 4.5] and boxes[1].tolist() == [5, 6, 7, 8]
    assert np.isnan(boxes[2]).all()
