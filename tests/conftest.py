"""Shared fixtures: small generated videos and the location of the real data in ../shared/data."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def deny_listing(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Make listing ``folders`` fail as a folder of mode 000 does for a user other than root (the tests run as root,
    which lists anything): ``os.scandir`` (what ``os.walk`` lists with) and ``os.listdir`` (``Path.iterdir``'s)."""
    denied = {os.fspath(folder) for folder in folders}

    def guarded(listing):
        def list_unless_denied(path=".", *args):
            if os.fspath(path) in denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return listing(path, *args)
        return list_unless_denied

    monkeypatch.setattr(os, "scandir", guarded(os.scandir))
    monkeypatch.setattr(os, "listdir", guarded(os.listdir))


def refused_as_usage_error(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error of a ``vidrnn`` command line that must end as a usage error (status 2, no traceback)."""
    from vidrnn.cli import main
    from vidrnn.exit_codes import EXIT_USAGE

    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(arguments)
    error = capsys.readouterr().err
    assert refused.value.code == EXIT_USAGE and "Traceback" not in error, error
    return error


def write_video(path: Path, num_frames: int, *, size: tuple[int, int] = (48, 64), fps: float = 25.0) -> Path:
    """Write an MJPG AVI whose frame ``i`` is a flat grey of level ``8 * i`` (so content identifies the index)."""
    height, width = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for index in range(num_frames):
        writer.write(np.full((height, width, 3), (8 * index) % 256, dtype=np.uint8))
    writer.release()
    return path


def run_with_reader_gone(*command: str) -> tuple[int, str]:
    """Run ``vidrnn COMMAND`` in a process of its own whose standard output is a pipe the reader closed at once (as
    ``| head -0`` does), and return its exit status and what it said on standard error."""
    process = subprocess.Popen([sys.executable, "-m", "vidrnn", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    process.stdout.close()
    said = process.stderr.read()
    return process.wait(), said


def stating_rate(path: Path, rate: int) -> Path:
    """Rewrite an AVI's headers to state ``rate`` frames a second (``dwRate``, with ``dwScale`` 1, and the main header's
    frame duration), whatever rate its frames were written at: a container that misstates its rate."""
    data = bytearray(path.read_bytes())
    stream = data.find(b"strh")
    struct.pack_into("<II", data, stream + 8 + 20, 1, rate)
    main = data.find(b"avih")
    struct.pack_into("<I", data, main + 8, 1_000_000 // rate)
    path.write_bytes(bytes(data))
    return path


def stating_frames(path: Path, count: int) -> Path:
    """Rewrite an AVI's headers to state ``count`` frames (the main header's ``dwTotalFrames`` and the stream's
    ``dwLength``), whatever number it holds: a container that misstates its length, as a truncated copy's does."""
    data = bytearray(path.read_bytes())
    main = data.find(b"avih")
    struct.pack_into("<I", data, main + 8 + 16, count)
    stream = data.find(b"strh")
    struct.pack_into("<I", data, stream + 8 + 32, count)
    path.write_bytes(bytes(data))
    return path


def save_untrained(module: L.LightningModule, path: Path) -> Path:
    """Save ``module`` as a checkpoint ``vidrnn fit`` could have written, without training it: its weights, its
    hyperparameters and what its ``on_save_checkpoint`` adds (the task it is for)."""
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                  "pytorch-lightning_version": L.__version__}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def fit_split_record(data: L.LightningDataModule, runs: Path) -> dict[str, Any]:
    """The ``splits.json`` that ``data``, its features extracted, writes as a fit sets it up in a run folder under
    ``runs`` (a trainer with a logger gives it the run's log folder)."""
    from lightning.pytorch.loggers import CSVLogger

    data.prepare_data()
    data.trainer = L.Trainer(logger=CSVLogger(runs), accelerator="cpu")
    data.setup("fit")
    return json.loads((Path(data.trainer.log_dir) / "splits.json").read_text())


def frame_level(frame: np.ndarray) -> int:
    """The index a frame written by :func:`write_video` encodes."""
    return round(float(frame.mean()) / 8)


def real_data(*parts: str) -> Path:
    """A folder of the real data in ../shared/data, or a skip saying where it was looked for: the one way the
    real-data tests find it, so that none of them runs half-way on a checkout without it."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return real_data()


@pytest.fixture
def short_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi", 30)
