"""FID and improved precision/recall by torch-fidelity's metric code, in our evaluation spaces.

torch-fidelity's own Inception weights cannot be downloaded here, so the features are those
`extract_features` stored for each configured extractor (every image is embedded once, for
every metric); torch-fidelity computes the Fréchet distance and the k-NN precision/recall
from them: an implementation of the metrics' arithmetic independent of ours (`density_metrics`
computes precision/recall too). The FID is reported as `fid_<extractor>`, so nobody takes it
for the Inception FID of other papers.
"""

from __future__ import annotations

import numpy as np
import torch


def fidelity(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int,
    extractor: str,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """FID and improved precision/recall (k-NN balls, k = `k`) of `fake_features` against
    `real_features`, by torch-fidelity's functions (as its `calculate_metrics` with
    `save_cpu_ram=True` calls them after extracting the features); the k-NN distances on `device`."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    real, fake = (
        torch.from_numpy(np.array(real_features)),
        torch.from_numpy(np.array(fake_features)),
    )  # in memory, writable
    fid = fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(real), verbose=False)
    prc = prc_features_to_metric(
        fake.to(device), real.to(device), prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=True, verbose=False
    )
    return {
        f"fid_{extractor}": float(fid[KEY_METRIC_FID]),
        "precision": float(prc["precision"]),
        "recall": float(prc["recall"]),
    }
