"""Several processes (CPU, gloo): Lightning's DDP over an uncached dataset, torchrun extraction, each clip counted once."""

from __future__ import annotations

import csv
import datetime
import shutil
import io
import os
import pickle
import re
import socket
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import yaml

from vidrnn import distributed
from vidrnn.cli import main
from vidrnn.data.module import VideoDataModule
from vidrnn.data.synthetic import make_classification_dataset
from vidrnn.data.synthetic_tracking import make_tracking_sequences
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.devices import resolve_device
from vidrnn.distributed import (RanksDisagree, TooFewToShare, evaluation_sampler, gather_rows, rank_share,
                                require_agreement)

REPOSITORY = Path(__file__).resolve().parents[1]


def test_a_bare_cuda_device_is_the_gpu_of_this_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit choice stays
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="device cuda:4, but PyTorch sees only 4 CUDA device"):
        resolve_device("cuda:4")  # a device the machine lacks: said now, not deep inside its first use
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device: use auto or cpu"):
        resolve_device("cuda")


@pytest.mark.parametrize(("variables", "said"), [
    ({}, True),
    ({"NODE_RANK": "0"}, True),
    ({"NODE_RANK": "1"}, False),  # local rank 0 of a second node started by hand, before its Trainer exists
    ({"GROUP_RANK": "2"}, False),
])
def test_only_the_first_nodes_first_process_says_what_every_process_reads_alike(
        monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], said: bool) -> None:
    from lightning.pytorch.utilities import rank_zero_only
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    for name in ("NODE_RANK", "GROUP_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert distributed.said_here() is said
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert distributed.said_here() is False


def test_one_process_evaluates_everything_itself() -> None:
    assert evaluation_sampler(list(range(5)), "the test split") is None
    assert evaluation_sampler([0], "the test split") is None
    assert rank_share(["a", "b", "c"]) == ["a", "b", "c"]
    assert gather_rows(("a", "b")) == ["a", "b"]


def _sharing_worker(rank: int, init_file: str, answers: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    sampled = list(evaluation_sampler(list(range(5)), "the test split"))
    shared = rank_share(["s0", "s1", "s2"])
    gathered = gather_rows([f"clip{index}" for index in sampled])
    Path(answers, f"rank{rank}.yaml").write_text(yaml.safe_dump({"sampled": sampled, "shared": shared,
                                                                 "gathered": gathered}))
    dist.destroy_process_group()


def test_two_ranks_evaluate_every_item_exactly_once_and_both_get_all_rows(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_sharing_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [yaml.safe_load((tmp_path / f"rank{rank}.yaml").read_text()) for rank in (0, 1)]
    assert [answer["sampled"] for answer in ranks] == [[0, 2, 4], [1, 3]]  # no padding with repeats
    assert [answer["shared"] for answer in ranks] == [["s0", "s2"], ["s1"]]
    assert ranks[0]["gathered"] == ranks[1]["gathered"] == ["clip0", "clip2", "clip4", "clip1", "clip3"]


def _agreement_worker(rank: int, init_file: str, answers: str) -> None:
    """Rank 1 lists a test split lacking one clip and holding another, and its validation split in another order."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    require_agreement({"the test split": ["a (Walk)", "b (Run)"]}, "never said")  # alike: no refusal
    test = ["a (Walk)", "b (Run)", "c (Run)"] if rank == 0 else ["a (Walk)", "d (Run)"]
    val = ["e (Walk)", "f (Run)"] if rank == 0 else ["f (Run)", "e (Walk)"]
    try:
        require_agreement({"the test split": test, "the val split": val, "the train split": ["g (Walk)"]},
                          "A node's copy of data.root differs.")
        said = "nothing"
    except RanksDisagree as error:
        said = str(error)
    Path(answers, f"rank{rank}.txt").write_text(said)
    dist.destroy_process_group()


def test_ranks_that_listed_different_splits_refuse_together_naming_what_differs(tmp_path: Path) -> None:
    """Each rank sharded the split it listed from its own node's disk: a clip missing on one node left the test with
    11 of 12 clips, five counted twice and six never, and exit status 0."""
    torch.multiprocessing.spawn(_agreement_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    said = [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)]
    assert said[0] == said[1]
    assert said[0] == ("the 2 processes of this run listed different items to share (the test split: 3 on rank 0, 2 "
                       "on rank 1; 3 not on every rank, such as b (Run) (only on rank 0), c (Run) (only on rank 0), "
                       "d (Run) (only on rank 1); the val split: 2 on rank 0, 2 on rank 1, the same items in another "
                       "order). A node's copy of data.root differs.")


def test_an_evaluation_with_fewer_items_than_processes_is_refused_saying_how_to_run_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's sampler ended such a run in a bare AssertionError (after a fit: the test results lost); a process
    without a batch runs none of Lightning's evaluation hooks, so it cannot join the metrics' reduction."""
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    with pytest.raises(TooFewToShare, match="the test split holds 1 item to evaluate, fewer than the 2 processes "
                                            r"sharing it .* --trainer.devices 1"):
        evaluation_sampler([0], "the test split")
    assert list(evaluation_sampler([0, 1, 2], "the test split")) == [1]
    assert list(evaluation_sampler([], "the test split")) == []  # nothing to share: Lightning skips it on every rank


def _pickled_as_ddp_spawn_launches(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Let Lightning's ddp_spawn launcher pickle what it would send to each process (the trainer, with its callbacks
    and the CLI's parser that ``SaveConfigCallback`` holds; the function; the model and data module) without starting
    any process; what it pickled is returned, one entry a launch (the fit, then ``test_after_fit``'s test)."""
    from multiprocessing.reduction import ForkingPickler

    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    launched: list[bytes] = []

    def pickle_instead(launcher: object, function: object, *args: object, trainer: object = None,
                       **kwargs: object) -> None:
        launched.append(bytes(ForkingPickler.dumps([trainer, function, args, kwargs])))

    monkeypatch.setattr(_MultiProcessingLauncher, "launch", pickle_instead)
    return launched


@pytest.mark.parametrize(("task", "launches"), [("classification", 2), ("tracking", 1)])
def test_a_ddp_spawn_fit_pickles_what_it_sends_to_its_processes(task: str, launches: int, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """``--trainer.strategy ddp_spawn`` (and any spawned DDP) pickles the trainer, whose SaveConfigCallback holds the
    CLI's parser: a ``compute_fn=lambda`` linking the data's settings to the model's ended the fit in "Can't pickle
    local object 'VidrnnCLI.add_arguments_to_parser.<locals>.<lambda>'". A classifier's split is said once a run: it
    was said by each launch's data module as it prepared its data (the fit's, then the test's), as the launching
    process, whose module each launch is sent, never learnt that the first had said it."""
    if task == "classification":
        root = make_classification_dataset(tmp_path / "data", groups=3, clips_per_group=1, num_frames=4,
                                           size=(48, 64), seed=3)
        arguments = ["--config", "configs/demo.yaml", "--data.dataset", "ucf101", "--data.root", str(root)]
    else:
        for offset, split in enumerate(("train", "val", "val", "test", "test")):
            make_tracking_sequences(tmp_path / "data" / split / str(offset), num_sequences=1, num_frames=3,
                                    size=(64, 96), seed=offset)
        arguments = ["--config", "configs/track_demo.yaml", "--data.root", str(tmp_path / "data")]
    launched = _pickled_as_ddp_spawn_launches(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO"):
        status = main(["fit", *[str(REPOSITORY / a) if a.startswith("configs/") else a for a in arguments],
                       "--data.cache_dir", str(tmp_path / "cache"), "--trainer.default_root_dir",
                       str(tmp_path / "runs"), "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp_spawn",
                       "--trainer.devices", "2"])
        assert status == 0
        assert len(launched) == launches  # the fit, and a classifier's test_after_fit (a tracker's tracks here)
        if task == "classification":
            for sent in launched:  # as each launch's rank 0 starts: its data module prepares the data
                _, _, args, _ = pickle.loads(sent)
                next(arg for arg in args if isinstance(arg, VideoDataModule)).prepare_data()
            said = [record.getMessage() for record in caplog.records if record.getMessage().startswith("split: ")]
            assert len(said) == 1 and said[0].startswith("split: UCF101 official split 1 (6 of 6 classes)")


def test_a_ddp_spawn_fit_tests_after_fit_in_the_run_folder_of_its_checkpoints(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Each launch's rank 0 writes with the logger it was sent: its version resolved there, the fit's folder stood
    when the test was launched, and ``test_after_fit`` wrote its results into a new ``version_1``; a writer made
    there deletes the ``metrics.csv`` it finds, the fit's rows."""
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    folders: list[str] = []

    def make_log_folder_as_rank_zero(launcher: object, function: object, *args: object, trainer: object = None,
                                     **kwargs: object) -> None:
        sent = pickle.loads(pickle.dumps(trainer.logger))
        folders.append(sent.log_dir)
        sent.log_metrics({"launch": len(folders)}, step=len(folders))
        sent.save()

    monkeypatch.setattr(_MultiProcessingLauncher, "launch", make_log_folder_as_rank_zero)
    root = make_classification_dataset(tmp_path / "data", groups=3, clips_per_group=1, num_frames=4, size=(48, 64),
                                       seed=3)
    monkeypatch.chdir(tmp_path)
    status = main(["fit", "--config", str(REPOSITORY / "configs/demo.yaml"), "--data.dataset", "ucf101",
                   "--data.root", str(root), "--data.cache_dir", str(tmp_path / "cache"),
                   "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.accelerator", "cpu",
                   "--trainer.strategy", "ddp_spawn", "--trainer.devices", "2"])
    assert status == 0
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    assert folders == [str(run)] * 2
    with (run / "metrics.csv").open(newline="") as rows:
        assert [row["launch"] for row in csv.DictReader(rows)] == ["1", "2"]


def _tracking_test_worker(rank: int, init_file: str, root: str, work: str, rank_one_root: str | None = None) -> None:
    """``vidrnn test`` of a tracker as one rank of two runs it: a tiny untrained head over the matching tracker
    (rank 1 reading ``rank_one_root`` where given: another node's copy of the data). Ranks that refuse to share
    write the refusal in place of their rows."""
    from vidrnn.distributed import RanksDisagree
    import lightning as L

    from vidrnn.data.tracking_datamodule import TrackingDataModule
    from vidrnn.task_cli.tracking import TrackingCLI
    from vidrnn.models.tracker_module import FrameTracker
    from vidrnn.tracker.geometry import SearchGeometry
    from vidrnn.tracker.settings import TrackerSettings

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=120))
    settings = TrackerSettings(geometry=SearchGeometry(size=128), template_cells=5)
    root = rank_one_root if rank == 1 and rank_one_root is not None else root
    data = TrackingDataModule(root=root, cache_dir=str(Path(work, "cache")), tracker=settings, device="cpu")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        default_root_dir=str(Path(work, f"rank{rank}")))
    model = FrameTracker(tracker=settings.to_dict(), hidden_size=8)
    try:
        rows = TrackingCLI.test(SimpleNamespace(trainer=trainer), model, data)
    except RanksDisagree as error:
        Path(work, f"refused{rank}.txt").write_text(str(error))
    else:
        Path(work, f"rows{rank}.yaml").write_text(yaml.safe_dump([[row.sequence, row.tracker] for row in rows]))
    dist.destroy_process_group()


def test_two_ranks_testing_a_tracker_score_each_sequence_once(tmp_path: Path) -> None:
    """Each rank tracks its share of the test sequences and both get every row: a rank tracking them all wrote each
    sequence's row twice, and averaged each twice into the means."""
    for offset, (split, count) in enumerate([("train", 1), ("val", 1), ("test", 3)]):
        make_tracking_sequences(tmp_path / "data" / split, num_sequences=count, num_frames=5, size=(64, 96),
                                seed=10 + offset)
    torch.multiprocessing.spawn(_tracking_test_worker, args=(str(tmp_path / "init"), str(tmp_path / "data"),
                                                             str(tmp_path)), nprocs=2)
    names = sorted(path.name for path in (tmp_path / "data" / "test").iterdir())
    expected = [[name, tracker] for name in names for tracker in ("vidrnn", "matching")]
    expected += [["MEAN", "vidrnn"], ["MEAN", "matching"]]
    assert [yaml.safe_load((tmp_path / f"rows{rank}.yaml").read_text()) for rank in (0, 1)] == [expected, expected]
    with next((tmp_path / "rank0").rglob("tracking_scores.csv")).open(newline="") as handle:
        assert [[row["sequence"], row["tracker"]] for row in csv.DictReader(handle)] == expected


def test_ranks_whose_copies_hold_other_test_sequences_refuse_to_score_them(tmp_path: Path) -> None:
    """A node whose copy of the test sequences lacks one shared out another list: some sequences were scored twice
    and others never, into means over the wrong set, without a word. Both ranks now refuse, naming the sequence."""
    for offset, (split, count) in enumerate([("train", 1), ("val", 1), ("test", 3)]):
        make_tracking_sequences(tmp_path / "data" / split, num_sequences=count, num_frames=5, size=(64, 96),
                                seed=10 + offset)
    shutil.copytree(tmp_path / "data", tmp_path / "copy")
    missing = sorted((tmp_path / "copy" / "test").iterdir())[1]
    shutil.rmtree(missing)
    torch.multiprocessing.spawn(_tracking_test_worker, args=(str(tmp_path / "init"), str(tmp_path / "data"),
                                                             str(tmp_path), str(tmp_path / "copy")), nprocs=2)
    for rank in (0, 1):
        said = (tmp_path / f"refused{rank}.txt").read_text()
        assert "the test sequences: 3 on rank 0, 2 on rank 1" in said and f"{missing.name} (only on rank 0)" in said


def _tracking_validation_worker(rank: int, init_file: str, roots: list[str], work: str) -> None:
    """One rank of two building a tracker's validation loaders from its own copy of the data (``roots[rank]``),
    writing the refusal it meets, if any."""
    from vidrnn.data.tracking_datamodule import TrackingDataModule
    from vidrnn.distributed import RanksDisagree
    from vidrnn.tracker.geometry import SearchGeometry
    from vidrnn.tracker.settings import TrackerSettings

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=120))
    settings = TrackerSettings(geometry=SearchGeometry(size=128), template_cells=5)
    data = TrackingDataModule(root=roots[rank], cache_dir=str(Path(work, f"cache{rank}")), tracker=settings,
                              device="cpu", walks=1)
    data.prepare_data()
    try:
        data.val_dataloader()
    except RanksDisagree as error:
        Path(work, f"refused{rank}.txt").write_text(str(error))
    dist.destroy_process_group()


def test_ranks_whose_copies_hold_other_validation_sequences_refuse_to_share_them(tmp_path: Path) -> None:
    """The validation sequences are shared among the ranks of a tracker's DDP fit as the test sequences are: a copy
    lacking one gave each rank its share of another list."""
    for offset, (split, count) in enumerate([("train", 1), ("val", 2)]):
        make_tracking_sequences(tmp_path / "data" / split, num_sequences=count, num_frames=5, size=(64, 96),
                                seed=20 + offset)
    shutil.copytree(tmp_path / "data", tmp_path / "copy")
    missing = sorted((tmp_path / "copy" / "val").iterdir())[0]
    shutil.rmtree(missing)
    torch.multiprocessing.spawn(_tracking_validation_worker, args=(str(tmp_path / "init"), [str(tmp_path / "data"),
                                str(tmp_path / "copy")], str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        said = (tmp_path / f"refused{rank}.txt").read_text()
        assert "the validation sequences: 2 on rank 0, 1 on rank 1" in said and f"{missing.name} (only on rank 0)" in said


def _prepare_data_worker(rank: int, dataset: str, cache_root: str, init_file: str) -> None:
    """What Lightning does with prepare_data: local rank 0 runs it while the other ranks wait in a barrier of their
    own; then all meet. Before the fix, extraction entered collectives rank 1 never joined and timed out."""
    from vidrnn.backbones import BackboneSpec, build_backbone
    from vidrnn.features import FeatureCache, extract_features
    from vidrnn.sampling import SamplingSpec

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=30))
    if rank == 0:
        backbone = build_backbone(BackboneSpec(input_size=64))
        index = ucf101_index(Path(dataset), fold=1)
        cache = FeatureCache(cache_root, backbone.spec, SamplingSpec(strategy="all", short_side=64), index.root)
        report = extract_features(index.video_items(), cache, backbone, num_workers=0, rank=0, world_size=1,
                                  progress=False)
        assert report.extracted == len(index.records) and (cache.dir / "manifest.json").exists()
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classification_dataset(tmp_path_factory.mktemp("videos"), groups=3, clips_per_group=1, num_frames=8,
                                       size=(48, 64), seed=2)


def test_extraction_on_one_rank_never_enters_a_collective_the_others_do_not_join(dataset: Path, tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_prepare_data_worker, args=(str(dataset), str(tmp_path / "cache"),
                                                            str(tmp_path / "init")), nprocs=2)


#: What torchrun tells its processes: a test's own runs must not inherit it.
_TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _vidrnn(*args: str, launcher: list[str] | None = None, timeout: float = 300,
            threads: int | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in _TORCHRUN_VARIABLES}
    if threads is not None:
        environment["OMP_NUM_THREADS"] = str(threads)
    command = [*(launcher or [sys.executable]), "-m", "vidrnn", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment,
                            cwd=REPOSITORY)
    assert result.returncode in (0, 3), f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_torchrun_extract_fills_the_same_cache_bytes_as_one_process(dataset: Path, tmp_path: Path) -> None:
    arguments = ["extract", "--root", str(dataset), "--input-size", "64", "--sampling", "all", "--short-side", "64",
                 "--batch-size", "12", "--workers", "0"]
    # A CPU convolution's float rounding depends on its thread count, so every CNN batch runs on one thread: the one
    # process with two threads gives the bytes of two ranks with one each.
    _vidrnn(*arguments, "--cache-dir", str(tmp_path / "one"), threads=2)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    shared = _vidrnn(*arguments, "--cache-dir", str(tmp_path / "two"), launcher=torchrun, threads=1)
    (one,), (two,) = (tmp_path / "one").iterdir(), (tmp_path / "two").iterdir()
    assert not list(two.glob("journal-*"))
    assert _tree(two) == _tree(one)
    assert len(list(two.rglob("*.npy"))) == 18
    # Shared, not done by rank 0 alone: its bar counts its share, and the total counts each of the 18 files once.
    assert "extracted 18 videos" in shared.stdout
    (share,) = set(re.findall(r"rank 0's share of 2 ranks\): 100%.*?\| (\d+)/\1", shared.stderr))
    assert 0 < int(share) < 18


def _test_clips(root: Path) -> list[str]:
    return ucf101_index(root, fold=1).split("test")


@pytest.mark.slow
def test_ddp_fit_of_the_demo_config_over_an_uncached_dataset_with_a_broken_video_counts_each_test_clip_once(
        tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "data", groups=3, clips_per_group=2, num_frames=8, size=(48, 64),
                                       seed=3)
    test_records = _test_clips(root)
    broken = test_records[0].path
    broken.write_bytes(b"this is not a video")
    smaller = {
        "data": {"dataset": "ucf101", "root": str(root), "cache_dir": str(tmp_path / "cache"), "steps": 8,
                 "backbone": {"input_size": 64}, "sampling": {"strategy": "all", "short_side": 64}},
        "trainer": {"max_epochs": 1, "default_root_dir": str(tmp_path / "runs"), "enable_progress_bar": False,
                    "strategy": "ddp", "devices": 2, "accelerator": "cpu"},
    }
    override = tmp_path / "small.yaml"
    override.write_text(yaml.safe_dump(smaller))
    readable = sorted(r.path.relative_to(root / "UCF-101").as_posix() for r in test_records if r.path != broken)
    for attempt in range(2):  # the first fit tries the broken video, the second leaves it out; neither may hang
        result = _vidrnn("fit", "--config", "configs/demo.yaml", "--config", str(override))
        assert "Starting with 2 processes" in result.stdout + result.stderr
        run = _newest_run(tmp_path / "runs")
        assert run.name == f"version_{attempt}"
        with (run / "confusion_matrix.csv").open(newline="") as handle:
            counts = [int(value) for row in list(csv.reader(handle))[1:] for value in row[1:]]
        assert sum(counts) == len(readable)  # every readable test clip once (padding to 12 would count one twice)
    errors = yaml.safe_load(next((tmp_path / "cache").glob("*/errors.json")).read_text())
    assert [error["path"] for error in errors] == [broken.relative_to(root / "UCF-101").as_posix()]

    _vidrnn("predict", "--config", "configs/demo.yaml", "--config", str(override),
            "--ckpt_path", str(run / "checkpoints" / "latest.ckpt"))
    with (_newest_run(tmp_path / "runs") / "predictions.csv").open(newline="") as handle:
        assert [row["clip"] for row in csv.DictReader(handle)] == readable  # both ranks' rows, once each, sorted


def _newest_run(runs: Path) -> Path:
    return max((runs / "lightning_logs").glob("version_*"), key=lambda path: int(path.name.split("_")[1]))


@pytest.mark.slow
def test_a_ddp_fit_whose_test_split_is_smaller_than_its_processes_is_refused_before_training(tmp_path: Path) -> None:
    """With test_after_fit, one test clip on two processes ended the fit in an AssertionError after training, and its
    test results were lost; now the fit ends before training, saying how to test on one process."""
    videos = make_classification_dataset(tmp_path / "videos", classes=["Grow", "Shrink"], groups=3, clips_per_group=2,
                                         num_frames=8, size=(48, 64), seed=4) / "UCF-101"
    root = tmp_path / "split"
    for label in ("Grow", "Shrink"):
        clips = sorted((videos / label).glob("*.avi"))
        for split, chosen in (("train", clips[:4]), ("val", clips[4:5]), ("test", clips[5:] if label == "Grow" else [])):
            for clip in chosen:
                (root / split / label).mkdir(parents=True, exist_ok=True)
                (root / split / label / clip.name).symlink_to(clip)
    command = [sys.executable, "-m", "vidrnn", "fit", "--config", "configs/demo.yaml", "--data.dataset", "folders",
               "--data.root", str(root), "--data.cache_dir", str(tmp_path / "cache"), "--data.steps", "8",
               "--data.backbone.input_size", "64", "--data.sampling.strategy", "all",
               "--data.sampling.short_side", "64", "--trainer.default_root_dir", str(tmp_path / "runs"),
               "--trainer.enable_progress_bar", "false", "--trainer.strategy", "ddp", "--trainer.devices", "2",
               "--trainer.accelerator", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPOSITORY,
                            env={key: value for key, value in os.environ.items() if key not in _TORCHRUN_VARIABLES})
    assert result.returncode == 2, result.stderr[-3000:]
    said = [line for line in result.stderr.splitlines() if "fewer than the 2 processes" in line]
    assert len(said) == 1 and said[0].startswith("vidrnn fit: error: test_after_fit: the test split holds 1 item")
    assert "--trainer.devices 1" in said[0] and "Traceback" not in result.stderr
    assert not list((tmp_path / "runs").rglob("*.ckpt"))  # refused before training


def _extract_worker(rank: int, port: int, arguments: list[str], answers: str) -> None:
    """One rank of ``torchrun -m vidrnn extract``: the environment torchrun sets, then the command's own entry."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(arguments)
    Path(answers, f"rank{rank}.yaml").write_text(yaml.safe_dump({"status": status, "out": out.getvalue(),
                                                                 "err": err.getvalue()}))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_extract_shows_one_progress_bar_and_one_total_and_every_rank_exits_3_on_a_failed_video(
        tmp_path: Path) -> None:
    """Each rank drew its own bar over the other's, printed its own partial summary (never the total), and only the
    rank holding the broken video exited 3, which torchrun turned into a failure of the other rank's run too."""
    root = make_classification_dataset(tmp_path / "videos", classes=["Grow", "Shrink"], groups=3, clips_per_group=1,
                                       num_frames=4, size=(32, 48), seed=6)
    broken = sorted((root / "UCF-101").rglob("*.avi"))[1]
    broken.write_bytes(b"this is not a video")
    arguments = ["extract", "--root", str(root), "--input-size", "64", "--sampling", "all", "--short-side", "64",
                 "--workers", "0", "--cache-dir", str(tmp_path / "cache")]
    torch.multiprocessing.spawn(_extract_worker, args=(_free_port(), arguments, str(tmp_path)), nprocs=2)
    ranks = [yaml.safe_load((tmp_path / f"rank{rank}.yaml").read_text()) for rank in (0, 1)]
    assert [answer["status"] for answer in ranks] == [3, 3]
    assert "extracted 5 videos" in ranks[0]["out"] and "1 failed" in ranks[0]["out"]
    assert f"FAILED {broken.relative_to(root / 'UCF-101').as_posix()}" in ranks[0]["out"]
    assert "rank 0's share" in ranks[0]["err"]  # the one bar says what it counts
    assert ranks[1]["out"] == "" and "extract" not in ranks[1]["err"]
