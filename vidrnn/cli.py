"""The ``vidrnn`` command.

One entry point, one sub-command per job. Each sub-command parses its own arguments and imports its heavy
dependencies lazily, so ``vidrnn --help`` and ``vidrnn probe`` answer instantly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from vidrnn import __version__
from vidrnn.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from vidrnn.pipes import stdout_watched, stop_writing_stdout

if TYPE_CHECKING:
    import torch

    from vidrnn.backbones import BackboneSpec
    from vidrnn.data.records import DatasetIndex
    from vidrnn.sampling import SamplingSpec
    from vidrnn.features import ExtractionReport


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


#: The demo generators' defaults, for ``vidrnn synth --help`` (which must not import them: they need torch); a test
#: holds them to the generators' signatures.
SYNTH_DEFAULTS = {"groups": 6, "clips_per_group": 8, "clip_frames": 16, "sequences": 3, "sequence_frames": 60}
#: The least of each that the generators take (three groups: each fold tests a third; a sequence's first frame only
#: starts the track), said in ``--help`` and checked before anything is written; a test holds them to the generators.
SYNTH_MINIMUMS = {"groups": 3, "clips_per_group": 1, "clip_frames": 2, "sequences": 1, "sequence_frames": 3}


def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        help="generate the built-in demo data (classification videos and tracking sequences)",
        description="Write the demo data: real video files in the UCF101 layout with official-style split lists, "
        "whose classes come in pairs that differ only in temporal order, and OTB-format tracking sequences. "
        "Deterministic for a seed. Each folder is generated once, whole (staged beside it, then renamed), with a "
        "marker naming the seed and settings: the same command again leaves it as it is, and a folder holding "
        "anything else, or one to generate where this user cannot write (a read-only file system), is refused "
        f"(exit status {EXIT_USAGE}). With the default settings the classification data is "
        "the demo a fit of configs/demo.yaml generates (data.root OUT_DIR/classification, the same data.seed).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if needed)")
    parser.add_argument(
        "--kind",
        choices=("classification", "tracking", "both"),
        default="both",
        help="what to generate (default: both); classification goes to OUT_DIR/classification, tracking to "
        "OUT_DIR/tracking",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, at least 0 (default: 0)")
    parser.add_argument("--groups", type=int, default=None,
                        help=f"recording groups per class, at least {SYNTH_MINIMUMS['groups']}: each fold tests a "
                             f"third (classification; default: {SYNTH_DEFAULTS['groups']})")
    parser.add_argument("--clips-per-group", type=int, default=None,
                        help=f"clips per group, at least {SYNTH_MINIMUMS['clips_per_group']} (classification; "
                             f"default: {SYNTH_DEFAULTS['clips_per_group']})")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"frames per clip or sequence, at least {SYNTH_MINIMUMS['clip_frames']} a clip and "
                             f"{SYNTH_MINIMUMS['sequence_frames']} a sequence (default: "
                             f"{SYNTH_DEFAULTS['clip_frames']} a clip, {SYNTH_DEFAULTS['sequence_frames']} a sequence)")
    parser.add_argument("--sequences", type=int, default=None,
                        help=f"number of tracking sequences, at least {SYNTH_MINIMUMS['sequences']} (default: "
                             f"{SYNTH_DEFAULTS['sequences']})")
    parser.set_defaults(run=_run_synth)


def _given(**options: object) -> dict[str, object]:
    """Only the options the user set, so the generators' own defaults apply otherwise."""
    return {name: value for name, value in options.items() if value is not None}


def _check_synth_counts(args: argparse.Namespace) -> None:
    """Refuse counts the generators cannot take before anything is written: they ended in a traceback, exit status 1."""
    frames = []
    if args.kind in ("classification", "both"):
        frames.append(("classification clips", SYNTH_MINIMUMS["clip_frames"]))
    if args.kind in ("tracking", "both"):
        frames.append(("tracking sequences", SYNTH_MINIMUMS["sequence_frames"]))
    counts = [("--seed", args.seed, 0, ""), ("--groups", args.groups, SYNTH_MINIMUMS["groups"],
                                              " (each fold tests a third)"),
              ("--clips-per-group", args.clips_per_group, SYNTH_MINIMUMS["clips_per_group"], ""),
              ("--sequences", args.sequences, SYNTH_MINIMUMS["sequences"], ""),
              *(("--frames", args.frames, least, f" for {what}") for what, least in frames)]
    for option, value, least, why in counts:
        if value is not None and value < least:
            raise ValueError(f"{option} must be at least {least}{why}, got {value}")


def _run_synth(args: argparse.Namespace) -> int:
    from vidrnn.data.synthetic import ensure_classification_dataset
    from vidrnn.data.synthetic_tracking import ensure_tracking_sequences

    try:
        _check_synth_counts(args)
        if args.kind in ("classification", "both"):
            root = ensure_classification_dataset(
                args.out_dir / "classification", seed=args.seed,
                **_given(groups=args.groups, clips_per_group=args.clips_per_group, num_frames=args.frames))
            print(f"classification videos and split lists: {root}")
        if args.kind in ("tracking", "both"):
            root = ensure_tracking_sequences(args.out_dir / "tracking", seed=args.seed,
                                             **_given(num_sequences=args.sequences, num_frames=args.frames))
            print(f"tracking sequences (OTB format): {root}")
    except (FileExistsError, ValueError) as error:
        print(f"vidrnn synth: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


#: The datasets ``vidrnn extract`` reads, as ``data.dataset`` names them (a test holds them to the data module's): all
#: but the demo, which a fit generates and which, generated, is read as ucf101.
EXTRACT_DATASETS = ("ucf101", "folders", "unlabeled")

#: Settings of ``vidrnn extract`` that are the data module's (``data.fold``, ``data.cache_dir``, ``data.device``,
#: ``data.extract_batch_size``): the same defaults, so that it fills the cache a fit with them reads; here without
#: torch, for ``--help``, and held to the data module's by a test.
EXTRACT_DEFAULTS = {"fold": 1, "cache_dir": "vidrnn-cache", "device": "auto", "batch_size": 32}


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", choices=EXTRACT_DATASETS, default="ucf101",
                       help="ucf101: official split lists; folders: ROOT/<class>/**/<video>; unlabeled: every video "
                       "under ROOT (for temporal-order tasks); the demo, once generated, is ucf101: --root "
                       "OUT_DIR/classification after vidrnn synth OUT_DIR, --root data/demo after a fit of "
                       "configs/demo.yaml (its data.root) (default: ucf101)")
    group.add_argument("--root", type=Path, required=True,
                       help="UCF101: the UCF-101 folder or its parent; folders: the folder of class folders; "
                       "unlabeled: any folder of videos")
    group.add_argument("--splits", type=Path, default=None,
                       help="UCF101 split lists folder (default: ucfTrainTestlist beside UCF-101)")
    group.add_argument("--fold", type=int, default=EXTRACT_DEFAULTS["fold"],
                       help=f"UCF101 official split 1, 2 or 3 (default: {EXTRACT_DEFAULTS['fold']})")


def _add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    from vidrnn.backbone_names import DEFAULT_GRID, DEFAULT_POOLING, DEFAULT_WEIGHTS, OFFLINE_DEFAULT

    group = parser.add_argument_group("backbone (frozen ImageNet CNN)")
    group.add_argument("--backbone", default=OFFLINE_DEFAULT,
                       help=f"{OFFLINE_DEFAULT} (default), efficientnet_lite1 or efficientnet_lite2 (offline; larger is "
                            "slower and better), or a torchvision model name, e.g. resnet50")
    group.add_argument("--weights", default=DEFAULT_WEIGHTS,
                       help=f"torchvision weights enum member (default: {DEFAULT_WEIGHTS})")
    group.add_argument("--weights-path", default=None, help="local state-dict file instead of a download")
    group.add_argument("--input-size", type=int, default=None, help="crop side (default: the weights' own)")
    group.add_argument("--pooling", choices=("avg", "grid", "map"), default=DEFAULT_POOLING,
                       help="avg: [T,D]; grid: GxG pooled [T,G*G*D]; map: spatial maps [T,C,h,w], which no classifier reads "
                       f"(default: {DEFAULT_POOLING})")
    group.add_argument("--grid", type=int, default=DEFAULT_GRID,
                       help=f"grid side for --pooling grid (default: {DEFAULT_GRID})")
    group.add_argument("--layer", default=None, help="feature layer (default: the last convolutional stage)")


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    from vidrnn.sampling import SamplingSpec

    default = SamplingSpec()  # the data module's default sampling (held to it by a test)
    group = parser.add_argument_group("frame sampling")
    group.add_argument("--sampling", choices=("segments", "stride", "fps", "all"), default=default.strategy,
                       help="segments: one frame per equal segment; stride: every Nth; fps: at a rate; all "
                       f"(default: {default.strategy})")
    group.add_argument("--segments", type=int, default=default.num_segments,
                       help=f"number of segments (default: {default.num_segments})")
    group.add_argument("--stride", type=int, default=default.stride,
                       help=f"frame stride for --sampling stride (default: {default.stride})")
    group.add_argument("--fps", type=float, default=default.fps, help="frames per second for --sampling fps")
    group.add_argument("--max-frames", type=int, default=default.max_frames, help="cap, spread evenly over the video")
    group.add_argument("--short-side", type=int, default=default.short_side,
                       help=f"decode size: shorter side in pixels (default: {default.short_side})")


def _add_extract(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "extract",
        help="run the frozen CNN over a dataset once and cache the features",
        description="Extract per-frame features of every clip of a dataset into a feature cache (one float16 array "
        "per video, a manifest, an error list). Re-running skips finished videos; an interrupted run resumes. "
        "Videos that cannot be read are listed with the reason, the rest is extracted, and the exit status is "
        f"{EXIT_SOME_FAILED}; they are not decoded again until their file changes (or, for one this user could not "
        "read, until it can; or --retry-failed). Under torchrun every rank extracts its own share into the same cache.",
    )
    _add_dataset_arguments(parser)
    _add_backbone_arguments(parser)
    _add_sampling_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--cache-dir", type=Path, default=Path(EXTRACT_DEFAULTS["cache_dir"]),
                     help=f"feature cache root (default: ./{EXTRACT_DEFAULTS['cache_dir']})")
    run.add_argument("--device", default=EXTRACT_DEFAULTS["device"],
                     help=f"{EXTRACT_DEFAULTS['device']} (default: CUDA when available), cpu, cuda, cuda:1, ...")
    run.add_argument("--batch-size", type=int, default=EXTRACT_DEFAULTS["batch_size"],
                     help=f"frames per CNN batch (default: {EXTRACT_DEFAULTS['batch_size']}); part of the cache's key, "
                     "as it changes the CNN's rounding: a fit finds this cache with the same data.extract_batch_size")
    run.add_argument("--workers", type=int, default=None,
                     help="decoding processes (default: one per available CPU core); a decoder that crashes one costs that video an error "
                     "entry. 0 decodes in this process, where such a crash ends the run")
    run.add_argument("--limit", type=int, default=None, help="extract at most this many videos (for a quick try)")
    run.add_argument("--retry-failed", action="store_true",
                     help="decode again the videos that failed before although their files have not changed (by "
                     "default a failed video is tried again only once its file changes)")
    parser.set_defaults(run=_run_extract, interrupted=lambda args: "the videos finished so far are in the cache: the "
                        "same command goes on from there")


def _dataset_index(args: argparse.Namespace) -> DatasetIndex:
    """The clips of the dataset ``args`` name, indexed as a data module with those settings indexes them."""
    from vidrnn.data.module import data_settings, dataset_index

    splits = None if args.splits is None else str(args.splits)
    return dataset_index(data_settings({"dataset": args.dataset, "root": str(args.root), "splits": splits,
                                        "fold": args.fold}))


def _extract_specs(args: argparse.Namespace) -> tuple[BackboneSpec, SamplingSpec]:
    """The backbone and sampling ``args`` describe."""
    from vidrnn.backbones import BackboneSpec
    from vidrnn.sampling import SamplingSpec

    return (BackboneSpec(name=args.backbone, weights=args.weights, weights_path=args.weights_path,
                         input_size=args.input_size, pooling=args.pooling, grid=args.grid, layer=args.layer),
            SamplingSpec(strategy=args.sampling, num_segments=args.segments, stride=args.stride, fps=args.fps,
                         max_frames=args.max_frames, short_side=args.short_side))


def _init_distributed_from_environment(device: torch.device) -> None:
    """Join the process group torchrun describes in the environment, if there is one, and make ``device`` (this
    rank's GPU, from ``LOCAL_RANK``) the current one. The group only carries barriers, so gloo serves CPU and GPU."""
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("gloo")


def _check_extract_counts(args: argparse.Namespace) -> None:
    """Refuse counts that cannot work, before anything slow: a batch size of 0 would never fill a batch (the run spun
    forever), a negative one or a negative worker count failed deep inside torch, and a negative limit sliced off the
    last videos without a word."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be at least 0 (0: decode in this process), got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")


def _run_extract(args: argparse.Namespace) -> int:
    """Extract a dataset's features; under torchrun every rank its share, rank 0 saying the totals of all, and every
    rank ending with the same status: 3 when any rank's video failed (torchrun itself then reports the ranks failed),
    2 when the ranks listed different videos or cache directories (each node's copy of the data must be alike)."""
    from vidrnn.backbones import WeightsUnavailableError, build_backbone
    from vidrnn.devices import resolve_device
    from vidrnn.distributed import RanksDisagree, gather_rows, world
    from vidrnn.features import CacheWriteError, ExtractionReport, FeatureCache, extract_features
    from vidrnn.files import denied
    from vidrnn.workers import WorkerStartError

    try:  # every setting and path checked here, before anything slow
        _check_extract_counts(args)
        spec, sampling = _extract_specs(args)
        index = _dataset_index(args)
        device = resolve_device(args.device)
        cache = FeatureCache(args.cache_dir, spec, sampling, index.root, device, args.batch_size)
        cache.require_writable(index.video_items(), args.retry_failed)
        backbone = build_backbone(spec)
    except (FileNotFoundError, ValueError, WeightsUnavailableError) as error:
        print(f"vidrnn extract: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PermissionError as error:
        print(f"vidrnn extract: error: {denied(error)}", file=sys.stderr)
        return EXIT_USAGE
    _init_distributed_from_environment(device)
    rank, _ = world()
    try:
        report = extract_features(index.video_items(), cache, backbone, device=device, num_workers=args.workers,
                                  limit=args.limit, retry_failed=args.retry_failed)
        report = ExtractionReport.total(gather_rows([report]))
    except RanksDisagree as error:  # said on every rank, each node's log holding it; nothing was extracted
        print(f"vidrnn extract: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerStartError as error:  # the environment, not a video: no use marking every video as failed
        print(f"vidrnn extract: error: {error} (--workers 0 decodes in this process)", file=sys.stderr)
        return EXIT_FAILED
    except CacheWriteError as error:  # a full disk, a read-only or vanished mount: the finished videos are kept
        print(f"vidrnn extract: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _leave_process_group()
    if rank == 0:  # under torchrun, the totals of every rank, said once
        _print_extract_report(report)
    return EXIT_SOME_FAILED if report.failed or report.failed_before else 0


def _print_extract_report(report: ExtractionReport) -> None:
    print(f"cache: {report.cache_dir}")
    print(f"extracted {report.extracted} videos ({report.frames} frames, {report.frames_per_second:.1f} frames/s), "
          f"skipped {report.skipped} already cached, {report.failed} failed")
    for key, reason in sorted(report.failures.items()):
        print(f"  FAILED {key}: {reason}")
    if report.cut_short:
        print(f"{len(report.cut_short)} cut short (far fewer frames than their containers state), extracted from the "
              "frames they hold:")
        for key, note in sorted(report.cut_short.items()):
            print(f"  CUT SHORT {key}: {note}")
    if report.failed_before:
        print(f"{len(report.failed_before)} videos failed in an earlier run and were not tried again (their files are "
              "unchanged; --retry-failed tries them):")
        for key, reason in sorted(report.failed_before.items()):
            print(f"  FAILED BEFORE {key}: {reason}")


def _add_upgrade(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "upgrade",
        help="convert a checkpoint saved by an older vidrnn to today's shape",
        description="Rewrite a VideoClassifier checkpoint whose hyperparameters list the encoder's settings one by one "
        "(model.cell, model.hidden_size, ...) and the backbone, sampling and steps separately, into today's shape "
        "(model.encoder, one pipeline record); or a FrameTracker checkpoint whose hyperparameters list the tracker's "
        "settings one by one (backbone, geometry, template_rate, ...), into one tracker record (saved before "
        "hold_below existed: 0, as it tracked). Weights and training state are copied unchanged.",
    )
    parser.add_argument("source", type=Path, help="the older checkpoint")
    parser.add_argument("target", type=Path, help="where to write the converted one")
    parser.set_defaults(run=_run_upgrade)


def _run_upgrade(args: argparse.Namespace) -> int:
    from vidrnn.models.upgrade import upgrade_checkpoint

    try:
        upgrade_checkpoint(args.source, args.target)
    except (OSError, ValueError) as error:
        print(f"vidrnn upgrade: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"converted: {args.target}")
    return EXIT_OK


LIGHTNING_COMMANDS = {
    "fit": "train a model (LightningCLI: --config configs/X.yaml, --print_config, --ckpt_path to resume)",
    "validate": "evaluate a checkpoint on the validation split (--ckpt_path)",
    "test": "evaluate a checkpoint on the test split: confusion matrix, or tracking scores per sequence (--ckpt_path)",
    "predict": "write predictions.csv into the run's log folder: each test clip's true and predicted label and "
               "that label's probability (--ckpt_path)",
}


def _add_classify(commands: argparse._SubParsersAction) -> None:
    from vidrnn.classify import add_classify_parser

    add_classify_parser(commands)


def _add_track(commands: argparse._SubParsersAction) -> None:
    from vidrnn.track import add_track_parser

    add_track_parser(commands)


def _add_lightning_commands(commands: argparse._SubParsersAction) -> None:
    """List LightningCLI's commands in ``vidrnn --help``; :func:`main` hands their arguments to LightningCLI."""
    for name, summary in LIGHTNING_COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)


def _run_lightning(argv: Sequence[str]) -> int:
    """Run a LightningCLI command; a feature cache that cannot be written while a fit (or an evaluation) extracts
    into it ends the command as ``vidrnn extract`` ends, naming the cache and how to go on, not in a traceback."""
    from vidrnn.features import CacheWriteError
    from vidrnn.task_cli.entry import run_lightning_cli

    try:
        run_lightning_cli(list(argv))
    except CacheWriteError as error:
        print(f"vidrnn {argv[0]}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """Destroy the process group a command joined, if any, before the interpreter exits: Lightning's DDP leaves the
    gloo group it starts to the interpreter's teardown, which now and then aborted a finished command ("terminate
    called without an active exception", exit status 134)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_lightning_commands, _add_classify, _add_track, _add_extract, _add_synth, _add_probe, _add_upgrade,
)


def build_parser() -> argparse.ArgumentParser:
    """Every command in one ``vidrnn --help``; the Lightning commands are only named here (LightningCLI parses their
    arguments), the others parsed here too."""
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


#: Options whose value may begin with "-" followed by a digit (``--box -5,10,40,40``: a box partly off the left edge).
_SIGNED_VALUES = ("--box",)


def _attach_signed_values(argv: list[str]) -> list[str]:
    """``argv`` with ``--box -5,...`` written ``--box=-5,...``: argparse takes a value that begins with "-" for an
    option (unless it is one negative number) and refuses ``--box`` as given without a value."""
    attached: list[str] = []
    for arg in argv:
        previous = attached[-1] if attached else ""
        if previous in _SIGNED_VALUES and len(arg) > 1 and arg[0] == "-" and (arg[1].isdigit() or arg[1] == "."):
            attached[-1] = f"{previous}={arg}"
        else:
            attached.append(arg)
    return attached


#: Commands whose paths may come anywhere among their options (``vidrnn classify ds --recursive clip.avi``, ``vidrnn
#: probe a.avi --count b.avi``), as ``ls`` and ``cp`` take them.
INTERMIXED_COMMANDS = ("classify", "probe")


def _parse(argv: list[str]) -> argparse.Namespace:
    """The arguments of the command ``argv`` names. The ``vidrnn`` parser hands a command's arguments to the command's
    parser, whose paths then end at the first option (a path after one was an "unrecognized argument"); the commands
    of :data:`INTERMIXED_COMMANDS` are read by their own parser with :func:`_parse_paths_anywhere`."""
    parser = build_parser()
    if argv and argv[0] in INTERMIXED_COMMANDS:
        return _parse_paths_anywhere(_command_parser(parser, argv[0]), argv[1:])
    return parser.parse_args(argv)


def _parse_paths_anywhere(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    """``args`` read with the paths anywhere among the options, in the order given. argparse's
    ``parse_intermixed_args`` takes them so, but loses a ``--`` that no path precedes (``probe -- -x.avi`` then said
    "the following arguments are required: paths") and names only the missing options when nothing is given; so the
    usual parse reads what it can read whole (the paths in one run, ``--`` honoured), the intermixed one the rest:
    paths on both sides of an option leave it something over, and then a path precedes any ``--``. An unknown
    option is named first (:func:`_refuse_unknown_options`), before any required argument is missed."""
    _refuse_unknown_options(parser, _left_over(parser, args))
    namespace, left_over = parser.parse_known_args(args)
    if not left_over:
        return namespace
    return parser.parse_intermixed_args(args)


class _NotParsed(Exception):
    """An error of the parse :func:`_left_over` makes, left for the usual parse to say."""


def _left_over(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """What the usual parse of ``args`` does not take, found without its check that the required arguments were given,
    which would end the command first: ``classify --bogus -- x.avi --ckpt c.ckpt`` (``--ckpt`` a path after ``--``)
    said "the following arguments are required: --ckpt", not that ``--bogus`` is unknown. The parser is built for this
    one command line, so its arguments are made optional for this parse only; help and any other error of this parse
    are left to the usual one (whose usage line shows the required options as required), so none is found here."""
    given = args[:args.index("--")] if "--" in args else args
    if "-h" in given or "--help" in given:
        return []
    required = [action for action in parser._actions if action.required]
    for action in required:
        action.required = False
    usual_error = parser.error
    parser.error = _raise_not_parsed
    try:
        return parser.parse_known_args(args)[1]
    except _NotParsed:
        return []
    finally:
        parser.error = usual_error
        for action in required:
            action.required = True


def _raise_not_parsed(message: str) -> NoReturn:
    raise _NotParsed(message)


def _refuse_unknown_options(parser: argparse.ArgumentParser, left_over: list[str]) -> None:
    """End with argparse's usage error naming the options among ``left_over`` (what the usual parse of the arguments did
    not take, in order) that come before any ``--``: the intermixed parse, losing the ``--``, said "the following
    arguments are required: paths" for ``probe --bogus -- -x.avi``, or named the paths after it as unrecognized too.
    What argparse leaves over from after the ``--`` follows that ``--`` in ``left_over``: paths, whatever they look
    like, even an option given before it (``probe a.avi --count a.avi -- -x.avi --count``)."""
    before = left_over[:left_over.index("--")] if "--" in left_over else left_over
    unknown = [argument for argument in before if _option_like(argument)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{_dashed_paths_hint(unknown)}")


def _dashed_paths_hint(unknown: list[str]) -> str:
    """How to give the paths among ``unknown`` options (a file here, or a name ending as a video does): argparse reads
    ``-dash.avi`` as an option, and "unrecognized arguments: -dash.avi" alone does not say why."""
    from vidrnn.video import VIDEO_EXTENSIONS

    paths = [argument for argument in unknown
             if os.path.lexists(argument) or Path(argument).suffix.lower() in VIDEO_EXTENSIONS]
    if not paths:
        return ""
    one = len(paths) == 1
    return (f" ({' and '.join(paths)} look{'s' if one else ''} like {'a path' if one else 'paths'}: a path beginning "
            f"with '-' is read as an option; write it as ./{paths[0]}, or put the paths after --)")


def _option_like(argument: str) -> bool:
    """Whether argparse reads ``argument`` as an option: it begins with "-" and is not "-", a negative number or a
    string with a space, which argparse reads as positional (paths here: ``probe a.avi --count "-my clip.avi"``)."""
    return (argument.startswith("-") and argument != "-" and " " not in argument
            and re.fullmatch(r"-\d+|-\d*\.\d+", argument) is None)


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of the ``vidrnn`` command ``command``."""
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices[command]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status (:mod:`vidrnn.exit_codes`): the Lightning commands go to
    LightningCLI, the others to their own parser, both with usage errors said in a line, not a traceback. Every
    command stops quietly when the reader of its standard output has gone (:mod:`vidrnn.pipes`), also where rich's
    console (the default progress bar of a fit) found it gone and ended the command with its own ``SystemExit(1)``;
    standard output is flushed here so that a reader gone is found while that can still be handled, not when the
    interpreter exits."""
    with stdout_watched() as reader_gone, _warnings_of_vidrnn_in_a_line():
        try:
            status = _run_command(sys.argv[1:] if argv is None else list(argv))
            sys.stdout.flush()
        except (BrokenPipeError, SystemExit) as error:
            if not (_broke_pipe(error) and reader_gone()):
                raise
            return stop_writing_stdout()
    return status


@contextlib.contextmanager
def _warnings_of_vidrnn_in_a_line() -> Iterator[None]:
    """Show a warning vidrnn raises as its message alone, as its log records are shown: Python's format adds the file
    and line of vidrnn that warned and that source line (``self.fps = _usable_fps(path, stated_fps)``), which tell a
    user of the command nothing. Others' warnings (torch's, Lightning's) keep their format. Decoding processes forked
    during the command format theirs the same way."""
    python_format = warnings.formatwarning
    package = str(Path(__file__).resolve().parent) + os.sep

    def formatted(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
        if str(filename).startswith(package):
            return f"{message}\n"
        return python_format(message, category, filename, lineno, line)

    warnings.formatwarning = formatted
    try:
        yield
    finally:
        warnings.formatwarning = python_format


def _broke_pipe(error: BaseException) -> bool:
    """Whether ``error`` is a ``BrokenPipeError``, or an exit raised while one was handled (rich's console ends so)."""
    return isinstance(error, BrokenPipeError) or isinstance(error.__context__, BrokenPipeError)


def _run_command(argv: list[str]) -> int:
    """Run the command ``argv`` names and return its exit status."""
    for stream in (sys.stdout, sys.stderr):  # a file name in another encoding than UTF-8 is shown, not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return _run_lightning(argv)
    args = _parse(_attach_signed_values(argv))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        kept = args.interrupted(args) if hasattr(args, "interrupted") else ""
        print(f"\nvidrnn {argv[0]}: interrupted{'; ' + kept if kept else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
