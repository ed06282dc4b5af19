from __future__ import annotations

import argparse
import errno
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_with_reader_gone, stating_frames, stating_rate, write_video
from vidrnn.cli import build_parser, main
from vidrnn.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
)


def _subcommands() -> list[str]:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(commands.choices)


def test_top_level_help_lists_every_subcommand_and_each_has_its_own_help(capsys: pytest.CaptureFixture) -> None:
    result = subprocess.run([sys.executable, "-m", "vidrnn", "--help"], capture_output=True, text=True, check=True)
    for name in _subcommands():  # in this process: a dozen interpreters importing torch would take most of a minute
        assert name in result.stdout
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        first_line = capsys.readouterr().out.splitlines()[0]
        assert done.value.code == 0 and first_line.startswith("usage: vidrnn ") and f" {name}" in first_line


@pytest.mark.parametrize("command", [["probe"], ["fit", "--config", "configs/demo.yaml", "--print_config"]],
                         ids=["probe", "print_config"])
def test_a_command_whose_output_reader_has_gone_stops_quietly(tmp_path: Path, command: list[str]) -> None:
    """``vidrnn probe ... | head -1`` ended in "Exception ignored ... BrokenPipeError" (exit status 120), ``vidrnn fit
    --print_config | head`` in a BrokenPipeError traceback: they stop as Unix tools stop, saying nothing."""
    video = write_video(tmp_path / "clip.avi", 3)
    status, said = run_with_reader_gone(*command, *([str(video)] if command == ["probe"] else []))
    assert (status, said) == (EXIT_BROKEN_PIPE, "")


def test_probe_reports_good_and_bad_files_and_says_some_failed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = write_video(tmp_path / "good.avi", 10)
    status = main(["probe", str(good), str(tmp_path / "missing.avi")])
    out = capsys.readouterr().out
    assert status == EXIT_SOME_FAILED
    assert "10" in out.splitlines()[1] and "missing.avi  ERROR: no such file or directory" in out
    assert main(["probe", str(good)]) == 0


def test_a_warning_of_vidrnn_is_one_line_without_the_source_line_that_raised_it(tmp_path: Path) -> None:
    """A file stating 1000 fps was said as Python's warning format: the file and line of vidrnn that warned, then that
    source line (``self.fps = _usable_fps(path, stated_fps)``), which tell a user of the command nothing."""
    video = stating_rate(write_video(tmp_path / "fast.avi", 10), 1000)
    result = subprocess.run([sys.executable, "-m", "vidrnn", "probe", str(video)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"{video}: the container states 1000 frames a second, not a plausible frame rate (above 0, at most 240): read "
        "as 30 fps, which sampling by time and its duration assume; remux the file with its real rate to use that"]


def test_probe_takes_paths_among_its_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``vidrnn probe a.avi --count b.avi`` failed with "unrecognized arguments: b.avi", as classify did."""
    first, second = write_video(tmp_path / "a.avi", 4), write_video(tmp_path / "b.avi", 6)
    assert main(["probe", str(first), "--count", str(second)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [(row.split()[0], row.split()[-1]) for row in rows] == [("4", str(first)), ("6", str(second))]


@pytest.mark.parametrize("arguments", [["--", "-x.avi"], ["--count", "--", "-x.avi", "b.avi"],
                                       ["b.avi", "--count", "--", "-x.avi"]], ids=["alone", "after an option", "both sides"])
def test_probe_takes_a_path_beginning_with_a_dash_after_double_dash(
        arguments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``vidrnn probe -- -x.avi`` said "the following arguments are required: paths" and ``probe --count -- -x.avi
    b.avi`` "unrecognized arguments: -x.avi": argparse's parse_intermixed_args loses a ``--`` that no path precedes."""
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "-x.avi", 4), write_video(tmp_path / "b.avi", 6)
    assert main(["probe", *arguments]) == 0
    probed = [row.split()[-1] for row in capsys.readouterr().out.splitlines()[1:]]
    assert probed == [argument for argument in arguments if argument.endswith(".avi")]


def test_a_path_after_double_dash_spelled_as_an_option_given_before_it_is_probed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``vidrnn probe a.avi --count a.avi -- -x.avi --count`` said "unrecognized arguments: --count": the path after
    ``--`` was taken for an option because the option of that name was given before it."""
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "a.avi", 4), write_video(tmp_path / "-x.avi", 5)
    (tmp_path / "--count").write_bytes(write_video(tmp_path / "clip.avi", 6).read_bytes())
    assert main(["probe", "a.avi", "--count", "a.avi", "--", "-x.avi", "--count"]) == 0
    probed = [row.split()[-1] for row in capsys.readouterr().out.splitlines()[1:]]
    assert probed == ["a.avi", "a.avi", "-x.avi", "--count"]


@pytest.mark.parametrize("arguments", [["probe", "--bogus", "--", "-x.avi"], ["probe", "--bogus=1", "--", "-x.avi"],
                                       ["probe", "b.avi", "--bogus", "--", "-x.avi"],
                                       ["classify", "--bogus", "--ckpt", "c.ckpt", "--", "-x.avi"],
                                       ["classify", "--bogus", "--", "x.avi", "--ckpt", "c.ckpt"]],
                         ids=["probe", "with a value", "paths on both sides", "classify", "classify, --ckpt a path"])
def test_an_unknown_option_before_double_dash_is_named(arguments: list[str], capsys: pytest.CaptureFixture) -> None:
    """``vidrnn probe --bogus -- -x.avi`` said "the following arguments are required: paths" (and ``probe b.avi
    --bogus -- -x.avi`` named the path after ``--`` as unrecognized too): the parse that takes paths anywhere lost
    the ``--`` when an unknown option was left over. It is named, as argparse names one elsewhere, and before any
    required argument is missed: ``classify --bogus -- x.avi --ckpt c.ckpt`` (``--ckpt`` a path, after ``--``) said
    "the following arguments are required: --ckpt"."""
    with pytest.raises(SystemExit) as refused:
        main(arguments)
    unknown = next(argument for argument in arguments if argument.startswith("--bogus"))
    assert refused.value.code == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[-1] == f"vidrnn {arguments[0]}: error: unrecognized arguments: {unknown}"


@pytest.mark.parametrize("arguments", [["--help"], ["x.avi", "--ckpt", "c.ckpt", "--workers", "abc"]],
                         ids=["help", "a value of the wrong type"])
def test_classify_shows_its_required_option_as_required(arguments: list[str], capsys: pytest.CaptureFixture) -> None:
    """The parse that finds unknown options first makes every option optional for a moment; help and errors of
    that parse showed ``[--ckpt CKPT]``, as if a checkpoint were optional."""
    with pytest.raises(SystemExit):
        main(["classify", *arguments])
    shown = capsys.readouterr()
    usage = " ".join((shown.out + shown.err).split())
    assert "usage: vidrnn classify [-h] --ckpt CKPT" in usage and "[--ckpt CKPT]" not in usage


@pytest.mark.parametrize("command", ["classify", "probe"])
def test_a_file_whose_name_begins_with_a_dash_is_named_with_the_way_to_give_it(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``vidrnn classify -dash.avi`` said only "unrecognized arguments: -dash.avi": argparse reads a name beginning
    with a dash as an option. An unknown option that is a file here (or ends like a video) is said to be one, with
    the two ways to give it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-dash.avi").write_bytes(b"")
    with pytest.raises(SystemExit) as refused:
        main([command, "-dash.avi", "-other.mp4", "--bogus", *(["--ckpt", "c.ckpt"] if command == "classify" else [])])
    assert refused.value.code == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"vidrnn {command}: error: unrecognized arguments: -dash.avi -other.mp4 --bogus (-dash.avi and -other.mp4 "
        "look like paths: a path beginning with '-' is read as an option; write it as ./-dash.avi, or put the paths "
        "after --)")


@pytest.mark.parametrize("path", ["-my clip.avi", "-5"])
def test_a_path_argparse_reads_as_positional_is_probed_after_an_option(
        path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A path beginning with "-" that argparse reads as a path (one holding a space, a negative number), left over
    after an option, is no unknown option: it is probed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / path).write_bytes(write_video(tmp_path / "clip.avi", 4).read_bytes())
    assert main(["probe", "clip.avi", "--count", path]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 2 and rows[0].endswith(" clip.avi") and rows[1].endswith(f" {path}")


def test_synth_writes_demo_data_the_ucf101_loader_reads(tmp_path: Path) -> None:
    from vidrnn.data.tracking_sequences import find_sequences
    from vidrnn.data.ucf101 import ucf101_index

    assert main(["synth", str(tmp_path), "--groups", "3", "--clips-per-group", "1", "--frames", "8", "--sequences", "2"]) == 0
    index = ucf101_index(tmp_path / "classification", fold=1)
    assert len(index.classes) == 6 and len(index.records) == 6 * 3
    assert [len(s.boxes) for s in find_sequences(tmp_path / "tracking")] == [8, 8]


def test_synth_help_states_the_generators_own_defaults() -> None:
    import inspect

    from vidrnn.cli import SYNTH_DEFAULTS
    from vidrnn.data.synthetic import make_classification_dataset
    from vidrnn.data.synthetic_tracking import make_tracking_sequences

    clips = inspect.signature(make_classification_dataset).parameters
    sequences = inspect.signature(make_tracking_sequences).parameters
    assert SYNTH_DEFAULTS == {"groups": clips["groups"].default, "clips_per_group": clips["clips_per_group"].default,
                              "clip_frames": clips["num_frames"].default,
                              "sequences": sequences["num_sequences"].default,
                              "sequence_frames": sequences["num_frames"].default}


def _stamps(root: Path) -> dict[Path, int]:
    """Every path under ``root`` with its modification time: unchanged stamps mean nothing was rewritten."""
    return {path: path.stat().st_mtime_ns for path in root.rglob("*")}


@pytest.mark.parametrize(("kind", "settings", "made"), [
    ("classification", ["--groups", "3", "--clips-per-group", "1", "--frames", "2"],
     "seed 0, groups 3, clips_per_group 1, num_frames 2"),
    ("tracking", ["--sequences", "1", "--frames", "3"], "seed 0, num_sequences 1, num_frames 3"),
])
def test_synth_generates_once_and_refuses_a_folder_it_did_not_make_with_these_settings(
        tmp_path: Path, kind: str, settings: list[str], made: str, capsys: pytest.CaptureFixture) -> None:
    """It wrote into whatever was there, exit status 0: another seed's clips over the demo's under the same names,
    the split lists rewritten, the marker left naming the demo's seed."""
    command = ["synth", str(tmp_path / "out"), "--kind", kind, *settings]
    assert main(command) == EXIT_OK
    folder = tmp_path / "out" / kind
    before = _stamps(folder)
    assert main(command) == EXIT_OK and _stamps(folder) == before
    assert [path.name for path in (tmp_path / "out").iterdir()] == [kind], "staging folder left behind"
    capsys.readouterr()
    assert main([*command, "--seed", "2"]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith(f"vidrnn synth: error: {folder} holds the demo videos generated with {made}; seed 2")
    assert "Traceback" not in error and _stamps(folder) == before
    (tmp_path / "mine" / kind).mkdir(parents=True)
    (tmp_path / "mine" / kind / "notes.txt").write_text("mine")
    assert main(["synth", str(tmp_path / "mine"), "--kind", kind, *settings]) == EXIT_USAGE
    assert f"{tmp_path / 'mine' / kind} holds notes.txt but no" in capsys.readouterr().err
    assert [path.name for path in (tmp_path / "mine" / kind).iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("kind", ["classification", "tracking"])
def test_synth_refuses_a_folder_whose_marker_is_a_folder_with_status_2(tmp_path: Path, kind: str,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """It ended in an IsADirectoryError traceback, exit status 1."""
    from vidrnn.data.demo_staging import DEMO_MARKER

    marker = tmp_path / "out" / kind / DEMO_MARKER
    marker.mkdir(parents=True)
    assert main(["synth", str(tmp_path / "out"), "--kind", kind, "--frames", "3", "--sequences", "1"]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith(f"vidrnn synth: error: {marker.parent} holds {DEMO_MARKER}, where {marker} is a folder, "
                            "not the marker file a finished generation writes; it is not replaced: move it away")
    assert marker.is_dir() and [path.name for path in (tmp_path / "out").iterdir()] == [kind]


@pytest.mark.parametrize(("options", "expected"), [
    (["--kind", "classification", "--groups", "2"], "--groups must be at least 3 (each fold tests a third), got 2"),
    (["--kind", "classification", "--clips-per-group", "0"], "--clips-per-group must be at least 1, got 0"),
    (["--kind", "classification", "--frames", "1"], "--frames must be at least 2 for classification clips, got 1"),
    (["--kind", "both", "--frames", "2"], "--frames must be at least 3 for tracking sequences, got 2"),
    (["--kind", "tracking", "--sequences", "0"], "--sequences must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
])
def test_synth_usage_errors_end_before_any_work_with_status_2(tmp_path: Path, options: list[str], expected: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    """Each ended in the generator's traceback, exit status 1."""
    assert main(["synth", str(tmp_path / "out"), *options]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error == f"vidrnn synth: error: {expected}\n" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["classification", "tracking"])
@pytest.mark.parametrize("inside", [False, True], ids=["out_dir read-only", "parent read-only"])
def test_synth_onto_a_read_only_place_is_a_usage_error_naming_it(
        tmp_path: Path, kind: str, inside: bool, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vidrnn synth OUT`` onto a read-only file system (or under a folder this user cannot write) ended in an
    OSError traceback from Path.mkdir."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    out_dir = read_only / "out" if inside else read_only
    access, make = os.access, os.mkdir

    def refused(path: str | os.PathLike, *args: object, **kwargs: object) -> None:  # root may write anywhere
        if Path(path).parent == read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        make(path, *args, **kwargs)

    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != read_only and access(path, mode, **kw))
    monkeypatch.setattr(os, "mkdir", refused)
    assert main(["synth", str(out_dir), "--kind", kind, "--frames", "3", "--sequences", "1"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"vidrnn synth: error: {out_dir / kind}: this user cannot write in {read_only} (permission denied, or a "
        "read-only file system), and the data is to be generated there; choose a folder this user can write\n")
    assert list(read_only.iterdir()) == []


def test_synth_help_states_the_minimums_the_generators_hold(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vidrnn.cli import SYNTH_MINIMUMS
    from vidrnn.data.synthetic import make_classification_dataset
    from vidrnn.data.synthetic_tracking import make_tracking_sequences

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(f"at least {least}" in shown for least in SYNTH_MINIMUMS.values())
    clips = {"groups": SYNTH_MINIMUMS["groups"], "clips_per_group": SYNTH_MINIMUMS["clips_per_group"],
             "num_frames": SYNTH_MINIMUMS["clip_frames"]}
    sequences = {"num_sequences": SYNTH_MINIMUMS["sequences"], "num_frames": SYNTH_MINIMUMS["sequence_frames"]}
    make_classification_dataset(tmp_path / "clips", classes=["Grow"], size=(16, 16), **clips)
    make_tracking_sequences(tmp_path / "sequences", **sequences)
    for name in clips:
        with pytest.raises(ValueError):
            make_classification_dataset(tmp_path / name, classes=["Grow"], **{**clips, name: clips[name] - 1})
    for name in sequences:
        with pytest.raises(ValueError):
            make_tracking_sequences(tmp_path / name, **{**sequences, name: sequences[name] - 1})


def test_extract_help_names_the_demo_roots_synth_and_a_fit_write(capsys: pytest.CaptureFixture) -> None:
    """It said the demo is read with --root data/demo, but vidrnn synth OUT writes it into OUT/classification."""
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--root OUT_DIR/classification after vidrnn synth OUT_DIR" in shown
    assert "--root data/demo after a fit of configs/demo.yaml" in shown


@pytest.mark.parametrize("problem", ["missing root", "unknown backbone", "absent device", "batch size 0",
                                     "negative batch size", "negative workers", "negative limit", "cache root a file",
                                     "class folders read as UCF101", "root this user may not read"])
def test_extract_usage_errors_end_before_any_work_with_status_2(tmp_path: Path, problem: str,
                                                                 capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "videos"
    write_video(root / "a" / "clip.avi", 4)
    options, expected = {
        "missing root": (["--root", str(tmp_path / "nowhere")], "nowhere"),
        "unknown backbone": (["--root", str(root), "--backbone", "efficientnet_lite_0"],
                             "unknown backbone 'efficientnet_lite_0': use one of"),
        "absent device": (["--root", str(root), "--device", "cuda:99"], "device cuda:99, but PyTorch sees"),
        "batch size 0": (["--root", str(root), "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        "negative batch size": (["--root", str(root), "--batch-size", "-3"], "--batch-size must be at least 1, got -3"),
        "negative workers": (["--root", str(root), "--workers", "-1"], "--workers must be at least 0"),
        "negative limit": (["--root", str(root), "--limit", "-1"], "--limit must be at least 1, got -1"),
        "cache root a file": (["--root", str(root)], f"{tmp_path / 'cache'} is a file, not a folder"),
        "class folders read as UCF101": (["--root", str(root), "--dataset", "ucf101"],
                                         "(--dataset folders for vidrnn extract) reads"),
        # A PermissionError traceback (made up here: root reads anything).
        "root this user may not read": (["--root", str(root)], f"{root / 'a'}: permission denied: this user may not "
                                        "read it (or a folder on its way); make it readable"),
    }[problem]
    if problem == "cache root a file":
        (tmp_path / "cache").write_text("")
    if problem == "root this user may not read":
        import vidrnn.data.module

        def denied(root: Path, **settings: object) -> None:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(Path(root) / "a"))

        monkeypatch.setattr(vidrnn.data.module, "folder_index", denied)  # the index extract reads, as a fit does
    status = main(["extract", "--dataset", "folders", *options, "--cache-dir", str(tmp_path / "cache")])
    error = capsys.readouterr().err
    assert status == EXIT_USAGE and expected in error and error.startswith("vidrnn extract: error:")
    assert not (tmp_path / "cache").is_dir()


def test_classify_help_explains_every_column_of_its_output(capsys: pytest.CaptureFixture) -> None:
    from vidrnn.classify import FIELDS

    with pytest.raises(SystemExit):
        main(["classify", "--help"])
    epilog = " ".join(capsys.readouterr().out.split("Output columns, one row per video:")[1].split())
    assert all(f"{field} (" in epilog or f"{field} and" in epilog for field in FIELDS)
    assert "joined with ';' in CSV" in epilog and "frames_used (the frames the model read" in epilog
    assert "duration_s (the video's length in seconds" in epilog


def test_predict_says_what_it_writes_and_where(capsys: pytest.CaptureFixture) -> None:
    """It said "class probabilities for the test split's clips"; predictions.csv holds the top-1 label and its
    probability."""
    from vidrnn.callbacks import PREDICTION_COLUMNS
    from vidrnn.cli import LIGHTNING_COMMANDS

    assert "predictions.csv" in LIGHTNING_COMMANDS["predict"] and "probabilities for" not in LIGHTNING_COMMANDS["predict"]
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    description = " ".join(capsys.readouterr().out.split())
    assert "write predictions.csv into the run's log folder (trainer.default_root_dir/lightning_logs/version_N/)" in \
        description and f"(columns {', '.join(PREDICTION_COLUMNS)})" in description


def test_ctrl_c_keeps_what_is_done_and_says_how_to_go_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    import vidrnn.classify

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(vidrnn.classify, "run_classify", interrupted)
    output = tmp_path / "rows.csv"
    assert main(["classify", str(tmp_path), "--ckpt", "x.ckpt", "--output", str(output)]) == EXIT_INTERRUPTED
    error = capsys.readouterr().err
    assert f"vidrnn classify: interrupted; the rows finished so far are in {output}" in error and "--resume" in error


def test_the_parser_and_help_do_not_import_torch() -> None:
    """``vidrnn --help`` and ``vidrnn probe`` answer at once: torch takes seconds to import."""
    check = "import sys; from vidrnn.cli import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True)


def test_extract_defaults_are_the_data_modules(tmp_path: Path) -> None:
    """Its flags re-declared the backbone's, the sampling's and the cache's defaults by hand: a change to the data
    module's would have made vidrnn extract fill a cache no fit with default settings reads."""
    import inspect

    from vidrnn.backbones import BackboneSpec
    from vidrnn.cli import _extract_specs
    from vidrnn.data.module import VideoDataModule

    args = build_parser().parse_args(["extract", "--root", str(tmp_path)])
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(VideoDataModule.__init__).parameters.items()}
    backbone, sampling = _extract_specs(args)
    assert backbone == defaults["backbone"] == BackboneSpec() and sampling == defaults["sampling"]
    assert (args.batch_size, args.device, args.fold) == (defaults["extract_batch_size"], defaults["device"],
                                                         defaults["fold"])
    assert args.cache_dir == Path(defaults["cache_dir"])


def test_extract_reads_every_dataset_the_data_module_reads_but_the_demo() -> None:
    import typing

    from vidrnn.cli import EXTRACT_DATASETS
    from vidrnn.data.module import VideoDataModule

    datasets = typing.get_args(typing.get_type_hints(VideoDataModule.__init__)["dataset"])
    assert set(EXTRACT_DATASETS) == set(datasets) - {"demo"}


def test_extract_reads_unlabeled_videos_as_the_data_module_indexes_them(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    """An order task over unlabeled videos (configs/order_ucf101_cpu.yaml's kind) could not be pre-extracted."""
    root = tmp_path / "videos"
    write_video(root / "walk.avi", 4)
    write_video(root / "session" / "run.avi", 4)
    command = ["extract", "--dataset", "unlabeled", "--root", str(root), "--cache-dir", str(tmp_path / "cache"),
               "--input-size", "32", "--workers", "0", "--short-side", "32"]
    assert main(command) == EXIT_OK
    assert "extracted 2 videos" in capsys.readouterr().out


def test_extract_lists_the_videos_that_failed_before_and_retries_them_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "videos"
    write_video(root / "a" / "clip.avi", 4)
    write_video(root / "b" / "clip.avi", 4)
    (root / "b" / "broken.avi").write_bytes(b"not a video" * 50)
    command = ["extract", "--dataset", "folders", "--root", str(root), "--cache-dir", str(tmp_path / "cache"),
               "--input-size", "32", "--workers", "0", "--short-side", "32"]
    assert main(command) == EXIT_SOME_FAILED
    assert "FAILED b/broken.avi: cannot be opened" in capsys.readouterr().out
    assert main(command) == EXIT_SOME_FAILED  # still missing from the cache, though not decoded again
    out = capsys.readouterr().out
    assert "extracted 0 videos" in out and "0 failed" in out
    assert "FAILED BEFORE b/broken.avi: cannot be opened" in out and "--retry-failed" in out
    assert main([*command, "--retry-failed"]) == EXIT_SOME_FAILED
    assert "FAILED b/broken.avi" in capsys.readouterr().out


def test_extract_names_a_video_cut_short_in_its_summary_and_ends_with_0(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """A truncated video (22 of the 78 frames its container states) was reported as one more extracted video."""
    root = tmp_path / "videos"
    write_video(root / "a" / "whole.avi", 4)
    stating_frames(write_video(root / "b" / "cut.avi", 4), 12)
    command = ["extract", "--dataset", "folders", "--root", str(root), "--cache-dir", str(tmp_path / "cache"),
               "--input-size", "32", "--workers", "0", "--short-side", "32"]
    assert main(command) == EXIT_OK
    out = capsys.readouterr().out
    assert "extracted 2 videos" in out
    assert "1 cut short (far fewer frames than their containers state), extracted from the frames they hold:" in out
    assert "  CUT SHORT b/cut.avi: decoded 4 of the 12 frames its container states" in out


def _extract_command(tmp_path: Path, *options: str) -> list[str]:
    """``vidrnn extract`` over two small readable videos into ``tmp_path / "cache"``."""
    root = tmp_path / "videos"
    for name in ("a/a_g01.avi", "a/a_g02.avi", "b/b_g01.avi", "b/b_g02.avi"):
        write_video(root / name, 4)
    return ["extract", "--dataset", "folders", "--root", str(root), "--cache-dir", str(tmp_path / "cache"),
            "--input-size", "32", "--workers", "0", "--short-side", "32", *options]


def test_extract_with_nothing_to_do_writes_nothing_so_a_finished_cache_serves_read_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    command = _extract_command(tmp_path)
    assert main(command) == EXIT_OK
    capsys.readouterr()
    cache_root = tmp_path / "cache"
    opened, made = Path.open, Path.mkdir

    def read_only(path: Path) -> None:
        if path.is_relative_to(cache_root):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def open_read_only(path: Path, mode: str = "r", *args, **kwargs):
        if set(mode) & set("wax+"):
            read_only(path)
        return opened(path, mode, *args, **kwargs)

    def mkdir_read_only(path: Path, *args, **kwargs) -> None:
        read_only(path)
        made(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_read_only)  # a read-only mount, whoever runs the tests (root too)
    monkeypatch.setattr(Path, "mkdir", mkdir_read_only)
    assert main(command) == EXIT_OK
    assert "extracted 0 videos" in capsys.readouterr().out


def test_extract_into_a_cache_this_user_cannot_write_is_a_usage_error_unless_it_has_nothing_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """It failed at the first feature written, after the CNN was built and a batch decoded."""
    command = _extract_command(tmp_path)
    (tmp_path / "cache").mkdir()
    access = os.access

    def read_only(path: Path, mode: int, **kwargs: object) -> bool:  # root may write anywhere: made read-only here
        return not Path(path).is_relative_to(tmp_path / "cache") and access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", read_only)
    assert main(command) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith(f"vidrnn extract: error: feature cache {tmp_path / 'cache'}/efficientnet_lite0-avg-")
    assert (f"this user cannot write in {tmp_path / 'cache'} (permission denied, or a read-only file system), and 4 "
            "of 4 videos wait to be extracted into it; make it writable, or choose a cache folder") in error
    assert not any((tmp_path / "cache").iterdir())
    monkeypatch.undo()
    assert main(command) == EXIT_OK
    monkeypatch.setattr(os, "access", read_only)
    assert main(command) == EXIT_OK  # a finished cache serves from a read-only place


def test_extract_that_cannot_write_the_cache_says_where_and_that_the_same_command_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import vidrnn.features

    def disk_full(path: Path, write) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    command = _extract_command(tmp_path)
    monkeypatch.setattr(vidrnn.features, "atomic_write", disk_full)
    assert main(command) == EXIT_FAILED
    error = capsys.readouterr().err
    assert f"vidrnn extract: error: cannot write the cache {tmp_path / 'cache'}" in error
    assert "No space left on device" in error and "the same command goes on" in error and "Traceback" not in error
    monkeypatch.undo()
    assert main(command) == EXIT_OK


def test_a_fit_finds_the_cache_vidrnn_extract_made_with_the_same_batch_size(tmp_path: Path) -> None:
    from vidrnn.backbones import BackboneSpec
    from vidrnn.data.module import VideoDataModule
    from vidrnn.sampling import SamplingSpec

    assert main(_extract_command(tmp_path, "--batch-size", "8")) == EXIT_OK

    def data(extract_batch_size: int) -> VideoDataModule:
        return VideoDataModule(root=str(tmp_path / "videos"), dataset="folders", cache_dir=str(tmp_path / "cache"),
                               backbone=BackboneSpec(input_size=32), sampling=SamplingSpec(short_side=32),
                               extract_batch_size=extract_batch_size, extract_workers=0)

    same = data(8)
    items = same.index.video_items()
    assert same.cache.settled(items) == (items, [])
    assert not data(32).cache.dir.exists()  # other arithmetic, other cache


def test_a_lightning_command_ends_with_its_process_group_destroyed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's DDP leaves the gloo group it starts to the interpreter's exit, where tearing it down now and then
    aborted a finished command ("terminate called without an active exception", exit status 134)."""
    import torch.distributed as dist

    from vidrnn.task_cli import entry

    def joins_a_group(args: list[str]) -> None:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)

    monkeypatch.setattr(entry, "run_lightning_cli", joins_a_group)
    try:
        assert main(["predict", "--config", "configs/demo.yaml"]) == EXIT_OK
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_importing_vidrnn_on_windows_says_it_is_not_supported_and_what_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every data command died on Windows in "ModuleNotFoundError: No module named 'fcntl'" (the decoding processes,
    the feature cache's locks, the demo's staging): the import now says which systems vidrnn runs on."""
    import importlib.util

    import vidrnn

    spec = importlib.util.spec_from_file_location("vidrnn_on_windows", vidrnn.__file__)
    said = None
    with monkeypatch.context() as windows:  # undone before pytest reports: its own paths follow os.name
        windows.setattr(os, "name", "nt")
        try:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        except ImportError as error:
            said = str(error)
    assert said is not None and "vidrnn runs on Linux and macOS, not on Windows" in said and "WSL2" in said


class _BsdPoll:
    """select.poll as BSD kernels (macOS) answer for a pipe whose reader has gone: POLLHUP, where Linux says POLLERR."""

    def register(self, descriptor: int, events: int) -> None:
        self.descriptor = descriptor

    def poll(self, timeout: int) -> list[tuple[int, int]]:
        return [(self.descriptor, select.POLLHUP)]


def test_a_stdout_reader_gone_is_seen_as_linux_and_macos_report_it_never_on_a_file_or_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS reports a widowed pipe writer by POLLHUP: taken for a failure, its reader gone was a traceback there."""
    import pty

    from vidrnn import pipes

    reader, writer = os.pipe()
    assert not pipes._reader_gone(writer)
    os.close(reader)
    assert pipes._reader_gone(writer)  # Linux: POLLERR
    leader, terminal = pty.openpty()
    with (tmp_path / "out").open("w") as regular:
        assert not pipes._reader_gone(terminal) and not pipes._reader_gone(regular.fileno())
        monkeypatch.setattr(select, "poll", _BsdPoll)
        assert pipes._reader_gone(writer)
        assert not pipes._reader_gone(regular.fileno()) and not pipes._reader_gone(terminal)  # a hang-up is no pipe
    for descriptor in (writer, leader, terminal):
        os.close(descriptor)
