"""The evaluation stage: features of every image set in each evaluation space, the density
metrics of Section 4.2 (hardness, AvgkNN, LOF), precision/recall, and the memorization
search of Section 5.

Image sets: `reference` (a stratified subset of `evaluation.num_reference` training
images, or all), `real` (the held-out validation split), and every sample set. Features
are extracted once per (extractor, set) and stored as .npz with the labels; every metric
reads them. The metrics table is tidy: one row per (set, image, extractor, metric).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats

from lowdensity.core.diffusion import stratified_terms
from lowdensity.data import image_shape, load_split, read_sample_set, stratified_subset, to_model_range
from lowdensity.guidance.gaussians import label_hardness
from lowdensity.io import (
    ArtifactError,
    atomic_path,
    atomic_save_npy,
    atomic_savez,
    atomic_to_csv,
    read_npy,
    read_npz,
    rebuild_hint,
)
from lowdensity.metrics.cost import cost_table, render_table
from lowdensity.metrics.density import LocalOutlierFactor, avg_knn, closest_pairs
from lowdensity.metrics.fidelity import fidelity
from lowdensity.metrics.intervals import fidelity_and_diversity
from lowdensity.metrics.knn import improved_precision_recall, knn
from lowdensity.networks.ddpm import load_ddpm, sampling_diffusion
from lowdensity.runtime import select_device


def image_set_rows(
    set_name: str, path: str, num_reference: int | None, shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, rows, labels of those rows) of a set: the stratified reference subset of the
    training split or the validation split (images memory-mapped: only `rows` are ever read), or
    a sample file (checked against the data's (C, H, W) = `shape`; all rows)."""
    if set_name in ("reference", "real"):
        split = load_split(path, mmap=True)
        rows = np.arange(len(split.labels))
        if set_name == "reference":
            per_class = None if num_reference is None else max(2, num_reference // len(split.class_names))
            rows = stratified_subset(split.labels, per_class, seed=0)
        return split.images, rows, split.labels[rows]
    data = read_sample_set(path, shape, keys=("images", "labels"))
    return data["images"], np.arange(len(data["labels"])), data["labels"]


def load_image_set(
    set_name: str, path: str, num_reference: int | None, shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and labels of a set (see `image_set_rows`), in memory."""
    images, rows, labels = image_set_rows(set_name, path, num_reference, shape)
    return np.asarray(images[rows]), labels


EXTRACTION_CHUNK = 16_384  # images read from disk and embedded per step


def extract_features(
    *,
    params: dict,
    extractor: str,
    set_name: str,
    images: str,
    data: str,
    out: str,
    classifier: str | None = None,
    device: str = "auto",
) -> None:
    """Features of one image set in one space: a configured extractor, or `classifier` (the
    pipeline classifier's clean embedding f(x, 0)). A sample set must have the (C, H, W) of the
    prepared split `data`. Images are read and embedded `EXTRACTION_CHUNK` at a time and the
    features written into a memory-mapped .npy, so memory stays bounded at any set size.

    Args:
        params: the config's evaluation section.
        extractor: a configured extractor's name, or `classifier`.
        set_name: reference | real | a sample set's name.
        images: the set's images (a prepared split or sample file).
        data: a prepared split: the (C, H, W) every image must have.
        out: the features (.npy; labels beside it).
        classifier: the classifier (extractor `classifier`).
        device: where to run (auto: CUDA when present).
    """
    dev = select_device(device)
    pixels, rows, labels = image_set_rows(set_name, images, params["num_reference"], image_shape(data))
    if not len(rows):
        raise ArtifactError(f"{images}: the set {set_name!r} holds no images: {rebuild_hint(images)}")
    if extractor == "classifier":
        from lowdensity.guidance.classifier import embed_images, load_encoder

        model, _ = load_encoder(classifier, dev)
        embed = lambda batch: embed_images(model, batch, 0)  # noqa: E731
    else:
        from lowdensity.metrics.features import load_extractor

        embed = load_extractor(next(e for e in params["extractors"] if e["name"] == extractor), dev)
    atomic_save_npy(labels_path(out), np.asarray(labels, dtype=np.int64))
    with atomic_path(out, suffix=".npy") as tmp:
        written = None
        for start in range(0, len(rows), EXTRACTION_CHUNK):
            feats = embed(np.asarray(pixels[rows[start : start + EXTRACTION_CHUNK]]))
            if written is None:
                written = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows), feats.shape[1]))
            written[start : start + len(feats)] = feats
        written.flush()
        del written


def labels_path(features_path: str) -> str:
    """The labels beside a features file: `{set}.npy` → `{set}.labels.npy`."""
    return str(features_path)[: -len(".npy")] + ".labels.npy"


def save_features(path: str, features: np.ndarray, labels: np.ndarray) -> None:
    """Features as float32 .npy (memory-mappable) and their labels beside them."""
    atomic_save_npy(labels_path(path), np.asarray(labels, dtype=np.int64))
    atomic_save_npy(path, np.asarray(features, dtype=np.float32))


FINITE_CHECK_ROWS = 65_536  # rows checked at a time, so that a memory-mapped paper-scale set is never read whole


def load_features(path: str, like: dict | None = None) -> dict:
    """A set's features, memory-mapped (rows are read when a search uses them), and its labels,
    checked: float32 (N, D) with N ≥ 1 finite rows, N non-negative integer labels, and, given the
    reference's features `like`, its width D and only classes the reference holds. A damaged file
    fails naming it and its rebuild."""
    features, labels = read_npy(path, mmap=True), read_npy(labels_path(path), made_by="extract_features")
    problem = None
    if features.dtype != np.float32 or features.ndim != 2 or len(features) != len(labels):
        problem = (
            f"features {features.dtype} {features.shape} with {len(labels)} labels; "
            "expected float32 (N, D) with N labels"
        )
    elif len(features) == 0:
        problem = "no rows"
    elif like is not None and features.shape[1] != like["features"].shape[1]:
        problem = f"features of width {features.shape[1]}, but the reference's have {like['features'].shape[1]}"
    elif not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        problem = f"labels of dtype {labels.dtype} from {labels.min()}; expected non-negative class indices"
    elif like is not None and not np.isin(labels, like["labels"]).all():
        problem = f"labels {np.setdiff1d(labels, like['labels']).tolist()} that the reference has no images of"
    else:
        for start in range(0, len(features), FINITE_CHECK_ROWS):
            finite = np.isfinite(features[start : start + FINITE_CHECK_ROWS]).all(axis=1)
            if not finite.all():
                problem = f"row {start + int(np.flatnonzero(~finite)[0])} holds NaN or infinite values"
                break
    if problem:
        raise ArtifactError(f"{path}: {problem}: {rebuild_hint(path)}")
    return {"features": features, "labels": labels}


def reference_neighbours(*, params: dict, reference: str, out: str, device: str = "auto") -> None:
    """The reference's own k nearest other references (k = max(lof_k, precision_k)): LOF's
    k-distances and lrd and the precision balls of every set's metrics, searched once on `device`.

    Args:
        params: {"lof_k", "precision_k", "knn_backend"} of the evaluation section.
        reference: the reference's features.
        out: its neighbours (.npz).
        device: where the search runs (auto: CUDA when present).
    """
    ref = load_features(reference)
    k = max(params["lof_k"], params["precision_k"])
    distances, indices = knn(
        ref["features"],
        ref["features"],
        k,
        exclude_self=True,
        device=select_device(device),
        backend=params["knn_backend"],
    )
    atomic_savez(out, distances=distances, indices=indices, k=k)


def load_reference_neighbours(path: str, reference: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's own neighbours (`reference_neighbours`), checked against the reference and k."""
    neighbours = read_npz(path, ("distances", "indices"))
    distances, indices = neighbours["distances"], neighbours["indices"]
    problem = None
    if distances.ndim != 2 or distances.shape != indices.shape:
        problem = f"distances {distances.shape} and indices {indices.shape} do not pair up"
    elif distances.shape[0] != len(reference["labels"]) or distances.shape[1] < k:
        problem = (
            f"holds {distances.shape} neighbours, not {len(reference['labels'])} × ≥ {k}: it does not match the "
            "reference features and the configured k"
        )
    elif not np.isfinite(distances).all() or (distances < 0).any():
        problem = "holds NaN, infinite or negative distances"
    elif indices.size and (indices.min() < 0 or indices.max() >= len(reference["labels"])):
        problem = f"holds neighbour indices outside the reference's 0 … {len(reference['labels']) - 1}"
    if problem:
        raise ArtifactError(f"{path} {problem}; {rebuild_hint(path)}")
    return distances, indices


def reference_radii(path: str, reference: dict, k: int) -> np.ndarray:
    """The precision balls: each reference's distance to its k-th nearest other reference (stored)."""
    return load_reference_neighbours(path, reference, k)[0][:, k - 1]


def set_density_metrics(
    *,
    params: dict,
    extractor: str,
    reference: str,
    neighbours: str,
    set_name: str,
    features: str,
    metrics_csv: str,
    summary_csv: str,
    device: str = "auto",
) -> None:
    """One image set in one space. Per image: hardness (class Gaussians fitted on the reference
    features, Eq. 3), AvgkNN (k = knn_k) and LOF (k = lof_k) against the reference; for the set:
    improved precision and recall, density and coverage (k = precision_k), the Vendi scores and
    the medians, with bootstrap intervals (`fidelity_and_diversity`). The reference side (its own
    neighbours) comes from `reference_neighbours`, so each set is one independent job.

    Args:
        params: {"knn_k", "lof_k", "precision_k", "intervals", "knn_backend"} of the evaluation section.
        extractor: the feature space's name.
        reference: the reference's features.
        neighbours: the reference's own neighbours (reference-neighbours).
        set_name: the set's name.
        features: the set's features.
        metrics_csv: per-image metrics (tidy).
        summary_csv: the set's summary.
        device: where the searches run (auto: CUDA when present).
    """
    dev = select_device(device)
    ref = load_features(reference)
    own = load_reference_neighbours(neighbours, ref, max(params["lof_k"], params["precision_k"]))
    lof = LocalOutlierFactor(ref["features"], k=params["lof_k"], neighbours=own)
    radii = own[0][:, params["precision_k"] - 1]
    data = load_features(features, like=ref)
    near = knn(  # one search, both metrics
        data["features"],
        ref["features"],
        max(params["knn_k"], params["lof_k"]),
        device=dev,
        backend=params["knn_backend"],
    )
    values = {
        "hardness": label_hardness(ref["features"], ref["labels"], data["features"], data["labels"]),
        "avgknn": avg_knn(data["features"], ref["features"], k=params["knn_k"], neighbours=near),
        "lof": lof.score(data["features"], neighbours=near),
    }
    rows = [
        pd.DataFrame(
            {
                "set": set_name,
                "index": np.arange(len(v)),
                "label": data["labels"],
                "extractor": extractor,
                "metric": metric,
                "value": v,
            }
        )
        for metric, v in values.items()
    ]
    measured = fidelity_and_diversity(
        ref["features"],
        data["features"],
        k=params["precision_k"],
        intervals=params["intervals"],
        real_radii=radii,
        device=dev,
        backend=params["knn_backend"],
    )
    summary = {
        "set": set_name,
        "extractor": extractor,
        **{row["metric"]: row["value"] for row in measured},
        **{f"{row['metric']}_{end}": row[end] for row in measured for end in ("low", "high") if np.isfinite(row[end])},
        "k": params["precision_k"],
        "n": len(data["labels"]),
        "num_reference": len(ref["labels"]),
        **{f"median_{m}": float(np.median(v)) for m, v in values.items()},
    }
    atomic_to_csv(pd.concat(rows, ignore_index=True), metrics_csv)
    atomic_to_csv(pd.DataFrame([summary]), summary_csv)


def read_metrics(paths: list[str]) -> pd.DataFrame:
    """The tidy per-image metrics of one or more (space, set) files, as one table."""
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def collect_metrics(*, metrics: list[str], summaries: list[str], metrics_csv: str, sets_csv: str) -> None:
    """The per-(space, set) files of one space as the two tables users read: every image's
    metrics, and one summary row per set (in the given order).

    Args:
        metrics: the sets' per-image metrics.
        summaries: the sets' summaries, in the same order.
        metrics_csv: every image's metrics in this space.
        sets_csv: every set's summary in this space.
    """
    atomic_to_csv(read_metrics(metrics), metrics_csv)
    atomic_to_csv(read_metrics(summaries), sets_csv)


def memorization(
    *,
    params: dict,
    reference: str,
    guided: str,
    real: str,
    summary: str,
    pairs: str,
    neighbours: str,
    device: str = "auto",
) -> None:
    """Section 5: nearest-neighbour distance from every guided sample and every held-out real
    image to the training reference (means in `summary_csv`); the globally closest
    guided–training pairs; each guided sample's `neighbours` nearest training images with
    their labels, and the fraction whose nearest neighbour carries another label.

    Args:
        params: the evaluation section.
        reference: the reference's features.
        guided: the guided set's features.
        real: the held-out set's features.
        summary: nearest-neighbour distances per set (CSV).
        pairs: the closest guided–training pairs (CSV).
        neighbours: each guided sample's nearest training images (CSV).
        device: where the searches run (auto: CUDA when present).
    """
    cfg = params["memorization"]
    dev = select_device(device)
    ref = load_features(reference)
    guided_set, real_set = load_features(guided, like=ref), load_features(real, like=ref)
    d_guided, idx = knn(
        guided_set["features"],
        ref["features"],
        min(max(cfg["neighbours"], cfg["top_pairs"]), len(ref["labels"])),
        device=dev,
        backend=params["knn_backend"],
    )
    d_real, idx_real = knn(real_set["features"], ref["features"], 1, device=dev, backend=params["knn_backend"])
    rows = []
    for name, dist, nearest, labels in [
        ("guided", d_guided[:, 0], idx[:, 0], guided_set["labels"]),
        ("real", d_real[:, 0], idx_real[:, 0], real_set["labels"]),
    ]:
        rows.append(
            {
                "set": name,
                "mean_nn_distance": float(dist.mean()),
                "median_nn_distance": float(np.median(dist)),
                "fraction_nn_other_label": float((ref["labels"][nearest] != labels).mean()),
                "n": len(dist),
            }
        )
    atomic_to_csv(pd.DataFrame(rows), summary)
    dist, qi, ri = closest_pairs(guided_set["features"], ref["features"], cfg["top_pairs"], neighbours=(d_guided, idx))
    d_guided, idx = d_guided[:, : cfg["neighbours"]], idx[:, : cfg["neighbours"]]
    atomic_to_csv(
        pd.DataFrame(
            {
                "rank": np.arange(len(dist)),
                "distance": dist,
                "guided_index": qi,
                "reference_index": ri,
                "guided_label": guided_set["labels"][qi],
                "reference_label": ref["labels"][ri],
            }
        ),
        pairs,
    )
    atomic_to_csv(
        pd.DataFrame(
            {
                "guided_index": np.repeat(np.arange(len(idx)), idx.shape[1]),
                "rank": np.tile(np.arange(idx.shape[1]), len(idx)),
                "reference_index": idx.ravel(),
                "distance": d_guided.ravel(),
                "guided_label": np.repeat(guided_set["labels"], idx.shape[1]),
                "reference_label": ref["labels"][idx].ravel(),
            }
        ),
        neighbours,
    )


def fidelity_vs_steps(
    eval_cfg: dict,
    reference_path: str,
    neighbours_path: str,
    set_paths: dict[tuple[str, int], str],
    out_csv: str,
    device: str = "auto",
) -> None:
    """Appendix A.7: improved precision (and recall) of baseline and guided DDIM samples for each
    number of sampling steps, against the training reference (its balls from `reference_neighbours`)."""
    dev = select_device(device)
    ref = load_features(reference_path)
    radii = reference_radii(neighbours_path, ref, eval_cfg["precision_k"])
    rows = []
    for (sampler, steps), path in sorted(set_paths.items()):
        data = load_features(path, like=ref)
        pr = improved_precision_recall(
            ref["features"], data["features"], k=eval_cfg["precision_k"], real_radii=radii, device=dev
        )
        rows.append({"sampler": sampler, "steps": steps, **pr, "k": eval_cfg["precision_k"], "n": len(data["labels"])})
    atomic_to_csv(pd.DataFrame(rows), out_csv)


def nll_bits_per_dim(*, params: dict, model: str, val: str, out: str, device: str = "auto") -> None:
    """Appendix A.2: the DDPM's NLL bound in bits/dim of the first `nll.num_images` held-out images.

    The bound is improved-diffusion's `calc_bpd_loop`: the prior term L_T, the KL terms of every
    step and the discretised-Gaussian decoder term. With `nll.steps` set, it is the respaced
    chain's (a valid, looser bound of the respaced model). With `nll.terms` = M, the same T-step
    bound is estimated from M of its terms (the decoder term and one step per stratum of the
    chain, each weighted by its stratum's size: unbiased, `stratified_terms`), drawn afresh for
    every batch; the chain and the number of terms are recorded in every row.

    Args:
        params: the config's nll section.
        model: the trained DDPM.
        val: the prepared validation split.
        out: NLL bound per image (CSV).
        device: where to run (auto: CUDA when present).
    """
    dev = select_device(device)
    network, meta = load_ddpm(model, dev)
    steps = params["steps"] or meta["diffusion"]["num_steps"]
    diffusion = sampling_diffusion(meta["diffusion"], steps)
    split = load_split(val, mmap=True)  # the first num_images are read
    n = min(params["num_images"], len(split.labels))
    generator = torch.Generator().manual_seed(params["seed"])
    strata = np.random.default_rng(params["seed"])
    num_terms = params.get("terms") or diffusion.num_timesteps
    rows = []
    for start in range(0, n, params["batch_size"]):
        stop = min(start + params["batch_size"], n)
        x0 = to_model_range(split.images[start:stop]).to(dev)
        y = torch.from_numpy(split.labels[start:stop]).to(dev)
        terms = (
            stratified_terms(diffusion.num_timesteps, num_terms, strata)
            if num_terms < diffusion.num_timesteps
            else None
        )
        bound = diffusion.calc_bpd_loop(
            network, x0, {"y": y} if network.num_classes else None, generator=generator, terms=terms
        )
        rows.append(
            pd.DataFrame(
                {
                    "index": np.arange(start, stop),
                    "label": split.labels[start:stop],
                    "bpd": bound["total_bpd"].cpu().numpy(),
                    "prior_bpd": bound["prior_bpd"].cpu().numpy(),
                    "decoder_bpd": bound["vb"][:, 0].cpu().numpy(),
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    table["chain"] = f"{steps} of {meta['diffusion']['num_steps']} steps" + (
        f", {num_terms} stratified terms" if num_terms < diffusion.num_timesteps else ""
    )
    atomic_to_csv(table, out)


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
            rows.append(
                {
                    "extractor": table["extractor"].iloc[0],
                    "metric": metric,
                    "n": len(joined),
                    "spearman": spearman.statistic,
                    "spearman_p": spearman.pvalue,
                    "pearson": pearson.statistic,
                    "pearson_p": pearson.pvalue,
                    "chain": nll["chain"].iloc[0],
                }
            )
    result = pd.DataFrame(rows)
    atomic_to_csv(result, out_csv)
    return result


def make_table1(
    *,
    params: dict,
    metrics: list[str],
    samples: dict[str, str],
    out: str,
    markdown: str,
    set_names: dict[str, str] | None = None,
) -> None:
    """Table 1 from the per-image hardness of the real and sample sets (`metrics`, one
    space) and the seconds per image the sampling rules measured (stored in the sample files,
    with the device). `set_names` maps a sampler to its set in the metrics (default: its name).

    Args:
        params: the config's table1 section.
        metrics: per-image metrics of the real, baseline and guided sets in the chosen space.
        samples: {"baseline": ..., "guided": ...}: the sample files (their seconds per image).
        out: the table (CSV).
        markdown: the table as Markdown.
        set_names: the sets' names in `metrics` when they differ from `samples`' keys.
    """
    from lowdensity.io import atomic_to_csv, atomic_write_text, read_npz
    from lowdensity.stages.evaluation import read_metrics

    per_image = read_metrics(metrics)
    hardness = per_image[per_image["metric"] == "hardness"]
    samplers, devices = {}, {}
    for name, path in samples.items():
        timing = read_npz(path, ("seconds_per_image", "device"))
        seconds, devices[name] = float(timing["seconds_per_image"]), str(timing["device"])
        in_metrics = (set_names or {}).get(name, name)
        samplers[name] = (hardness[hardness["set"] == in_metrics]["value"].to_numpy(), seconds)
        if not len(samplers[name][0]):
            raise ValueError(f"the metrics tables {metrics} hold no hardness of set {in_metrics!r}")
    real = hardness[hardness["set"] == "real"]["value"].to_numpy()
    table = cost_table(
        real, samplers, params["quantiles"], params["num_images"], params["bootstrap"], params["level"], params["seed"]
    )
    table["device"] = table["sampler"].map(devices)
    table["space"] = str(per_image["extractor"].iloc[0])
    atomic_to_csv(table, out)
    atomic_write_text(markdown, render_table(table, params["num_images"]))


def fidelity_table(
    *,
    params: dict,
    extractor: str,
    reference: str,
    sets: dict[str, str],
    out: str,
    device: str = "auto",
) -> None:
    """One row per sample set: FID, precision and recall against the reference's features, via torch-fidelity.

    Args:
        params: {"precision_k": ...} of the evaluation section.
        extractor: the feature space's name.
        reference: the reference's features.
        sets: set name → its features.
        out: the table (CSV).
        device: where the distances are computed (auto: CUDA when present).
    """
    from lowdensity.runtime import select_device
    from lowdensity.stages.evaluation import load_features

    dev = select_device(device)
    real = load_features(reference)["features"]
    rows = []
    for set_name, path in sets.items():
        fake = load_features(path)["features"]
        rows.append(
            {
                "set": set_name,
                "extractor": extractor,
                **fidelity(real, fake, params["precision_k"], extractor, dev),
                "k": params["precision_k"],
                "num_real": len(real),
                "num_fake": len(fake),
                "via": "torch-fidelity",
            }
        )
    atomic_to_csv(pd.DataFrame(rows), out)
