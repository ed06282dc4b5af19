"""The refusals of vidrnn's Lightning commands: command lines and settings that would go wrong, ended before anything
slow as usage errors (the message on stderr, exit status 2, no traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from vidrnn.exit_codes import EXIT_USAGE

__all__ = [
    "EVALUATIONS", "TOP_LEVEL_OPTIMIZER", "as_usage_error", "checkpoint_from_a_config", "last_given",
    "refuse_checkpoint_keyword", "refuse_no_logger", "refuse_top_level_optimizer", "require_checkpoint", "usage_error",
]

#: Top-level keys of configs saved by LightningCLI's automatic optimiser set-up, which vidrnn does not use.
TOP_LEVEL_OPTIMIZER = ("optimizer", "lr_scheduler")


def refuse_top_level_optimizer(config: Any) -> None:
    """A top-level ``optimizer`` replaced the config's ``model.optimizer`` and dropped its scheduler (LightningCLI's
    automatic set-up, with only a warning): now the model's are the only ones, and a value here, from a config file or
    the command line, says where it goes."""
    given = [name for name in TOP_LEVEL_OPTIMIZER if config.get(name) is not None]
    if given:
        usage_error(f"{given[0]} (at the top level of a config, or --{given[0]}) is not a setting of vidrnn: the "
                    "optimiser and its scheduler are the model's; set --model.optimizer (e.g. --model.optimizer SGD "
                    "--model.optimizer.lr 0.1) and --model.scheduler, or model.optimizer and model.scheduler in a "
                    "config")


def refuse_no_logger(subcommand: str, config: Any) -> None:
    """Without a logger there is no run folder: every command wrote its ``config.yaml`` (and a fit its checkpoints)
    over the one before in ``trainer.default_root_dir``, and the split record and confusion matrix were not written."""
    if config.trainer.get("logger") is False:
        usage_error(f"--trainer.logger false: vidrnn {subcommand} writes its record into the logger's version_N "
                    "folder (config.yaml; a fit's splits.json, metrics and checkpoints; a test's confusion matrix or "
                    "tracking scores; predictions.csv); without one it would overwrite the record of the command "
                    "before in trainer.default_root_dir, and leave out the split record and the confusion matrix. "
                    "Leave --trainer.logger out (vidrnn's CSV logger), or choose another logger")


def last_given(arguments: list[str], option: str) -> str | None:
    """The value the command line gives last to an option beginning with ``option`` (``--ckpt_path X``,
    ``--ckpt_path=X``, an abbreviation), or ``None``. Whether it is the one parsed tells where the parsed one came
    from: a config file given after it overrides it."""
    given = None
    for position, argument in enumerate(arguments):
        if argument.startswith(option):
            name, equals, value = argument.partition("=")
            given = value if equals else (arguments[position + 1] if position + 1 < len(arguments) else None)
    return given


def checkpoint_from_a_config(subcommand: str, ckpt_path: str) -> None:
    """A ``ckpt_path`` read from a config file rather than given as ``--ckpt_path``: the ``config.yaml`` of a run that
    an older vidrnn resumed records the checkpoint it resumed from, and an evaluation's the one it evaluated. A fit
    would resume that run silently, training nothing and testing again as if reproduced: refused. An evaluation is
    told which checkpoint it scores."""
    from vidrnn.distributed import say_once

    if subcommand == "fit":
        usage_error(f"ckpt_path {ckpt_path} comes from a config file, not from --ckpt_path: fitting with it would "
                    "resume that run, not start a new one (older vidrnn versions wrote the checkpoint a resumed run "
                    f"went on from into its config.yaml). Give --ckpt_path {ckpt_path} to resume it, or --ckpt_path "
                    "null for a new run")
    say_once(f"vidrnn {subcommand}: evaluating {ckpt_path}, named by ckpt_path in a config file (not --ckpt_path)")


def refuse_checkpoint_keyword(subcommand: str, keyword: str, root_dir: str | None) -> NoReturn:
    """Refuse ``--ckpt_path best`` or ``last`` where Lightning would find no such checkpoint: ``last`` names its
    ``last.ckpt``, which vidrnn's configs never write (a fit started over in a new ``version_N`` with a warning alone,
    redoing the epochs the user meant to resume; a tracker was scored untrained); ``best`` that of a fit run by this
    same command (a fit has none yet: a traceback). The error names the checkpoint to give instead
    (:func:`_checkpoint_to_give`), under ``root_dir`` (``trainer.default_root_dir``; ``None``: the current one)."""
    if keyword == "last":
        why = ("names Lightning's last.ckpt, which vidrnn's configs do not write (they keep the newest checkpoint as "
               "latest.ckpt)" + (": the fit would start over in a new version_N" if subcommand == "fit" else ""))
    else:
        why = ("names the best checkpoint of a fit run by this same command, and "
               + ("a fit has none before it trains" if subcommand == "fit" else
                  f"vidrnn {subcommand} runs none (a tracker would be scored untrained)"))
    usage_error(f"--ckpt_path {keyword} {why}: give the checkpoint's path: "
                f"{_checkpoint_to_give(subcommand, keyword, Path(root_dir or '.'))}")


def _checkpoint_to_give(subcommand: str, keyword: str, root_dir: Path) -> str:
    """The newest checkpoint under ``root_dir`` that the command likely meant, to copy: ``best.ckpt`` for an
    evaluation's ``best``, else ``latest.ckpt`` (what a fit resumes from); or the shape of its path, where there is
    none."""
    name = "best.ckpt" if keyword == "best" and subcommand != "fit" else "latest.ckpt"
    found = sorted(root_dir.glob(f"**/checkpoints/{name}"), key=lambda path: path.stat().st_mtime)
    return f"the newest {name} under {root_dir} is {found[-1]}" if found else f"such as runs/.../checkpoints/{name}"


def usage_error(message: str) -> NoReturn:
    """End the command as a usage error: the message on stderr, exit status 2, no traceback."""
    print(f"vidrnn: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


#: The commands that evaluate a trained classifier: without a checkpoint they would score its random initial weights.
EVALUATIONS = ("validate", "test", "predict")

def as_usage_error(check: Callable[[], None]) -> None:
    """Run ``check``; what it refuses (a ``ValueError``) ends the command as a usage error with its message."""
    try:
        check()
    except ValueError as error:
        usage_error(str(error))


def require_checkpoint(config: Any) -> None:
    """Refuse ``vidrnn validate|test|predict`` of a classifier without ``--ckpt_path``: Lightning would score the
    model's random initial weights, print their accuracy and write a confusion matrix without a word of warning.
    (``fit --test_after_fit`` tests through the trainer, not through these commands, and is not affected.)"""
    subcommand = config.get("subcommand")
    if subcommand in EVALUATIONS and not config[subcommand].get("ckpt_path"):
        usage_error(f"vidrnn {subcommand} needs --ckpt_path (a checkpoint from vidrnn fit: "
                    "runs/.../checkpoints/best.ckpt)")

