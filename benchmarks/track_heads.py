"""Train tracker heads over a sweep of variants and seeds; print their validation success AUC as a table.

    python benchmarks/track_heads.py --config configs/track.yaml --out runs/track_heads \\
        --variant lstm="--model.cell lstm" --variant none="--model.cell none" [--seeds 0 1 2] [-- EXTRA OVERRIDES]

Each variant is a set of command-line overrides of ``vidrnn fit``; every variant is trained once per seed
(``--seed_everything``) over the same cached evidence (the first fit builds it). A seed sets the head's initial
weights (and dropout, where one is set) and nothing else: since eeca2a4 the training windows follow
``data.seed``, which stays at the config's value (it also draws the simulated runs, so another one simulates every
sequence again; give ``--data.seed N`` after ``--`` for that). The score is the validation success
AUC of whole validation sequences (``val/success_auc``: the tracker's boxes online, read from the matching run's
cached evidence), at the best epoch (what the checkpoint keeps) and at the last one, beside the matching-only
tracker's on the same sequences. The table prints the checkpoint of every run, for ``track_compare.py``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from vidrnn.task_cli.entry import run_lightning_cli


def _parse_variant(text: str) -> tuple[str, list[str]]:
    name, separator, overrides = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=\"--key value ...\", got {text!r}")
    return name, shlex.split(overrides)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/track.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/track_heads"), help="one run folder per variant and seed")
    parser.add_argument("--variant", type=_parse_variant, action="append", required=True,
                        help='NAME="OVERRIDES" (repeatable), e.g. gru="--model.cell gru"')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="--seed_everything of each run: the head's initial weights (data.seed, which "
                             "draws the training windows, stays the config's)")
    parser.add_argument("extra", nargs="*", help="overrides for every run (after --), e.g. --data.cache_dir DIR")
    args = parser.parse_args()

    rows = []
    for name, overrides in args.variant:
        best, last, matching, checkpoints = [], [], [], []
        for seed in args.seeds:
            cli = run_lightning_cli([
                "fit", "--config", str(args.config), *args.extra, *overrides, "--seed_everything", str(seed),
                "--trainer.default_root_dir", str(args.out / name / f"seed{seed}"),
                "--trainer.enable_progress_bar", "false",
            ])
            metrics = cli.trainer.callback_metrics
            callback = cli.trainer.checkpoint_callback
            best.append(float(callback.best_model_score))
            last.append(float(metrics["val/success_auc"]))
            matching.append(float(metrics["val/success_auc_matching"]))
            checkpoints.append(callback.best_model_path)
            print(f"{name} seed {seed}: best {best[-1]:.3f}, last {last[-1]:.3f}, matching {matching[-1]:.3f}",
                  file=sys.stderr, flush=True)
        rows.append((name, overrides, best, last, matching[0], checkpoints))

    print(f"Validation success AUC ({args.config}; seeds {args.seeds})\n")
    print("| variant | overrides | best epoch: mean | per seed | spread | last epoch: mean | matching-only |")
    print("|---|---|---:|---|---:|---:|---:|")
    for name, overrides, best, last, matching, _ in rows:
        print(f"| {name} | `{' '.join(overrides)}` | **{np.mean(best):.3f}** | "
              f"{' / '.join(f'{value:.3f}' for value in best)} | {max(best) - min(best):.3f} | {np.mean(last):.3f} | "
              f"{matching:.3f} |")
    print("\nCheckpoints (best epoch):")
    for name, *_, checkpoints in rows:
        print(f"  --ckpt {name}={','.join(checkpoints)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
