"""FID and improved precision/recall through torch-fidelity, in our evaluation spaces.

torch-fidelity's own Inception weights cannot be downloaded here, so each configured
extractor is registered with torch-fidelity as a custom feature extractor named
`lowdensity-<extractor>`; the metrics are reported as `fid_<extractor>`, so nobody takes
them for the Inception FID of other papers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .ddpm import select_device
from .io import atomic_to_csv


class UInt8Images(torch.utils.data.Dataset):
    """uint8 (N, C, H, W) images as the 3-channel uint8 tensors torch-fidelity expects."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(np.array(self.images[i]))
        return x.expand(3, -1, -1) if x.shape[0] == 1 else x


def register_extractor(spec: dict, device: torch.device) -> str:
    """Register `spec` (an `evaluation.extractors` entry) with torch-fidelity; returns its name."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    from .features import load_extractor

    name = f"lowdensity-{spec['name']}"
    if name in FEATURE_EXTRACTORS_REGISTRY:
        return name

    class Extractor(FeatureExtractorBase):
        def __init__(self, extractor_name, features_list, **kwargs):
            super().__init__(extractor_name, features_list)
            self.extractor = load_extractor(spec, device)

        @staticmethod
        def get_provided_features_list():
            return ("pooled",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "pooled"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, spec["input_size"], spec["input_size"], dtype=torch.uint8)

        def forward(self, x):
            return (torch.from_numpy(self.extractor(x.cpu().numpy())).to(x.device),)

    register_feature_extractor(name, Extractor)
    return name


def fidelity(spec: dict, real: np.ndarray, fake: np.ndarray, k: int, device: str = "auto") -> dict:
    """FID and improved precision/recall (k-NN balls, k = `k`) of `fake` against `real`."""
    import torch_fidelity

    dev = select_device(device)
    name = register_extractor(spec, dev)
    out = torch_fidelity.calculate_metrics(
        input1=UInt8Images(fake), input2=UInt8Images(real), cuda=dev.type == "cuda", fid=True, prc=True,
        feature_extractor=name, feature_layer_fid="pooled", feature_layer_prc="pooled", prc_neighborhood=k,
        batch_size=256, cache=False, verbose=False, save_cpu_ram=True,
    )
    return {f"fid_{spec['name']}": float(out["frechet_inception_distance"]), "precision": float(out["precision"]),
            "recall": float(out["recall"])}


def fidelity_table(eval_cfg: dict, extractor: str, train_path: str, sample_paths: dict[str, str], out_csv: str,
                   device: str = "auto") -> None:
    """One row per sample set: FID, precision and recall against the training reference, via torch-fidelity."""
    from .evaluation import load_image_set

    spec = next(e for e in eval_cfg["extractors"] if e["name"] == extractor)
    real, _ = load_image_set("reference", train_path, eval_cfg["num_reference"])
    rows = []
    for set_name, path in sample_paths.items():
        fake, _ = load_image_set(set_name, path, None, real.shape[1:])
        rows.append({"set": set_name, "extractor": extractor, **fidelity(spec, real, fake, eval_cfg["precision_k"], device),
                     "k": eval_cfg["precision_k"], "num_real": len(real), "num_fake": len(fake), "via": "torch-fidelity"})
    atomic_to_csv(pd.DataFrame(rows), out_csv)
