"""The preprocessing pipeline as one record: which frames, through which frozen CNN, how many steps the model reads.

A clip's input to a temporal model is fixed by the choices made before any training: the frames decoded and their
size (:class:`~vidrnn.sampling.SamplingSpec`), the frozen CNN that turns each into features
(:class:`~vidrnn.backbones.BackboneSpec`), the number of frames it ran on at once (``extract_batch_size``: a
batch of another size rounds a frame's features differently, and the feature cache keys on it) and its arithmetic
(``precision``, the device's: :func:`~vidrnn.backbones.feature_precision`, a key of the cache too), and the number of time
steps taken from those frames (``steps``: random segment offsets in training, the centres otherwise). A model is only
right on input made the same way, so they travel together: from the data module into every classifier checkpoint, and
from there into the :class:`~vidrnn.inference.Predictor` that replays them on new videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidrnn.backbones import BackboneSpec
from vidrnn.sampling import SamplingSpec

__all__ = ["EXTRACT_BATCH_SIZE", "PipelineSpec"]

#: Frames per CNN batch unless a setting says otherwise; also what a checkpoint from before ``extract_batch_size`` was
#: recorded was extracted with (every extraction's default then).
EXTRACT_BATCH_SIZE = 32


@dataclass(frozen=True)
class PipelineSpec:
    """Sampling, backbone, its batch size and precision, and steps: everything between a video file and the features a
    model reads.

    The features are a vector per frame (``avg`` or ``grid`` pooling): a pipeline of spatial maps is refused.
    ``precision`` is ``None`` where it is unknown: a checkpoint saved before it was recorded.
    """

    backbone: BackboneSpec
    sampling: SamplingSpec
    steps: int
    extract_batch_size: int = EXTRACT_BATCH_SIZE
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.extract_batch_size < 1:
            raise ValueError(f"data.extract_batch_size must be at least 1, got {self.extract_batch_size}")
        if self.backbone.pooling == "map":
            # Refused here, where the data module describes its features first: accepted, every clip was extracted
            # before the model failed on features of the wrong shape.
            raise ValueError("backbone pooling map gives each frame's spatial feature map [C,h,w], which the tracker "
                             "searches; a classifier reads one vector per frame: set data.backbone.pooling to avg (the "
                             "default) or grid (a grid x grid average that keeps coarse position)")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a checkpoint loads with ``weights_only=True``); an unknown precision is left out."""
        known = {} if self.precision is None else {"precision": self.precision}
        return {"backbone": self.backbone.to_dict(), "sampling": self.sampling.to_dict(), "steps": self.steps,
                "extract_batch_size": self.extract_batch_size, **known}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineSpec:
        """The record :meth:`to_dict` made; one saved before ``extract_batch_size`` was recorded was extracted with
        :data:`EXTRACT_BATCH_SIZE`, one saved before ``precision`` was at a precision unknown."""
        return cls(BackboneSpec.from_dict(dict(values["backbone"])), SamplingSpec.from_dict(dict(values["sampling"])),
                   int(values["steps"]), int(values.get("extract_batch_size", EXTRACT_BATCH_SIZE)),
                   values.get("precision"))
