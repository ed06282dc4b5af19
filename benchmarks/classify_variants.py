"""Test accuracy of every model variant over several seeds: the table behind docs/results.md.

One accuracy on 150 test clips moves by 0.7 points per clip, and two seeds of one model often differ by more than two
models do; so each variant is trained with several seeds and reported as the mean and spread, next to each run. Every
run is the plain CLI, started as a subprocess:

    vidrnn fit --config BASE --config configs/variants/VARIANT.yaml --seed_everything SEED [DATA ARGS] [EXTRA ARGS]

and reads the tested best checkpoint's metrics from the run's CSV log, with the best validation accuracy (what
chooses settings: the test column is read once per setting, never to choose). A variant is the name of any file in
``configs/variants`` or several joined by ``+`` (``gru+unidirectional``: both files, in that order).

    python benchmarks/classify_variants.py --root ../shared/data/ucf101-mini \\
        --splits ../shared/data/ucf101-mini/ucfTrainTestlist [--seeds 0 1 2] [--variants lstm gru mean_pool] \\
        [--extra --model.encoder.residual false]

``{seed}`` in an extra argument becomes each run's seed (``--extra --model.init_from pretrained/seed{seed}.ckpt``:
each seed's classifier starts from the encoder pretrained with the same seed).

The default variants are the recurrent cells and the baselines every result is measured against: order-blind
(``mean_pool``, ``per_frame``) and order-aware without recurrence (``frame_differences``, ``difference_pool``,
``temporal_conv``). After the table, each other variant gets a verdict against the best baseline by mean test
accuracy: *above* only when its worst seed beats the baseline's best, *below* when its best seed is under the
baseline's worst, and otherwise *level*: a gain inside the seed spread is no gain.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ucf101-mini"
BASELINES = ("mean_pool", "per_frame", "frame_differences", "difference_pool", "temporal_conv")
VARIANTS = ("lstm", "gru", "rnn", "rnn_relu", "unidirectional", *BASELINES)
VARIANT_DIR = REPO / "configs" / "variants"


def variant_configs(variant: str) -> list[str]:
    """``--config`` arguments of a variant: one file per ``+``-joined name."""
    paths = [VARIANT_DIR / f"{name}.yaml" for name in variant.split("+")]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(f"no such variant file: {', '.join(missing)}")
    return [argument for path in paths for argument in ("--config", str(path))]


def is_baseline(variant: str) -> bool:
    """Whether a variant (``+``-joined names) is one of the non-recurrent baselines."""
    return any(name in BASELINES for name in variant.split("+"))


def verdict(accuracies: list[float], baseline: list[float]) -> str:
    """A variant's seeds against a baseline's: above or below only when the two ranges of seeds do not overlap."""
    if min(accuracies) > max(baseline):
        return "above"
    if max(accuracies) < min(baseline):
        return "below"
    return "level (within the seed spread)"


def fit_and_test(base: Path, variant: str, seed: int, data_args: list[str], extra: list[str], workdir: Path) -> dict:
    """Run one ``vidrnn fit`` (it tests its best checkpoint) and return its test metrics and wall time."""
    save_dir = workdir / f"{variant}-{seed}"
    command = [
        sys.executable, "-m", "vidrnn", "fit", "--config", str(base), *variant_configs(variant),
        "--seed_everything", str(seed),
        *data_args, "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(save_dir),
        "--trainer.default_root_dir", str(save_dir), *(argument.replace("{seed}", str(seed)) for argument in extra),
    ]
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if finished.returncode != 0:
        raise RuntimeError(f"{variant} seed {seed} failed:\n{finished.stderr[-3000:]}")
    rows = [row for path in save_dir.rglob("metrics.csv") for row in csv.DictReader(path.open())]
    tested = [row for row in rows if row.get("test/acc")]
    if not tested:
        raise RuntimeError(f"{variant} seed {seed}: no test metrics in {save_dir}")
    validated = [float(row["val/acc"]) for row in rows if row.get("val/acc")]
    return {"acc": float(tested[-1]["test/acc"]), "mean_class_acc": float(tested[-1]["test/mean_class_acc"]),
            "val_acc": max(validated), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ucf101_cpu.yaml", help="base config")
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA, help="--data.root ('' keeps the config's data)")
    parser.add_argument("--splits", type=Path, default=DEFAULT_DATA / "ucfTrainTestlist", help="--data.splits")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--cache_dir", type=Path, default=None, help="--data.cache_dir (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"files of configs/variants, + joins several (default: {' '.join(VARIANTS)})")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="more CLI arguments for every run (must come last)")
    args = parser.parse_args()

    data_args = ["--data.fold", str(args.fold)]
    if str(args.root) not in ("", "."):
        data_args += ["--data.root", str(args.root.resolve()), "--data.splits", str(args.splits.resolve())]
    if args.cache_dir is not None:
        data_args += ["--data.cache_dir", str(args.cache_dir.resolve())]
    print(f"base config {args.config}, fold {args.fold}, seeds {args.seeds}, "
          f"extra {' '.join(args.extra) or '-'}")
    for variant in args.variants:
        variant_configs(variant)  # a typo fails now, not after an hour of runs
    print("| variant | " + " | ".join(f"seed {seed}" for seed in args.seeds)
          + " | mean ± sd | mean class acc | best val acc | s/run |")
    print("|---|" + "---:|" * (len(args.seeds) + 4))
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="vidrnn-variants-") as workdir:
        for variant in args.variants:
            runs = [fit_and_test(args.config.resolve(), variant, seed, data_args, args.extra, Path(workdir))
                    for seed in args.seeds]
            accuracies = results[variant] = [100 * run["acc"] for run in runs]
            class_accuracies = [100 * run["mean_class_acc"] for run in runs]
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            validation = statistics.mean(100 * run["val_acc"] for run in runs)
            print(f"| {variant} | " + " | ".join(f"{value:.1f} %" for value in accuracies)
                  + f" | {statistics.mean(accuracies):.1f} ± {spread:.1f} % | {statistics.mean(class_accuracies):.1f} %"
                  + f" | {validation:.1f} % | {statistics.mean(run['seconds'] for run in runs):.0f} |", flush=True)
    print_verdicts(results)


def print_verdicts(results: dict[str, list[float]]) -> None:
    """Each non-baseline variant against the best baseline run (by mean test accuracy), if one ran."""
    baselines = {variant: accuracies for variant, accuracies in results.items() if is_baseline(variant)}
    if not baselines or len(baselines) == len(results):
        return
    best = max(baselines, key=lambda variant: statistics.mean(baselines[variant]))
    print(f"\nagainst the best baseline, {best} ({statistics.mean(baselines[best]):.1f} %, seeds "
          f"{min(baselines[best]):.1f}-{max(baselines[best]):.1f} %):")
    for variant, accuracies in results.items():
        if variant not in baselines:
            print(f"  {variant}: {verdict(accuracies, baselines[best])}")


if __name__ == "__main__":
    main()
