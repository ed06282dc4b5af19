"""The benchmark scripts' own logic (their measurements live in benchmarks/RESULTS.md, not here)."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # as when a script runs: its folder is importable
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as when a script runs: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_comparison_validates_on_the_sequences_the_configs_data_module_validates_on(tmp_path: Path) -> None:
    """``track_compare.py --val-of CONFIG`` must score what the fit validated on: a folder named in val_sequences holds
    out all its targets (OTB's Jogging-1, Jogging-2), nested folders count, the test side never does."""
    from test_tracking_data import write_otb

    root = tmp_path / "sequences"
    write_otb(root / "easy" / "Couple", 3, ["1,1,4,4"] * 3)
    jogging = write_otb(root / "Jogging", 3, ["1,1,4,4"] * 3)
    (jogging / "groundtruth_rect.txt").rename(jogging / "groundtruth_rect.1.txt")
    (jogging / "groundtruth_rect.2.txt").write_text("2,2,4,4\n" * 3)
    config = tmp_path / "track.yaml"
    config.write_text(f"data:\n  root: {root}\n  val_sequences: [Jogging]\n")
    validated, named_under = _load("track_compare").validation_sequences(config)
    assert [sequence.name_under(named_under) for sequence in validated] == ["Jogging-1", "Jogging-2"]


def test_the_comparison_tells_apart_two_sequences_of_one_name_in_different_folders(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scores were keyed by the sequence's name: a/Seq and b/Seq were one row, both showing one of them."""
    from vidrnn.data.synthetic_tracking import make_tracking_sequences

    for seed, folder in enumerate(("a", "b")):
        made = make_tracking_sequences(tmp_path / "made", num_sequences=1, num_frames=3, size=(96, 128), seed=seed)[0]
        (tmp_path / "bench" / folder).mkdir(parents=True)
        made.rename(tmp_path / "bench" / folder / "Seq")
    assert _load("track_compare").main(["--root", str(tmp_path / "bench"), "--no-opencv"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith(("| a/", "| b/"))]
    assert [row[0] for row in rows] == ["| a/Seq", "| b/Seq"] and rows[0][2] != rows[1][2], rows


def test_the_comparison_reports_a_noise_floor_from_first_boxes_moved_a_hundredth_of_a_pixel(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Designs were compared at differences of 0.001-0.004 success AUC, while the tracker's boxes change chaotically
    with the torch thread count: the table must show how large a difference has to be to mean anything."""
    from vidrnn.data.synthetic_tracking import make_tracking_sequences

    track_compare = _load("track_compare")
    make_tracking_sequences(tmp_path, num_sequences=1, num_frames=5, size=(96, 128), seed=3)
    assert track_compare.main(["--root", str(tmp_path), "--no-opencv", "--noise-floor", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{torch.get_num_threads()} torch threads" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith(f"| {track_compare.NOISE_FLOOR} |"))
    cells = row.split(" | ")
    assert cells[1] == "3" and len(cells[3].split(" / ")) == 3 and float(cells[4]) >= 0
    assert float(cells[2].strip("*")) == pytest.approx(np.mean([float(value) for value in cells[3].split(" / ")]),
                                                       abs=1e-3)
    header = next(line for line in out.splitlines() if line.startswith("| sequence |"))
    assert header == "| sequence | frames | matching-only | noise floor: spread |"
    synth = next(line for line in out.splitlines() if line.startswith("| Synth01 |"))
    assert float(synth.split(" | ")[-1].rstrip(" |")) >= 0


def test_the_comparison_gives_each_design_a_paired_interval_over_sequences_against_matching_and_csrt() -> None:
    """The trackers were called "well above CSRT" from means over 10 and 7 sequences, where CSRT won 4 and 3 of
    them: a paired bootstrap over the sequences, printed with the table, says whether a gap holds beyond them."""
    from vidrnn.metrics import SequenceScore
    from vidrnn.tracker.evaluation import ScoreRow

    track_compare = _load("track_compare")
    aucs = {"vidrnn lstm #0": [0.5, 0.6, 0.7, 0.8], "vidrnn lstm #1": [0.7, 0.6, 0.7, 0.8],
            "matching-only": [0.6, 0.6, 0.7, 0.8], "CSRT": [0.1, 0.9, 0.2, 0.3]}
    scores = {(f"s{index}", tracker): ScoreRow(f"s{index}", tracker, SequenceScore(10, auc, auc, auc), 1.0)
              for tracker, values in aucs.items() for index, auc in enumerate(values)}
    designs = {"vidrnn lstm": ["vidrnn lstm #0", "vidrnn lstm #1"], "matching-only": ["matching-only"],
               "CSRT": ["CSRT"]}
    lines = track_compare.paired_intervals([f"s{index}" for index in range(4)], designs, scores)
    assert "95 % percentile interval from 2000 bootstrap resamples of the 4 sequences" in lines[0]
    assert lines[2] == "| design | vs matching-only | vs CSRT |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[4:]}
    # the seeds are averaged per sequence first: lstm equals matching-only on every sequence
    assert rows["vidrnn lstm"][0] == "+0.000 [+0.000, +0.000], ahead on 0 of 4"
    assert rows["vidrnn lstm"][1].startswith("+0.300 [") and rows["vidrnn lstm"][1].endswith("ahead on 3 of 4 |")
    low, high = (float(value) for value in rows["vidrnn lstm"][1].split("[")[1].split("]")[0].split(", "))
    assert low < 0 < high  # CSRT's one win, by 0.3, keeps 0 inside: level
    assert rows["matching-only"][0] == "—" and set(rows) == {"vidrnn lstm", "matching-only"}


def test_the_paired_intervals_compare_the_sequences_the_means_score_and_say_how_many() -> None:
    """A sequence without a frame to score (the target absent after frame 1) has NaN scores: the means leave it out,
    but the paired table took it in and printed "+nan [+nan, +nan], ahead on 0 of 3"."""
    from vidrnn.metrics import SequenceScore
    from vidrnn.tracker.evaluation import ScoreRow

    track_compare = _load("track_compare")
    aucs = {"vidrnn lstm #0": [0.5, 0.9, 0.7], "matching-only": [0.4, 0.8, 0.7]}
    scores = {(f"s{index}", tracker): ScoreRow(f"s{index}", tracker, SequenceScore(10, auc, auc, auc), 1.0)
              for tracker, values in aucs.items() for index, auc in enumerate(values)}
    nan = float("nan")
    scores.update({("s1", tracker): ScoreRow("s1", tracker, SequenceScore(0, nan, nan, nan), 1.0) for tracker in aucs})
    designs = {"vidrnn lstm": ["vidrnn lstm #0"], "matching-only": ["matching-only"]}
    lines = track_compare.paired_intervals(["s0", "s1", "s2"], designs, scores)
    assert "resamples of the 2 sequences with a frame to score (1 without one left out, as in the means)" in lines[0]
    assert lines[4].startswith("| vidrnn lstm | +0.050 [+0.000, +0.100], ahead on 1 of 2 |")
    assert track_compare.paired_intervals(["s1"], designs, scores) == [
        "No paired intervals: none of the 1 sequences has a frame to score (the target absent after the first)"]


def test_the_noise_floor_moves_only_the_first_box_by_a_hundredth_of_a_pixel_at_most_alike_every_time() -> None:
    track_compare = _load("track_compare")
    first_box = np.array([10.0, 20.0, 30.0, 40.0])
    runs = track_compare.noise_floor_runs(lambda frames, box: [box], 4)
    assert list(runs) == list(track_compare.noise_floor_runs(lambda frames, box: [box], 4))  # seeded
    moves = [next(run(iter([]), first_box)) - first_box for run in runs.values()]
    assert all(np.abs(move).max() <= 0.01 and (move[2:] == 0).all() and (move[:2] != 0).all() for move in moves)
    assert len({tuple(move) for move in moves}) == 4


def test_the_clustered_interval_is_as_wide_as_the_recordings_disagree() -> None:
    """150 clips from 10 recordings whose clips agree: the variant is right on all of 6 recordings, the reference on
    the other 4. Per clip the +20 points look sure; per recording they are 6 draws against 4."""
    variants = _load("classify_variants")
    units = np.repeat(np.arange(10), 15)
    variant = (units < 6).astype(float)
    reference = 1 - variant
    point, low, high = variants.clustered_difference(variant, reference, list(units))
    per_clip = variants.clustered_difference(variant, reference, list(range(150)))
    assert point == per_clip[0] == pytest.approx(0.2)
    assert 0 < per_clip[1] < per_clip[2] < 0.4  # clips as if independent: clear of 0
    assert low < 0 < high and high - low > 3 * (per_clip[2] - per_clip[1])
    # seeds are averaged per clip first; the draws are fixed by the seed
    assert variants.clustered_difference(np.stack([variant, variant]), np.stack([reference, reference]),
                                         list(units)) == (point, low, high)
    assert variants.clustered_difference(variant, variant, list(units)) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        variants.clustered_difference(variant, reference[:-1], list(units))


def test_variant_verdicts_need_the_seeds_apart_and_the_interval_clear_of_zero() -> None:
    variants = _load("classify_variants")
    assert all((variants.VARIANT_DIR / f"{name}.yaml").is_file()
               for name in variants.VARIANTS + variants.ORDER_SHORTCUTS)
    assert variants.verdict([80.0, 81.0], [78.0, 79.5], (0.005, 0.04)) == "above"
    assert variants.verdict([80.0, 81.0], [78.0, 79.5], (-0.01, 0.04)) == "level (seeds apart, interval holds 0)"
    assert variants.verdict([80.0, 83.0], [78.0, 80.5], (0.01, 0.04)) == "level (seed ranges overlap)"
    assert variants.verdict([70.0, 71.0], [72.0, 75.0], (-0.05, -0.01)) == "below"


def test_the_reference_is_a_baseline_never_a_shortcut_probe() -> None:
    """first_frame and magnitude_pool solve part of an order task without reading order: they are reported, but a
    shortcut best on validation became the reference every model was judged against."""
    variants = _load("classify_variants")
    assert variants.is_baseline("temporal_conv") and variants.is_baseline("difference_pool+antisymmetric")
    assert not any(variants.is_baseline(name) for name in ("magnitude_pool", "first_frame+unidirectional", "lstm",
                                                          "mean_pool+first_frame"))

    def runs(val_acc: float) -> list:
        return [variants.Run(seed, 0.7, 0.7, val_acc, 0.5, 1.0) for seed in (0, 1)]

    results = {"lstm": runs(0.9), "first_frame": runs(0.95), "magnitude_pool": runs(0.85), "mean_pool": runs(0.6),
               "difference_pool": runs(0.8)}
    reference, why = variants.pick_reference(results, None)
    assert reference == "difference_pool" and "next mean_pool 60.0 %" in why
    assert variants.pick_reference({name: results[name] for name in ("lstm", "first_frame")}, None)[0] is None


def _touch(root: Path, *relative: str) -> None:
    for name in relative:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def _record_split(run: Path, index) -> list[str]:
    """Write the run's splits.json as the data module does, for the test clips of ``index``; their keys."""
    from vidrnn.data.splits import write_split_record

    keys = [index.key(record) for record in index.split("test")]
    counts = {name: {"test": sum(record.label == name for record in index.split("test"))} for name in index.classes}
    write_split_record(run / "lightning_logs" / "version_0" / "splits.json", index.split_rule, index.root, counts,
                       {"test": keys}, {"test": [], "val": [], "different_labels": []},
                       test_groups=index.recording_groups(keys))
    return keys


def test_the_bootstrap_units_are_the_recording_groups_the_data_module_assigned(tmp_path: Path) -> None:
    """A class folder's first sub-folder is its recording (dog/rec1, whatever lies deeper), a clip directly in a class
    folder is a recording of its own, _g01_ is a group of its class, and a test/ folder is no class. The benchmark
    guessed units from the keys by UCF101's rule: rec1/partA and rec1/partB two units, every clip of test/ in class
    "test", the two classes' g01 one unit."""
    from vidrnn.data.folders import folder_index

    variants = _load("classify_variants")
    root = tmp_path / "videos"
    _touch(root, "train/dog/rec9/a.mp4", "train/cat/rec9/a.mp4", "test/dog/rec1/partA/a.mp4",
           "test/dog/rec1/partB/b.mp4", "test/dog/c.mp4", "test/dog/d.mp4", "test/dog/v_dog_g01_c01.mp4",
           "test/cat/v_cat_g01_c01.mp4")
    keys = _record_split(tmp_path / "run", folder_index(root))
    units = variants.recorded_units(tmp_path / "run")
    rows = [key + suffix for key in keys for suffix in ("", "@backwards")]
    assert dict(zip(rows, variants.row_units(rows, units))) == {
        **{key + suffix: unit for key, unit in (
            ("test/cat/v_cat_g01_c01.mp4", ("cat", "cat/g01")), ("test/dog/c.mp4", ("dog", "test/dog/c.mp4")),
            ("test/dog/d.mp4", ("dog", "test/dog/d.mp4")), ("test/dog/rec1/partA/a.mp4", ("dog", "dog/rec1")),
            ("test/dog/rec1/partB/b.mp4", ("dog", "dog/rec1")), ("test/dog/v_dog_g01_c01.mp4", ("dog", "dog/g01")))
           for suffix in ("", "@backwards")}}


def test_the_bootstrap_units_of_unlabeled_videos_are_their_first_sub_folders(tmp_path: Path) -> None:
    """Unlabeled videos (order tasks) are grouped by the first sub-folder under the root: the benchmark made each clip
    of a session its own unit, an interval too narrow by the sessions' count."""
    from vidrnn.data.folders import unlabeled_index

    variants = _load("classify_variants")
    root = tmp_path / "videos"
    _touch(root, *(f"session{session}/clip{clip}.mp4" for session in range(6) for clip in range(3)))
    keys = _record_split(tmp_path / "run", unlabeled_index(root, test_fraction=0.5))
    units = variants.row_units([f"{key}@shuffled" for key in keys], variants.recorded_units(tmp_path / "run"))
    assert units == [("unlabeled", f"unlabeled/{key.split('/')[0]}") for key in keys]
    assert len(keys) == 9 and len(set(units)) == 3


def test_a_run_whose_splits_json_records_no_groups_is_refused(tmp_path: Path) -> None:
    """Without the groups the data module assigned there is nothing honest to resample: guessing them from the keys
    is what gave the wrong intervals."""
    variants = _load("classify_variants")
    with pytest.raises(RuntimeError, match=f"no splits.json under {re.escape(str(tmp_path))}"):
        variants.recorded_units(tmp_path)
    record = tmp_path / "lightning_logs" / "version_0" / "splits.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"rule": "RULE", "clip_lists": {"test": ["A/a.avi"]}}))
    with pytest.raises(RuntimeError, match=f"{re.escape(str(record))} records no test_groups.*written by an older "
                                           "vidrnn.*run the benchmark with this one"):
        variants.recorded_units(tmp_path)
    with pytest.raises(RuntimeError, match="B/b.avi@backwards: not a test clip of the run's splits.json"):
        variants.row_units(["B/b.avi@backwards"], {"A/a.avi": ("A", "g01")})


_VARIANT_KEYS = [f"{name}/v_{name}_g{group:02d}_c{clip}.avi" for name in ("A", "B") for group in (1, 2, 3)
                 for clip in (1, 2)]
#: The real ``subprocess.run``, for the commands :func:`_fake_vidrnn` does not stand in for (``git``).
_REAL_RUN = subprocess.run


def _fake_vidrnn(commands: list, failing: set[tuple[str, str]] = frozenset()):
    """A stand-in for ``vidrnn fit`` and ``vidrnn predict`` as classify_variants runs them: each writes what the real
    command writes into the run's folder (``RUNS/VARIANT-seedS/fit|predict``); a (variant, seed) in ``failing`` fails
    its fit as a refused one does. A joined variant answers as its first file. lstm is right on every clip, mean_pool
    misses one, per_frame misses A g03 (two clips); at the tested epoch 0 per_frame validates best, mean_pool
    worst."""
    right = {"lstm": set(_VARIANT_KEYS), "mean_pool": set(_VARIANT_KEYS[1:]),
             "per_frame": set(_VARIANT_KEYS[:4] + _VARIANT_KEYS[6:])}
    tested_val = {"lstm": 0.7, "mean_pool": 0.6, "per_frame": 0.8}

    def fake_run(command: list[str], **options) -> subprocess.CompletedProcess:
        if command[0] != sys.executable:
            return _REAL_RUN(command, **options)
        commands.append((command, options))
        value = {name: command[position + 1] for position, name in enumerate(command) if name.startswith("--")}
        variant = Path(value["--trainer.logger.save_dir"]).parent.name.rsplit("-seed", 1)[0].split("+")[0]
        if command[2] == "fit" and (variant, value["--seed_everything"]) in failing:
            return subprocess.CompletedProcess(command, 1, "", "Traceback (most recent call last):\n  ...\n"
                                                                "vidrnn: error: refused for the test\n")
        log = Path(value["--trainer.logger.save_dir"]) / "lightning_logs" / "version_0"
        log.mkdir(parents=True)
        if command[2] == "fit":
            (log / "checkpoints").mkdir()
            torch.save({"epoch": 0, "state_dict": {}, "hyper_parameters": {}}, log / "checkpoints" / "epoch=0-step=2.ckpt")
            torch.save({"epoch": 1, "state_dict": {}, "hyper_parameters": {}}, log / "checkpoints" / "latest.ckpt")
            (log / "metrics.csv").write_text(
                "epoch,step,val/acc,val/loss,test/acc,test/mean_class_acc\n"
                f"0,2,{tested_val[variant]},0.5,,\n1,5,0.99,0.1,,\n"
                f"1,5,,,{len(right[variant]) / len(_VARIANT_KEYS)},0.5\n")
        else:
            assert value["--ckpt_path"].endswith("epoch=0-step=2.ckpt")
            (log / "predictions.csv").write_text("clip,true_label,predicted_label,probability\n" + "".join(
                f"{key},{key[0]},{key[0] if key in right[variant] else 'other'},0.9\n" for key in _VARIANT_KEYS))
            (log / "splits.json").write_text(json.dumps({"test_groups": {key: [key[0], key.split("_")[2]]
                                                                         for key in _VARIANT_KEYS}}))
        return subprocess.CompletedProcess(command, 0, "", "")

    return fake_run


def _table_rows(out: str) -> dict[str, list[str]]:
    return {line.split(" | ")[0].strip("| "): line.split(" | ") for line in out.splitlines() if line.startswith("| ")}


def _variant_benchmark(monkeypatch: pytest.MonkeyPatch, config: Path, dataset: str, *arguments: str,
                       failing: set[tuple[str, str]] = frozenset()):
    """classify_variants with :func:`_fake_vidrnn` for its runs, a base ``config`` of ``dataset`` and its command line
    ``arguments``: the module and the list the runs' commands go to."""
    variants = _load("classify_variants")
    commands = []
    monkeypatch.setattr(variants.subprocess, "run", _fake_vidrnn(commands, failing))
    config.write_text(f"data:\n  dataset: {dataset}\n")
    monkeypatch.setattr(sys, "argv", ["classify_variants.py", "--config", str(config), "--root", "", *arguments])
    return variants, commands


def _refused(variants, capsys: pytest.CaptureFixture) -> str:
    """What classify_variants says refusing its command line: a usage error (exit status 2, argparse's)."""
    with pytest.raises(SystemExit) as refused:
        variants.main()
    said = capsys.readouterr().err
    assert refused.value.code == 2, said
    return said


def test_the_variant_table_links_the_data_seed_and_picks_the_reference_on_validation(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs stand in for vidrnn fit and predict (each writes what the real command writes). mean_pool tests best
    but validates worst: the reference is per_frame, by its validation accuracy at the tested checkpoint (epoch 0),
    not at a later epoch the checkpoint does not hold."""
    config = tmp_path / "base.yaml"
    variants, commands = _variant_benchmark(monkeypatch, config, "ucf101", "--seeds", "0", "1", "--variants", "lstm",
                                            "mean_pool", "per_frame", "--runs", str(tmp_path / "runs"))
    assert variants.main() == 0
    out = capsys.readouterr().out
    assert len(commands) == 12 and {command[2] for command, _ in commands} == {"fit", "predict"}
    for command, _ in commands:  # the seed moves the data's draws too, in the fit and in its predictions
        assert command[command.index("--data.seed") + 1] == command[command.index("--seed_everything") + 1]
    # the test recordings stay, but an order task's altered test copies are drawn from data.seed: said, not hidden
    assert "the test recordings are the fold's, the same in every run" in out
    assert "order verification's shuffled test copies are drawn from data.seed, so they differ" in out
    assert "reference: per_frame: the baseline with the highest mean validation accuracy (80.0 %; next mean_pool" in out
    rows = _table_rows(out)
    assert rows["per_frame"][5:8] == ["80.0 %", "reference", "-"]
    # lstm's seeds are all above per_frame's, but its whole gain lies in one of the six recordings: not clear of 0
    assert rows["lstm"][5] == "70.0 %" and rows["lstm"][6].startswith("+16.7 [+0.0, ")
    assert rows["lstm"][7] == "level (seeds apart, interval holds 0)"
    assert "resamples of the test set's 6 (class, recording group) units" in out
    # a data.seed that --extra pins is the same in every run, on UCF101 too: the opening line must not say it varies
    argv = sys.argv
    monkeypatch.setattr(sys, "argv", [*argv, "--runs", str(tmp_path / "pinned-runs"), "--extra", "--data.seed", "5"])
    assert variants.main() == 0
    assert "seed_everything only: data.seed stays at one value (the same in every run as given" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", argv)

    # a dataset whose data.seed draws the test split keeps it fixed, and says what the seeds then vary
    commands.clear()
    config.write_text("data:\n  dataset: folders\n")
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--runs", str(tmp_path / "folder-runs")])
    variants.main()
    assert commands and not any("--data.seed" in command for command, _ in commands)
    out = capsys.readouterr().out
    assert "seed_everything only: data.seed stays at one value (dataset folders: it would also change the test" in out
    assert "initialisation and dropout alone: batch order and training segment offsets come from data.seed" in out
    assert variants.configured(["--config", str(config), "--data.dataset=ucf101"], "data.dataset") == "ucf101"


def test_a_failed_run_keeps_the_finished_ones_their_table_and_their_folders(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """One refused run ended the script in a traceback: no table, and the temporary folder with every finished run's
    checkpoints and predictions deleted. The runs now stay in --runs, a failure is reported with its reason beside the
    table of the runs that finished (exit status 1), and the same command goes on: finished runs are read, not redone,
    while a run made with other settings is refused before anything starts."""
    runs = tmp_path / "runs"
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0", "1",
                                            "--variants", "mean_pool", "lstm", "per_frame", "--runs", str(runs),
                                            failing={("lstm", "1")})
    argv = sys.argv
    assert variants.main() == 1
    captured = capsys.readouterr()
    assert f"runs kept in {runs}" in captured.out
    assert "lstm seed 1 failed: vidrnn: error: refused for the test" in captured.err
    assert f"(its output: {runs / 'lstm-seed1' / 'fit.log'})" in captured.err
    rows = _table_rows(captured.out)
    assert set(rows) >= {"mean_pool", "per_frame"} and "lstm" not in rows
    assert "not in the table, a run failed: lstm (seed 1)" in captured.out
    assert len(commands) == 11  # every run was tried
    assert sorted(runs.glob("*/fit/lightning_logs/version_0/checkpoints/epoch=0-step=2.ckpt")) == [
        runs / run / "fit" / "lightning_logs" / "version_0" / "checkpoints" / "epoch=0-step=2.ckpt"
        for run in ("lstm-seed0", "mean_pool-seed0", "mean_pool-seed1", "per_frame-seed0", "per_frame-seed1")]

    # the same command again: only the failed run is run, the rest read from their folders
    commands.clear()
    monkeypatch.setattr(variants.subprocess, "run", _fake_vidrnn(commands))
    assert variants.main() == 0
    assert [(command[2], command[command.index("--seed_everything") + 1]) for command, _ in commands] == [
        ("fit", "1"), ("predict", "1")]
    rows = _table_rows(capsys.readouterr().out)
    assert rows["lstm"][7] == "level (seeds apart, interval holds 0)" and rows["per_frame"][6] == "reference"

    # other settings over the same folder: refused before any run, naming the run and what to do
    commands.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--extra", "--trainer.max_epochs", "3"])
    said = _refused(variants, capsys)
    assert re.search(f"--runs: {re.escape(str(runs / 'mean_pool-seed0'))} holds mean_pool seed 0 made with other "
                     "settings.*another --runs", said), said
    assert not commands


def test_a_kept_run_is_refused_when_a_file_an_argument_names_has_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only --config files were hashed, and only as ``--config PATH``: a kept run was read back though the encoder it
    started from (``--model.init_from pre/seed{seed}.ckpt``) or a ``--config=mine.yaml`` had changed since. Every
    argument naming a file, in either form, is now hashed into the settings; a folder (the data) is not."""
    from vidrnn.files import file_sha256

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pre").mkdir()
    (tmp_path / "data").mkdir()
    for seed in (0, 1):
        (tmp_path / "pre" / f"seed{seed}.ckpt").write_bytes(b"pretrained")
    Path("mine.yaml").write_text("trainer:\n  max_epochs: 2\n")
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0", "1",
                                            "--variants", "mean_pool", "--runs", "runs", "--extra",
                                            "--model.init_from", "pre/seed{seed}.ckpt", "--config=mine.yaml",
                                            "--data.cache_dir", "data")
    assert variants.main() == 0
    record = json.loads((tmp_path / "runs" / "mean_pool-seed0" / "run.json").read_text())
    assert set(record["settings"]["files"]) == {  # not the folder
        str(tmp_path / "base.yaml"), str(variants.VARIANT_DIR / "mean_pool.yaml"), "pre/seed0.ckpt", "mine.yaml"}
    (tmp_path / "data" / "more.npy").write_bytes(b"the user's to keep the same")
    commands.clear()
    assert variants.main() == 0 and not commands  # the same files: read back
    assert "mean_pool seed 0: test 91.7 %, val 60.0 %, 0 s (kept from an earlier command)" in capsys.readouterr().err

    for changed, other in ((tmp_path / "pre" / "seed0.ckpt", b"other weights"),  # as re-running the pretraining does
                           (tmp_path / "mine.yaml", b"trainer:\n  max_epochs: 3\n")):
        original = changed.read_bytes()
        changed.write_bytes(other)
        assert f"{tmp_path / 'runs' / 'mean_pool-seed0'} holds mean_pool seed 0 made with other settings" in _refused(
            variants, capsys)
        assert not commands
        changed.write_bytes(original)
    job = variants.Job("lstm", 0, tmp_path, ("--config=mine.yaml", "--model.init_from=pre/seed1.ckpt",
                                                 "--data.cache_dir", "data"))
    assert job.settings()["files"] == {"mine.yaml": file_sha256(tmp_path / "mine.yaml"),
                                       "pre/seed1.ckpt": file_sha256(tmp_path / "pre" / "seed1.ckpt")}


def test_a_run_records_the_code_that_made_it_and_kept_runs_of_other_code_are_said_once(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept run is read back whatever code made it: its numbers may come from a vidrnn that has changed since. Each
    run now records the checkout's commit and whether it had uncommitted changes, and the start says which kept runs
    other code made (or code with uncommitted changes, which cannot be told apart), without refusing them."""
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0", "1",
                                            "--variants", "mean_pool", "--runs", str(tmp_path / "runs"))
    head = _REAL_RUN(["git", "-C", str(variants.REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert variants.code_version()["commit"] == head.stdout.strip()
    assert variants.code_version(tmp_path) == "unknown"  # outside a git checkout
    made = {"commit": "a" * 40, "uncommitted changes": False}
    monkeypatch.setattr(variants, "code_version", lambda: made)
    assert variants.main() == 0
    assert json.loads((tmp_path / "runs" / "mean_pool-seed1" / "run.json").read_text())["code"] == made
    capsys.readouterr()
    commands.clear()
    assert variants.main() == 0 and not commands
    assert "kept runs" not in capsys.readouterr().out  # the same code: nothing to say

    monkeypatch.setattr(variants, "code_version", lambda: {"commit": "b" * 40, "uncommitted changes": True})
    assert variants.main() == 0 and not commands  # said, not refused
    captured = capsys.readouterr()
    said = [line for line in captured.out.splitlines() if line.startswith("kept runs")]
    assert said == ["kept runs not known to be made by this checkout's code (commit bbbbbbbbbbbb with uncommitted "
                    "changes), read as they are (a change of code need not change results; remove a run's folder to "
                    "run it again): mean_pool seed 0, mean_pool seed 1 by commit aaaaaaaaaaaa"]
    assert captured.out.index(said[0]) < captured.out.index("| variant |")


def test_a_variant_the_task_refuses_is_refused_before_the_first_run(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """antisymmetric scores a clip against its reversal, the arrow of time only: on a class task its fit was refused
    after the other variants had trained, which the script then lost."""
    config = tmp_path / "base.yaml"
    variants, commands = _variant_benchmark(monkeypatch, config, "demo", "--seeds", "0", "--variants", "mean_pool",
                                            "lstm+antisymmetric", "--runs", str(tmp_path))
    assert ("--variants lstm+antisymmetric: model.antisymmetric is for data.objective arrow_of_time only, the runs' "
            "is classes") in _refused(variants, capsys)
    assert not commands
    job = variants.Job("antisymmetric", 0, tmp_path, ("--config", str(config), "--config",
                                                       str(variants.VARIANT_DIR / "antisymmetric.yaml"),
                                                       "--data.objective", "arrow_of_time"))
    assert variants.task_refusals([job]) == []


def test_the_runs_read_relative_paths_from_the_callers_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs ran in the repository, so a relative --extra path (and a config's relative default) meant a folder
    of the checkout, while --root, --splits, --cache_dir and --config meant the caller's. Now every run starts where
    the caller is, with this checkout's vidrnn and its variant files by absolute path."""
    caller = tmp_path / "caller"
    caller.mkdir()
    monkeypatch.chdir(caller)
    variants, commands = _variant_benchmark(monkeypatch, Path("base.yaml"), "ucf101", "--seeds", "0", "--variants",
                                            "mean_pool", "--extra", "--data.cache_dir", "cache")
    assert variants.main() == 0
    assert (caller / "runs" / "classify_variants" / "mean_pool-seed0" / "fit").is_dir()  # the default, here
    for command, options in commands:
        assert Path(options.get("cwd") or Path.cwd()) == caller
        assert command[:2] == [sys.executable, str(BENCHMARKS / "vidrnn_checkout.py")]
        configs = [command[position + 1] for position, name in enumerate(command) if name == "--config"]
        assert configs == [str(caller / "base.yaml"), str(variants.VARIANT_DIR / "mean_pool.yaml")]


def test_the_runs_use_this_checkouts_vidrnn_whatever_the_callers_directory_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m vidrnn`` puts the working directory first on sys.path: a caller's directory holding another
    vidrnn (a clone, a worktree) ran that code instead of this checkout's."""
    from vidrnn import __version__

    decoy = tmp_path / "vidrnn"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("__version__ = 'decoy'\n")
    for name in ("__main__.py", "cli.py"):
        (decoy / name).write_text("raise SystemExit('the decoy vidrnn ran')\n")
    monkeypatch.chdir(tmp_path)
    variants = _load("classify_variants")
    variants._run(variants.vidrnn_command("--version"), tmp_path / "version.log")
    assert (tmp_path / "version.log").read_text() == f"vidrnn {__version__}\n"


def test_conditions_sort_frames_by_what_the_truth_and_the_matching_evidence_show() -> None:
    from vidrnn.tracker.matching import EVIDENCE_DIM, Evidence

    track_conditions = _load("track_conditions")
    truth = np.array([[10.0, 10, 20, 20]] * 5 + [[np.nan] * 4] * 2 + [[10.0, 10, 20, 20]] * 20)
    truth[3, 0] += 10  # moves half its size in one frame (and back the next)
    held = np.zeros(len(truth), dtype=bool)
    held[6] = held[9] = True
    evidence = Evidence(torch.zeros(len(truth) - 1, EVIDENCE_DIM))
    evidence.part("response_level")[:] = torch.tensor([0.0, 1.0])  # mean 0, spread 1: heights are the values
    evidence.part("peak")[:, 2] = 5.0
    evidence.part("rivals")[:, 2] = 1.0
    evidence.part("rivals")[10, 2] = 4.5  # frame 11: a rival nearly as high as the best peak
    masks = track_conditions.conditions(truth, held, evidence.values)
    assert np.flatnonzero(masks["after absence"]).tolist() == list(range(7, 22))  # 15 frames after the NaN run
    assert np.flatnonzero(masks["held"]).tolist() == [9]  # frame 6 is absent: it never counts
    assert np.flatnonzero(masks["fast motion"]).tolist() == [3, 4]
    assert np.flatnonzero(masks["look-alike"]).tolist() == [11]
    assert masks["all"].sum() == len(truth) - 1 - 2  # not the given first frame, not the absent ones
    assert not (masks["other"] & (masks["held"] | masks["after absence"])).any()


def test_conditions_success_auc_equals_tracking_each_head_online(tmp_path: Path) -> None:
    """track_conditions scores every head from one matching run; that is only honest because the matching box steers
    every search and the head only reports — so its AUC must equal the head's own online run, frame for frame."""
    from vidrnn.data.synthetic_tracking import make_tracking_sequences
    from vidrnn.data.tracking_sequences import load_sequence
    from vidrnn.metrics import success_auc
    from vidrnn.tracker.evaluation import evaluate
    from vidrnn.tracker.geometry import SearchGeometry
    from vidrnn.tracker.head import RecurrentBoxHead
    from vidrnn.tracker.runtime import Tracker
    from vidrnn.tracker.settings import TrackerSettings

    track_conditions = _load("track_conditions")
    sequence = load_sequence(make_tracking_sequences(tmp_path, num_sequences=1, num_frames=10, size=(96, 128),
                                                     seed=3)[0])
    settings = TrackerSettings(geometry=SearchGeometry(size=128), template_cells=5, scale_rate=0.3)
    head = RecurrentBoxHead(cell="lstm", hidden_size=8, rule=settings.rule)
    with torch.no_grad():
        head.out.bias.copy_(torch.tensor([0.2, 0.1, 0.05, 0.0]))  # a head whose boxes differ from the matching ones
    tracker = Tracker.build(settings, head)
    masks, ious = track_conditions.head_ious({"head": tracker}, sequence)
    online = {row.tracker: row.score.success_auc
              for row in evaluate({"head": tracker.track, "matching-only": Tracker(tracker.search).track}, [sequence],
                                  progress=False) if row.sequence == "MEAN"}
    assert online["head"] != online["matching-only"]
    for name in ("head", "matching-only"):
        assert success_auc(ious[name][masks["all"]]) == pytest.approx(online[name], abs=1e-9)


def test_conditions_say_their_mean_iou_pools_frames_and_give_the_mean_over_sequences_beside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The condition table pools frames (a long sequence weighs more), while track_compare.py and vidrnn test average
    per sequence: the same tracker read 0.503 in one table and 0.484 in the other, with no word why."""
    from conftest import save_untrained
    from vidrnn.data.synthetic_tracking import make_tracking_sequences
    from vidrnn.data.tracking_sequences import find_sequences
    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.tracker.evaluation import evaluate
    from vidrnn.tracker.runtime import load_tracker

    track_conditions = _load("track_conditions")
    root = tmp_path / "sequences"
    short, _ = make_tracking_sequences(root, num_sequences=2, num_frames=12, size=(96, 128), seed=3)
    truth = short / "groundtruth_rect.txt"
    truth.write_text("".join(truth.read_text().splitlines(keepends=True)[:4]))  # 4 frames beside 12
    settings = {"geometry": {"size": 128}, "template_cells": 5}
    checkpoint = save_untrained(FrameTracker(tracker=settings, hidden_size=8), tmp_path / "head.ckpt")
    assert track_conditions.main(["--ckpt", f"lstm={checkpoint}", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "mean IoU per condition over the frames of all sequences pooled" in out
    assert "| condition | frames, pooled over sequences |" in out
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in out.splitlines() if line.startswith("| all")}
    matching = load_tracker(checkpoint, matching_only=True, device="cpu")
    online = evaluate({"matching-only": matching.track}, find_sequences(root), progress=False)[-1].score
    per_sequence = rows["all, mean over sequences (each weighing the same)"]
    assert per_sequence[1] == "2 sequences" and float(per_sequence[2]) == pytest.approx(online.mean_iou, abs=5e-4)
    assert rows["all"][1] == "14" and rows["all"][2] != per_sequence[2]


def test_conditions_refuse_a_head_that_steers_its_searches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint saved with redetect_below > 0 widens its searches where its head doubts, so one matching run's
    evidence does not give its boxes: scoring it there reported other boxes than ``vidrnn track`` gives."""
    from conftest import save_untrained
    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.tracker.runtime import load_tracker

    track_conditions = _load("track_conditions")
    model = FrameTracker(tracker={"geometry": {"size": 128}, "template_cells": 5}, hidden_size=8, confidence=True,
                         redetect_below=0.5)
    checkpoint = save_untrained(model, tmp_path / "conf.ckpt")
    tracker = load_tracker(checkpoint, device="cpu")
    with pytest.raises(ValueError, match="conf #0: saved with redetect_below > 0.*track_compare.py"):
        track_conditions.head_ious({"conf #0": tracker}, None)
    monkeypatch.setattr(track_conditions, "load_tracker", lambda path, device: tracker)
    with pytest.raises(SystemExit) as refused:
        track_conditions.main(["--ckpt", f"conf={checkpoint}", "--root", str(tmp_path)])
    assert refused.value.code == 2 and "track_compare.py, which tracks every checkpoint online" in capsys.readouterr().err


@pytest.mark.slow
def test_the_quick_fault_run_loses_nothing(tmp_path: Path) -> None:
    """benchmarks/faults.py --quick: bad inputs through every command, kills, two extractions at once."""
    faults = _load("faults")
    summary = faults.run_faults(tmp_path, quick=True, kills=1, seed=0)
    assert summary.inputs_tried == 3 * (len(faults.QUICK_KINDS) + 1)  # and the good video, through each command
    assert [report.kills for report in summary.kills] == [1, 1, 0] and summary.kills[2].runs == 2
    assert (summary.lost, summary.duplicated, summary.corrupt, summary.tracebacks) == (0, 0, 0, 0)
    assert summary.without_reason == summary.wrong_statuses == 0


def test_extraction_benchmark_measures_the_cnn_the_decoders_and_the_pipeline(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrnn.data.synthetic import make_classification_dataset

    root = make_classification_dataset(tmp_path, classes=["Grow", "Shrink"], groups=3, clips_per_group=1,
                                       num_frames=8, size=(48, 64), seed=0)
    extract = _load("extract")
    monkeypatch.setattr(sys, "argv", ["extract.py", "--root", str(root), "--videos", "6", "--rounds", "1", "--cnn",
                                      "tiny", "--segments", "4", "--batch-size", "8", "--workers", "1", "--device", "cpu"])
    extract.main()
    lines = capsys.readouterr().out.splitlines()
    assert "6 videos, CNN tiny" in lines[1]  # what is measured comes first, each round's row as it is measured
    assert lines[2].split() == ["round", "CNN", "only", "decode", "ceiling", "end", "to", "end", "ratio"]
    frames, cpu_line = lines[-1].split(" frames a round; ")
    cpu = [float(word) for word in cpu_line.replace(";", " ").split() if word.replace(".", "").isdigit()]
    assert frames == "24" and cpu_line.startswith("CPU a frame") and len(cpu) == 3 and min(cpu) > 0, lines[-1]
    median = lines[-3].split()
    cnn, decode, full, ratio = (float(value) for value in [*median[1:7:2], median[-1]])
    assert median[0] == "median" and min(cnn, decode, full) > 0
    assert ratio == pytest.approx(full / min(cnn, decode), abs=0.01)
    assert lines[-2] == f"median of the rounds' ratios: {float(lines[-4].split()[-1]):.2f}"  # one round: its own


def test_classify_benchmark_runs_a_checkpoint_with_the_nearly_free_cnn(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrnn.data.synthetic import make_classification_dataset

    root = make_classification_dataset(tmp_path, classes=["Grow", "Shrink"], groups=3, clips_per_group=1,
                                       num_frames=8, size=(48, 64), seed=0)
    checkpoint = _load("faults").untrained_checkpoint(tmp_path / "untrained.ckpt", ["Grow", "Shrink"])
    classify = _load("classify")
    monkeypatch.setattr(sys, "argv", ["classify.py", "--ckpt", str(checkpoint), "--root", str(root), "--videos", "6",
                                      "--rounds", "1", "--cnn", "tiny", "--batch-size", "8", "--workers", "1",
                                      "--skip-memory", "--profile", "5"])
    classify.main()
    out = capsys.readouterr().out
    lines, profile = out.split("profiled end-to-end run: ")[0].splitlines(), out.split("profiled end-to-end run: ")[1]
    assert lines[0].startswith("6 videos, CNN tiny, segments sampling, 8 steps, device cpu")
    assert "Ordered by: internal time" in profile and "List reduced" in profile  # the main process's costliest calls
    median = lines[-3].split()
    cnn, decode, full, ratio = (float(value) for value in [*median[1:7:2], median[-1]])
    assert median[0] == "median" and min(cnn, decode, full) > 0
    assert ratio == pytest.approx(full / min(cnn, decode), abs=0.01)
    assert lines[-1].startswith("main process CPU a video end to end (median): ") and float(lines[-1].split()[-2]) > 0


def test_the_window_simulation_idles_workers_behind_a_long_video_only_when_the_window_is_short() -> None:
    decode_window = _load("decode_window")
    even = np.ones(40)
    assert decode_window.busy_share(even, workers=4, prefetch=2, window=8) == pytest.approx(1.0)
    # One video as long as four at the front: with the window as long as the queues, the three other workers finish
    # the rest of the window and wait; twice as long, they find work past it.
    straggler = np.concatenate([[4.0], np.ones(99)])
    short, long_ = (decode_window.busy_share(straggler, workers=4, prefetch=2, window=m * 8) for m in (1, 2))
    assert short < 0.9 and long_ > 0.98
    # the work is all done, none twice: busy time is the sum of the times
    assert decode_window.busy_share(np.array([3.0, 1.0]), workers=2, prefetch=1, window=2) == pytest.approx(4 / 6)


def test_the_window_measurement_decodes_at_both_windows_and_restores_the_default(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vidrnn import workers
    from vidrnn.data.synthetic import make_classification_dataset
    from vidrnn.data.ucf101 import ucf101_index
    from vidrnn.sampling import SamplingSpec

    root = make_classification_dataset(tmp_path, classes=["Grow", "Shrink"], groups=3, clips_per_group=1,
                                       num_frames=8, size=(48, 64), seed=0)
    decode_window = _load("decode_window")
    default = workers._WINDOW
    decode_window.measure(ucf101_index(root, fold=1).video_items(), SamplingSpec(num_segments=4, short_side=64),
                          workers=1, rounds=2)
    lines = capsys.readouterr().out.splitlines()
    ratios = []
    for round_, line in enumerate(lines[:2], start=1):
        found = re.fullmatch(rf"1 workers, round {round_}: window x1 ([\d,]+) f/s, x2 ([\d,]+) f/s, ratio ([\d.]+)", line)
        one, two, ratio = (float(value.replace(",", "")) for value in found.groups())
        assert min(one, two) > 0 and ratio == pytest.approx(two / one, rel=0.01, abs=0.002)
        ratios.append(ratio)
    assert lines[2].startswith("1 workers: median ratio x2 / x1 ")
    assert float(lines[2].split()[-1]) == pytest.approx((ratios[0] + ratios[1]) / 2, abs=0.0015)  # printed rounded
    assert workers._WINDOW == default


def test_a_long_benchmark_run_repeats_the_clips_under_new_keys() -> None:
    from vidrnn.embedding import VideoItem

    extract = _load("extract")
    items = [VideoItem(Path(f"/videos/{name}.avi"), f"C/{name}.avi", "C") for name in "abcd"]
    assert [item.key for item in extract.spread(items, 2)] == ["C/a.avi", "C/c.avi"]
    long = extract.spread(items, 10)
    assert len({item.key for item in long}) == 10 and [item.path.stem for item in long] == list("abcdabcdab")


def test_the_gpu_subset_takes_whole_groups_from_both_sides_of_fold_1_within_its_budget(tmp_path: Path) -> None:
    from vidrnn.data.synthetic import make_classification_dataset
    from vidrnn.data.ucf101 import ucf101_index

    gpu_prepare = _load("gpu_prepare")
    assert gpu_prepare._alternating([1, 2, 3, 8, 9, 10, 11]) == [1, 8, 2, 9, 3, 10, 11]
    root = make_classification_dataset(tmp_path / "full", groups=10, clips_per_group=2, num_frames=4, size=(32, 48))
    full = ucf101_index(root, fold=1)
    clip_bytes = max(record.path.stat().st_size for record in full.records)
    clips, used = gpu_prepare.copy_subset(root, tmp_path / "subset", budget_bytes=clip_bytes * 2 * 2 * 3 + 1)
    subset = ucf101_index(tmp_path / "subset", fold=1)
    assert clips == len(subset.records) and used <= clip_bytes * 12 + 1
    copied_groups = {(record.path.parent.name, record.group) for record in subset.records}
    assert len(copied_groups) * 2 == clips  # whole groups (two clips each) only
    assert {"train", "test"} <= {record.split for record in subset.records}


def test_a_run_whose_named_file_changed_while_it_ran_is_not_recorded(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The files an argument names were hashed after the run: a checkpoint to start from rewritten during a fit (a
    pretraining re-run beside it) had the run recorded as made from the new one, and reused as such."""
    variants = _load("classify_variants")
    start = tmp_path / "pre.ckpt"
    start.write_bytes(b"pretraining A")
    job = variants.Job("lstm", 0, tmp_path / "lstm-seed0", ("--model.init_from", str(start)))

    def rewritten_during_the_fit(command: list[str], log: Path) -> None:
        start.write_bytes(b"pretraining B")

    monkeypatch.setattr(variants, "_run", rewritten_during_the_fit)
    monkeypatch.setattr(variants, "tested_checkpoint", lambda fit: (fit / "best.ckpt", 0))
    with pytest.raises(RuntimeError, match=f"{re.escape(str(start))} changed while the run read it"):
        variants.execute(job)
    assert job.recorded() is None


def _module_launches(source: str) -> list[int]:
    """The lines of ``source`` that build a command line starting the ``vidrnn`` package with ``-m``."""
    import ast

    return [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.List, ast.Tuple))
            and any(isinstance(first, ast.Constant) and first.value == "-m" and isinstance(second, ast.Constant)
                    and second.value == "vidrnn" for first, second in zip(node.elts, node.elts[1:]))]


def test_no_benchmark_starts_vidrnn_as_a_module_of_the_working_directory(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """faults.py and classify.py started ``python -m vidrnn``: a vidrnn package in the caller's directory ran instead
    of this checkout's. Every script starts vidrnn through benchmarks/vidrnn_checkout.py."""
    assert _module_launches('command = [sys.executable, "-m", "vidrnn", "classify"]\n') == [1]
    launching = {path.name: _module_launches(path.read_text(encoding="utf-8")) for path in BENCHMARKS.glob("*.py")}
    assert {name: lines for name, lines in launching.items() if lines} == {}
    decoy = tmp_path / "vidrnn"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy vidrnn ran')\n")
    monkeypatch.chdir(tmp_path)
    from vidrnn import __version__

    finished = subprocess.run(_load("faults").vidrnn("--version"), capture_output=True, text=True)
    assert finished.stdout == f"vidrnn {__version__}\n", finished.stderr


def test_the_up_front_checks_read_extra_config_files_in_command_line_order(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed link and the task refusals read the base and variant configs, then --extra's --KEY flags: a config
    given as --extra --config FILE (or --config=FILE) went unseen. They now read the runs' command line as LightningCLI
    does, in its order: a config after a flag overrides it, a flag after a config overrides that."""
    variants = _load("classify_variants")
    ucf101, arrow = tmp_path / "ucf101.yaml", tmp_path / "arrow.yaml"
    ucf101.write_text("data:\n  dataset: ucf101\n")
    arrow.write_text("data:\n  objective: arrow_of_time\nmodel:\n  antisymmetric: true\n")
    assert variants.configured(["--data.dataset", "folders", "--config", str(ucf101)], "data.dataset") == "ucf101"
    assert variants.configured([f"--config={ucf101}", "--data.dataset=folders"], "data.dataset") == "folders"
    assert variants.configured(["-c", str(arrow), "--trainer.max_epochs", "3"], "model.antisymmetric") is True
    assert variants.configured(["--config", str(arrow), "--model.antisymmetric", "false"],
                               "model.antisymmetric") is False
    assert variants.configured(["--config", str(arrow)], "data.dataset") == "demo"  # the data module's default

    # a base config of class folders, the dataset and the task from --extra's configs: linked, and not refused
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "folders", "--seeds", "3",
                                            "--variants", "lstm+antisymmetric", "--runs", str(tmp_path / "runs"),
                                            "--extra", "--config", str(ucf101), f"--config={arrow}")
    assert variants.main() == 0
    assert commands and all(command[command.index("--data.seed") + 1] == "3" for command, _ in commands)
    # the objective given before the config that sets it is overridden by it; after it, it overrides it
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--data.objective", "classes"])
    assert ("lstm+antisymmetric: model.antisymmetric is for data.objective arrow_of_time only, the runs' is classes"
            in _refused(variants, capsys))


def test_the_up_front_refusals_are_usage_errors_naming_the_argument(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals before any run ended with exit status 1, a failed run's, and an --extra config that could not be read
    in a traceback. Each is now a usage error (2) naming the argument and what to do."""
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text("data: [1\n")
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0",
                                            "--runs", str(tmp_path / "runs"))
    argv = sys.argv
    for arguments, said in (
            (["--variants", "lstm", "lstmx"], "--variants lstmx: no configs/variants/lstmx.yaml; name files of "
                                              "configs/variants"),
            (["--variants", "mean_pool", "--reference", "lstm"], "--reference lstm is not among --variants"),
            (["--variants", "lstm+antisymmetric"], "--variants lstm+antisymmetric: model.antisymmetric is for "
                                                   "data.objective arrow_of_time only"),
            (["--config", "missing.yaml", "--variants", "mean_pool"], "--config missing.yaml: not a readable config "
                                                                      "file"),
            (["--variants", "mean_pool", "--extra", "--config", "missing.yaml"], "--extra --config missing.yaml: not "
                                                                                 "a readable config file"),
            (["--variants", "mean_pool", "--extra", "--config=bad.yaml"], "--extra --config bad.yaml: not a readable "
                                                                          "config file"),
            (["--variants", "mean_pool", "--extra", "--trainer.max_epochs", "1", "--config"], "--extra: argument "
                                                                                              "-c/--config: expected "
                                                                                              "one argument")):
        monkeypatch.setattr(sys, "argv", [*argv, *arguments])
        assert said in _refused(variants, capsys)
    assert not commands


def test_a_kept_run_is_refused_when_a_file_its_config_files_name_has_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only files named on the command line were hashed: a splits file or a checkpoint to start from named inside a
    config (the base one, one given through --extra) could change and the kept run was read back as made from it.
    They are hashed now by the same rules: when the run starts, and a change while it ran leaves it unrecorded."""
    monkeypatch.chdir(tmp_path)
    Path("lists").mkdir()
    Path("lists/split.txt").write_text("A/v_A_g01_c1.avi\n")
    Path("pre.ckpt").write_bytes(b"pretraining A")
    Path("mine.yaml").write_text("model:\n  init_from: pre.ckpt\n")
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0",
                                            "--variants", "mean_pool", "--runs", "runs", "--extra", "--config",
                                            "mine.yaml")
    (tmp_path / "base.yaml").write_text("data:\n  dataset: ucf101\n  splits: lists/split.txt\n")
    assert variants.main() == 0
    record = json.loads((tmp_path / "runs" / "mean_pool-seed0" / "run.json").read_text())
    assert {"lists/split.txt", "pre.ckpt"} <= set(record["settings"]["files"])
    commands.clear()
    assert variants.main() == 0 and not commands  # the same files: read back
    for changed in (Path("lists/split.txt"), Path("pre.ckpt")):
        original = changed.read_bytes()
        changed.write_bytes(b"rewritten")
        assert "holds mean_pool seed 0 made with other settings" in _refused(variants, capsys)
        changed.write_bytes(original)
    assert not commands

    def rewritten_during_the_fit(command: list[str], log: Path) -> None:
        Path("pre.ckpt").write_bytes(b"pretraining B")

    monkeypatch.setattr(variants, "_run", rewritten_during_the_fit)
    monkeypatch.setattr(variants, "tested_checkpoint", lambda fit: (fit / "best.ckpt", 0))
    job = variants.Job("lstm", 0, tmp_path / "lstm-seed0", ("--config", "mine.yaml"))
    with pytest.raises(RuntimeError, match="pre.ckpt changed while the run read it"):
        variants.execute(job)
    assert job.recorded() is None


def test_a_kept_run_recorded_in_an_older_format_is_refused_saying_so_and_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run.json written by older code (its files' digests under "configs", as the first kept runs had them; or
    without the files its configs name) was refused as made with "other settings", with no word that this code cannot
    compare it. The refusal now says so, and what to do; the run stays where it is."""
    runs = tmp_path / "runs"
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0",
                                            "--variants", "mean_pool", "--runs", str(runs))
    assert variants.main() == 0
    kept = runs / "mean_pool-seed0"
    record = json.loads((kept / "run.json").read_text())
    assert record["format"] == variants.RECORD_FORMAT
    older = {"settings": {**record["settings"], "configs": record["settings"]["files"]}, "seconds": 1.0}
    del older["settings"]["files"]
    (kept / "run.json").write_text(json.dumps(older))
    commands.clear()
    said = _refused(variants, capsys)
    assert (f"--runs: {kept} holds mean_pool seed 0 recorded in an older format (run.json format not recorded, this "
            f"code writes {variants.RECORD_FORMAT}) by older code") in said
    assert "run with another --runs folder, or move that folder away to run it again" in said
    assert (kept / "run.json").is_file() and (kept / "fit").is_dir() and not commands

    # an older record of the settings this code would record is read back: nothing it lacks can differ
    del record["format"]
    (kept / "run.json").write_text(json.dumps(record))
    assert variants.main() == 0 and not commands


def test_a_kept_run_whose_record_cannot_be_read_is_refused_naming_it_and_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run.json that is not JSON (edited by hand, a disk error; the script writes it atomically) ended the command
    in a JSONDecodeError traceback. It is refused as a usage error naming the file; the run stays where it is."""
    runs = tmp_path / "runs"
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0",
                                            "--variants", "mean_pool", "--runs", str(runs))
    assert variants.main() == 0
    kept = runs / "mean_pool-seed0"
    (kept / "run.json").write_text('{"settings": ', encoding="utf-8")
    commands.clear()
    said = _refused(variants, capsys)
    assert f"--runs: {kept / 'run.json'} cannot be read as a run's record" in said
    assert "move that folder away to run it again" in said
    assert (kept / "run.json").read_text(encoding="utf-8") == '{"settings": ' and not commands


def test_the_up_front_checks_and_the_hashes_read_group_config_files_as_lightningcli_does(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI also takes a group's settings from a file (``--data FILE``, ``--data.backbone FILE``, a config's
    ``data: FILE``); the up-front checks read only ``--config`` files and ``--KEY`` options: an antisymmetric variant
    was refused though ``--data arrow.yaml`` made the task the arrow of time, ``--data ucf.yaml`` linked no data.seed,
    and a file such a group file names went unhashed. The runs' own parser reads them now."""
    monkeypatch.chdir(tmp_path)
    Path("lists").mkdir()
    Path("lists/split.txt").write_text("A/v_A_g01_c1.avi\n")
    Path("w.pt").write_bytes(b"weights")
    Path("arrow.yaml").write_text("objective: arrow_of_time\n")
    Path("ucf.yaml").write_text("dataset: ucf101\nsplits: lists/split.txt\n")
    Path("backbone.yaml").write_text("name: resnet18\nweights_path: w.pt\n")
    Path("nested").mkdir()
    Path("nested/data.yaml").write_text("dataset: ucf101\n")
    Path("nested/run.yaml").write_text("data: data.yaml\n")  # relative to the config, as LightningCLI reads it
    assert _configured(["--data", "arrow.yaml"], "data.objective") == "arrow_of_time"
    assert _configured(["--data", "arrow.yaml", "--data.objective", "classes"], "data.objective") == "classes"
    assert _configured(["--data=ucf.yaml"], "data.dataset") == "ucf101"
    assert _configured(["--config", "nested/run.yaml"], "data.dataset") == "ucf101"
    assert {"w.pt", "backbone.yaml"} <= set(_load("classify_variants").config_named_files(
        ["--data.backbone", "backbone.yaml"]))

    base = tmp_path / "base.yaml"
    variants, commands = _variant_benchmark(monkeypatch, base, "demo", "--seeds", "0", "--variants",
                                            "lstm+antisymmetric", "--runs", "arrow", "--extra", "--data", "arrow.yaml")
    assert variants.main() == 0 and commands  # not refused: the runs' task is the arrow of time
    for runs, extra in (("group", ["--data", "ucf.yaml"]), ("nested", ["--config", "nested/run.yaml"])):
        commands.clear()
        monkeypatch.setattr(sys, "argv", ["classify_variants.py", "--config", str(base), "--root", "", "--seeds", "0",
                                          "--variants", "mean_pool", "--runs", f"runs/{runs}", "--extra", *extra])
        assert variants.main() == 0
        assert commands and all(command[command.index("--data.seed") + 1] == "0" for command, _ in commands)
        assert "the seed spread covers seed_everything and data.seed" in capsys.readouterr().out
    files = json.loads(Path("runs/group/mean_pool-seed0/run.json").read_text())["settings"]["files"]
    assert {"ucf.yaml", "lists/split.txt"} <= set(files)
    files = json.loads(Path("runs/nested/mean_pool-seed0/run.json").read_text())["settings"]["files"]
    assert str(tmp_path / "nested" / "data.yaml") in files
    commands.clear()
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--data.datasett", "ucf101"])  # a typo: vidrnn fit refuses it
    assert "refused by vidrnn fit: unrecognized arguments: --data.datasett" in _refused(variants, capsys)
    assert not commands


def _configured(arguments: list[str], key: str) -> object:
    """The value of ``key`` that classify_variants reads from a run's command line ``arguments``."""
    return _load("classify_variants").configured(arguments, key)


def test_an_extra_setting_that_changes_a_variants_own_setting_is_refused_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """--extra went after the variant files and silently overrode them: --model.encoder.inputs both made the
    order-blind mean_pool and per_frame read frame changes, still labelled (and chosen) as the order-blind reference;
    --model.encoder.cell gru made every baseline a GRU. Such a setting is now refused, naming the variant, the key and
    both values; one equal to the variant's own, or of a key no variant file sets, is run."""
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--seeds", "0",
                                            "--runs", str(tmp_path / "runs"))
    argv = sys.argv
    for arguments, said in (
            (["--variants", "lstm", "mean_pool", "per_frame", "--extra", "--model.encoder.inputs", "both"],
             ["--variants mean_pool: --extra gives model.encoder.inputs both, configs/variants/mean_pool.yaml sets "
              "frames", "--variants per_frame: --extra gives model.encoder.inputs both, configs/variants/per_frame.yaml"
              " sets frames", "leave mean_pool out of this run (--variants), or write a variant file"]),
            (["--variants", "gru+unidirectional", "temporal_conv", "--extra", "--model.encoder.cell=gru"],
             ["--variants temporal_conv: --extra gives model.encoder.cell gru, configs/variants/temporal_conv.yaml "
              "sets conv"])):
        monkeypatch.setattr(sys, "argv", [*argv, *arguments])
        refused = _refused(variants, capsys)
        assert all(part in refused for part in said), refused
        assert "lstm:" not in refused and "gru+unidirectional:" not in refused
    assert not commands
    for runs, arguments in (("a", ["--variants", "lstm", "per_frame", "--extra", "--model.encoder.inputs", "frames"]),
                            ("b", ["--variants", "mean_pool", "--extra", "--model.encoder.residual", "false",
                                   "--model.encoder.hidden_size", "64"])):
        monkeypatch.setattr(sys, "argv", [*argv, "--runs", str(tmp_path / runs), *arguments])
        assert variants.main() == 0
    assert {command[2] for command, _ in commands} == {"fit", "predict"}


def test_runs_that_would_test_different_clips_are_refused_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """--extra --data.seed {seed} on class folders (data.seed draws their test split) ran every job, then died
    comparing them (RuntimeError: the runs predicted different test clips), and the opening line said data.seed stayed
    the same in every run. Such a plan is now refused before any run; with train/ and test/ folders, whose split
    data.seed does not draw, it runs, saying that data.seed varies."""
    root = tmp_path / "videos"
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "folders", "--seeds", "0", "1",
                                            "--variants", "lstm", "mean_pool", "--runs", str(tmp_path / "runs"),
                                            "--extra", "--data.seed", "{seed}")
    (tmp_path / "base.yaml").write_text(f"data:\n  dataset: folders\n  root: {root}\n")
    refused = _refused(variants, capsys)
    assert ("the runs would test different clips: lstm seed 0 has data.seed 0, lstm seed 1 data.seed 1 (they draw "
            "the test split of dataset folders)") in refused
    assert "give every run the same data.seed" in refused and "train/ and test/ folders" in refused
    assert not commands
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    assert variants.main() == 0
    out = capsys.readouterr().out
    assert "seed_everything and data.seed (" in out and "stays at one value" not in out
    # without --extra's {seed}, nothing varies data.seed there, and the line says so rather than blaming the split
    monkeypatch.setattr(sys, "argv", [*(argument for argument in sys.argv if argument not in ("--extra", "--data.seed",
                                                                                             "{seed}")),
                                      "--runs", str(tmp_path / "unseeded-runs")])
    assert variants.main() == 0
    assert ("data.seed stays at one value (the same in every run as given; --extra --data.seed {seed} would vary it"
            in capsys.readouterr().out)
    # on the demo, data.seed makes the videos: train/ and test/ folders are no way out there
    (tmp_path / "base.yaml").write_text("data:\n  dataset: demo\n")
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--runs", str(tmp_path / "demo-runs"), "--extra", "--data.seed",
                                      "{seed}"])
    refused = _refused(variants, capsys)
    assert "(on the demo data.seed makes the videos themselves)" in refused and "train/" not in refused
    assert "the test clips are the same in every run" in out


def test_runs_that_tested_different_clips_are_said_beside_the_table_without_a_traceback(
        capsys: pytest.CaptureFixture) -> None:
    """Runs whose test clips differ (videos added to a class folder between them) cannot be compared clip by clip:
    the table is printed, the variant marked, the reason said below it, and the caller told (False)."""
    variants = _load("classify_variants")
    units = {key: (key[0], key.split("_")[2]) for key in _VARIANT_KEYS}
    reference = variants.Run(0, 0.5, 0.5, 0.5, 0.5, 1.0, dict.fromkeys(_VARIANT_KEYS, True), units)
    other = variants.Run(0, 0.5, 0.5, 0.5, 0.5, 1.0, dict.fromkeys(_VARIANT_KEYS[1:], True), units)
    assert not variants.print_table({"lstm": [other], "mean_pool": [reference]}, "mean_pool", "named by --reference")
    out = capsys.readouterr().out
    assert _table_rows(out)["lstm"][5:7] == ["-", "not compared"]
    assert "lstm not compared with mean_pool: the runs predicted different test clips" in out


def test_one_seed_gives_no_verdict_and_a_repeated_seed_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one seed, "worst seed beats the reference's best" holds by construction, so the verdict said above or
    below on the interval alone, and "± 0.0" read as no seed variation; --seeds 0 0 counted one run twice. One seed
    now gives the mean alone and no verdict, said why; a repeated seed is refused before any run."""
    variants, commands = _variant_benchmark(monkeypatch, tmp_path / "base.yaml", "ucf101", "--variants", "lstm",
                                            "mean_pool", "per_frame", "--runs", str(tmp_path / "runs"))
    argv = sys.argv
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0", "1", "0"])
    assert "--seeds 0 1 0: seed 0 is given more than once" in _refused(variants, capsys)
    assert not commands
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0"])
    assert variants.main() == 0
    out = capsys.readouterr().out
    assert "| mean | mean class acc |" in out and "±" not in out
    assert _table_rows(out)["lstm"][2:3] == ["100.0 %"] and _table_rows(out)["lstm"][5:7] == [
        "+16.7 [+0.0, +50.0]", "none (one seed)"]
    assert "no verdict with one seed: the rule needs each variant's seed range" in out
