"""Peak memory of reading 16 frames from videos of growing length.

The reader decodes sequentially and keeps only the frames asked for, so its peak memory should not grow with video
length. Each measurement runs in a fresh process (peak RSS is a per-process high-water mark). Videos are 640x480
MPEG-4 generated here; the 10-minute one takes a minute or two to write.

    python benchmarks/video_memory.py [--minutes 0.25 1 10] [--workdir /tmp/vidrnn-bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FPS = 640, 480, 25.0


def write_long_video(path: Path, minutes: float) -> Path:
    """A moving gradient with a bouncing square: cheap to encode, not trivially compressible to nothing."""
    if path.exists():
        return path
    partial = path.with_suffix(".partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    ramp = np.linspace(0, 255, WIDTH, dtype=np.float32)[None, :].repeat(HEIGHT, axis=0)
    for index in range(round(minutes * 60 * FPS)):
        frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
        frame[..., 0] = (ramp + 3 * index) % 256
        frame[..., 1] = np.flipud(frame[..., 0])
        frame[..., 2] = 128
        x = int(abs((7 * index) % (2 * (WIDTH - 80)) - (WIDTH - 80)))
        frame[200:280, x : x + 80] = 255
        writer.write(frame)
    writer.release()
    partial.rename(path)
    return path


def measure(path: Path) -> dict:
    """Run in a child process: read 16 uniformly spread frames, report time and peak RSS."""
    from vidrnn.sampling import SamplingSpec
    from vidrnn.video import read_sampled

    spec = SamplingSpec(strategy="segments", num_segments=16, short_side=256)
    start = time.perf_counter()
    frames, _, info = read_sampled(path, lambda i: spec.indices(i.num_frames, i.fps), size=spec.short_side)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": int(info.num_frames), "seconds": seconds, "peak_rss_mib": peak_mib, "shape": list(frames.shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[0.25, 1.0, 10.0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vidrnn-bench"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    baseline = subprocess.run(
        [sys.executable, "-c", "import resource, vidrnn.video; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
        check=True, capture_output=True, text=True,
    )
    import_mib = int(baseline.stdout) / 1024
    print(f"peak RSS of a process that only imports vidrnn.video: {import_mib:.0f} MiB")
    print(f"{'length':>8} {'frames':>7} {'read 16 frames':>15} {'peak RSS':>10} {'whole video as uint8':>21}")
    for minutes in args.minutes:
        video = write_long_video(args.workdir / f"long_{minutes:g}min.mp4", minutes)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(video)], check=True, capture_output=True, text=True
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        whole_gib = result["frames"] * WIDTH * HEIGHT * 3 / 2**30
        print(
            f"{minutes:>7g}m {result['frames']:>7d} {result['seconds']:>14.1f}s "
            f"{result['peak_rss_mib']:>7.0f} MiB {whole_gib:>17.2f} GiB"
        )


if __name__ == "__main__":
    main()
