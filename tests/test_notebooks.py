"""The analysis notebooks run top to bottom, so they cannot rot, and stay small enough to commit with outputs.

Each notebook runs in smoke mode (``VIDRNN_NOTEBOOK_SMOKE=1``: its first cell shrinks the work to seconds) in a
temporary working directory, where it writes its data and runs; the committed notebooks are read, never written. The
kernel inherits this process's environment plus:

* this checkout first on ``PYTHONPATH``, so the notebooks import the ``vidrnn`` under test whatever is installed;
* ``OMP_NUM_THREADS=1``: on a small shared CPU, torch's two threads competing with other jobs made the frozen CNN
  several times slower (notebook 1's training cell: 23 s with two threads, 4 s with one, on a loaded 2-core machine).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import vidrnn.callbacks
from conftest import save_untrained
from vidrnn.models.tracker_module import FrameTracker

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Seconds one cell may take in smoke mode before the run counts as hung.
CELL_TIMEOUT = 300
#: Committed notebooks carry their rendered outputs; this keeps them reviewable and the repository light.
MAX_NOTEBOOK_BYTES = 300_000
#: The notebook that measures the recurrent cells, whose outputs the project's claims about gating are held to.
CELLS_NOTEBOOK = REPO / "notebooks" / "03_rnn_cells_and_gradients.ipynb"
ANALYSIS_NOTEBOOK = REPO / "notebooks" / "02_classification_analysis.ipynb"
ARROW_NOTEBOOK = REPO / "notebooks" / "05_arrow_of_time.ipynb"


def notebook_text(path: Path, cell_type: str) -> str:
    """The sources of one kind of cell, ``markdown`` or ``code``, joined."""
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == cell_type)


def printed(path: Path) -> str:
    """What the committed notebook's code cells printed (stdout), in order."""
    cells = nbformat.read(path, as_version=4).cells
    return "".join(output.text for cell in cells if cell.cell_type == "code" for output in cell.outputs
                   if output.output_type == "stream" and output.name == "stdout")


def full_settings(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The settings a notebook's first code cell makes outside smoke mode (what a user's run and the committed
    outputs use), run in this process."""
    monkeypatch.delenv("VIDRNN_NOTEBOOK_SMOKE", raising=False)
    first = next(cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    settings: dict = {}
    exec(first.source, settings)  # noqa: S102 - the committed notebook's own settings cell
    return settings


def test_every_issue_notebook_is_there() -> None:
    assert [path.stem[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_is_small_and_was_run_in_order_without_errors(path: Path) -> None:
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [output for cell in code for output in cell.outputs if output.output_type == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_smoke_mode(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDRNN_NOTEBOOK_SMOKE", "1")
    notebook = nbformat.read(path, as_version=4)
    kernel_client(notebook, tmp_path, monkeypatch).execute()  # raises CellExecutionError with the failing cell
    assert all(cell.execution_count for cell in notebook.cells if cell.cell_type == "code")


def kernel_client(notebook: nbformat.NotebookNode, where: Path, monkeypatch: pytest.MonkeyPatch) -> NotebookClient:
    """A client that runs ``notebook`` in a kernel working in ``where``, with the environment the module docstring
    describes."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                          resources={"metadata": {"path": str(where)}})


def test_the_docs_claim_the_shared_scoring_path_only_for_notebooks_that_take_it() -> None:
    """architecture.md and tracker/evaluation.py said the notebooks score through ``vidrnn.tracker.evaluation``, while
    the tracking notebook runs its own loop (it keeps the frames to draw them) and its own OpenCV wrapper."""
    takers = [path.stem for path in NOTEBOOKS if any("vidrnn.tracker.evaluation" in cell.source for cell in
                                                     nbformat.read(path, as_version=4).cells)]
    said = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8") + (
        REPO / "vidrnn" / "tracker" / "evaluation.py").read_text(encoding="utf-8")
    claims = [claim for claim in ("benchmarks, notebooks: one code path", "the benchmarks and the notebooks")
              if claim in said]
    assert takers or not claims, claims


def test_what_is_said_of_gated_cells_is_what_notebook_03_measured() -> None:
    """Notebook 01 said notebook 03 "measures why gated cells remember longer" and callbacks.py that gating should
    flatten a tanh RNN's fading input gradient, while notebook 03 measured the GRU's gradient fading the most (3.1e-8
    of the last step's at step 0, the RNN's 8.3e-3) and the GRU at chance from length 50."""
    ratio_line = r"(\w+): gradient at step 0 / at the last step, initialised: (\S+)"
    ratios = dict(re.findall(ratio_line, printed(CELLS_NOTEBOOK)))
    assert set(ratios) == {"rnn", "lstm", "gru"}
    documented = vidrnn.callbacks.__doc__
    assert [f"{cell} {ratio}" for cell, ratio in ratios.items() if f"{cell} {ratio}" not in documented] == []
    said = notebook_text(REPO / "notebooks" / "01_quickstart.ipynb", "markdown") + documented
    claims = [claim for claim in ("gated cells remember longer", "should flatten it") if claim in said]
    gating_flattens = all(float(ratios[cell]) > float(ratios["rnn"]) for cell in ("lstm", "gru"))
    assert gating_flattens or not claims, claims


def test_notebook_03_outputs_come_from_the_installed_torch() -> None:
    """Notebook 03's runs change with the torch build (three seeds reorder), and its committed outputs and prose were
    once another build's while the text hedged about it: the outputs name their torch release, which must be the
    development environment's (re-run the notebook at full settings, ``OMP_NUM_THREADS=1``, this checkout on
    ``PYTHONPATH``); a machine with another release the dependencies allow skips the comparison rather than fail."""
    recorded = re.search(r"^torch (\S+)$", printed(CELLS_NOTEBOOK), re.MULTILINE)
    assert recorded, f"{CELLS_NOTEBOOK.name} prints no torch version: re-run it"
    if recorded[1].split("+")[0] != torch.__version__.split("+")[0]:
        pytest.skip(f"{CELLS_NOTEBOOK.name}'s outputs are torch {recorded[1]}'s, this machine has {torch.__version__} "
                    "(the project allows both): when committing outputs, re-run it with the release they name")


def test_notebook_03_tables_show_every_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its tables printed means over three seeds while at the longer lengths seeds range from chance to 91 %."""
    settings = full_settings(CELLS_NOTEBOOK, monkeypatch)
    rows = {line.split()[0]: re.findall(r"\d+\.\d%", line) for line in printed(CELLS_NOTEBOOK).splitlines()
            if line.split() and re.fullmatch(r"\S+(\s+\d+\.\d%)+", line.strip())}
    seeds = len(settings["SEEDS"])
    for length in settings["LENGTHS"]:
        assert len(rows[str(length)]) == len(settings["CELLS"]) * seeds, length
    for where in ("start", "middle", "end"):
        assert len(rows[where]) == 2 * seeds, where


def test_accuracies_are_set_against_the_baselines_of_results_md() -> None:
    """Notebook 05 set its arrow-of-time accuracy against the order-blind 50 % only, and notebooks 01 and 02 printed a
    single model's accuracy with nothing to compare it with: 05 cites results.md's rows for the same task (order-aware
    baselines and the recurrent cells, mean ± sd) and 01 and 02 point to the baseline table."""
    results = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    table = results.split("### Arrow of time (forwards or backwards)")[1].split("\n\n")[1]
    rows = dict(re.findall(r"^\| (\S+) \|.*\| ([\d.]+ ± [\d.]+ %) \|", table.replace("**", ""), re.MULTILINE))
    assert {"difference_pool", "frame_differences", "temporal_conv", "lstm+unidirectional"} <= set(rows)
    cited = notebook_text(ARROW_NOTEBOOK, "markdown")
    assert [f"{variant} {score}" for variant, score in rows.items() if f"`{variant}` | {score}" not in cited] == []
    for path in NOTEBOOKS[:2]:
        assert "docs/results.md" in notebook_text(path, "markdown"), path.name


def test_the_arrow_notebook_reads_a_given_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 05 said it works on any arrow-of-time checkpoint, and notebook 02 sends order-task checkpoints to it,
    but it had no checkpoint setting: it always trained its own (the smoke run reads the checkpoint it fits through
    the same setting)."""
    assert full_settings(ARROW_NOTEBOOK, monkeypatch)["CKPT"] is None


def test_the_arrow_notebook_writes_its_cache_where_jupyter_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """At full settings notebook 05 wrote its feature cache into the clone's data/cache wherever it ran, while its
    data and runs went to work/ where Jupyter runs it."""
    settings = full_settings(ARROW_NOTEBOOK, monkeypatch)
    assert settings["CACHE_DIR"].is_relative_to(settings["WORK"]), settings["CACHE_DIR"]
    assert not settings["WORK"].is_absolute()


@pytest.mark.parametrize("path", [ANALYSIS_NOTEBOOK, ARROW_NOTEBOOK], ids=lambda path: path.stem)
def test_a_notebook_reads_a_checkpoints_relative_paths_from_the_clone(path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebooks 02 and 05 read the cache_dir a checkpoint records as typed (the configs' data/cache) from notebooks/,
    where Jupyter runs, not from where its fit ran: they extracted every clip again. By default they read it from the
    directory the checkpoint records (FIT_DIR: None); their own fits record their caches absolutely. The reading
    itself is VideoDataModule.from_checkpoint's (tests/test_training_cli.py)."""
    settings = full_settings(path, monkeypatch)
    code = notebook_text(path, "code")
    assert "FIT_DIR" in settings and settings["FIT_DIR"] is None
    assert "relative_to=FIT_DIR" in code
    assert re.search(r'"--data\.cache_dir", str\([^\n]*\.resolve\(\)\)', code)


def test_the_arrow_notebook_refuses_a_tracking_checkpoint_saying_so(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 05 loaded CKPT with Lightning's load_from_checkpoint: a tracking checkpoint ended in a TypeError about
    VideoClassifier's arguments (a file of weights alone in KeyError 'pytorch-lightning_version'), and a GPU-trained
    one stayed on the GPU, away from the CPU batches. vidrnn's loader says what the file is, on the CPU."""
    checkpoint = save_untrained(FrameTracker(hidden_size=8), tmp_path / "track.ckpt")
    notebook = nbformat.read(ARROW_NOTEBOOK, as_version=4)
    settings, imports, loading = [cell for cell in notebook.cells if cell.cell_type == "code"][:3]
    notebook.cells = [settings, nbformat.v4.new_code_cell(f"CKPT = {str(checkpoint)!r}"), imports, loading]
    with pytest.raises(CellExecutionError, match=re.escape(f"{checkpoint} is a tracking checkpoint")):
        kernel_client(notebook, tmp_path, monkeypatch).execute()
