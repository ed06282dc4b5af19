"""End to end on the demo data: recurrent models learn the order pairs, the order-blind baseline cannot.

Settings are those of configs/demo.yaml; the final weights are tested.

The demo's classes come in pairs whose clips are the same frames in opposite order. A bidirectional LSTM over
the frame features must separate them; the mean of frame features must stay at chance within each pair (it still
tells the pairs apart, which is why the within-pair figure is the one that measures order).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from vidrnn.backbones import BackboneSpec
from vidrnn.data.module import VideoDataModule
from vidrnn.data.synthetic import ensure_demo_data
from vidrnn.models.classifier import VideoClassifier
from vidrnn.models.temporal import EncoderSpec
from vidrnn.sampling import SamplingSpec


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> VideoDataModule:
    work = tmp_path_factory.mktemp("demo")
    module = VideoDataModule(
        root=str(ensure_demo_data(work / "data")), dataset="ucf101", cache_dir=str(work / "cache"),
        backbone=BackboneSpec(input_size=160), sampling=SamplingSpec(strategy="all", short_side=128),
        steps=16, batch_size=16, val_fraction=0.2,
    )
    module.prepare_data()
    return module


def _train_and_test(demo: VideoDataModule, epochs: int = 60, **encoder: object) -> tuple[float, float]:
    """Test accuracy, and accuracy within pairs (among clips whose pair was recognised), after ``epochs``."""
    L.seed_everything(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small recurrent matrices: a second thread costs more in handoff than it gains
    try:
        spec = EncoderSpec(hidden_size=128, projection=None, input_dropout=0.1, **encoder)
        classifier = VideoClassifier(
            demo.num_classes, demo.feature_dim, spec,
            optimizer=lambda parameters: torch.optim.AdamW(parameters, lr=3e-3, weight_decay=0.05),
            scheduler=lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
        )
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0)
        trainer.fit(classifier, datamodule=demo)
        outputs = trainer.predict(classifier, datamodule=demo)
    finally:
        torch.set_num_threads(threads)
    predicted = torch.cat([o["probabilities"] for o in outputs]).argmax(1)
    truth = torch.cat([o["labels"] for o in outputs])
    same_pair = predicted // 2 == truth // 2  # classes 2k and 2k+1 are an order pair
    return (predicted == truth).float().mean().item(), (predicted == truth)[same_pair].float().mean().item()


@pytest.mark.slow
def test_a_bidirectional_lstm_learns_the_order_pairs(demo: VideoDataModule) -> None:
    """The demo config's model, end to end (the GRU's cell learns order in tests/test_temporal.py)."""
    accuracy, within_pairs = _train_and_test(demo, cell="lstm", bidirectional=True, pooling="last")
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f}"
    assert within_pairs >= 0.95


@pytest.mark.slow
def test_the_mean_of_frame_features_stays_at_chance_within_pairs(demo: VideoDataModule) -> None:
    """A clip and its reversal have the same mean, so within a pair no number of epochs gets past chance: 20 do."""
    accuracy, within_pairs = _train_and_test(demo, epochs=20, cell="none", pooling="mean")
    assert within_pairs <= 0.65, f"order-blind baseline separated reversed clips: {within_pairs:.3f}"
    assert accuracy <= 0.65
