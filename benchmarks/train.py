"""Seconds per training epoch: from the feature cache versus end to end (decode + frozen CNN at every step).

Same clips, same recurrent model, same batch size, same device. The cached epoch reads float16 arrays and trains the
temporal model; the end-to-end epoch decodes every clip (in DataLoader workers), runs the frozen backbone over its
frames and then takes the same training step — what a CRNN pipeline without a cache does every epoch.

    python benchmarks/train.py [--videos 48] [--epochs 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.batches import collate_sequences
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.features import FeatureCache, extract_features
from vidrnn.models.classifier import VideoClassifier
from vidrnn.models.temporal import EncoderSpec
from vidrnn.sampling import SamplingSpec
from vidrnn.video import read_sampled

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf101-mini"


class _DecodedClips(Dataset):
    """Decode + preprocess one clip per item, as an uncached pipeline must do every epoch."""

    def __init__(self, items, labels, sampling, preprocess) -> None:
        self.items, self.labels, self.sampling, self.preprocess = items, labels, sampling, preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        frames, _, _ = read_sampled(self.items[position].path,
                                    lambda i: self.sampling.indices(i.num_frames, i.fps), size=self.sampling.short_side)
        return self.preprocess(frames), self.labels[position]


def _stack(batch):
    return torch.stack([images for images, _ in batch]), torch.tensor([label for _, label in batch])


def _train_step(model, optimizer, features, lengths, labels) -> None:
    loss = model.loss(model(features, lengths), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def cached_epoch(model, optimizer, cache, keys, labels, batch_size, device) -> float:
    start = time.perf_counter()
    order = np.random.default_rng(0).permutation(len(keys))
    for first in range(0, len(keys), batch_size):
        chosen = order[first : first + batch_size]
        batch = collate_sequences([(cache.load(keys[k]), labels[k], keys[k]) for k in chosen]).to(device)
        _train_step(model, optimizer, batch.features, batch.lengths, batch.labels)
    return time.perf_counter() - start


def end_to_end_epoch(model, optimizer, backbone, loader, device) -> float:
    start = time.perf_counter()
    for images, labels in loader:
        clips, steps = images.shape[:2]
        features = backbone(images.flatten(0, 1).to(device)).view(clips, steps, -1)
        lengths = torch.full((clips,), steps, dtype=torch.int64)
        _train_step(model, optimizer, features, lengths, labels.to(device))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    index = ucf101_index(args.root, fold=1)
    records = index.split("train")[:: max(1, len(index.split("train")) // args.videos)][: args.videos]
    subset = type(index)(index.root, index.classes, records, index.split_rule)
    items = subset.video_items()
    labels = [index.label_index(r) for r in records]
    sampling = SamplingSpec(strategy="segments", num_segments=16, short_side=256)
    backbone = build_backbone(BackboneSpec()).to(device)
    encoder = EncoderSpec(hidden_size=256, projection=256)
    model = VideoClassifier(len(index.classes), backbone.feature_dim, encoder).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    with tempfile.TemporaryDirectory() as cache_root:
        cache = FeatureCache(cache_root, backbone.spec, sampling, index.root, device)
        start = time.perf_counter()
        extract_features(items, cache, backbone, device=device, num_workers=args.workers, progress=False)
        extraction = time.perf_counter() - start
        keys = [item.key for item in items]
        cached = [cached_epoch(model, optimizer, cache, keys, labels, args.batch_size, device)
                  for _ in range(args.epochs)]
    loader = DataLoader(_DecodedClips(items, labels, sampling, backbone.preprocess), batch_size=args.batch_size,
                        shuffle=True, num_workers=args.workers, collate_fn=_stack)
    uncached = [end_to_end_epoch(model, optimizer, backbone, loader, device) for _ in range(args.epochs)]

    per_cached, per_uncached = float(np.median(cached)), float(np.median(uncached))
    print(f"{len(items)} clips x 16 frames, EfficientNet-Lite0 + bidirectional LSTM(256), batch {args.batch_size}, "
          f"device {device}, {torch.get_num_threads()} torch threads")
    print(f"one-off feature extraction: {extraction:.1f} s")
    print(f"{'epoch from cache':>18} {'epoch end to end':>18} {'speed-up':>9}")
    print(f"{per_cached:>16.3f} s {per_uncached:>16.1f} s {per_uncached / per_cached:>8.0f}x")


if __name__ == "__main__":
    main()
