"""Fault injection: bad inputs, SIGKILLs and concurrent runs through the ``vidrnn`` commands, counted in tables.

What a long unattended batch job meets, tried on purpose (issue #21):

* **bad inputs** — broken, hostile or odd files (missing, a folder, empty, random bytes, truncated, text, HTML saved
  as .mp4, a still image named .avi, one frame, zero fps, a garbage header, a huge resolution, unicode / a space / a
  newline in the name, a symbolic-link loop, no read permission) through ``vidrnn extract``, ``vidrnn classify`` and
  ``vidrnn track``: every file gets exactly one row or error entry, an error with a reason; no command prints a
  traceback; the exit status says that some failed;
* **kills** — SIGKILL at random moments of ``vidrnn extract`` and of ``vidrnn classify --resume``; each killed run is
  resumed (and perhaps killed again) until one finishes, and the result must equal an uninterrupted run's: the cache
  byte for byte, the rows row for row, none lost or duplicated;
* **concurrency** — two ``vidrnn extract`` on one cache at once: a complete manifest, equal to an uninterrupted run's.

Every command runs as a user runs it, ``vidrnn ...`` in a subprocess (argument lists, never a shell), on videos
generated here, with this checkout's vidrnn whatever the working directory holds (``vidrnn_checkout.py``). The
classifier is untrained (random weights, fixed seed): a fault does not care what the model knows. Kill moments are
drawn from the part of a run's work: after a new result has appeared, within the time an uninterrupted run took to
finish after its first.
The three commands' parts run side by side (kill moments follow progress, not the clock). ``--quick`` (four kinds,
two kills each, fewer videos) is what ``tests/test_benchmarks.py`` runs.

    python benchmarks/faults.py [--quick] [--kills 10] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidrnn_checkout import command as vidrnn

TRACEBACK = "Traceback (most recent call last)"
#: Small, fast settings shared by every extraction (the cache's identity: every run here must use the same).
EXTRACT_OPTIONS = ("--input-size", "64", "--segments", "8", "--short-side", "64", "--batch-size", "8",
                   "--workers", "2", "--device", "cpu")
CLASSIFY_OPTIONS = ("--batch-size", "8", "--workers", "2", "--device", "cpu")
#: The target's box in the first frame of every video made here (64x48).
BOX = "8,8,24,20"
CLASS = "Odd"


def environment() -> dict[str, str]:
    """The commands' environment: without progress bars."""
    return {**os.environ, "TQDM_DISABLE": "1"}


@dataclass
class Finished:
    """A command that ran to its end: exit status, what it printed, how long it took."""

    status: int
    output: str
    seconds: float

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.output


def run(command: list[str], *, timeout: float = 900) -> Finished:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", env=environment(),
                          timeout=timeout, check=False)
    return Finished(done.returncode, done.stdout + done.stderr, time.perf_counter() - start)


# -- inputs ------------------------------------------------------------------------------------------------------------


def write_video(path: Path, frames: int = 8, size: tuple[int, int] = (48, 64)) -> Path:
    """An MJPG AVI of a bright square moving over a gradient (something for the tracker to follow)."""
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    background = np.broadcast_to(np.linspace(0, 120, width, dtype=np.uint8)[None, :, None], (height, width, 3))
    for index in range(frames):
        frame = background.copy()
        x, y = 8 + index * width // 64, 8 + index * height // 96
        frame[y : y + height * 20 // 48, x : x + width * 24 // 64] = (230, 200, 40)
        writer.write(frame)
    writer.release()
    return path


# Makers of bad inputs: ``maker(path, good video, rng)`` writes one input at ``path`` and returns it.


def _missing(path: Path, good: Path, rng: np.random.Generator) -> Path:
    path.symlink_to(path.parent / "nowhere.avi")  # listed like a file; nothing behind it
    return path


def _written(data: bytes) -> Callable[[Path, Path, np.random.Generator], Path]:
    def make(path: Path, good: Path, rng: np.random.Generator) -> Path:
        path.write_bytes(data)
        return path

    return make


def _noise(path: Path, good: Path, rng: np.random.Generator) -> Path:
    path.write_bytes(rng.integers(0, 256, 65536, np.uint8).tobytes())
    return path


def _copy(path: Path, good: Path, rng: np.random.Generator) -> Path:
    return Path(shutil.copy(good, path))


def _folder(path: Path, good: Path, rng: np.random.Generator) -> Path:
    path.mkdir()
    return path


def _truncated(path: Path, good: Path, rng: np.random.Generator) -> Path:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5])
    return path


def _still_image(path: Path, good: Path, rng: np.random.Generator) -> Path:
    path.write_bytes(cv2.imencode(".jpg", rng.integers(0, 256, (48, 64, 3), np.uint8))[1].tobytes())
    return path


def _one_frame(path: Path, good: Path, rng: np.random.Generator) -> Path:
    return write_video(path, frames=1)


def _zero_fps(path: Path, good: Path, rng: np.random.Generator) -> Path:
    """AVI headers that say 0 frames per second: the main header's microseconds per frame and the stream's rate."""
    data = bytearray(good.read_bytes())
    main, stream = data.find(b"avih"), data.find(b"strh")
    data[main + 8 : main + 12] = bytes(4)
    data[stream + 32 : stream + 36] = bytes(4)
    path.write_bytes(bytes(data))
    return path


def _garbage_header(path: Path, good: Path, rng: np.random.Generator) -> Path:
    data = bytearray(good.read_bytes())
    data[12:512] = rng.integers(0, 256, 500, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _huge(path: Path, good: Path, rng: np.random.Generator) -> Path:
    return write_video(path, frames=3, size=(3072, 4096))


def _link_loop(path: Path, good: Path, rng: np.random.Generator) -> Path:
    path.symlink_to(path.name)
    return path


def _unreadable(path: Path, good: Path, rng: np.random.Generator) -> Path:
    shutil.copy(good, path)
    path.chmod(0)
    return path


_HTML = b"<!DOCTYPE html><html><head><title>Clip</title></head><body><video src=clip.mp4></video></body></html>\n"
#: Kind → (file name, maker). Quick mode takes the first four.
KINDS: dict[str, tuple[str, Callable[[Path, Path, np.random.Generator], Path]]] = {
    "missing (a link to nothing)": ("missing.avi", _missing),
    "zero bytes": ("empty.avi", _written(b"")),
    "random bytes": ("noise.avi", _noise),
    "newline in the name": ("two\nlines.avi", _copy),
    "a folder named .avi": ("folder.avi", _folder),
    "truncated": ("cut.avi", _truncated),
    "text": ("notes.avi", _written(b"Just notes, not a video.\n" * 40)),
    "HTML saved as .mp4": ("page.mp4", _written(_HTML)),
    "still image named .avi": ("photo.avi", _still_image),
    "one frame": ("single.avi", _one_frame),
    "zero fps in the header": ("nofps.avi", _zero_fps),
    "garbage header": ("garbled.avi", _garbage_header),
    "huge resolution (4096x3072)": ("huge.avi", _huge),
    "unicode in the name": ("vidéo ünï 日本.avi", _copy),
    "space in the name": ("my clip.avi", _copy),
    "symbolic-link loop": ("loop.avi", _link_loop),
    "no read permission": ("locked.avi", _unreadable),
}
QUICK_KINDS = tuple(KINDS)[:4]
NOT_A_FILE = {"a folder named .avi"}


def expected_rows(command: str, kind: str) -> int:
    """One row or entry per file. A folder is no file: extraction and classification find no video in it (no entry
    is right); tracking reads it as a folder of images and has to refuse it."""
    return 0 if kind in NOT_A_FILE and command != "track" else 1


def make_inputs(folder: Path, kinds: tuple[str, ...], rng: np.random.Generator) -> tuple[dict[str, Path], Path]:
    """``folder/<CLASS>/``: one file per kind and one good video; the kinds' paths and the good video's."""
    videos = folder / CLASS
    videos.mkdir(parents=True)
    good = write_video(videos / "good.avi")
    return {kind: KINDS[kind][1](videos / KINDS[kind][0], good, rng) for kind in kinds}, good


# -- bad inputs through each command --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one command made of one input: how many rows or entries it got, and the error's reason (``None``: ok)."""

    rows: int
    reason: str | None = None

    def cell(self, expected_rows: int) -> str:
        if self.rows != expected_rows:
            return f"**{self.rows} rows**"
        if self.rows == 0:
            return "no entry (not a file)"
        if self.reason is None:
            return "ok"
        return f"error: {_short(self.reason)}" if self.reason.strip() else "**error without a reason**"


def _short(text: str, length: int = 48) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= length else text[: length - 1] + "…"


@dataclass
class CommandReport:
    """The bad-input run(s) of one command: an outcome per kind, exit statuses, tracebacks."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    tracebacks: int = 0


def _extract_bad(root: Path, work: Path, paths: dict[str, Path], good: Path) -> CommandReport:
    cache = work / "cache-bad"
    finished = run(vidrnn("extract", "--dataset", "folders", "--root", root, "--cache-dir", cache, *EXTRACT_OPTIONS))
    (cache_dir,) = cache.iterdir()
    manifest = Counter(entry["path"] for entry in json.loads((cache_dir / "manifest.json").read_text()))
    errors = json.loads((cache_dir / "errors.json").read_text())
    reasons = {entry["path"]: entry["reason"] for entry in errors}
    failed = Counter(entry["path"] for entry in errors)
    report = CommandReport(statuses=[finished.status], tracebacks=int(finished.traceback))
    for kind, path in {**paths, "good video": good}.items():
        key = path.relative_to(root).as_posix()
        report.outcomes[kind] = Outcome(manifest[key] + failed[key], reasons.get(key))
    return report


def _classify_bad(root: Path, work: Path, paths: dict[str, Path], good: Path, checkpoint: Path) -> CommandReport:
    output = work / "bad.csv"
    finished = run(vidrnn("classify", root / CLASS, "--ckpt", checkpoint, "--output", output, *CLASSIFY_OPTIONS))
    rows = read_rows(output)
    counts = Counter(row["path"] for row in rows)
    reasons = {row["path"]: row["error"] for row in rows if row["status"] == "error"}
    report = CommandReport(statuses=[finished.status], tracebacks=int(finished.traceback))
    for kind, path in {**paths, "good video": good}.items():
        report.outcomes[kind] = Outcome(counts[str(path)], reasons.get(str(path)))
    return report


def _track_bad(work: Path, paths: dict[str, Path]) -> CommandReport:
    """One ``vidrnn track`` per input (it takes one video): a CSV of boxes, or an error line with the reason."""
    report = CommandReport()
    for number, (kind, path) in enumerate(paths.items()):
        output = work / f"boxes-{number}.csv"
        finished = run(vidrnn("track", path, "--box", BOX, "--output", output, "--device", "cpu"))
        report.statuses.append(finished.status)
        report.tracebacks += finished.traceback
        errors = [line for line in finished.output.splitlines() if line.startswith("vidrnn track: error")]
        if finished.status == 0 and output.is_file() and len(output.read_text().splitlines()) > 1:
            report.outcomes[kind] = Outcome(1 + len(errors))
        else:  # the reason, without the path it begins with
            reason = errors[-1].split(": ", 2)[-1].removeprefix(f"{path}: ") if errors else ""
            report.outcomes[kind] = Outcome(len(errors), reason)
    return report


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# -- kills -----------------------------------------------------------------------------------------------------------


@dataclass
class Damage:
    """How a result differs from the uninterrupted run's (all zero: identical)."""

    lost: int = 0
    duplicated: int = 0
    corrupt: int = 0
    #: Temporary files a killed writer left behind (hidden, never read; not damage, but litter).
    litter: int = 0

    def add(self, other: Damage) -> None:
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.corrupt += other.corrupt
        self.litter += other.litter


@dataclass
class KillReport:
    """Runs of one command killed at random moments (or run side by side), and what their results lost."""

    name: str
    kills: int = 0
    runs: int = 0
    chains: int = 0
    tracebacks: int = 0
    failed_runs: int = 0
    damage: Damage = field(default_factory=Damage)


def _killed(command: list[str], progress: Callable[[], int], work: float, rng: random.Random) -> Finished | None:
    """Start ``command`` and SIGKILL it at a random moment of its work: once ``progress()`` (results so far) has
    grown, within the next ``work`` seconds. ``None`` when it was killed, else how it ended."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+", errors="replace") as log:
        before = progress()
        process = subprocess.Popen(command, stdout=log, stderr=log, text=True, env=environment())
        while process.poll() is None and progress() <= before:
            time.sleep(0.01)
        try:
            status = process.wait(timeout=rng.uniform(0.0, work))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
        log.seek(0)
        return Finished(status, log.read(), time.perf_counter() - start)


def timed_reference(command: list[str], started: Callable[[], bool]) -> tuple[Finished, float]:
    """Run ``command`` to its end; also when ``started()`` first held (its first result): kills are drawn after it."""
    start = time.perf_counter()
    first = None
    with tempfile.TemporaryFile("w+", errors="replace") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, text=True, env=environment())
        while process.poll() is None:
            if first is None and started():
                first = time.perf_counter() - start
            time.sleep(0.01)
        log.seek(0)
        finished = Finished(process.returncode, log.read(), time.perf_counter() - start)
    return finished, first if first is not None else 0.0


def kill_chains(report: KillReport, command: list[str], fresh: Callable[[], None], compare: Callable[[], Damage],
                progress: Callable[[], int], work: float, kills: int, rng: random.Random) -> None:
    """Chains of runs on one output: each run is killed at a random moment of its work (see :func:`_killed`) and the
    next resumes, until one finishes; then its result is compared with the uninterrupted run's. Chains go on until
    ``kills`` struck."""
    while report.kills < kills:
        fresh()
        report.chains += 1
        while True:
            report.runs += 1
            finished = _killed(command, progress, work, rng) if report.kills < kills else run(command)
            if finished is None:
                report.kills += 1
                continue
            report.tracebacks += finished.traceback
            report.failed_runs += finished.status != 0
            break
        report.damage.add(compare())


def cache_tree(cache_root: Path) -> tuple[dict[str, bytes], int]:
    """Every file of the one cache under ``cache_root`` (relative path → bytes), and the count of temporary files."""
    (cache_dir,) = cache_root.iterdir()
    files = {path.relative_to(cache_dir).as_posix(): path.read_bytes()
             for path in sorted(cache_dir.rglob("*")) if path.is_file() and not path.name.endswith(".tmp")}
    return files, sum(1 for path in cache_dir.rglob("*.tmp"))


def compare_caches(reference: dict[str, bytes], cache_root: Path) -> Damage:
    files, litter = cache_tree(cache_root)
    manifest = json.loads(files.get("manifest.json", b"[]"))
    paths = Counter(entry["path"] for entry in manifest)
    differing = sum(files[name] != reference[name] for name in set(reference) & set(files))
    return Damage(
        lost=len(set(reference) - set(files)),
        duplicated=sum(count - 1 for count in paths.values()),
        corrupt=differing + len(set(files) - set(reference)),  # a journal left unmerged is an inconsistent cache
        litter=litter,
    )


def compare_rows(reference: list[dict[str, str]], output: Path) -> Damage:
    rows = read_rows(output)
    counts = Counter(row["path"] for row in rows)
    expected = {row["path"]: row for row in reference}
    latest = {row["path"]: row for row in rows}
    return Damage(
        lost=len(set(expected) - set(latest)),
        duplicated=sum(count - 1 for count in counts.values()) + len(set(latest) - set(expected)),
        corrupt=sum(latest[path] != expected[path] for path in set(expected) & set(latest)),
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def extract_kills(root: Path, work: Path, kills: int, rng: random.Random) -> tuple[KillReport, dict[str, bytes]]:
    report = KillReport("`vidrnn extract`")
    reference_root = work / "cache-reference"
    command = vidrnn("extract", "--root", root, "--cache-dir", reference_root, *EXTRACT_OPTIONS)
    finished, first = timed_reference(command, lambda: any(reference_root.rglob("*.npy")))
    if finished.status != 0 or finished.traceback:
        raise RuntimeError(f"the uninterrupted extraction failed:\n{finished.output}")
    reference, _ = cache_tree(reference_root)
    killed_root = work / "cache-killed"
    command = vidrnn("extract", "--root", root, "--cache-dir", killed_root, *EXTRACT_OPTIONS)
    kill_chains(report, command, lambda: _remove(killed_root), lambda: compare_caches(reference, killed_root),
                lambda: sum(1 for _ in killed_root.rglob("*.npy")), finished.seconds - first, kills, rng)
    return report, reference


def classify_kills(videos: Path, work: Path, checkpoint: Path, kills: int, rng: random.Random) -> KillReport:
    report = KillReport("`vidrnn classify --resume`")
    reference_output = work / "reference.csv"
    command = vidrnn("classify", videos, "--recursive", "--ckpt", checkpoint, "--output", reference_output,
                     *CLASSIFY_OPTIONS)
    finished, first = timed_reference(command, lambda: len(read_rows(reference_output)) > 0)
    if finished.status != 0 or finished.traceback:
        raise RuntimeError(f"the uninterrupted classification failed:\n{finished.output}")
    reference = read_rows(reference_output)
    output = work / "killed.csv"
    command = vidrnn("classify", videos, "--recursive", "--ckpt", checkpoint, "--output", output, "--resume",
                     *CLASSIFY_OPTIONS)
    kill_chains(report, command, lambda: _remove(output), lambda: compare_rows(reference, output),
                lambda: len(read_rows(output)), finished.seconds - first, kills, rng)
    return report


# -- concurrency -----------------------------------------------------------------------------------------------------


def concurrent_extractions(root: Path, work: Path, reference: dict[str, bytes], rounds: int,
                           rng: random.Random) -> KillReport:
    """Two extractions into one cache at once (the second started up to a second later), ``rounds`` times."""
    report = KillReport("two `vidrnn extract` at once")
    cache_root = work / "cache-shared"
    command = vidrnn("extract", "--root", root, "--cache-dir", cache_root, *EXTRACT_OPTIONS)
    for _ in range(rounds):
        _remove(cache_root)
        report.chains += 1
        with tempfile.TemporaryFile("w+") as first_log, tempfile.TemporaryFile("w+") as second_log:
            first = subprocess.Popen(command, stdout=first_log, stderr=first_log, text=True, env=environment())
            time.sleep(rng.uniform(0.0, 1.0))
            second = subprocess.Popen(command, stdout=second_log, stderr=second_log, text=True, env=environment())
            for process, log in ((first, first_log), (second, second_log)):
                report.runs += 1
                report.failed_runs += process.wait() != 0
                log.seek(0)
                report.tracebacks += TRACEBACK in log.read()
        report.damage.add(compare_caches(reference, cache_root))
    return report


# -- the classifier --------------------------------------------------------------------------------------------------


def untrained_checkpoint(path: Path, classes: list[str]) -> Path:
    """A VideoClassifier checkpoint with random weights (seed 0) and small backbone and sampling specs."""
    import lightning
    import torch

    from vidrnn.backbones import BackboneSpec, build_backbone
    from vidrnn.models.classifier import VideoClassifier
    from vidrnn.models.temporal import EncoderSpec
    from vidrnn.pipeline import PipelineSpec
    from vidrnn.sampling import SamplingSpec

    backbone = BackboneSpec(input_size=64)
    pipeline = PipelineSpec(backbone, SamplingSpec(num_segments=8, short_side=64), steps=8)
    torch.manual_seed(0)
    encoder = EncoderSpec(hidden_size=16, projection=16)
    model = VideoClassifier(len(classes), build_backbone(backbone).feature_dim, encoder, class_names=classes,
                            pipeline=pipeline.to_dict())
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    return path


# -- the run ---------------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """Everything counted, and the totals a reliable pipeline keeps at zero."""

    commands: dict[str, CommandReport]
    kills: list[KillReport]

    @property
    def problems(self) -> int:
        """Everything that must stay zero, added up."""
        return (self.lost + self.duplicated + self.corrupt + self.tracebacks + self.without_reason
                + self.wrong_statuses)

    @property
    def inputs_tried(self) -> int:
        return sum(len(report.outcomes) for report in self.commands.values())

    @property
    def lost(self) -> int:
        """Inputs without their one row, and rows or cache files lost to a kill or a concurrent run."""
        missing = sum(outcome.rows < expected_rows(command, kind) for command, report in self.commands.items()
                      for kind, outcome in report.outcomes.items())
        return missing + sum(report.damage.lost for report in self.kills)

    @property
    def duplicated(self) -> int:
        extra = sum(outcome.rows > expected_rows(command, kind) for command, report in self.commands.items()
                    for kind, outcome in report.outcomes.items())
        return extra + sum(report.damage.duplicated for report in self.kills)

    @property
    def corrupt(self) -> int:
        return sum(report.damage.corrupt for report in self.kills)

    @property
    def tracebacks(self) -> int:
        return sum(report.tracebacks for report in [*self.commands.values(), *self.kills])

    @property
    def without_reason(self) -> int:
        return sum(outcome.reason is not None and not outcome.reason.strip()
                   for report in self.commands.values() for outcome in report.outcomes.values())

    @property
    def wrong_statuses(self) -> int:
        """Runs whose exit status does not tell the truth: 0 although an input failed, or a finished kill-test or
        concurrent run that failed."""
        hidden = sum(status == 0 and any(outcome.reason is not None for outcome in report.outcomes.values())
                     for name, report in self.commands.items() if name != "track" for status in report.statuses)
        track = self.commands["track"]
        hidden += sum(status == 0 and outcome.reason is not None
                      for status, outcome in zip(track.statuses, track.outcomes.values()))
        return hidden + sum(report.failed_runs for report in self.kills)


def run_faults(work: Path, *, quick: bool, kills: int, seed: int) -> Summary:
    from vidrnn.data.synthetic import make_classification_dataset
    from vidrnn.data.ucf101 import ucf101_index

    kinds = QUICK_KINDS if quick else tuple(KINDS)
    dataset = make_classification_dataset(work / "clean", groups=3, clips_per_group=1 if quick else 3,
                                          num_frames=8 if quick else 16, size=(48, 64), seed=seed)
    checkpoint = untrained_checkpoint(work / "untrained.ckpt", ucf101_index(dataset, fold=1).classes)
    paths, good = make_inputs(work / "bad", kinds, np.random.default_rng(seed))
    # The three commands' parts are independent: side by side they take the time of the longest.
    with ThreadPoolExecutor(3) as pool:
        extract = pool.submit(_extract_part, dataset, work, paths, good, kills, 1 if quick else 3, random.Random(seed))
        classify = pool.submit(_classify_part, dataset, work, paths, good, checkpoint, kills, random.Random(seed + 1))
        track = pool.submit(_track_bad, work, {**paths, "good video": good})
        (extract_bad, extract_reports), (classify_bad, classify_report) = extract.result(), classify.result()
        commands = {"extract": extract_bad, "classify": classify_bad, "track": track.result()}
    return Summary(commands, [extract_reports[0], classify_report, extract_reports[1]])


def _extract_part(dataset: Path, work: Path, paths: dict[str, Path], good: Path, kills: int, rounds: int,
                  rng: random.Random) -> tuple[CommandReport, list[KillReport]]:
    bad = _extract_bad(work / "bad", work, paths, good)
    killed, reference = extract_kills(dataset, work, kills, rng)
    return bad, [killed, concurrent_extractions(dataset, work, reference, rounds, rng)]


def _classify_part(dataset: Path, work: Path, paths: dict[str, Path], good: Path, checkpoint: Path, kills: int,
                   rng: random.Random) -> tuple[CommandReport, KillReport]:
    bad = _classify_bad(work / "bad", work, paths, good, checkpoint)
    return bad, classify_kills(dataset / "UCF-101", work, checkpoint, kills, rng)


def print_tables(summary: Summary, elapsed: float) -> None:
    commands = summary.commands
    print("| input | `vidrnn extract` | `vidrnn classify` | `vidrnn track` |")
    print("|---|---|---|---|")
    for kind in commands["extract"].outcomes:
        cells = [commands[name].outcomes[kind].cell(expected_rows(name, kind)) for name in commands]
        print(f"| {kind} | {' | '.join(cells)} |")
    statuses = {name: ", ".join(str(status) for status in sorted(set(report.statuses)))
                for name, report in commands.items()}
    print(f"| exit status | {statuses['extract']} | {statuses['classify']} | {statuses['track']} |")
    print(f"| tracebacks | {commands['extract'].tracebacks} | {commands['classify'].tracebacks} | "
          f"{commands['track'].tracebacks} |")
    if "no read permission" in commands["extract"].outcomes and os.geteuid() == 0:
        print("\nRun as root, which reads a file whatever its permissions: 'no read permission' could not deny "
              "reading.")
    print()
    print("| fault | kills that struck | runs | compared results | lost | duplicated | corrupt | tracebacks | "
          "failed runs | temp files left |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for report in summary.kills:
        damage = report.damage
        print(f"| {report.name} | {report.kills} | {report.runs} | {report.chains} | {damage.lost} | "
              f"{damage.duplicated} | {damage.corrupt} | {report.tracebacks} | {report.failed_runs} | "
              f"{damage.litter} |")
    print()
    print(f"{summary.inputs_tried} inputs tried (kind x command); {summary.lost} lost, {summary.duplicated} "
          f"duplicated, "
          f"{summary.corrupt} corrupt, {summary.tracebacks} tracebacks, {summary.without_reason} errors without a "
          f"reason, {summary.wrong_statuses} wrong exit statuses; {elapsed:.0f} s ({os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="four kinds, two kills each, fewer videos (CI)")
    parser.add_argument("--kills", type=int, default=None, help="kills per command (default: 10; --quick: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work in this (new) folder and keep it")
    args = parser.parse_args(argv)
    kills = args.kills if args.kills is not None else (2 if args.quick else 10)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidrnn-faults-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        summary = run_faults(work, quick=args.quick, kills=kills, seed=args.seed)
    print_tables(summary, time.perf_counter() - start)
    return 1 if summary.problems else 0


if __name__ == "__main__":
    sys.exit(main())
