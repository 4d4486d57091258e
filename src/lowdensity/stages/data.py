"""The data stage: one split of the dataset, resized and subsampled, as uint8 .npz."""

from __future__ import annotations

from lowdensity.data import Split, load_raw, resize_uint8, save_split, stratified_subset


def prepare_split(*, params: dict, split: str, out: str) -> Split:
    """Load one split, resize it to data.resolution, optionally subsample, and write it.

    Args:
        params: the config's data section.
        split: `train` or `val`.
        out: the prepared split (.npz, uint8 images).
    """
    data = load_raw(params, split)
    per_class = params.get("max_train_per_class") if split == "train" else params.get("max_val_per_class")
    keep = stratified_subset(data.labels, per_class, params.get("seed", 0))
    kept = data.images if per_class is None else data.images[keep]  # all images: no copy
    images = resize_uint8(kept, params["resolution"])
    prepared = Split(images, data.labels[keep], data.class_names)
    save_split(prepared, out, dataset=params["dataset"])
    return prepared
