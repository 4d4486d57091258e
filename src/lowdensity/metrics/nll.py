"""Appendix A.2: the diffusion model's negative log-likelihood in bits/dim, and how poorly it
tracks the density metrics.

The NLL bound is improved-diffusion's `calc_bpd_loop`: the prior term L_T, the KL terms of
every step and the discretised-Gaussian decoder term, for the first `nll.num_images`
held-out images. With `nll.steps` set, the bound is that of the respaced chain (a valid,
looser bound of the respaced model). With `nll.terms` = M, the same T-step bound is estimated
from M of its terms (the decoder term and one step per stratum of the chain, each weighted by
its stratum's size: unbiased, `stratified_terms`), drawn afresh for every batch; the chain and
the number of terms are recorded in every row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .data import load_split, to_model_range
from .ddpm import load_ddpm, sampling_diffusion, select_device
from .diffusion import stratified_terms
from .io import atomic_to_csv


def nll_bits_per_dim(cfg: dict, model_path: str, val_path: str, out_csv: str, device: str = "auto") -> None:
    dev = select_device(device)
    model, meta = load_ddpm(model_path, dev)
    steps = cfg["steps"] or meta["diffusion"]["num_steps"]
    diffusion = sampling_diffusion(meta["diffusion"], steps)
    split = load_split(val_path, mmap=True)  # the first num_images are read
    n = min(cfg["num_images"], len(split.labels))
    generator = torch.Generator().manual_seed(cfg["seed"])
    strata = np.random.default_rng(cfg["seed"])
    num_terms = cfg.get("terms") or diffusion.num_timesteps
    rows = []
    for start in range(0, n, cfg["batch_size"]):
        stop = min(start + cfg["batch_size"], n)
        x0 = to_model_range(split.images[start:stop]).to(dev)
        y = torch.from_numpy(split.labels[start:stop]).to(dev)
        terms = stratified_terms(diffusion.num_timesteps, num_terms, strata) if num_terms < diffusion.num_timesteps else None
        out = diffusion.calc_bpd_loop(model, x0, {"y": y} if model.num_classes else None, generator=generator, terms=terms)
        rows.append(pd.DataFrame({"index": np.arange(start, stop), "label": split.labels[start:stop],
                                  "bpd": out["total_bpd"].cpu().numpy(), "prior_bpd": out["prior_bpd"].cpu().numpy(),
                                  "decoder_bpd": out["vb"][:, 0].cpu().numpy()}))
    table = pd.concat(rows, ignore_index=True)
    table["chain"] = f"{steps} of {meta['diffusion']['num_steps']} steps" + (
        f", {num_terms} stratified terms" if num_terms < diffusion.num_timesteps else "")
    atomic_to_csv(table, out_csv)


def nll_correlation(nll_csv: str, metrics_csvs: list[str], out_csv: str) -> pd.DataFrame:
    """Spearman and Pearson correlation of NLL with each density metric of the same real images."""
    nll = pd.read_csv(nll_csv).set_index("index")
    rows = []
    for path in metrics_csvs:
        metrics = pd.read_csv(path)
        real = metrics[metrics["set"] == "real"]
        for metric, table in real.groupby("metric"):
            joined = nll.join(table.set_index("index")["value"], how="inner")
            spearman = stats.spearmanr(joined["bpd"], joined["value"])
            pearson = stats.pearsonr(joined["bpd"], joined["value"])
            rows.append({"extractor": table["extractor"].iloc[0], "metric": metric, "n": len(joined),
                         "spearman": spearman.statistic, "spearman_p": spearman.pvalue,
                         "pearson": pearson.statistic, "pearson_p": pearson.pvalue, "chain": nll["chain"].iloc[0]})
    result = pd.DataFrame(rows)
    atomic_to_csv(result, out_csv)
    return result
