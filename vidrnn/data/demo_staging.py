"""Generated demo data, written once and atomically: a marker file says a folder is complete and whose it is."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEMO_MARKER", "ensure_generated", "is_generated", "marker_text"]

#: Written last by :func:`vidrnn.data.synthetic.ensure_demo_data`: its presence means the demo dataset beside it is
#: complete.
DEMO_MARKER = "vidrnn-demo.json"


def marker_text(generator: str, seed: int) -> str:
    """What a finished generation writes in its marker: which generator and seed made the folder, so another seed
    is refused there rather than mixed in."""
    return json.dumps({"generator": generator, "seed": seed})


def _found_marker(root: Path) -> dict[str, Any] | None:
    """The marker a complete generation left in ``root``; ``None`` where there is none (or a damaged one: the
    generation it stood for is redone)."""
    try:
        found = json.loads((root / DEMO_MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _check_replaceable(root: Path, ours: set[str]) -> None:
    """Refuse to delete a directory that holds anything a demo generation would not have written."""
    foreign = sorted(entry.name for entry in root.iterdir() if entry.name not in ours | {DEMO_MARKER})
    if foreign:
        raise FileExistsError(f"{root} holds {foreign}, which is not demo data; refusing to replace it")


def is_generated(out_dir: Path, marker: str, ours: set[str], setting: str = "folder") -> bool:
    """Whether ``out_dir`` holds the complete demo data ``marker`` stands for (``True``), or nothing a generation
    must keep (``False``: absent, cut short, or an older generator's), which generating replaces. Reads only.

    Data of the same generator made with another seed is refused (``ValueError``), not replaced: the new videos would
    take the old ones' names, and the features cached from the old ones (a cache is keyed by the folder, not by the
    seed) and the models trained on them would be read with the new ones without a word. ``setting`` names what
    chooses the folder, for the message. Anything a generation would not have written is refused too
    (``FileExistsError``).
    """
    wanted, found = json.loads(marker), _found_marker(out_dir)
    if found == wanted:
        return True
    if found is not None and found.get("generator") == wanted["generator"]:
        raise ValueError(
            f"{out_dir} holds the demo videos generated with seed {found.get('seed')}; seed {wanted['seed']} "
            "generates other videos, which would replace them under the same names (features cached from them and "
            f"models trained on them would then be read with the new ones). Give seed {wanted['seed']} a {setting} of "
            f"its own, such as {out_dir}-seed{wanted['seed']}, or use seed {found.get('seed')} here")
    if out_dir.exists():
        _check_replaceable(out_dir, ours)
    return False


def ensure_generated(out_dir: Path, marker: str, ours: set[str], generate: Callable[[Path], object]) -> Path:
    """``out_dir`` as ``generate`` writes it, generated only if a complete one is not already there.

    Generation goes into a hidden sibling directory, the marker file is written last, and only then is the directory
    renamed into place: ``out_dir`` is either absent or complete, and an interrupted generation (killed, disk full) is
    simply redone by the next call. A directory without the right marker (partial, or an older generator's) is
    replaced, but only if it holds nothing besides demo data; one made with another seed is refused
    (:func:`is_generated`). The staging directory is made as any folder is (``os.mkdir``: the user's umask decides
    who may read it), not private as ``tempfile.mkdtemp`` makes it: the demo is read by other users and containers.
    """
    if is_generated(out_dir, marker, ours):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}-{secrets.token_hex(6)}")
    os.mkdir(staging)
    try:
        generate(staging)
        (staging / DEMO_MARKER).write_text(marker, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
