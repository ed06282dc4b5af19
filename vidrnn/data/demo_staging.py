"""Generated demo data, written once and atomically: a marker file says a folder is complete and whose it is."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEMO_MARKER", "ensure_generated", "marker_text"]

#: Written last by :func:`vidrnn.data.synthetic.ensure_demo_data`: its presence means the demo dataset beside it is
#: complete.
DEMO_MARKER = "vidrnn-demo.json"

def marker_text(generator: str, seed: int) -> str:
    return json.dumps({"generator": generator, "seed": seed})


def _is_complete(root: Path, marker: str) -> bool:
    path = root / DEMO_MARKER
    return path.is_file() and path.read_text(encoding="utf-8") == marker


def _check_replaceable(root: Path, ours: set[str]) -> None:
    """Refuse to delete a directory that holds anything a demo generation would not have written."""
    foreign = sorted(entry.name for entry in root.iterdir() if entry.name not in ours | {DEMO_MARKER})
    if foreign:
        raise FileExistsError(f"{root} holds {foreign}, which is not demo data; refusing to replace it")


def ensure_generated(out_dir: Path, marker: str, ours: set[str], generate: Callable[[Path], object]) -> Path:
    """``out_dir`` as ``generate`` writes it, generated only if a complete one is not already there.

    Generation goes into a hidden sibling directory, the marker file is written last, and only then is the directory
    renamed into place: ``out_dir`` is either absent or complete, and an interrupted generation (killed, disk full) is
    simply redone by the next call. A directory without the right marker (partial, or made with another seed) is
    replaced, but only if it holds nothing besides demo data.
    """
    if _is_complete(out_dir, marker):
        return out_dir
    if out_dir.exists():
        _check_replaceable(out_dir, ours)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        generate(staging)
        (staging / DEMO_MARKER).write_text(marker, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


