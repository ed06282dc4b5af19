"""``vidrnn classify`` and the Predictor: new videos are classified exactly as ``vidrnn test`` saw its clips."""

from __future__ import annotations

import argparse
import csv
import faulthandler
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from conftest import deny_listing, save_untrained, stating_frames, stating_rate
from vidrnn import inference
from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.classify import add_classify_parser, discover, record_path
from vidrnn.data.module import VideoDataModule
from vidrnn.data.synthetic import make_classification_dataset
from vidrnn.files import atomic_write, name_max
from vidrnn.inference import Prediction, PredictionFailure, Predictor
from vidrnn.models.classifier import VideoClassifier
from vidrnn.models.temporal import EncoderSpec
from vidrnn.models.tracker_module import FrameTracker
from vidrnn.objectives import ORDER_CLASSES
from vidrnn.sampling import SamplingSpec, segment_indices
from vidrnn.video import probe, read_frames


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoDataModule, VideoClassifier, Path]:
    """A data module over demo videos, a classifier trained on it for two epochs, and its checkpoint."""
    root = make_classification_dataset(tmp_path_factory.mktemp("demo"), groups=3, clips_per_group=1, num_frames=8,
                                       size=(48, 64), seed=5)
    datamodule = VideoDataModule(
        root=str(root), dataset="ucf101", cache_dir=str(tmp_path_factory.mktemp("cache")),
        backbone=BackboneSpec(input_size=64), sampling=SamplingSpec(strategy="all", short_side=64), steps=8,
        batch_size=8, extract_workers=0,
    )
    torch.manual_seed(0)
    model = VideoClassifier(
        datamodule.num_classes, datamodule.feature_dim, EncoderSpec(hidden_size=16, projection=16),
        class_names=datamodule.class_names, pipeline=datamodule.pipeline.to_dict(),
    )
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=datamodule)
    checkpoint = tmp_path_factory.mktemp("model") / "model.ckpt"
    trainer.save_checkpoint(checkpoint)
    datamodule.setup("test")
    return datamodule, model.eval(), checkpoint


@pytest.fixture(scope="module")
def test_videos(trained) -> list[Path]:
    datamodule, _, _ = trained
    return [datamodule.videos_root / key for key in datamodule.split_keys("test")]


@pytest.fixture(scope="module")
def predictor(trained) -> Predictor:
    return Predictor.from_checkpoint(trained[2], device="cpu")


def classify(*arguments: str | Path) -> int:
    parser = argparse.ArgumentParser()
    add_classify_parser(parser.add_subparsers())
    args = parser.parse_args(["classify", *map(str, arguments)])
    return args.run(args)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_rows(path: Path) -> list[dict[str, object]]:
    """The rows of a CSV or JSON Lines output."""
    if path.suffix == ".csv":
        return read_csv(path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_paths_may_come_among_the_options(trained, test_videos, tmp_path: Path) -> None:
    """``vidrnn classify ds --recursive ds/pitch/gray.avi --ckpt C`` failed with "unrecognized arguments:
    ds/pitch/gray.avi": paths are taken anywhere among the options, as ls and cp take them, in the order given."""
    from vidrnn.cli import main

    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copy(test_videos[0], tmp_path / "in" / "sub" / "a.avi")
    shutil.copy(test_videos[1], tmp_path / "b.avi")
    shutil.copy(test_videos[2], tmp_path / "c.avi")
    output = tmp_path / "out.csv"
    assert main(["classify", str(tmp_path / "in"), "--recursive", str(tmp_path / "b.avi"), "--ckpt", str(trained[2]),
                 str(tmp_path / "c.avi"), "--output", str(output), "--workers", "0"]) == 0
    assert [row["path"] for row in read_csv(output)] == [str(tmp_path / name) for name in ("in/sub/a.avi", "b.avi",
                                                                                           "c.avi")]


def test_a_path_beginning_with_a_dash_follows_double_dash(trained, test_videos, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``vidrnn classify --ckpt C --output o.csv -- -x.avi`` said "the following arguments are required: paths":
    argparse's parse_intermixed_args loses a ``--`` that no path precedes."""
    from vidrnn.cli import main

    monkeypatch.chdir(tmp_path)
    shutil.copy(test_videos[0], tmp_path / "-x.avi")
    assert main(["classify", "--ckpt", str(trained[2]), "--output", "o.csv", "--workers", "0", "--", "-x.avi"]) == 0
    assert [row["path"] for row in read_csv(tmp_path / "o.csv")] == ["-x.avi"]


@pytest.mark.parametrize(("arguments", "expected"), [
    ([], "the following arguments are required: paths, --ckpt"),
    (["--ckpt", "m.ckpt"], "the following arguments are required: paths"),
    (["a.avi", "--recursive"], "the following arguments are required: --ckpt"),
    (["a.avi", "--ckpt", "m.ckpt", "--bogus", "b.avi"], "unrecognized arguments: --bogus"),
    (["a.avi", "--device", "tpu", "--ckpt", "m.ckpt"], "argument --device: invalid choice: 'tpu' (choose from 'auto', 'cpu', 'cuda')"),
    (["a.avi", "--ckpt", "m.ckpt", "--top-k"], "argument --top-k: expected one argument"),
    (["a.avi", "--top-k", "five", "--ckpt", "m.ckpt"], "argument --top-k: invalid int value: 'five'"),
    (["a.avi", "--resume", "b.avi", "--overwrite", "--ckpt", "m.ckpt"],
     "argument --overwrite: not allowed with argument --resume"),
], ids=["nothing", "no path", "no checkpoint", "unknown option", "unknown device", "no value", "not a number", "both"])
def test_usage_errors_of_the_command_line_end_with_status_2_naming_the_argument(arguments: list[str], expected: str,
                                                                                 capsys) -> None:
    from vidrnn.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["classify", *arguments])
    error = capsys.readouterr().err
    assert refused.value.code == 2 and error.startswith("usage: vidrnn classify ")
    assert error.endswith(f"vidrnn classify: error: {expected}\n")


def test_classify_agrees_with_evaluation_on_cached_features(trained, predictor, test_videos, tmp_path: Path) -> None:
    datamodule, model, checkpoint = trained
    reference = {}
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            probabilities = model(batch.features, batch.lengths).softmax(-1).numpy()
            reference.update({str(datamodule.videos_root / key): row for key, row in zip(batch.keys, probabilities)})

    output = tmp_path / "out.csv"
    assert classify(*test_videos, "--ckpt", checkpoint, "--output", output, "--workers", "0", "--top-k", "3") == 0
    rows = read_csv(output)
    assert sorted(row["path"] for row in rows) == sorted(reference)
    names = datamodule.class_names
    for row in rows:
        expected = reference[row["path"]]
        assert row["status"] == "ok" and row["top1_label"] == names[int(expected.argmax())]
        assert float(row["top1_probability"]) == pytest.approx(float(expected.max()), abs=1e-4)
        assert len(row["topk_labels"].split(";")) == len(row["topk_probabilities"].split(";")) == 3
        assert row["frames_used"] == "8" and float(row["duration_s"]) == pytest.approx(8 / 25)

    predictions = list(predictor.predict(test_videos, num_workers=0))
    assert all(isinstance(p, Prediction) for p in predictions)
    for prediction in predictions:
        np.testing.assert_allclose(prediction.probabilities, reference[prediction.path], atol=1e-4)
        assert prediction.step_probabilities.shape == (8, len(names))
        assert prediction.step_outputs.shape[0] == 8
        np.testing.assert_array_equal(prediction.frame_indices, np.arange(8))


def make_messy_folder(root: Path, videos: list[Path]) -> tuple[set[str], set[str]]:
    """Good videos under odd names and nested folders, broken files, a text file; returns (good, bad) paths."""
    good = [root / "plain.avi", root / "with space.avi", root / "ünïcødé 動画.AVI", root / "nested" / "deeper" / "n.avi"]
    for source, target in zip(videos, good):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    corrupt, empty = root / "corrupt.avi", root / "nested" / "empty.avi"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty.write_bytes(b"")
    (root / "notes.txt").write_text("not a video\n")
    return {str(p) for p in good}, {str(corrupt), str(empty)}


def test_a_messy_folder_gives_a_row_per_video_and_exit_status_3(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    good, bad = make_messy_folder(tmp_path / "in", test_videos)
    output = tmp_path / "out.csv"
    status = classify(tmp_path / "in", "--ckpt", checkpoint, "--output", output, "--recursive", "--workers", "2")
    assert status == 3
    rows = {row["path"]: row for row in read_csv(output)}
    assert set(rows) == good | bad  # notes.txt found in a folder is not a video
    assert all(rows[path]["status"] == "ok" and rows[path]["error"] == "" for path in good)
    assert all(rows[path]["status"] == "error" and rows[path]["top1_label"] == "" for path in bad)
    assert "empty file" in rows[str(tmp_path / "in" / "nested" / "empty.avi")]["error"]
    assert "cannot be opened" in rows[str(tmp_path / "in" / "corrupt.avi")]["error"]


def test_without_recursive_only_direct_files_and_named_files_are_always_tried(trained, test_videos,
                                                                             tmp_path: Path) -> None:
    _, _, checkpoint = trained
    make_messy_folder(tmp_path / "in", test_videos)
    named = tmp_path / "in" / "notes.txt"
    output = tmp_path / "out.csv"
    assert classify(tmp_path / "in", named, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3
    rows = {row["path"]: row for row in read_csv(output)}
    assert not any("nested" in path for path in rows)
    assert len(rows) == 5 and rows[str(named)]["status"] == "error"  # 3 good, corrupt.avi, the named notes.txt


def test_broken_links_in_a_folder_get_error_rows_instead_of_vanishing(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_videos[0], folder / "good.avi")
    (folder / "gone.avi").symlink_to(tmp_path / "nowhere.avi")
    (folder / "loop.avi").symlink_to("loop.avi")
    output = tmp_path / "out.csv"
    assert classify(folder, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3
    rows = {Path(row["path"]).name: row for row in read_csv(output)}
    assert sorted(rows) == ["gone.avi", "good.avi", "loop.avi"] and rows["good.avi"]["status"] == "ok"
    assert rows["gone.avi"]["status"] == rows["loop.avi"]["status"] == "error"
    assert rows["gone.avi"]["error"] and rows["loop.avi"]["error"]


def test_folders_a_recursive_search_cannot_read_get_error_rows(trained, test_videos, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A sub-folder this user may not list, or a link to a folder that leads nowhere or in a loop, was passed over:
    "1 classified, 0 failed", exit status 0."""
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    (folder / "private").mkdir(parents=True)
    shutil.copy(test_videos[0], folder / "good.avi")
    (folder / "usb").symlink_to(tmp_path / "unmounted" / "usb")
    (folder / "delta").symlink_to("delta")
    (folder / "again").symlink_to(".")  # a cycle back to the folder searched: ended quietly
    deny_listing(monkeypatch, folder / "private")
    output = tmp_path / "out.csv"

    assert classify(folder, "--recursive", "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3

    rows = {Path(row["path"]).name: row for row in read_csv(output)}
    assert sorted(rows) == ["delta", "good.avi", "private", "usb"] and rows["good.avi"]["status"] == "ok"
    assert rows["usb"]["error"] == f"is a symbolic link to {tmp_path / 'unmounted' / 'usb'}, which does not exist: " \
                                   "fix or remove the link"
    assert "symbolic link in a loop" in rows["delta"]["error"]
    assert rows["private"]["error"].startswith("cannot be listed: permission denied")


def test_a_recursive_search_follows_linked_folders_as_the_folder_datasets_do(tmp_path: Path) -> None:
    """Path.rglob does not follow links to folders (Python 3.11): the videos of a linked session folder were left
    out without a word, though a folder dataset over the same folder trains on them. A link cycle ends: each folder
    is searched once."""
    session = tmp_path / "recordings" / "session"
    given = tmp_path / "new"
    for video in (session / "a.avi", session / "b.avi", given / "here.avi"):
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(b"")
    (given / "session_link").symlink_to(session)
    (session / "gone.avi").symlink_to(tmp_path / "nowhere.avi")  # still an error row, from inside a linked folder
    (session / "back").symlink_to(given)  # a cycle through the folder searched

    linked = given / "session_link"
    assert discover([given], recursive=True) == [given / "here.avi", linked / "a.avi", linked / "b.avi",
                                                 linked / "gone.avi"]
    assert discover([given], recursive=False) == [given / "here.avi"]


def test_a_video_named_under_several_spellings_is_found_once_as_first_given(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``classify --recursive ds/pitch ds /abs/ds/pitch/gray.avi ds/beam/../pitch/one_frame.mp4`` wrote a row for each
    spelling (30 rows for 28 files), while --resume took them for one video: a video is its resolved path, links to a
    file followed as --resume follows them, and keeps the spelling first given. Broken links stay, each its own."""
    pitch, beam = tmp_path / "ds" / "pitch", tmp_path / "ds" / "beam"
    for video in (pitch / "gray.avi", pitch / "one_frame.mp4", beam / "b.avi"):
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(b"")
    (beam / "alias.avi").symlink_to(pitch / "gray.avi")
    (beam / "gone.avi").symlink_to(tmp_path / "nowhere.avi")
    (pitch / "lost.avi").symlink_to(tmp_path / "elsewhere.avi")
    monkeypatch.chdir(tmp_path)

    given = [Path("ds/pitch"), Path("ds"), pitch / "gray.avi", Path("ds/beam/../pitch/one_frame.mp4")]
    assert discover(given, recursive=True) == [Path("ds/pitch/gray.avi"), Path("ds/pitch/lost.avi"),
                                               Path("ds/pitch/one_frame.mp4"), Path("ds/beam/b.avi"),
                                               Path("ds/beam/gone.avi")]


def test_a_video_named_twice_gets_one_row(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_videos[0], folder / "a.avi")
    shutil.copy(test_videos[1], folder / "b.avi")
    output = tmp_path / "out.csv"
    assert classify(folder, folder / ".." / "in" / "b.avi", "--ckpt", checkpoint, "--output", output,
                    "--workers", "0") == 0
    assert [row["path"] for row in read_csv(output)] == [str(folder / "a.avi"), str(folder / "b.avi")]


def test_a_video_found_through_a_link_keeps_its_real_path_and_the_run_says_what_was_merged(
        trained, test_videos, tmp_path: Path, capsys) -> None:
    """``wild/link_file.avi -> ok_normal.avi`` kept the link's path (first in sorted order) and the run said nothing
    of the path it merged: the summary read as if every path found had a row. The path without a symbolic link is
    kept, whichever comes first, and one line says how many paths were merged, with an example pair."""
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_videos[0], folder / "ok_normal.avi")
    (folder / "link_file.avi").symlink_to("ok_normal.avi")
    shutil.copy(test_videos[1], tmp_path / "b.avi")
    output = tmp_path / "out.csv"

    assert classify(folder, tmp_path / "b.avi", tmp_path / "." / "b.avi", "--ckpt", checkpoint, "--output", output,
                    "--workers", "0") == 0

    assert [row["path"] for row in read_csv(output)] == [str(folder / "ok_normal.avi"), str(tmp_path / "b.avi")]
    said = capsys.readouterr().err
    assert ("vidrnn classify: 1 path named a video found under another path too, each classified once (such as "
            f"{folder / 'link_file.avi'}, the same video as {folder / 'ok_normal.avi'})") in said
    merged = []  # one path named twice (b.avi and ./b.avi are one spelling to pathlib) is no pair to tell of
    assert discover([tmp_path / "b.avi", tmp_path / "." / "b.avi"], False, merged) == [tmp_path / "b.avi"]
    assert merged == []


def test_hidden_files_and_folders_found_in_a_folder_are_not_videos(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    given = tmp_path / ".stash"  # a folder the user names is searched, hidden or not; only what it holds is judged
    good = [given / "good.avi", given / "sub" / "deep.avi"]
    for source, target in zip(test_videos, good):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    (given / "._good.avi").write_bytes(b"\0\5\26\7")  # macOS AppleDouble metadata beside its video
    (given / ".cache" / "old").mkdir(parents=True)
    shutil.copy(test_videos[0], given / ".cache" / "old" / "kept.avi")
    (given / "sub" / ".trash").mkdir()
    (given / "sub" / ".trash" / "broken.avi").write_bytes(b"")
    output = tmp_path / "out.csv"
    assert classify(given, "--recursive", "--ckpt", checkpoint, "--output", output, "--workers", "0") == 0
    assert sorted(row["path"] for row in read_csv(output)) == sorted(map(str, good))


def test_resume_after_an_interrupted_run_classifies_each_video_once(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    for video in test_videos:
        shutil.copy(video, folder)
    output = tmp_path / "out.csv"
    arguments = (folder, "--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(*arguments) == 0
    complete = output.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(complete) == len(test_videos) + 1
    output.write_text("".join(complete[:3]) + complete[3][:12], encoding="utf-8")  # killed while writing a row

    assert classify(*arguments, "--resume") == 0
    rows = read_csv(output)
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == len(test_videos)
    assert output.read_text(encoding="utf-8").splitlines(keepends=True)[:3] == complete[:3]

    assert classify(*arguments, "--overwrite") == 0  # replaced, not appended to
    assert len(read_csv(output)) == len(test_videos)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_tries_error_rows_again_and_ends_with_one_row_per_video(trained, test_videos, tmp_path: Path,
                                                                       suffix: str) -> None:
    """--resume skipped every video with a row, error rows too: a file still being copied when the first run read it
    kept its error row after the copy finished, and the resume exited 0 over an output that still held that row."""
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_videos[0], folder / "a.avi")
    (folder / "b.avi").write_bytes(b"")  # still being copied
    output = tmp_path / f"out{suffix}"
    arguments = (folder, "--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(*arguments) == 3
    (kept,) = [row for row in read_rows(output) if row["status"] == "ok"]

    assert classify(*arguments, "--resume") == 3  # tried again, still empty: its new error row replaces the old one
    assert [(Path(row["path"]).name, row["status"]) for row in read_rows(output)] == [("a.avi", "ok"),
                                                                                       ("b.avi", "error")]
    shutil.copy(test_videos[1], folder / "b.avi")  # the copy finished
    assert classify(*arguments, "--resume") == 0
    rows = read_rows(output)
    assert [(Path(row["path"]).name, row["status"]) for row in rows] == [("a.avi", "ok"), ("b.avi", "ok")]
    assert rows[0] == kept  # a.avi was not classified again


def test_resume_exits_with_3_while_the_output_holds_an_error_row(trained, test_videos, tmp_path: Path) -> None:
    """The exit status speaks for the output as a whole: a resume that classified all it was given still ends with 3
    while a row it was not asked to try again is an error."""
    _, _, checkpoint = trained
    missing = tmp_path / "missing.avi"
    output = tmp_path / "out.csv"
    assert classify(test_videos[0], missing, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3
    assert classify(test_videos[1], "--ckpt", checkpoint, "--output", output, "--workers", "0", "--resume") == 3
    assert {row["path"]: row["status"] for row in read_csv(output)} == {
        str(test_videos[0]): "ok", str(missing): "error", str(test_videos[1]): "ok"}


def test_a_retry_killed_before_it_settled_its_rows_loses_none_and_the_next_resume_settles_them(
        trained, test_videos, tmp_path: Path, capsys) -> None:
    """A retried video's error row stays in the file until the run ends (a run killed meanwhile loses nothing); a kill
    after its new row was appended leaves both, and the next resume keeps the newer, classifying nothing again."""
    _, _, checkpoint = trained
    video = tmp_path / "b.avi"
    video.write_bytes(b"")
    output, retry = tmp_path / "out.csv", tmp_path / "retry.csv"
    assert classify(test_videos[0], video, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3
    shutil.copy(test_videos[1], video)
    assert classify(video, "--ckpt", checkpoint, "--output", retry, "--workers", "0") == 0
    new_row = retry.read_text(encoding="utf-8").splitlines(keepends=True)[1]
    with output.open("a", encoding="utf-8", newline="") as handle:  # what the killed retry left
        handle.write(new_row)
    capsys.readouterr()
    assert classify(test_videos[0], video, "--ckpt", checkpoint, "--output", output, "--workers", "0",
                    "--resume") == 0
    assert capsys.readouterr().out.startswith("0 classified, 0 failed, 2 already done")
    assert [(row["path"], row["status"]) for row in read_csv(output)] == [(str(test_videos[0]), "ok"),
                                                                          (str(video), "ok")]


def test_resume_refuses_rows_made_with_another_checkpoint_or_top_k(trained, test_videos, tmp_path: Path,
                                                                   capsys) -> None:
    """--resume used to append model B's rows to model A's and exit 0, with nothing to tell them apart: now the
    record beside the output says what made its rows, and a run that would make them otherwise is refused."""
    _, _, checkpoint = trained
    other = tmp_path / "other.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["state_dict"] = {name: value + 1 for name, value in state["state_dict"].items()}
    torch.save(state, other)
    output = tmp_path / "out.csv"
    assert classify(*test_videos[:2], "--ckpt", checkpoint, "--output", output, "--workers", "0") == 0
    record = json.loads(record_path(output).read_text(encoding="utf-8"))
    assert record["checkpoint"] == str(checkpoint) and record["made_with"]["top_k"] == 5
    first = output.read_bytes()
    capsys.readouterr()
    for changed, expected in [(("--ckpt", other), f"checkpoint {checkpoint} there, {other} now, with other contents"),
                              (("--ckpt", checkpoint, "--top-k", "2"), "top_k: 5 there, 2 now")]:
        assert classify(*test_videos, *changed, "--output", output, "--workers", "0", "--resume") == 2
        error = capsys.readouterr().err
        assert error.startswith(f"vidrnn classify: error: --resume: the rows in {output} were made otherwise (")
        assert expected in error and "choose another --output, or give --overwrite instead of --resume" in error
        assert output.read_bytes() == first and json.loads(record_path(output).read_text()) == record
    assert classify(*test_videos, "--ckpt", checkpoint, "--output", output, "--workers", "0", "--resume") == 0
    assert len(read_csv(output)) == len(test_videos)  # made as the record says: resumed
    assert classify(*test_videos[:2], "--ckpt", other, "--output", output, "--workers", "0", "--overwrite") == 0
    assert len(read_csv(output)) == 2 and json.loads(record_path(output).read_text())["checkpoint"] == str(other)


def _with_extract_batch_size(checkpoint: Path, target: Path, batch_size: int | None,
                             data_batch_size: int | None = None) -> Path:
    """``checkpoint`` as one trained on features extracted in batches of ``batch_size`` frames (``None``: saved
    before the pipeline recorded it), its data module's setting ``data_batch_size`` (``None``: none recorded)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    pipeline = state["hyper_parameters"]["pipeline"]
    pipeline.pop("extract_batch_size", None)
    if batch_size is not None:
        pipeline["extract_batch_size"] = batch_size
    data = state.setdefault("datamodule_hyper_parameters", {})
    data.pop("extract_batch_size", None)
    if data_batch_size is not None:
        data["extract_batch_size"] = data_batch_size
    torch.save(state, target)
    return target


def test_classify_extracts_in_the_batch_size_the_training_features_were_extracted_in(
        trained, test_videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The CNN's batch size changes the stored float16 features slightly; classify used 32 whatever the training
    cache used (configs/ucf101.yaml extracts in batches of 128), and said 'as extraction'."""
    used: list[int] = []
    embed = inference.embed_videos

    def recording(*args: object, batch_size: int, **options: object):
        used.append(batch_size)
        return embed(*args, batch_size=batch_size, **options)

    monkeypatch.setattr(inference, "embed_videos", recording)
    checkpoint = _with_extract_batch_size(trained[2], tmp_path / "in5.ckpt", 5)
    older = _with_extract_batch_size(trained[2], tmp_path / "older.ckpt", None, data_batch_size=6)
    oldest = _with_extract_batch_size(trained[2], tmp_path / "oldest.ckpt", None)
    output = tmp_path / "out.csv"
    runs = [((checkpoint,), 5), ((checkpoint, "--batch-size", "7"), 7), ((older,), 6), ((oldest,), 32)]
    for (ckpt, *options), expected in runs:
        assert classify(test_videos[0], "--ckpt", ckpt, "--output", output, "--workers", "0", "--overwrite",
                        *options) == 0
        assert used[-1] == expected == json.loads(record_path(output).read_text())["made_with"]["batch_size"]
    assert Predictor.from_checkpoint(checkpoint, device="cpu").batch_size == 5
    # Resuming with the checkpoint's batch size appends to rows made with it; another given one is refused.
    assert classify(*test_videos[:2], "--ckpt", checkpoint, "--output", output, "--workers", "0", "--overwrite") == 0
    assert classify(*test_videos, "--ckpt", checkpoint, "--output", output, "--workers", "0", "--resume") == 0
    capsys.readouterr()
    assert classify(*test_videos, "--ckpt", checkpoint, "--output", output, "--workers", "0", "--resume",
                    "--batch-size", "32") == 2
    assert "batch_size: 5 there, 32 now" in capsys.readouterr().err


def test_resume_refuses_rows_nothing_records_the_making_of(trained, test_videos, tmp_path: Path, capsys) -> None:
    """An output of an older vidrnn has no record: its rows may be any checkpoint's, and the record a resume wrote
    would claim them for this one. Without rows there is nothing to mix: the resume goes on."""
    _, _, checkpoint = trained
    output = tmp_path / "out.jsonl"
    arguments = (*test_videos[:2], "--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(*arguments) == 0
    record_path(output).unlink()
    before = output.read_bytes()
    capsys.readouterr()
    assert classify(*arguments, "--resume") == 2
    assert f"nothing records which checkpoint made the rows in {output}" in capsys.readouterr().err
    assert output.read_bytes() == before and not record_path(output).exists()
    output.write_text("", encoding="utf-8")
    assert classify(*arguments, "--resume") == 0 and record_path(output).exists()


def test_resume_redoes_a_row_cut_after_its_status(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    output = tmp_path / "out.csv"
    arguments = (*test_videos[:2], "--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(*arguments) == 0
    complete = output.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = complete[2][: complete[2].index(",ok,") + 10]  # status and part of the label: killed mid-row
    output.write_text("".join(complete[:2]) + cut, encoding="utf-8")
    assert classify(*arguments, "--resume") == 0
    _assert_same_rows(read_csv(output), list(csv.DictReader(complete)))


def _assert_same_rows(rows: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    """Row for row the same, probabilities to the last printed digit: a resumed run classifies its clips in other
    batches, which moves float sums by an ulp, and a probability at a rounding boundary by 1e-6."""
    assert [row["path"] for row in rows] == [row["path"] for row in expected]
    for row, reference in zip(rows, expected):
        probabilities = ("top1_probability", "topk_probabilities")
        assert {k: v for k, v in row.items() if k not in probabilities} == \
               {k: v for k, v in reference.items() if k not in probabilities}
        for key in probabilities:
            np.testing.assert_allclose([float(v) for v in row[key].split(";")],
                                       [float(v) for v in reference[key].split(";")], atol=1.5e-6)


def test_resume_knows_a_video_under_another_spelling_of_its_path(trained, test_videos, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, checkpoint = trained
    shutil.copy(test_videos[0], tmp_path / "a.avi")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "out.jsonl"
    assert classify("a.avi", "--ckpt", checkpoint, "--output", output, "--workers", "0") == 0
    first = output.read_text(encoding="utf-8")
    assert classify("./a.avi", "--ckpt", checkpoint, "--output", output, "--workers", "0", "--resume") == 0
    assert output.read_text(encoding="utf-8") == first  # ./a.avi is a.avi: nothing classified twice


def test_resume_keeps_one_row_of_a_video_an_older_output_holds_under_several_names(
        trained, test_videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output written before a video named twice was classified once could hold its rows under a relative, an
    absolute and a linked name: a resume kept all of them (5 rows for 3 videos), not one row per video."""
    _, _, checkpoint = trained
    for name, video in zip("abc", test_videos):
        shutil.copy(video, tmp_path / f"{name}.avi")
    (tmp_path / "link.avi").symlink_to(tmp_path / "a.avi")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "out.csv"
    arguments = ("a.avi", "b.avi", "c.avi", "--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(*arguments) == 0
    rows = read_csv(output)
    older = [rows[0], {**rows[0], "path": str(tmp_path / "a.avi")}, *rows[1:], {**rows[0], "path": "link.avi"}]
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(older)

    assert classify(*arguments, "--resume") == 0
    assert read_csv(output) == rows


def test_resume_from_another_directory_knows_the_rows_whatever_the_paths_were_given_as(
        trained, test_videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Rows keep relative paths as given, and a resume resolved them against its own directory: from elsewhere it
    knew none, classified every video again and left two rows for each one done before."""
    _, _, checkpoint = trained
    first = tmp_path / "first"
    (first / "videos").mkdir(parents=True)
    for video in test_videos[:3]:
        shutil.copy(video, first / "videos")
    names = sorted(video.name for video in test_videos[:3])
    output = tmp_path / "out.csv"
    monkeypatch.chdir(first)
    options = ("--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(f"videos/{names[0]}", *options) == 0  # one done before an interruption
    assert json.loads(record_path(output).read_text())["directory"] == str(first)
    monkeypatch.chdir(tmp_path)  # the folder named from here, relative to here
    assert classify("first/videos", *options, "--resume") == 0
    assert "2 classified, 0 failed, 1 already done" in capsys.readouterr().out
    rows = read_csv(output)
    assert [row["path"] for row in rows] == [f"videos/{name}" for name in names]  # as from the first run's directory
    monkeypatch.chdir(first.parent.parent)
    assert classify(first / "videos", *options, "--resume") == 0
    assert "0 classified, 0 failed, 3 already done" in capsys.readouterr().out and read_csv(output) == rows


def test_a_resume_killed_while_it_rewrites_the_kept_rows_loses_none_of_them(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrnn import classify as command

    output = tmp_path / "out.jsonl"
    output.write_text('{"path": "a.avi", "status": "ok"}\n', encoding="utf-8")

    def killed(handle) -> None:
        handle.write(b"{")
        raise KeyboardInterrupt  # the moment a kill would strike

    monkeypatch.setattr(command, "atomic_write", lambda path, write: atomic_write(path, killed))
    with pytest.raises(KeyboardInterrupt):
        command.RowWriter(output, [{"path": "a.avi", "status": "ok"}])
    assert output.read_text(encoding="utf-8") == '{"path": "a.avi", "status": "ok"}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left either


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the patched decoder reaches workers by fork")
def test_a_decoder_that_crashes_its_worker_costs_one_error_row_and_resume_tries_it_again(
        trained, test_videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrnn import embedding

    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    for video in test_videos[:3]:
        shutil.copy(video, folder)
    poison = Path(shutil.copy(test_videos[0], folder / "v_crashes_g01_c01.avi"))
    read = embedding.read_sampled

    def crashing_read(path, *args, **kwargs):
        if Path(path).name == poison.name:  # as FFmpeg might on a hostile file: native code takes the process down
            faulthandler.disable()
            os.kill(os.getpid(), signal.SIGSEGV)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(embedding, "read_sampled", crashing_read)
    output = tmp_path / "out.csv"
    arguments = (folder, "--ckpt", checkpoint, "--output", output, "--workers", "2")
    assert classify(*arguments) == 3
    rows = {row["path"]: row for row in read_csv(output)}
    assert len(rows) == 4 and rows[str(poison)]["status"] == "error"
    assert rows[str(poison)]["error"] == "the decoder crashed: worker process killed by SIGSEGV"
    assert all(row["status"] == "ok" for path, row in rows.items() if path != str(poison))
    assert classify(*arguments, "--resume") == 3  # its error row is tried again, crashes again, and is replaced
    assert {row["path"]: row for row in read_csv(output)} == rows


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the patched initializer reaches workers by fork")
def test_decoding_processes_that_cannot_start_stop_the_run_instead_of_failing_every_video(
        trained, test_videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from vidrnn import embedding

    _, _, checkpoint = trained

    def broken_environment() -> None:
        raise OSError("libavcodec.so.60: cannot open shared object file")

    monkeypatch.setattr(embedding, "decoding_initializer", broken_environment)
    output = tmp_path / "out.csv"
    assert classify(*test_videos[:3], "--ckpt", checkpoint, "--output", output, "--workers", "2") == 1
    assert "the initializer raised OSError: libavcodec.so.60" in capsys.readouterr().err
    assert read_csv(output) == []  # no video is marked as failed: each is still to do for a --resume


def test_a_video_stating_an_implausible_rate_has_its_duration_at_30_fps(trained, test_videos, tmp_path: Path) -> None:
    """Its duration used to be its frames over the rate its container stated: 8 frames at "1000 fps", 0.008 s."""
    _, _, checkpoint = trained
    video = stating_rate(Path(shutil.copy(test_videos[0], tmp_path / "screen.avi")), 1000)
    output = tmp_path / "out.jsonl"
    with pytest.warns(UserWarning, match="states 1000 frames a second"):
        assert classify(video, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 0
    (row,) = map(json.loads, output.read_text(encoding="utf-8").splitlines())
    assert row["status"] == "ok" and row["duration_s"] == pytest.approx(8 / 30)


def test_a_video_cut_short_is_classified_from_the_frames_it_holds_and_its_row_says_so(trained, test_videos,
                                                                                      tmp_path: Path) -> None:
    """A truncated video (22 of the 78 frames its container states) got a row like any other: ok, nothing said."""
    _, _, checkpoint = trained
    video = stating_frames(Path(shutil.copy(test_videos[0], tmp_path / "cut.avi")), 24)
    output = tmp_path / "out.jsonl"
    note = "decoded 8 of the 24 frames its container states (a truncated or damaged file?): only those 8 were sampled"
    with pytest.warns(UserWarning, match=f"^{video}: decoded 8 of the 24 frames"):
        assert classify(video, test_videos[1], "--ckpt", checkpoint, "--output", output, "--workers", "0") == 0
    rows = {row["path"]: row for row in map(json.loads, output.read_text(encoding="utf-8").splitlines())}
    assert rows[str(video)]["status"] == "ok" and rows[str(video)]["frames_used"] == 8
    assert rows[str(video)]["error"] == note and rows[str(test_videos[1])]["error"] is None


def test_jsonl_output_has_lists(trained, test_videos, tmp_path: Path) -> None:
    _, _, checkpoint = trained
    output = tmp_path / "out.jsonl"
    bad = tmp_path / "missing.avi"
    assert classify(*test_videos[:2], bad, "--ckpt", checkpoint, "--output", output, "--workers", "0",
                    "--top-k", "50") == 3
    rows = {row["path"]: row for row in map(json.loads, output.read_text(encoding="utf-8").splitlines())}
    assert len(rows) == 3
    for video in test_videos[:2]:
        row = rows[str(video)]
        assert len(row["topk_labels"]) == len(row["topk_probabilities"]) == 6  # capped at the number of classes
        assert row["topk_probabilities"] == sorted(row["topk_probabilities"], reverse=True)
        assert row["top1_label"] == row["topk_labels"][0] and row["frames_used"] == 8
    assert rows[str(bad)]["status"] == "error" and "no such file" in rows[str(bad)]["error"]


def test_only_the_frames_the_model_reads_are_decoded(trained, test_videos, monkeypatch) -> None:
    """Evaluation reads the centred ``steps`` of a clip's sampled frames; decoding the rest only cost memory (a long
    video under ``all`` sampling held every crop) and CNN time. The probabilities stay those of the cached clip."""
    datamodule, model, _ = trained
    backbone = build_backbone(datamodule.pipeline.backbone)
    predictor = Predictor(model, backbone, datamodule.pipeline.sampling, 4, torch.device("cpu"))
    decoded = []
    embed = inference.embed_videos

    def recording(*args, **kwargs):
        for video in embed(*args, **kwargs):
            decoded.append(len(video.decoded["indices"]))
            yield video

    monkeypatch.setattr("vidrnn.inference.embed_videos", recording)
    predictions = {p.path: p for p in predictor.predict(test_videos, num_workers=0)}
    assert decoded == [4] * len(test_videos)
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            centred = batch.features[:, segment_indices(8, 4)]
            expected = model(centred, torch.full_like(batch.lengths, 4)).softmax(-1).numpy()
            for key, row in zip(batch.keys, expected):
                prediction = predictions[str(datamodule.videos_root / key)]
                np.testing.assert_allclose(prediction.probabilities, row, atol=1e-4)
                np.testing.assert_array_equal(prediction.frame_indices, [1, 3, 5, 7])
    frames = read_frames(test_videos[0], range(8))
    from_frames = predictor.predict_frames(frames, fps=25.0)
    np.testing.assert_allclose(from_frames.probabilities, predictions[str(test_videos[0])].probabilities, atol=1e-6)


def test_a_video_whose_container_states_a_frame_too_many_is_read_as_its_cached_clip(trained, test_videos,
                                                                                      tmp_path: Path) -> None:
    """A container stating 9 of its 8 frames: extraction, choosing every frame, finds the ninth missing and chooses
    again over 8; the centred 3 of those are frames 1, 4, 6 (of 9 they would be 1, 4, 7). Classify must read those."""
    datamodule, model, _ = trained
    predictor = Predictor(model, build_backbone(datamodule.pipeline.backbone), datamodule.pipeline.sampling, 3,
                          torch.device("cpu"))
    video = test_videos[0]
    overstated = stating_frames(Path(shutil.copy(video, tmp_path / video.name)), 9)
    (prediction,) = predictor.predict([overstated], num_workers=0)
    np.testing.assert_array_equal(prediction.frame_indices, [1, 4, 6])
    key = str(video.relative_to(datamodule.videos_root))
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            if key in batch.keys:
                row = batch.keys.index(key)
                expected = model(batch.features[row:row + 1, [1, 4, 6]], torch.tensor([3])).softmax(-1)[0].numpy()
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-4)
    assert prediction.duration == pytest.approx(8 / 25)


def test_predict_frames_matches_predict_on_the_file(predictor, test_videos) -> None:
    video = test_videos[0]
    info = probe(video, count=True)
    frames = read_frames(video, range(info.num_frames))
    from_frames = predictor.predict_frames(frames, fps=info.fps)
    (from_file,) = predictor.predict([video], num_workers=0)
    np.testing.assert_allclose(from_frames.probabilities, from_file.probabilities, atol=1e-6)
    np.testing.assert_allclose(from_frames.step_probabilities, from_file.step_probabilities, atol=1e-6)
    assert from_frames.top_labels == from_file.top_labels and from_frames.path is None
    assert from_frames.duration == pytest.approx(from_file.duration)


@pytest.mark.parametrize("wait_s", [60.0, 0.0])
def test_predict_classifies_finished_clips_together_within_a_bounded_wait(predictor, test_videos, monkeypatch,
                                                                          wait_s: float) -> None:
    """Clips go through the recurrent classifier in groups (one clip at a time cost a GPU more than the CNN), of at
    most CLASSIFY_GROUP, each handed out no later than CLASSIFY_WAIT_S after the first of its group finished; the
    answers are those of one clip at a time."""
    alone = {str(video): next(iter(predictor.predict([video], num_workers=0))) for video in test_videos[:2]}
    monkeypatch.setattr("vidrnn.inference.CLASSIFY_GROUP", 3)
    monkeypatch.setattr("vidrnn.inference.CLASSIFY_WAIT_S", wait_s)
    groups = []
    classify_group = Predictor._classify

    def counting(self, finished, top_k):
        groups.extend([len(finished)] if finished else [])
        return classify_group(self, finished, top_k)

    monkeypatch.setattr(Predictor, "_classify", counting)
    results = {result.path: result for result in predictor.predict(test_videos, num_workers=0)}
    assert sorted(results) == sorted(map(str, test_videos))
    videos = len(test_videos)
    assert videos >= 4 and groups == ([3] * (videos // 3) + [videos % 3] * bool(videos % 3) if wait_s else [1] * videos)
    for path, expected in alone.items():
        np.testing.assert_allclose(results[path].probabilities, expected.probabilities, atol=1e-6)
        np.testing.assert_allclose(results[path].step_probabilities, expected.step_probabilities, atol=1e-6)


def test_clips_embedded_before_the_run_fails_are_still_handed_out(predictor, test_videos, monkeypatch) -> None:
    """A run that ends with an error (decoders that cannot start again, Ctrl-C) first hands out the clips it had
    finished but not classified yet, so that `vidrnn classify` writes their rows and a resume does not redo them."""
    embed = inference.embed_videos

    def two_then_an_error(*args, **kwargs):
        videos = embed(*args, **kwargs)
        yield next(videos)
        yield next(videos)
        videos.close()
        raise RuntimeError("the decoders are gone")

    monkeypatch.setattr("vidrnn.inference.embed_videos", two_then_an_error)
    monkeypatch.setattr("vidrnn.inference.CLASSIFY_WAIT_S", 60.0)
    results = []
    with pytest.raises(RuntimeError, match="the decoders are gone"):
        for result in predictor.predict(test_videos, num_workers=0):
            results.append(result)
    assert len(results) == 2 and all(isinstance(result, Prediction) for result in results)


def test_an_arrow_of_time_model_is_scored_as_evaluation_scores_it() -> None:
    """An antisymmetric model scores a clip against its reversal (``VideoClassifier.forward``); Predictor must use that
    score, not the head's reading of the forward pass alone: then a reversed clip's two probabilities swap exactly."""
    torch.manual_seed(0)
    backbone = build_backbone(BackboneSpec(input_size=64))
    model = VideoClassifier(num_classes=2, input_dim=backbone.feature_dim, antisymmetric=True,
                            class_names=list(ORDER_CLASSES["arrow_of_time"]))
    predictor = Predictor(model, backbone, SamplingSpec(strategy="all", short_side=64), 8, torch.device("cpu"))
    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    forwards = predictor.predict_frames(frames, batch_size=8).probabilities
    backwards = predictor.predict_frames(np.ascontiguousarray(frames[::-1]), batch_size=8).probabilities
    np.testing.assert_allclose(backwards, forwards[::-1], atol=1e-6)
    assert abs(forwards[0] - 0.5) > 1e-4  # an untrained model, but not one that says 0.5 for everything


def test_predict_reports_unreadable_videos_and_goes_on(predictor, test_videos, tmp_path: Path) -> None:
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    results = list(predictor.predict([empty, test_videos[0]], num_workers=0))
    assert [type(result) for result in results] == [PredictionFailure, Prediction]
    assert results[0].path == str(empty) and "empty" in results[0].reason


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_a_bad_checkpoint_is_a_usage_error_before_any_work(kind: str, test_videos, tmp_path: Path, capsys) -> None:
    checkpoint = tmp_path / "nowhere" / "model.ckpt"
    if kind == "corrupt":
        checkpoint.parent.mkdir()
        checkpoint.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    output = tmp_path / "out.csv"
    start = time.perf_counter()
    assert classify(*test_videos, "--ckpt", checkpoint, "--output", output) == 2
    assert time.perf_counter() - start < 5
    assert str(checkpoint) in capsys.readouterr().err
    assert not output.exists()


def test_a_tracking_checkpoint_is_refused_saying_which_it_is(test_videos, tmp_path: Path, capsys) -> None:
    """It used to fail as 'VideoClassifier.__init__() missing 2 required positional arguments'."""
    checkpoint = save_untrained(FrameTracker(), tmp_path / "tracker.ckpt")
    output = tmp_path / "out.csv"
    assert classify(*test_videos, "--ckpt", checkpoint, "--output", output) == 2
    assert capsys.readouterr().err == (f"vidrnn classify: error: {checkpoint} is a tracking checkpoint; this command "
                                       "needs a classification one (trained with vidrnn fit on a classification "
                                       "config, such as configs/demo.yaml)\n")
    assert not output.exists()


def test_a_mistyped_folder_is_a_usage_error_that_leaves_the_previous_output_alone(tmp_path: Path, capsys) -> None:
    """Nothing named exists: a typo, not a batch with one missing file; running it would replace the output."""
    output = tmp_path / "predictions.csv"
    output.write_text("path,status\nthree/a.avi,ok\n")
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"never opened")
    assert classify(tmp_path / "thre", "--ckpt", checkpoint, "--output", output) == 2
    assert f"no such file or folder: {tmp_path / 'thre'}" in capsys.readouterr().err
    assert output.read_text() == "path,status\nthree/a.avi,ok\n"


def test_a_folder_this_user_may_not_list_is_a_usage_error_alone_and_an_error_row_beside_others(
        trained, test_videos, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vidrnn classify DIR`` on a folder this user may not read ended in a PermissionError traceback, no CSV. Named
    alone it gives nothing to classify, as a mistyped folder does (a usage error); beside a video, an error row."""
    _, _, checkpoint = trained
    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(test_videos[0], tmp_path / "good.avi")
    deny_listing(monkeypatch, private)
    output = tmp_path / "out.csv"

    assert classify(private, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 2
    error = capsys.readouterr().err
    assert error == (f"vidrnn classify: error: {private}: cannot be listed: permission denied: this user may not read "
                     "it; make it readable (chmod, chown) or remove it\n")
    assert not output.exists()

    assert classify(private, tmp_path / "good.avi", "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3
    rows = {Path(row["path"]).name: row for row in read_csv(output)}
    assert rows["good.avi"]["status"] == "ok" and rows["private"]["status"] == "error"
    assert rows["private"]["error"].startswith("cannot be listed: permission denied")


@pytest.mark.parametrize("where", ["under a file", "read-only folder", "a folder"])
def test_an_output_this_user_cannot_write_is_a_usage_error_before_the_model_is_loaded(
        where: str, trained, test_videos, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """It ended in a PermissionError (or NotADirectoryError) traceback once the model was loaded, exit status 1."""
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "ro").mkdir()
    output, expected = {
        "under a file": (tmp_path / "notes.txt" / "out.csv", f"{tmp_path / 'notes.txt'} is a file, not a folder"),
        "read-only folder": (tmp_path / "ro" / "out.csv", f"this user cannot write in {tmp_path / 'ro'} (permission "
                                                          "denied, or a read-only file system)"),
        "a folder": (tmp_path / "ro.csv", f"{tmp_path / 'ro.csv'} is a folder"),
    }[where]
    (tmp_path / "ro.csv").mkdir()
    access = os.access  # root may write anywhere: this folder is made read-only for the test
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: path != tmp_path / "ro" and access(path, mode, **kw))
    monkeypatch.setattr(Predictor, "from_checkpoint", _never_loaded)
    assert classify(test_videos[0], "--ckpt", trained[2], "--output", output) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"vidrnn classify: error: --output {output}: {expected}; choose an output file")
    assert "Traceback" not in error


@pytest.mark.parametrize("existing", ["output", "record", "default output"])
def test_an_existing_output_is_refused_before_the_model_is_loaded_unless_resumed_or_overwritten(
        existing: str, test_videos, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run onto Friday's 28-row keep.csv (another checkpoint's) left it one row and replaced its record too, and
    every run in a directory replaced the last one's default predictions.csv: as vidrnn track does, an output (or its
    record) already there is a usage error, unless --resume adds to it or --overwrite replaces it."""
    monkeypatch.chdir(tmp_path)
    output = Path("predictions.csv") if existing == "default output" else tmp_path / "keep.csv"
    output.write_text("path,status\nfriday.avi,ok\n")
    record_path(output).write_text('{"made_with": {}}\n')
    if existing == "record":
        output.unlink()
    before = {path: path.read_bytes() for path in (output, record_path(output)) if path.exists()}
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"never opened")
    monkeypatch.setattr(Predictor, "from_checkpoint", _never_loaded)
    given = () if existing == "default output" else ("--output", output)
    assert classify(test_videos[0], "--ckpt", checkpoint, *given) == 2
    there = f": its record {record_path(output)}" if existing == "record" else ""
    assert capsys.readouterr().err == (f"vidrnn classify: error: --output {output}{there} already exists: give "
                                       "--resume to add to its rows, --overwrite to replace them, or another "
                                       "--output\n")
    assert {path: path.read_bytes() for path in (output, record_path(output)) if path.exists()} == before
    with pytest.raises(SystemExit) as refused:
        classify(test_videos[0], "--ckpt", checkpoint, *given, "--resume", "--overwrite")
    assert refused.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_an_overwriting_run_interrupted_says_to_resume_in_its_place() -> None:
    parser = argparse.ArgumentParser()
    add_classify_parser(parser.add_subparsers())
    args = parser.parse_args(["classify", "a.avi", "--ckpt", "m.ckpt", "--output", "o.csv", "--overwrite"])
    assert args.interrupted(args) == ("the rows finished so far are in o.csv: the same command with --resume in "
                                      "place of --overwrite goes on from there")


def test_an_output_named_near_the_name_limit_keeps_its_record_under_a_fitted_name(trained, test_videos,
                                                                                  tmp_path: Path) -> None:
    """OUTPUT.meta.json is 10 bytes longer than the output's name: for a name of 250 bytes the record could not be
    written (ENAMETOOLONG), a traceback after the model was loaded and the output replaced."""
    _, _, checkpoint = trained
    output = tmp_path / ("r" * 246 + ".csv")
    arguments = (test_videos[0], "--ckpt", checkpoint, "--output", output, "--workers", "0")
    assert classify(*arguments) == 0
    record = record_path(output)
    assert record.parent == output.parent and record.name.startswith("r" * 200) and record.name.endswith(".meta.json")
    assert len(os.fsencode(record.name)) <= name_max(tmp_path)
    assert json.loads(record.read_text(encoding="utf-8"))["checkpoint"] == str(checkpoint)
    assert classify(*arguments, "--resume") == 0 and len(read_csv(output)) == 1


def test_an_output_name_over_the_name_limit_is_a_usage_error_before_the_model_is_loaded(
        test_videos, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file system refuses the name itself: it ended in a traceback once the model was loaded."""
    output = tmp_path / ("r" * 256 + ".csv")
    monkeypatch.setattr(Predictor, "from_checkpoint", _never_loaded)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"never opened")
    assert classify(test_videos[0], "--ckpt", checkpoint, "--output", output) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"vidrnn classify: error: --output {output}: its name is 260 bytes long, over the "
                            f"{name_max(tmp_path)} this file system takes; choose a shorter name")


def _never_loaded(*args: object, **kwargs: object) -> None:
    raise AssertionError("the model was loaded")


def test_a_folder_without_videos_is_a_usage_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "clip.avi").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("not a video\n")
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"never opened")
    assert classify(tmp_path / "in", "--ckpt", checkpoint, "--output", tmp_path / "out.csv") == 2
    assert "--recursive" in capsys.readouterr().err


def test_a_file_name_in_another_encoding_gets_an_error_row_and_the_run_goes_on(trained, test_videos,
                                                                              tmp_path: Path, capsys) -> None:
    _, _, checkpoint = trained
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_videos[0], folder / "good.avi")
    latin1 = folder / os.fsdecode(b"caf\xe9.avi")  # as an old Windows zip unpacks it
    shutil.copy(test_videos[1], latin1)
    output = tmp_path / "out.csv"
    assert classify(folder, "--ckpt", checkpoint, "--output", output, "--workers", "0") == 3
    rows = {row["path"]: row for row in read_csv(output)}
    assert rows[str(folder / "good.avi")]["status"] == "ok"
    shown = str(folder) + "/caf\\xe9.avi"  # the byte that is no UTF-8 written as an escape
    assert "not valid UTF-8" in rows[shown]["error"]
    capsys.readouterr()
    assert classify(folder, "--ckpt", checkpoint, "--output", output, "--workers", "0", "--resume") == 3
    # --resume knows the escaped row's video: its error row is tried again and replaced, not joined by another
    assert "1 already done (1 tried again after an error row)" in capsys.readouterr().out
    assert len(read_csv(output)) == 2


def _untrained_checkpoint(datamodule: VideoDataModule, class_names: list[str], path: Path) -> Path:
    """An untrained two-class classifier over the data module's features, with these class names, saved to ``path``."""
    model = VideoClassifier(2, datamodule.feature_dim, EncoderSpec(hidden_size=16, projection=16),
                            class_names=class_names, pipeline=datamodule.pipeline.to_dict())
    return save_untrained(model, path)


def test_an_order_task_checkpoint_says_what_its_labels_mean(trained, test_videos, tmp_path: Path, capsys) -> None:
    """An arrow-of-time checkpoint classified videos as forwards/backwards without a word: easily read as classes."""
    checkpoint = _untrained_checkpoint(trained[0], ["backwards", "forwards"], tmp_path / "arrow.ckpt")
    assert classify(*test_videos[:1], "--ckpt", checkpoint, "--output", tmp_path / "out.csv") == 0
    assert ("vidrnn classify: this checkpoint was trained on the arrow of time task: its labels (backwards / "
            "forwards) say how each video's frames are ordered, not what it shows") in capsys.readouterr().err


def test_a_checkpoint_whose_class_names_hold_a_semicolon_writes_json_lines_only(trained, test_videos, tmp_path: Path,
                                                                              capsys) -> None:
    """CSV joins the top-k labels with ';' ("sit; stand;walk"); a model trained before class folders with ';' were
    refused would write cells that cannot be split back. JSON Lines keeps them lists."""
    checkpoint = _untrained_checkpoint(trained[0], ["sit; stand", "walk"], tmp_path / "semicolon.ckpt")
    assert classify(*test_videos[:1], "--ckpt", checkpoint, "--output", tmp_path / "out.csv") == 2
    assert ("vidrnn classify: error: the checkpoint's class 'sit; stand' holds ';', which joins the labels of a CSV "
            "row (topk_labels): write JSON Lines instead (--output") in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
    assert classify(*test_videos[:1], "--ckpt", checkpoint, "--output", tmp_path / "out.jsonl") == 0
    assert set(read_rows(tmp_path / "out.jsonl")[0]["topk_labels"]) == {"sit; stand", "walk"}


def test_more_than_one_process_is_refused_saying_workers_parallelise_decoding(tmp_path: Path, capsys,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank classified every video and wrote the same output file."""
    (tmp_path / "clip.avi").write_bytes(b"")
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"never opened")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(Predictor, "from_checkpoint", _never_loaded)
    assert classify(tmp_path / "clip.avi", "--ckpt", checkpoint, "--output", tmp_path / "out.csv") == 2
    error = capsys.readouterr().err
    assert error.startswith("vidrnn classify: error: launched as 2 processes (WORLD_SIZE=2)") and "--workers" in error
    assert not (tmp_path / "out.csv").exists()


def test_the_refusal_of_more_than_one_process_is_said_by_rank_zero_alone(tmp_path: Path, capsys,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rank printed the same refusal."""
    from lightning.pytorch.utilities import rank_zero_only

    (tmp_path / "clip.avi").write_bytes(b"")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert classify(tmp_path / "clip.avi", "--ckpt", tmp_path / "model.ckpt", "--output", tmp_path / "out.csv") == 2
    assert capsys.readouterr().err == ""
