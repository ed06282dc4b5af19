"""Test accuracy of every model variant over several seeds, judged against a baseline: the table behind
docs/results.md.

One accuracy on 150 test clips moves by 0.7 points per clip, and two seeds of one model often differ by more than two
models do; so each variant is trained with several seeds and reported as the mean and spread, next to each run. Every
run is the plain CLI, started as a subprocess, then its tested checkpoint predicts the test clips one by one:

    vidrnn fit --config BASE --config configs/variants/VARIANT.yaml --seed_everything SEED --data.seed SEED \\
        [DATA ARGS] [EXTRA ARGS]
    vidrnn predict (the same arguments) --ckpt_path TESTED_CHECKPOINT

From the fit's CSV log it reads the test metrics and the validation accuracy (and loss) of the checkpoint that was
tested — the one that chooses; the test column is read once per setting, never to choose — and from ``predict``'s
``predictions.csv`` which test clips the run got right (their accuracy must equal the logged test accuracy, or the
run is refused). A variant is the name of any file in ``configs/variants`` or several joined by ``+``
(``gru+unidirectional``: both files, in that order).

    python benchmarks/classify_variants.py --root ../shared/data/ucf101-mini \\
        --splits ../shared/data/ucf101-mini/ucfTrainTestlist [--seeds 0 1 2] [--variants lstm gru mean_pool] \\
        [--reference mean_pool] [--extra --model.encoder.residual false]

``{seed}`` in an extra argument becomes each run's seed (``--extra --model.init_from pretrained/seed{seed}.ckpt``:
each seed's classifier starts from the encoder pretrained with the same seed).

What the seed spread covers. ``seed_everything`` sets the initialisation and dropout; ``data.seed`` the batch order
and training segment offsets (since eeca2a4; before, ``seed_everything`` set the batch order), which training groups
validate, the ``data.train_fraction`` subset and order verification's shuffles. On UCF101 a run's seed is both, so
seeds differ in all of them; the test recordings are the official fold's, the same whatever the seed, but order
verification's shuffled test copies are drawn from ``data.seed`` and differ between seeds (the arrow of time's
backwards copies do not). On other datasets ``data.seed`` also draws the test split (class folders) or generates the
videos (demo), so it stays at the config's value and the spread covers initialisation and dropout alone; the script
says which at its start. ``--extra --data.seed {seed}`` varies it there too: where it draws the test split (or makes
the videos) the runs would test different clips, which cannot be compared clip by clip, so that is refused before
the first run; a root holding ``train/`` and ``test/`` folders, whose split no seed draws, runs. Neither covers which recordings the test set happens to hold: that is what the bootstrap
interval is for.

Every run keeps its folder under ``--runs`` (``RUN/fit``, ``RUN/predict``, their logs; ``run.json`` once finished):
the same command again reads the finished runs and runs the rest, and refuses a folder made with other settings:
other arguments, another working directory, or another SHA-256 of a file an argument names (in the base arguments
or ``--extra``, as ``--opt FILE`` or ``--opt=FILE``: configs, ``--model.init_from``'s checkpoint) or a setting of
those config files does (``data.splits``, ``model.init_from``), or of the group files they read (``--data FILE``, a
config's ``data: FILE``, hashed too), taken as each run starts; a run recorded in an
older format by older code, which records fewer of them, is refused as such (never deleted: give another ``--runs``
or move it away). A folder (``--root``, ``--cache_dir``) is not hashed: the data behind it is the user's to keep
the same (the feature cache re-extracts a video that changed). ``run.json`` also records the code that made the run
(the checkout's git commit and whether it had uncommitted changes, or ``unknown``); kept runs not known to be made by
the code of now are named at the start, with their commit, and read all the same: a change of code need not change
results.
A failed run is said with its reason and the table shows the variants whose every seed finished (exit status 1).
What is refused before the first run (an unknown variant, a variant the task refuses, an ``--extra`` setting that
changes one the variant's own files set, which would report another model under its name, a config file that
cannot be read, a kept run of other settings) is a usage error, exit status 2, naming the argument and what to do.
The runs start in the caller's directory, so relative paths in ``--extra`` and a config's relative defaults mean
what they mean there, with this checkout's vidrnn whatever that directory holds (``vidrnn_checkout.py``); a variant
the task refuses (``antisymmetric`` outside the arrow of time) is refused before the first run. The dataset (which
decides whether ``data.seed`` follows the seed) and the task are read from each run's command line by the runs' own
LightningCLI parser (nothing made; a few hundredths of a second a run): config files (``--extra --config FILE`` too),
group files (``--data FILE``, ``--data.backbone FILE``, a config's ``data: FILE``) and ``--KEY`` options in their
order, the later overriding, over the code's defaults; a command line it refuses is refused before the first run.

The default variants are the recurrent cells and the baselines every result is measured against: order-blind
(``mean_pool``, ``per_frame``) and order-aware without recurrence (``frame_differences``, ``difference_pool``,
``temporal_conv``); on a temporal-order task also name ``first_frame`` and ``magnitude_pool``, which solve part of
such a task without reading order. The reference is the baseline with the highest mean validation accuracy at the tested
checkpoints (ties: the lower validation loss), or the variant ``--reference`` names; never chosen by test accuracy.
The shortcuts are reported in the table but never chosen as the reference: they measure how much of a task needs no order,
not a model to beat.
Every other variant is compared with it on the same test clips: the difference of test accuracy with a 95 % interval
from a paired bootstrap that resamples the test set's (class, recording group) units — clips of one recording are
near-copies, so they are resampled together (per-clip correctness averaged over the seeds first). The units are the
groups the data module kept whole, as each run's ``splits.json`` records them (``test_groups``): the ``_gGG_`` of a
file name, else a class folder's first sub-folder (unlabeled videos: the root's), else the clip alone. The verdict is
*above* only when the variant's worst seed beats the reference's best AND the interval lies above 0, *below* the
mirror image, and otherwise *level*: a gain inside the seed spread, or inside what another draw of test recordings
could give, is no gain. With one seed there is no seed range to judge by (its worst is its best): the table gives the
mean alone and no verdict; a seed given twice is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonargparse
import numpy as np

from vidrnn.data.folders import has_explicit_split
from vidrnn.data.splits import split_settings
from vidrnn.files import atomic_write_bytes, file_sha256
from vidrnn_checkout import command as vidrnn_command

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ucf101-mini"
BASELINES = ("mean_pool", "per_frame", "frame_differences", "difference_pool", "temporal_conv")
#: Shortcut probes for temporal-order tasks, run when named: how much of such a task a model without order reading
#: solves (the first frame alone; order-blind pooling of change sizes). Reported, never the reference.
ORDER_SHORTCUTS = ("first_frame", "magnitude_pool")
VARIANTS = ("lstm", "gru", "rnn", "rnn_relu", "unidirectional", *BASELINES)
VARIANT_DIR = REPO / "configs" / "variants"
RESAMPLES = 2000
#: Suffixes of an order task's altered copy of a clip (``vidrnn.data.order``): the same recording.
_ALTERED = ("@backwards", "@shuffled")
#: A finished run's record in its folder: the settings it was made with, the code that made it, how long it took.
RECORD = "run.json"
#: The format of :data:`RECORD` this code writes, recorded in it since 4. Before: 1, the config files' digests alone
#: (``configs``); 2, every file an argument names (``files``); 3, the code too. 4: the files config files name too.
RECORD_FORMAT = 4
#: The code of a run made outside a git checkout (or without git): nothing to tell it by.
UNKNOWN_CODE = "unknown"


class Refused(Exception):
    """A command line the runs cannot start from, found before any run: said as a usage error (exit status 2,
    argparse's), naming the argument and what to do."""


@dataclass
class Run:
    """One fit of one variant with one seed: its tested checkpoint's scores and which test clips it got right."""

    seed: int
    acc: float
    mean_class_acc: float
    val_acc: float | None  # at the tested checkpoint; None without a validation split
    val_loss: float | None
    seconds: float
    correct: dict[str, bool] = field(default_factory=dict)  # test clip (row) key -> right or wrong
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # test clip key -> its (class, recording group)


def variant_configs(variant: str) -> list[Path]:
    """The config files of a variant: one file per ``+``-joined name."""
    paths = [VARIANT_DIR / f"{name}.yaml" for name in variant.split("+")]
    missing = [str(path.relative_to(REPO)) for path in paths if not path.is_file()]
    if missing:
        raise Refused(f"--variants {variant}: no {', '.join(missing)}; name files of configs/variants "
                      f"({', '.join(sorted(path.stem for path in VARIANT_DIR.glob('*.yaml')))}), + joins several")
    return paths


def is_baseline(variant: str) -> bool:
    """Whether a variant (``+``-joined names) is one of the non-recurrent baselines, which can be the reference: a
    baseline's file, and no shortcut probe's (:data:`ORDER_SHORTCUTS`: how much of a task needs no order, not a
    model to beat)."""
    names = variant.split("+")
    return any(name in BASELINES for name in names) and not any(name in ORDER_SHORTCUTS for name in names)


def clustered_difference(variant: np.ndarray, reference: np.ndarray, units: Sequence[Hashable],
                         resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Accuracy difference ``variant - reference`` on the same clips, and its ``level`` bootstrap interval, resampling
    whole units (recording groups) with replacement: ``(difference, low, high)`` as fractions.

    ``variant`` and ``reference`` hold each clip's correctness (0/1), or any score per item (``track_compare.py``:
    a sequence's success AUC, a sequence a unit), as ``[clips]`` or ``[seeds, clips]`` (averaged over seeds per clip
    first); ``units[i]`` is clip ``i``'s unit. A resample draws as many units as there are, and its
    difference is that of the accuracies over the clips they hold (units of unequal size weigh by their clips).
    Clips of one unit move together, so the interval is as wide as the units' disagreement warrants, not as narrow as
    the count of clips would suggest. Percentile interval; ``seed`` fixes the draws."""
    variant, reference = (np.asarray(values, dtype=float) for values in (variant, reference))
    variant, reference = (values.mean(axis=0) if values.ndim == 2 else values for values in (variant, reference))
    if variant.shape != reference.shape or variant.ndim != 1 or len(units) != len(variant) or not len(variant):
        raise ValueError(f"need one value per clip on both sides and one unit per clip: {variant.shape}, "
                         f"{reference.shape}, {len(units)} units")
    codes: dict[Hashable, int] = {}
    unit_of_clip = np.array([codes.setdefault(unit, len(codes)) for unit in units])
    sums = np.bincount(unit_of_clip, weights=variant - reference)
    sizes = np.bincount(unit_of_clip).astype(float)
    draws = np.random.default_rng(seed).multinomial(len(codes), np.full(len(codes), 1 / len(codes)), size=resamples)
    resampled = draws @ sums / (draws @ sizes)
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return float(sums.sum() / sizes.sum()), float(low), float(high)


def verdict(accuracies: Sequence[float], reference: Sequence[float], interval: tuple[float, float]) -> str:
    """A variant's seeds against the reference's: above or below only when the two ranges of seeds do not overlap and
    the bootstrap interval ``(low, high)`` of the difference lies on the same side of 0."""
    low, high = interval
    apart = min(accuracies) > max(reference) or max(accuracies) < min(reference)
    if min(accuracies) > max(reference) and low > 0:
        return "above"
    if max(accuracies) < min(reference) and high < 0:
        return "below"
    return "level (seeds apart, interval holds 0)" if apart else "level (seed ranges overlap)"


def recorded_units(run_dir: Path) -> dict[str, tuple[str, str]]:
    """Each test clip's (class, recording group) as the run's data module assigned them, from the ``test_groups`` of
    the ``splits.json`` in its log folder under ``run_dir`` (a clip of no group: the clip alone). Only the dataset's
    own index knows its groups: a rule read off the keys splits a class folder's nested recordings, merges ``_g01_``
    across classes or takes an explicit split's ``test/`` for a class."""
    found = sorted(run_dir.rglob("splits.json"))
    if len(found) != 1:
        raise RuntimeError(f"{'no' if not found else 'several'} splits.json under {run_dir}: the bootstrap needs the "
                           "one its run's data module wrote, with the recording group of each test clip")
    record = json.loads(found[0].read_text(encoding="utf-8"))
    if "test_groups" not in record:
        raise RuntimeError(f"{found[0]} records no test_groups (written by an older vidrnn): the bootstrap resamples "
                           "the recording groups the data module kept whole, which only that field gives; run the "
                           "benchmark with this one")
    return {key: (label, key if group is None else group) for key, (label, group) in record["test_groups"].items()}


def row_units(keys: Sequence[str], units: Mapping[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """The (class, recording group) of each predicted row: its clip's (:func:`recorded_units`); an order task's
    ``@backwards``/``@shuffled`` copy is its clip's, the same recording."""
    rows = []
    for key in keys:
        clip = key
        for suffix in _ALTERED:
            clip = clip.removesuffix(suffix)
        if clip not in units:
            raise RuntimeError(f"{key}: not a test clip of the run's splits.json (test_groups), so its recording "
                               "group is unknown; were the predictions made with another split?")
        rows.append(units[clip])
    return rows


def pick_reference(results: dict[str, list[Run]], named: str | None) -> tuple[str | None, str]:
    """The variant every other is judged against, and why: ``named``, else the baseline with the highest mean
    validation accuracy (ties: the lower mean validation loss). Test scores play no part."""
    if named is not None:
        return (named, "named by --reference") if named in results else (
            None, f"the reference {named} did not finish every seed: no verdicts")
    baselines = {variant: runs for variant, runs in results.items() if is_baseline(variant)}
    if not baselines or len(baselines) == len(results):
        return None, "no baseline ran beside the other variants: no verdicts"
    unvalidated = [variant for variant, runs in baselines.items() if any(run.val_acc is None for run in runs)]
    if unvalidated:
        return None, (f"{', '.join(unvalidated)} has no validation score (data.val_fraction 0?): no baseline can be "
                      "chosen without looking at the test, so no verdicts; name one with --reference")

    def score(variant: str) -> tuple[float, float]:
        runs = baselines[variant]
        return (statistics.mean(run.val_acc for run in runs),
                -statistics.mean(run.val_loss if run.val_loss is not None else 0.0 for run in runs))

    ranked = sorted(baselines, key=score, reverse=True)
    best = ranked[0]
    why = f"the baseline with the highest mean validation accuracy ({100 * score(best)[0]:.1f} %"
    if len(ranked) > 1:
        runner_up = ranked[1]
        tied = f" (tied: {best} has the lower validation loss)" if score(runner_up)[0] == score(best)[0] else ""
        why += f"; next {runner_up} {100 * score(runner_up)[0]:.1f} %{tied}"
    return best, why + "); test scores play no part in the choice"


def compare(runs: list[Run], reference: list[Run]) -> tuple[tuple[float, float, float], int]:
    """Difference of test accuracy against the reference (fractions: point, low, high) from the clustered bootstrap
    over the test clips both predicted, and the number of units resampled."""
    keys = sorted(reference[0].correct)
    if any(sorted(run.correct) != keys for run in [*runs, *reference]):
        raise RuntimeError("the runs predicted different test clips: they cannot be compared clip by clip")
    if any(run.units != reference[0].units for run in [*runs, *reference]):
        raise RuntimeError("the runs' splits.json give the test clips different recording groups: they cannot be "
                           "resampled as one test set")
    units = row_units(keys, reference[0].units)
    variant, baseline = (np.array([[run.correct[key] for key in keys] for run in group], dtype=float)
                         for group in (runs, reference))
    return clustered_difference(variant, baseline, units), len(set(units))


def given_options(arguments: Sequence[str]) -> list[str]:
    """The config files (``-c``/``--config``) the command line ``arguments`` give, in their order, each written
    ``--config VALUE``: found by argparse, which LightningCLI's parser is built on, so every spelling it takes
    (``-c X``, ``-cX``, ``--config=X``) is found here too. Abbreviations are not (jsonargparse deprecates them)."""
    found: list[str] = []

    class Keep(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                     option_string: str | None = None) -> None:
            found.extend((f"--{self.dest}", str(values)))

    finder = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    finder.add_argument("-c", "--config", action=Keep)
    try:
        finder.parse_known_args(list(arguments))
    except argparse.ArgumentError as error:
        raise Refused(f"--extra: {error}: the runs' vidrnn would refuse it; give the option its value") from None
    return found


def config_reader() -> jsonargparse.ArgumentParser:
    """A jsonargparse parser of config files alone (``-c``/``--config``, as LightningCLI takes them)."""
    reader = jsonargparse.ArgumentParser(exit_on_error=False)
    reader.add_argument("-c", "--config", action=jsonargparse.ActionConfigFile)
    return reader


def refuse_unreadable_configs(arguments: Sequence[str], given_as: str) -> None:
    """Refuse a config file among ``arguments`` that jsonargparse cannot read (no such file, not YAML, not a
    mapping), naming it as the command line gives it (``given_as``): its runs would all fail at their start."""
    for config in given_options(arguments)[1::2]:
        try:
            config_reader().parse_args(["--config", config], _skip_validation=True)
        except jsonargparse.ArgumentError as error:
            raise Refused(f"{given_as} {config}: not a readable config file ({error}); give a YAML file of settings "
                          f"(a relative path from {Path.cwd()})") from None


def read_settings(arguments: Sequence[str]) -> jsonargparse.Namespace:
    """The settings a run's command line ``arguments`` give, read by the runs' own LightningCLI parser
    (:func:`vidrnn.task_cli.entry.command_settings`): config files, group files (``--data FILE``, a config's
    ``data: FILE``) and ``--KEY`` options in command-line order, each later one overriding the earlier, over the
    code's defaults. A command line that parser refuses is refused here, before the first run."""
    from vidrnn.task_cli.entry import command_settings

    try:
        return command_settings(arguments)
    except jsonargparse.ArgumentError as error:
        raise Refused(f"the runs' settings (the configs, --extra) are refused by vidrnn fit: {error}; fix that "
                      "argument or the config that sets it") from None


def configured(arguments: Sequence[str], key: str) -> object:
    """The value of a dotted setting (``data.dataset``) a run's command line ``arguments`` give it, the code's
    default where none sets it (:func:`read_settings`). Read before any run, to refuse early."""
    return read_settings(arguments).get(key)


def config_named_files(arguments: Sequence[str]) -> list[str]:
    """The files the config files among a run's ``arguments`` name (a splits file, a checkpoint to start from) and
    the group files they read (``--data FILE``, a config's ``data: FILE``): the settings in effect
    (:func:`read_settings`) that name an existing file, relative ones from the working directory, where the runs
    start and read them; a group file named inside a config elsewhere by its absolute path (LightningCLI reads it
    from that config's folder)."""
    return [value for value in _strings(read_settings(arguments).as_dict()) if value and Path(value).is_file()]


def _strings(value: object) -> Iterator[str]:
    """Every string in a nest of dicts and lists (a config's settings), and every file jsonargparse read them from
    (:func:`_read_from`)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, jsonargparse.Path):
        yield _read_from(value)
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


def _read_from(path: jsonargparse.Path) -> str:
    """A config or group file as :func:`named_files` names it, given here (relative from here, as given), else by its
    absolute path."""
    return path.relative if Path(path.cwd) == Path.cwd() else path.absolute


def task_refusals(jobs: Sequence[Job]) -> list[str]:
    """Why each variant the runs' task refuses would fail, known from the settings before an hour of other runs:
    an antisymmetric model scores a clip against its reversal, for the arrow of time alone."""
    refusals = {}
    for job in jobs:
        settings = read_settings(job.arguments)
        objective = settings.get("data.objective")
        if settings.get("model.antisymmetric") and objective != "arrow_of_time":
            refusals[job.variant] = (f"--variants {job.variant}: model.antisymmetric is for data.objective "
                                     f"arrow_of_time only, the runs' is {objective} (leave the variant out, or give "
                                     "a config of the arrow of time)")
    return list(refusals.values())


def extra_overrides(extra: Sequence[str], jobs: Sequence[Job]) -> list[str]:
    """Why each variant one of whose own settings ``--extra`` would change is refused: the run would be another model
    labelled and judged as the variant (``--extra --model.encoder.inputs both`` makes the order-blind mean_pool read
    frame changes, yet it stays the order-blind reference). A value equal to the variant's own, or of a key its files
    do not set, changes no variant. Read by the runs' parser (:func:`read_settings`) with and without ``--extra``."""
    refusals = {}
    for job in jobs:
        given = seeded(extra, job.seed)
        if not given:
            continue
        own, run = read_settings(job.arguments[:len(job.arguments) - len(given)]), read_settings(job.arguments)
        for key, files in variant_keys(job.variant).items():
            if own.get(key) != run.get(key):
                refusals[job.variant, key] = (
                    f"--variants {job.variant}: --extra gives {key} {run.get(key)}, {files} sets {own.get(key)}: the "
                    f"runs would not be {job.variant}, yet be reported as it; leave {job.variant} out of this run "
                    "(--variants), or write a variant file with that setting (configs/variants/NAME.yaml) and name "
                    f"it ({job.variant}+NAME)")
    return list(refusals.values())


def variant_keys(variant: str) -> dict[str, str]:
    """Each setting (dotted key) a variant's config files set, with the files that set it."""
    keys: dict[str, list[str]] = {}
    for path in variant_configs(variant):
        read = config_reader().parse_args(["--config", str(path)], _skip_validation=True)
        for key in read.keys():
            if key != "config":
                keys.setdefault(key, []).append(str(path.relative_to(REPO)))
    return {key: " and ".join(files) for key, files in keys.items()}


def _run(command: list[str], log: Path) -> None:
    """Run one vidrnn command where the caller is (its relative paths mean what they mean on the caller's command
    line); its output goes to ``log``, and a failure says its last line."""
    finished = subprocess.run(command, capture_output=True, text=True)
    log.write_text(finished.stdout + finished.stderr, encoding="utf-8")
    if finished.returncode != 0:
        last = next((line for line in reversed(finished.stderr.splitlines()) if line.strip()), "no message")
        raise RuntimeError(f"{last.strip()} (its output: {log})")


def code_version(checkout: Path = REPO) -> dict[str, object] | str:
    """The code that makes a run: the checkout's git commit and whether it has uncommitted changes to tracked files,
    or :data:`UNKNOWN_CODE` outside a git checkout or without git. Recorded with each run, not part of its settings:
    a change of code need not change results, but whoever reads a kept run must know which code made it."""
    git = ["git", "-C", str(checkout)]
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        changes = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True)
    except OSError:
        return UNKNOWN_CODE
    if commit.returncode or changes.returncode:
        return UNKNOWN_CODE
    return {"commit": commit.stdout.strip(), "uncommitted changes": bool(changes.stdout.strip())}


def describe_code(code: dict[str, object] | str) -> str:
    """A run's code in words: its commit (12 digits) and whether it had uncommitted changes."""
    if code == UNKNOWN_CODE:
        return "unknown code (no git checkout)"
    return f"commit {code['commit'][:12]}" + (" with uncommitted changes" if code["uncommitted changes"] else "")


def other_code_notice(jobs: list[Job], now: dict[str, object] | str) -> str | None:
    """The kept runs of ``jobs`` not known to be made by the code ``now`` (:func:`code_version`), by the code that
    made them, in a line; ``None`` when there are none. Another commit, uncommitted changes (then or now) and unknown
    code cannot be told to be the same; such runs are read as they are, and the reader is told."""
    made_by: dict[str, list[str]] = {}
    for job in jobs:
        record = job.recorded()
        if record is None:
            continue
        then = record.get("code", UNKNOWN_CODE)
        if then != now or then == UNKNOWN_CODE or then["uncommitted changes"]:
            made_by.setdefault(describe_code(then), []).append(f"{job.variant} seed {job.seed}")
    if not made_by:
        return None
    return (f"kept runs not known to be made by this checkout's code ({describe_code(now)}), read as they are (a "
            "change of code need not change results; remove a run's folder to run it again): "
            + "; ".join(f"{', '.join(runs)} by {code}" for code, runs in made_by.items()))


def tested_checkpoint(save_dir: Path) -> tuple[Path, int | None]:
    """The checkpoint ``test_after_fit`` tested and its epoch: the monitored checkpoint when the fit kept one, else
    the final weights (``latest.ckpt``; no epoch to read a validation score at)."""
    checkpoints = sorted(save_dir.rglob("*.ckpt"))
    best = [path for path in checkpoints if not path.stem.startswith("latest")]
    if len(best) > 1:
        raise RuntimeError(f"{save_dir}: several monitored checkpoints ({', '.join(p.name for p in best)}); the "
                           "benchmark needs the one that was tested (save_top_k: 1)")
    if best:
        from vidrnn.checkpoints import load_checkpoint

        return best[0], int(load_checkpoint(best[0])["epoch"])
    latest = [path for path in checkpoints if path.stem == "latest"]
    if not latest:
        raise RuntimeError(f"{save_dir}: no checkpoint to predict with (a ModelCheckpoint with filename latest)")
    return latest[0], None


def named_files(arguments: Sequence[str]) -> list[str]:
    """The arguments that name an existing file, as given (relative ones from the working directory): a value
    after its option (``--config mine.yaml``) or joined to it (``--config=mine.yaml``), whatever the option."""
    values = (argument.partition("=")[2] if argument.startswith("--") else argument for argument in arguments)
    return [value for value in values if value and Path(value).is_file()]


@dataclass(frozen=True)
class Job:
    """One variant with one seed to run: its folder (``fit/``, ``predict/``, their logs, :data:`RECORD` once done)
    and the arguments of both its commands but where they write."""

    variant: str
    seed: int
    folder: Path
    arguments: tuple[str, ...]

    def settings(self) -> dict[str, object]:
        """What makes its results: the arguments, the directory their relative paths start from, and the SHA-256 of
        every file they name (:func:`named_files`: configs, a checkpoint to start from, ...) or their config files
        name (:func:`config_named_files`: a splits file, ...), so that a file changed in place, as re-running a
        pretraining does, means other settings. A kept run is reused only where they are the same. What a folder
        holds (the data) is not hashed: the user's to keep the same."""
        files = dict.fromkeys([*named_files(self.arguments), *config_named_files(self.arguments)])
        return {"arguments": list(self.arguments), "directory": str(Path.cwd()),
                "files": {path: file_sha256(Path(path)) for path in files}}

    def recorded(self) -> dict | None:
        """The record a finished run left in its folder (``None``: not finished). One that is not a JSON object
        (edited by hand: the script writes it atomically) is refused, never taken for unfinished and run over."""
        record = self.folder / RECORD
        if not record.is_file():
            return None
        try:
            found = json.loads(record.read_text(encoding="utf-8"))
        except ValueError as error:
            found = error
        if not isinstance(found, dict):
            raise Refused(f"--runs: {record} cannot be read as a run's record ({found}): give another --runs, or "
                          "move that folder away to run it again")
        return found


def plan(args: argparse.Namespace, data_args: list[str]) -> list[Job]:
    """Every (variant, seed) run, in order, each in its folder under ``--runs``; a run's seed is its ``data.seed``
    too where its dataset allows (:func:`links_data_seed`), given before ``--extra`` (which may override it)."""
    refuse_unreadable_configs(["--config", str(args.config)], "--config")
    for seed in args.seeds:
        refuse_unreadable_configs(seeded(args.extra, seed), "--extra --config")
    jobs = []
    for variant in args.variants:
        configs = [argument for path in [args.config.resolve(), *variant_configs(variant)]
                   for argument in ("--config", str(path))]
        refuse_unreadable_configs(configs[2:], f"--variants {variant}:")
        for seed in args.seeds:
            first = [*configs, "--seed_everything", str(seed)]
            rest = [*data_args, "--trainer.enable_progress_bar", "false",
                    "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                    *seeded(args.extra, seed)]
            linked = ["--data.seed", str(seed)] if links_data_seed(run_dataset([*first, *rest])) else []
            jobs.append(Job(variant, seed, args.runs.absolute() / f"{variant}-seed{seed}", (*first, *linked, *rest)))
    return jobs


def seeded(arguments: Sequence[str], seed: int) -> list[str]:
    """``arguments`` with ``{seed}`` replaced by ``seed``."""
    return [argument.replace("{seed}", str(seed)) for argument in arguments]


def run_dataset(arguments: Sequence[str]) -> str:
    """The dataset a run's command line reads (:func:`configured`)."""
    return str(configured(arguments, "data.dataset"))


def links_data_seed(dataset: str) -> bool:
    """Whether a run of ``dataset`` takes its seed as ``data.seed`` too: UCF101 only, whose test split is the fold's;
    elsewhere ``data.seed`` also draws the test split (class folders) or makes the videos (demo)."""
    return dataset == "ucf101"


def refuse_before_running(args: argparse.Namespace, jobs: list[Job]) -> None:
    """Refuse, before any run, a command line that cannot give the table: a seed given twice, a reference not run, a
    variant the task refuses or whose own settings ``--extra`` changes, runs that would test different clips, a folder
    of ``--runs`` holding another run."""
    repeated = [seed for seed in dict.fromkeys(args.seeds) if args.seeds.count(seed) > 1]
    if repeated:
        raise Refused(f"--seeds {' '.join(map(str, args.seeds))}: seed {', '.join(map(str, repeated))} is given more than once, "
                      "which would count one run as two seeds; give each seed once")
    if args.reference is not None and args.reference not in args.variants:
        raise Refused(f"--reference {args.reference} is not among --variants: name one of them, or add it to them")
    refusals = task_refusals(jobs) + extra_overrides(args.extra, jobs)
    if refusals:
        raise Refused("\n".join(refusals))
    refuse_different_test_clips(jobs)
    refuse_other_settings(jobs)


def refuse_different_test_clips(jobs: Sequence[Job]) -> None:
    """Refuse runs whose settings would test different clips (``--extra --data.seed {seed}`` on class folders, whose
    test split it draws): they cannot be compared clip by clip, which would be found only after every run."""
    first = jobs[0]
    tested = test_split(first.arguments)
    for job in jobs[1:]:
        here = test_split(job.arguments)
        differing = [key for key in dict.fromkeys([*tested, *here]) if tested.get(key) != here.get(key)]
        if differing:
            raise Refused(
                f"the runs would test different clips: {first.variant} seed {first.seed} has "
                + ", ".join(f"{key} {tested.get(key)}" for key in differing)
                + f", {job.variant} seed {job.seed} " + ", ".join(f"{key} {here.get(key)}" for key in differing)
                + f" ({_what_they_decide(str(tested['data.dataset']))}), so they could not be compared clip by clip; "
                "give every run the same " + ", ".join(differing) + " (no {seed} in --extra's)"
                + (", or split the videos into train/ and test/ folders under data.root, whose test split no setting "
                   "draws" if tested["data.dataset"] == "folders" else ""))


def _what_they_decide(dataset: str) -> str:
    """What the settings that differ decide for ``dataset``, for the refusal of runs testing different clips."""
    if dataset == "demo":
        return "on the demo data.seed makes the videos themselves"
    return f"they draw the test split of dataset {dataset}"


def test_split(arguments: Sequence[str]) -> dict[str, object]:
    """The settings that decide which clips a run's command line tests (:func:`vidrnn.data.splits.split_settings`;
    the demo's ``data.seed`` too, which makes its videos), with their values."""
    settings = read_settings(arguments)
    dataset = settings.get("data.dataset")
    explicit = dataset == "folders" and has_explicit_split(settings.get("data.root"))
    names = split_settings(dataset, explicit, "test") + (("seed",) if dataset == "demo" else ())
    return {f"data.{name}": settings.get(f"data.{name}") for name in dict.fromkeys(names)}


def refuse_other_settings(jobs: list[Job]) -> None:
    """Refuse a folder holding a finished run made with other settings: its numbers would be reported as this
    command's."""
    for job in jobs:
        record = job.recorded()
        if record is not None and record.get("settings") != job.settings():
            raise Refused(f"--runs: {job.folder} holds {job.variant} seed {job.seed} {unlike(record)}")


def unlike(record: dict) -> str:
    """How a kept run's record differs from this command's settings, and what to do: recorded in an older format
    (:data:`RECORD_FORMAT`), which records fewer of them, so this code cannot tell; else made with other settings."""
    if record.get("format", 0) < RECORD_FORMAT:
        return (f"recorded in an older format (run.json format {record.get('format', 'not recorded')}, this code "
                f"writes {RECORD_FORMAT}) by older code, whose settings this code cannot compare with these: run "
                "with another --runs folder, or move that folder away to run it again")
    return ("made with other settings (arguments, working directory, or the contents of a file they or their config "
            "files name: a config, a checkpoint to start from, a splits file): give another --runs, or remove that "
            "folder to run it again")


def execute(job: Job) -> None:
    """Run one ``vidrnn fit`` (it tests its tested checkpoint), then ``vidrnn predict`` with that checkpoint, and
    record the run as finished, with the code it started with. What an unfinished earlier attempt left in its folder
    goes first. The settings, named files' digests included, are those it started with: a file rewritten while
    it ran (a pretraining re-run beside it) leaves it unrecorded, to be run again."""
    shutil.rmtree(job.folder, ignore_errors=True)
    job.folder.mkdir(parents=True)
    code, settings = code_version(), job.settings()
    fit, predicted = job.folder / "fit", job.folder / "predict"
    start = time.perf_counter()
    _run(vidrnn_command("fit", *job.arguments, "--trainer.logger.save_dir", str(fit),
                        "--trainer.default_root_dir", str(fit)), job.folder / "fit.log")
    seconds = time.perf_counter() - start
    checkpoint, _ = tested_checkpoint(fit)
    _run(vidrnn_command("predict", *job.arguments, "--trainer.logger.save_dir", str(predicted),
                        "--trainer.default_root_dir", str(predicted), "--ckpt_path", str(checkpoint)),
         job.folder / "predict.log")
    changed = [path for path, digest in job.settings()["files"].items() if settings["files"].get(path) != digest]
    if changed:
        raise RuntimeError(f"{', '.join(changed)} changed while the run read it: not recorded, run it again")
    record = {"format": RECORD_FORMAT, "settings": settings, "code": code, "seconds": seconds}
    atomic_write_bytes(job.folder / RECORD, json.dumps(record, indent=1).encode())


def read_run(job: Job) -> Run:
    """A finished run's scores from its folder: the test metrics and the validation accuracy (and loss) at the
    tested checkpoint from the fit's CSV log, which test clips it got right from ``predictions.csv``."""
    fit, predicted = job.folder / "fit", job.folder / "predict"
    rows = [row for path in fit.rglob("metrics.csv") for row in csv.DictReader(path.open())]
    tested = [row for row in rows if row.get("test/acc")]
    if not tested:
        raise RuntimeError(f"no test metrics in {fit}")
    checkpoint, epoch = tested_checkpoint(fit)
    validated = [row for row in rows if row.get("val/acc") and epoch is not None and int(row["epoch"]) == epoch]
    correct = {row["clip"]: row["true_label"] == row["predicted_label"]
               for path in predicted.rglob("predictions.csv") for row in csv.DictReader(path.open())}
    acc = float(tested[-1]["test/acc"])
    if not correct or abs(sum(correct.values()) / len(correct) - acc) > 0.5 / len(correct):
        raise RuntimeError(f"{checkpoint.name} predicts {sum(correct.values())} of {len(correct)} test clips right, "
                           f"the test logged {acc:.4f}: not the tested checkpoint")
    return Run(job.seed, acc, float(tested[-1]["test/mean_class_acc"]),
               float(validated[-1]["val/acc"]) if validated else None,
               float(validated[-1]["val/loss"]) if validated and validated[-1].get("val/loss") else None,
               job.recorded()["seconds"], correct, recorded_units(predicted))


def data_seed_varies(jobs: Sequence[Job]) -> dict[str, bool]:
    """Each dataset the runs read, and whether their ``data.seed`` follows the seed: it differs between them (linked
    by :func:`links_data_seed`, or ``--extra --data.seed {seed}``), or, with one seed, is that seed. A ``data.seed``
    that ``--extra`` pins is the same in every run, whatever the dataset."""
    seeds: dict[str, set[object]] = {}
    follows: dict[str, bool] = {}
    for job in jobs:
        dataset, value = run_dataset(job.arguments), configured(job.arguments, "data.seed")
        seeds.setdefault(dataset, set()).add(value)
        follows[dataset] = follows.get(dataset, True) and str(value) == str(job.seed)
    return {dataset: len(values) > 1 or follows[dataset] for dataset, values in seeds.items()}


def seed_coverage(dataset: str, data_seed_varies: bool, draws_test_clips: bool) -> str:
    """What the seed spread covers, said at the start: since eeca2a4 batch order and segment offsets are drawn from
    data.seed, not seed_everything. Runs whose data.seed would draw other test clips are refused before this;
    ``draws_test_clips``: whether data.seed decides the runs' test clips (:func:`test_split`), which is why it was
    kept at one value."""
    if data_seed_varies:
        tested = ("the test recordings are the fold's, the same in every run" if dataset == "ucf101" else
                  "the test clips are the same in every run (those of data.root's test/ folder)")
        return ("seed_everything and data.seed (initialisation and dropout; batch order, training segment offsets, "
                f"validation groups, label subset); {tested}, but order verification's shuffled test copies are "
                "drawn from data.seed, so they differ between seeds (the arrow of time's backwards copies do not)")
    why = (f"dataset {dataset}: it would also change the test split or the videos" if draws_test_clips else
           "the same in every run as given; --extra --data.seed {seed} would vary it too")
    return (f"seed_everything only: data.seed stays at one value ({why}), so the seeds vary initialisation and "
            "dropout alone: batch order and training segment offsets come from data.seed and are the same in every "
            "run, as are the validation groups")


def run_all(jobs: list[Job]) -> tuple[dict[str, list[Run]], dict[str, list[int]]]:
    """Each job's run, kept from an earlier command where finished, else run now; a failure is said with its reason
    and the others go on. Returns the variants every seed of which finished, and the failed seeds of the others."""
    results: dict[str, list[Run]] = {}
    failed: dict[str, list[int]] = {}
    for job in jobs:
        kept = job.recorded() is not None
        try:
            if not kept:
                execute(job)
            run = read_run(job)
        except (RuntimeError, Refused) as error:  # Refused: a config file unreadable once the run ended
            failed.setdefault(job.variant, []).append(job.seed)
            print(f"  {job.variant} seed {job.seed} failed: {error}", file=sys.stderr, flush=True)
            continue
        results.setdefault(job.variant, []).append(run)
        validation = f"{100 * run.val_acc:.1f} %" if run.val_acc is not None else "-"
        print(f"  {job.variant} seed {job.seed}: test {100 * run.acc:.1f} %, val {validation}, {run.seconds:.0f} s"
              + (" (kept from an earlier command)" if kept else ""), file=sys.stderr, flush=True)
    return {variant: runs for variant, runs in results.items() if variant not in failed}, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ucf101_cpu.yaml", help="base config")
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA, help="--data.root ('' keeps the config's data)")
    parser.add_argument("--splits", type=Path, default=DEFAULT_DATA / "ucfTrainTestlist", help="--data.splits")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--cache_dir", type=Path, default=None, help="--data.cache_dir (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"files of configs/variants, + joins several (default: {' '.join(VARIANTS)})")
    parser.add_argument("--reference", default=None,
                        help="the variant to judge the others against (default: the baseline best on validation)")
    parser.add_argument("--runs", type=Path, default=Path("runs/classify_variants"),
                        help="where every run's folder is kept (default: %(default)s); a run finished there with the "
                             "same settings (arguments, working directory, SHA-256 of every file an argument or a "
                             "config names) "
                             "is read, not run again, so the same command goes on after a failure. Folders such as "
                             "--root and --cache_dir are not hashed: the data behind them is yours to keep the same "
                             "(the feature cache re-extracts a video that changed)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="more CLI arguments for every run (must come last; relative paths as from here)")
    args = parser.parse_args()

    data_args = ["--data.fold", str(args.fold)]
    if str(args.root) not in ("", "."):
        data_args += ["--data.root", str(args.root.resolve()), "--data.splits", str(args.splits.resolve())]
    if args.cache_dir is not None:
        data_args += ["--data.cache_dir", str(args.cache_dir.resolve())]
    try:  # a typo fails now, not after an hour
        jobs = plan(args, data_args)
        refuse_before_running(args, jobs)
    except Refused as refusal:
        parser.error(str(refusal))
    print(f"base config {args.config}, fold {args.fold}, seeds {args.seeds}, extra {' '.join(args.extra) or '-'}; "
          f"runs kept in {args.runs.absolute()}")
    for dataset, varies in data_seed_varies(jobs).items():
        draws = any("data.seed" in test_split(job.arguments) for job in jobs if run_dataset(job.arguments) == dataset)
        print(f"the seed spread covers {seed_coverage(dataset, varies, draws)}", flush=True)
    notice = other_code_notice(jobs, code_version())
    if notice is not None:
        print(notice, flush=True)
    results, failed = run_all(jobs)
    compared = True
    if results:
        reference, why = pick_reference(results, args.reference)
        compared = print_table(results, reference, why)
    if failed:
        print("\nnot in the table, a run failed: " + ", ".join(
            f"{variant} (seed {', '.join(map(str, seeds))})" for variant, seeds in failed.items()))
    return 1 if failed or not compared else 0


def mean_spread(accuracies: Sequence[float]) -> str:
    """Accuracies' mean and standard deviation (``91.3 ± 1.2 %``); the mean alone for one seed, whose ``± 0.0``
    would read as no variation between seeds."""
    mean = statistics.mean(accuracies)
    return f"{mean:.1f} ± {statistics.stdev(accuracies):.1f} %" if len(accuracies) > 1 else f"{mean:.1f} %"


def print_table(results: dict[str, list[Run]], reference: str | None, why: str) -> bool:
    """One row per variant: each seed's test accuracy, their mean and spread, the validation accuracy at the tested
    checkpoints, and (when there is a reference) the difference from it with its interval and the verdict. A variant
    whose runs cannot be compared with the reference's (other test clips: the videos changed between runs) is marked,
    the reason said below the table; returns whether every variant was compared."""
    seeds = [run.seed for run in next(iter(results.values()))]
    print(f"\nreference: {reference or '-'}: {why}")
    print("| variant | " + " | ".join(f"seed {seed}" for seed in seeds)
          + f" | {'mean ± sd' if len(seeds) > 1 else 'mean'} | mean class acc | val acc | Δ vs reference [95 % "
          "interval] | verdict | s/run |")
    print("|---|" + "---:|" * (len(seeds) + 4) + "---|---:|")
    units, uncompared = 0, []
    for variant, runs in results.items():
        accuracies = [100 * run.acc for run in runs]
        validated = [run.val_acc for run in runs if run.val_acc is not None]
        validation = f"{100 * statistics.mean(validated):.1f} %" if len(validated) == len(runs) else "-"
        difference, judged = "-", "-"
        if variant == reference:
            difference, judged = "reference", "-"
        elif reference is not None:
            try:
                (point, low, high), units = compare(runs, results[reference])
            except RuntimeError as error:
                uncompared.append(f"{variant} not compared with {reference}: {error}")
                judged = "not compared"
            else:
                difference = f"{100 * point:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
                judged = (verdict(accuracies, [100 * run.acc for run in results[reference]], (low, high))
                          if len(seeds) > 1 else "none (one seed)")
        print(f"| {variant} | " + " | ".join(f"{value:.1f} %" for value in accuracies) + f" | {mean_spread(accuracies)}"
              + f" | {statistics.mean(100 * run.mean_class_acc for run in runs):.1f} % | {validation}"
              + f" | {difference} | {judged} | {statistics.mean(run.seconds for run in runs):.0f} |")
    if reference is not None:
        print(f"\nΔ: test accuracy minus the reference's, points, mean over seeds; 95 % interval from {RESAMPLES} "
              f"resamples of the test set's {units} (class, recording group) units\n(paired: the same clips, each "
              "clip's correctness averaged over seeds). Verdict: above/below only when the seed ranges do not "
              "overlap and\nthe interval excludes 0; otherwise level: a gain inside the seed spread is no gain."
              + ("" if len(seeds) > 1 else "\nno verdict with one seed: the rule needs each variant's seed range "
                 "(one seed's worst is its best), so run two seeds or more (--seeds 0 1 2)"))
    for reason in uncompared:
        print(f"\n{reason} (its runs are kept; run them again on the same videos)")
    return not uncompared


if __name__ == "__main__":
    sys.exit(main())
