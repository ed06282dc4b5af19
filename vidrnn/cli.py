"""The ``vidrnn`` command.

One entry point, one sub-command per job. Each sub-command parses its own arguments and imports its heavy
dependencies lazily, so ``vidrnn --help`` and ``vidrnn probe`` answer instantly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vidrnn import __version__

#: Exit status when a command finished its work but some inputs failed (listed in its output).
EXIT_SOME_FAILED = 3


def _add_probe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "probe",
        help="show frame count, frame rate, size and duration of videos",
        description="Probe videos (files or folders of images) without decoding their pixels. Unreadable inputs are "
        f"reported with the reason and the command ends with exit status {EXIT_SOME_FAILED}.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="video files or folders of frame images")
    parser.add_argument(
        "--count", action="store_true", help="count frames by reading them (exact; containers often misreport)"
    )
    parser.set_defaults(run=_run_probe)


def _run_probe(args: argparse.Namespace) -> int:
    from vidrnn.video import VideoReadError, probe

    failed = 0
    print(f"{'frames':>7} {'fps':>6} {'size':>9} {'seconds':>8}  path")
    for path in args.paths:
        try:
            info = probe(path, count=args.count)
        except VideoReadError as error:
            failed += 1
            print(f"{'-':>7} {'-':>6} {'-':>9} {'-':>8}  {path}  ERROR: {error.reason}")
            continue
        size = f"{info.width}x{info.height}"
        print(f"{info.num_frames:>7} {info.fps:>6.2f} {size:>9} {info.duration:>8.2f}  {path}")
    return EXIT_SOME_FAILED if failed else 0


def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        help="generate the built-in demo data (classification videos and tracking sequences)",
        description="Write the demo data: real video files in the UCF101 layout with official-style split lists, "
        "whose classes come in pairs that differ only in temporal order, and OTB-format tracking sequences. "
        "Deterministic for a seed.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if needed)")
    parser.add_argument(
        "--kind",
        choices=("classification", "tracking", "both"),
        default="both",
        help="what to generate (default: both); classification goes to OUT_DIR/classification, tracking to "
        "OUT_DIR/tracking",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--groups", type=int, default=None, help="recording groups per class (classification)")
    parser.add_argument("--clips-per-group", type=int, default=None, help="clips per group (classification)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip or sequence")
    parser.add_argument("--sequences", type=int, default=None, help="number of tracking sequences")
    parser.set_defaults(run=_run_synth)


def _given(**options: object) -> dict[str, object]:
    """Only the options the user set, so the generators' own defaults apply otherwise."""
    return {name: value for name, value in options.items() if value is not None}


def _run_synth(args: argparse.Namespace) -> int:
    from vidrnn.data.synthetic import make_classification_dataset, make_tracking_sequences

    if args.kind in ("classification", "both"):
        root = make_classification_dataset(
            args.out_dir / "classification",
            seed=args.seed,
            **_given(groups=args.groups, clips_per_group=args.clips_per_group, num_frames=args.frames),
        )
        print(f"classification videos and split lists: {root}")
    if args.kind in ("tracking", "both"):
        sequences = make_tracking_sequences(
            args.out_dir / "tracking", seed=args.seed, **_given(num_sequences=args.sequences, num_frames=args.frames)
        )
        print(f"{len(sequences)} tracking sequences (OTB format): {args.out_dir / 'tracking'}")
    return 0


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_synth, _add_probe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidrnn",
        description="Recurrent models (RNN, LSTM, GRU; stacked, bidirectional) over frozen ImageNet CNN features, "
        "for video classification and per-frame tracking. Run 'vidrnn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"vidrnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
