from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_video
from vidrnn.cli import build_parser, main
from vidrnn.exit_codes import EXIT_SOME_FAILED


def _subcommands() -> list[str]:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(commands.choices)


def test_top_level_help_lists_every_subcommand_and_each_has_its_own_help(capsys: pytest.CaptureFixture) -> None:
    result = subprocess.run([sys.executable, "-m", "vidrnn", "--help"], capture_output=True, text=True, check=True)
    for name in _subcommands():  # in this process: a dozen interpreters importing torch would take most of a minute
        assert name in result.stdout
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        first_line = capsys.readouterr().out.splitlines()[0]
        assert done.value.code == 0 and first_line.startswith("usage: vidrnn ") and f" {name}" in first_line


def test_probe_reports_good_and_bad_files_and_says_some_failed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = write_video(tmp_path / "good.avi", 10)
    status = main(["probe", str(good), str(tmp_path / "missing.avi")])
    out = capsys.readouterr().out
    assert status == EXIT_SOME_FAILED
    assert "10" in out.splitlines()[1] and "missing.avi  ERROR: no such file or directory" in out
    assert main(["probe", str(good)]) == 0


def test_synth_writes_demo_data_the_ucf101_loader_reads(tmp_path: Path) -> None:
    from vidrnn.data.tracking_sequences import find_sequences
    from vidrnn.data.ucf101 import ucf101_index

    assert main(["synth", str(tmp_path), "--groups", "3", "--clips-per-group", "1", "--frames", "8", "--sequences", "2"]) == 0
    index = ucf101_index(tmp_path / "classification", fold=1)
    assert len(index.classes) == 6 and len(index.records) == 6 * 3
    assert [len(s.boxes) for s in find_sequences(tmp_path / "tracking")] == [8, 8]
