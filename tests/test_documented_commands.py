"""The commands the documentation gives must be ones today's CLI takes: every ``--model.*``, ``--data.*`` and
``--trainer.*`` flag quoted in the README, docs, config headers, notebooks and benchmarks, and the temporal-pretraining
recipes, whose two commands must build encoders that can exchange weights."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vidrnn.cli import main
from vidrnn.models.temporal import EncoderSpec

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "configs").rglob("*.yaml"),
                    *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "benchmarks").glob("*.*")])
FLAG = re.compile(r"--((?:model|data|trainer)\.[A-Za-z_][\w.]*\w)")
HEADING = re.compile(r"^(#+) ")


def _printed(command: list[str]) -> dict:
    """The config ``vidrnn COMMAND --print_config`` prints: parsed and type-checked, nothing built or read."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        main([*command, "--print_config"])
    assert done.value.code == 0, f"vidrnn {shlex.join(command)}: {err.getvalue()[-2000:]}"
    return yaml.safe_load(out.getvalue())


def _options(tree: dict, prefix: str = "") -> dict[str, object]:
    """Every option of a printed config by its dotted name, as a flag names it (a class's ``init_args`` level left
    out: ``--model.optimizer.lr``)."""
    found: dict[str, object] = {}
    for key, value in tree.items():
        name = prefix if key == "init_args" else f"{prefix}.{key}".lstrip(".")
        if key != "init_args":
            found[name] = value
        if isinstance(value, dict):
            found.update(_options(value, name))
    return found


@pytest.fixture(scope="module")
def options() -> dict[str, dict[str, object]]:
    """The options of each task's parser, read from a shipped config of that task."""
    return {task: _options(_printed(["fit", "--config", str(ROOT / "configs" / config)]))
            for task, config in (("classification", "demo.yaml"), ("tracking", "track.yaml"))}


def _contexts(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Each line of ``path`` with whether it may speak of tracking: the file's name, the line itself or one of the
    Markdown headings it stands under mentions it. Elsewhere a flag is a classification one."""
    headings: list[str] = []
    fenced = False  # a shell comment in a code block is no heading
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fenced ^= line.startswith("```")
        heading = HEADING.match(line) if path.suffix == ".md" and not fenced else None
        if heading:
            headings = [*headings[: len(heading.group(1)) - 1], line]
        text = " ".join([path.name, *headings, line]).lower()
        yield number, line, "track" in text


def _takes(flag: str, options: dict[str, object]) -> bool:
    """Whether a parser with these ``options`` takes ``--flag``: an option of that name, or an option within a class
    the config leaves open (``--trainer.logger.save_dir`` after ``--trainer.logger CLASS``)."""
    name = flag.replace(".init_args.", ".")
    parts = name.split(".")
    prefixes = [".".join(parts[:end]) for end in range(1, len(parts))]
    return name in options or any(prefix in options and _open_class(options[prefix]) for prefix in prefixes)


def _open_class(value: object) -> bool:
    """Whether a printed option's value leaves a class to choose (unset, a switch such as ``logger: true``, a list
    of callbacks), so that flags below it are that class's: a plain value (``data.root``) has nothing below it."""
    return value is None or isinstance(value, (bool, list))


def test_every_flag_the_documentation_quotes_is_one_the_cli_takes(options: dict[str, dict[str, object]]) -> None:
    """docs/results.md gave --model.inputs (today --model.encoder.inputs) in the commands that reproduce its temporal
    pretraining rows, which the CLI refuses. A tracking flag passes where the file, the line or its headings speak of
    tracking."""
    unknown = []
    for path in DOCUMENTS:
        for number, line, tracking in _contexts(path):
            tasks = ("classification", "tracking") if tracking else ("classification",)
            unknown += [f"{path.relative_to(ROOT)}:{number}: --{match.group(1)}" for match in FLAG.finditer(line)
                        if not any(_takes(match.group(1), options[task]) for task in tasks)]
    assert not unknown, "flags the CLI does not take:\n" + "\n".join(unknown)


def _commands(path: Path) -> list[list[str]]:
    """The ``vidrnn fit`` commands of a document, one a line, as arguments (config paths made absolute; a ``...``
    standing for options given before is left out)."""
    found = []
    for line in path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():  # continued lines joined
        start = line.find("vidrnn fit ")
        if start < 0:
            continue
        words = [word for word in shlex.split(line[start:].strip("`")) if word != "..."][1:]
        found.append([str(ROOT / word) if previous == "--config" else word
                      for previous, word in zip(["", *words], words)])
    return found


@pytest.mark.parametrize("document", ["configs/order_ucf101_cpu.yaml", "README.md"])
def test_a_documented_pretraining_recipe_builds_the_encoder_it_starts_from(document: str) -> None:
    """configs/order_ucf101_cpu.yaml's header started a configs/ucf101_cpu.yaml classifier from an encoder that reads
    frame differences, while that config's reads frames: pretrained_encoder refuses it. Each command with
    --model.init_from is held against the order-task fit before it in the same document."""
    commands = _commands(ROOT / document)
    pairs = [(next(earlier for earlier in reversed(commands[:position])
                   if any(word.endswith("order_ucf101_cpu.yaml") for word in earlier)), command)
             for position, command in enumerate(commands) if "--model.init_from" in command]
    assert pairs, f"no pretraining recipe found in {document}"
    for pretraining, classifier in pairs:
        encoders = [EncoderSpec.from_dict(_printed(command)["model"]["encoder"]).architecture()
                    for command in (pretraining, classifier)]
        differing = {name: (encoders[0][name], encoders[1][name]) for name in encoders[0]
                     if encoders[0][name] != encoders[1][name]}
        assert not differing, f"{document}: {shlex.join(classifier)} builds another encoder: {differing}"


#: What a config's comment calls the metric each ModelCheckpoint monitor names.
MONITORED = {"val/loss": "validation loss", "val/acc": "validation accuracy",
             "val/success_auc": "validation success AUC"}


def test_a_checkpoints_comment_names_the_metric_it_monitors() -> None:
    """The tracking configs said "best epoch by validation IoU" over a monitor of val/success_auc."""
    wrong = []
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            monitor = re.search(r"monitor: (\S+)", line)
            said = lines[number - 2].partition("#")[2] if monitor else ""
            if said and "ModelCheckpoint" in lines[number - 2] and MONITORED[monitor.group(1)] not in said:
                wrong.append(f"{path.relative_to(ROOT)}:{number - 1}: {said.strip()} (monitor: {monitor.group(1)})")
    assert not wrong, "\n".join(wrong)


def test_the_tracking_config_quotes_the_readmes_validation_scores() -> None:
    """configs/track.yaml quoted 0.497-0.498 against matching 0.499, scores from before the torch thread count changed
    them; the README gives today's."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    config = " ".join(line.lstrip("# ") for line in (ROOT / "configs" / "track.yaml").read_text().splitlines()
                      if line.startswith("#"))
    current = re.search(r"heads score (0\.\d+-0\.\d+) success AUC \(three seeds each\) against (0\.\d+)", readme)
    quoted = re.search(r"heads (0\.\d+-0\.\d+) success AUC over three seeds, matching (0\.\d+)", config)
    assert quoted and current and quoted.groups() == current.groups()


def _readme_python_example() -> str:
    """The code block of the README's "Python API" section."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Python API\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_python_example_guards_its_top_level_as_spawned_decoding_processes_need() -> None:
    """Under the spawn start method (macOS) each decoding process the Predictor starts runs the user's script again as
    it starts: unguarded, the example started processes from each of them, which died, and the run stopped after a
    minute with "worker processes cannot start". Only imports may stand outside the guard."""
    tree = ast.parse(_readme_python_example())
    unguarded = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    assert len(unguarded) == 1 and ast.unparse(unguarded[0].test) == "__name__ == '__main__'", \
        [ast.unparse(node).splitlines()[0] for node in unguarded]
