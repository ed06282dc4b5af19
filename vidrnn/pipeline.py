"""The preprocessing pipeline as one record: which frames, through which frozen CNN, how many steps the model reads.

A clip's input to a temporal model is fixed by three choices made before any training: the frames decoded and their
size (:class:`~vidrnn.sampling.SamplingSpec`), the frozen CNN that turns each into features
(:class:`~vidrnn.backbones.BackboneSpec`), and the number of time steps taken from those frames (``steps``: random
segment offsets in training, the centres otherwise). A model is only right on input made the same way, so the three
travel together: from the data module into every classifier checkpoint, and from there into the
:class:`~vidrnn.inference.Predictor` that replays them on new videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidrnn.backbones import BackboneSpec
from vidrnn.sampling import SamplingSpec

__all__ = ["PipelineSpec"]


@dataclass(frozen=True)
class PipelineSpec:
    """Sampling, backbone and steps: everything between a video file and the features a model reads.

    The features are a vector per frame (``avg`` or ``grid`` pooling): a pipeline of spatial maps is refused.
    """

    backbone: BackboneSpec
    sampling: SamplingSpec
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.backbone.pooling == "map":
            # Refused here, where the data module describes its features first: accepted, every clip was extracted
            # before the model failed on features of the wrong shape.
            raise ValueError("backbone pooling map gives each frame's spatial feature map [C,h,w], which the tracker "
                             "searches; a classifier reads one vector per frame: set data.backbone.pooling to avg (the "
                             "default) or grid (a grid x grid average that keeps coarse position)")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a checkpoint loads with ``weights_only=True``)."""
        return {"backbone": self.backbone.to_dict(), "sampling": self.sampling.to_dict(), "steps": self.steps}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineSpec:
        return cls(BackboneSpec.from_dict(dict(values["backbone"])), SamplingSpec.from_dict(dict(values["sampling"])),
                   int(values["steps"]))
