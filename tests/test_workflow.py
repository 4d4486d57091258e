"""The Snakemake DAG on the tiny configuration (configs/tiny.yaml)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# the rules call the `lowdensity` entry point installed beside this interpreter
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(exe, repo, workdir, *args, configs=("configs/tiny.yaml",)):
    cmd = [
        exe,
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        *args,  # targets before the
        "--configfile",
        *[str(repo / c) if not str(c).startswith("/") else str(c) for c in configs],
    ]  # --configfile list
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_jobs(output: str) -> dict:
    """The 'Job stats' table of a dry run as {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, snakemake_exe, repo):
    """The tiny DAG, run here; or, with LOWDENSITY_TINY_RUN set (make slurm-test), the folder of
    the same run through SLURM, so that both pass the same checks."""
    if os.environ.get("LOWDENSITY_TINY_RUN"):
        return Path(os.environ["LOWDENSITY_TINY_RUN"])
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(snakemake_exe, repo, workdir)
    return workdir


def test_tiny_dag_produces_gathered_baseline_samples(tiny_run):
    samples = np.load(tiny_run / "results/samples/baseline.npz")
    assert samples["images"].shape == (20, 1, 8, 8) and samples["images"].dtype == np.uint8
    assert samples["labels"].tolist() == [i % 10 for i in range(20)]
    assert samples["seeds"].tolist() == [1_000_000 + i for i in range(20)]
    assert samples["images"].std() > 5, "samples are constant"
    gan = np.load(tiny_run / "results/samples/gan.npz")
    assert gan["images"].shape == (20, 1, 8, 8) and gan["images"].std() > 5
    np.testing.assert_array_equal(gan["labels"], samples["labels"])  # the baseline's labels and seeds
    np.testing.assert_array_equal(gan["seeds"], samples["seeds"])
    for path in [
        "results/samples/baseline_grid.png",
        "results/samples/gan_grid.png",
        "results/gan/loss.csv",
        "results/data/train_grid.png",
        "results/ddpm/loss.csv",
        "results/ddpm/checkpoint.pt",
        "results/data/val.npz",
    ]:
        assert (tiny_run / path).exists(), path


def test_the_guided_set_holds_the_baselines_first_seeds(tiny_run):
    """guidance.num_samples = 12 of the baseline's 20 (configs/tiny.yaml): sample i of the guided set has
    the baseline sample i's seed and label, so the two pair up (figures 5 and 6) over the shorter set."""
    guided = np.load(tiny_run / "results/samples/guided.npz")
    baseline = np.load(tiny_run / "results/samples/baseline.npz")
    assert guided["images"].shape == (12, 1, 8, 8) and guided["indices"].tolist() == list(range(12))
    np.testing.assert_array_equal(guided["seeds"], baseline["seeds"][:12])
    np.testing.assert_array_equal(guided["labels"], baseline["labels"][:12])
    assert (float(guided["meta_alpha"]), float(guided["meta_beta"])) == (0.5, 0.5)


def test_rerun_does_nothing(tiny_run, snakemake_exe, repo):
    assert planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n")) == {}


FIGURES = {"fig3": 1, "fig4": 1, "fig5": 1, "fig6": 1, "fig10": 1, "figA5": 1}
# the metrics of one set in both spaces, and what reads them (figure 11 reads only the real set's)
EVALUATION = {
    "density_metrics": 2,
    "collect_metrics": 2,
    "memorization": 1,
    "fig1": 1,
    "fig7": 1,
    "fig8": 1,
    "fig9": 1,
    "fig17": 1,
    "table1": 1,
    "fidelity": 1,
}
# the guided set in two spaces, the guided DDIM sets of figure A.7 in the first
GUIDED_DOWNSTREAM = {
    "sample_guided": 2,
    "gather_samples": 1,
    "samples_grid": 1,
    "score_sample_sets": 1,
    **FIGURES,
    "sample_ddim_guided": 2,
    "extract_features": 2 + 2,
    **EVALUATION,
    "figA7": 1,
    "all": 1,
}
# new diffusion samples: baseline and guided sets in two spaces, DDIM sets of figure A.7 in the first, figure 4b's
# cells in two spaces
DIFFUSION_DOWNSTREAM = {
    "sample_baseline": 2,
    "train_discriminator": 1,
    "fit_discriminator_gaussians": 1,
    **GUIDED_DOWNSTREAM,
    "gather_samples": 2,
    "samples_grid": 2,
    "sample_ddim_baseline": 2,
    "extract_features": 4 + 4 + 4,
    "density_metrics": 4,
    "fig4b_fidelity": 1,
}
# the sampling section also sets the GAN's seeds and shards
SAMPLING_DOWNSTREAM = {
    **DIFFUSION_DOWNSTREAM,
    "sample_gan": 2,
    "gather_samples": 3,
    "samples_grid": 3,
    "extract_features": 6 + 4 + 4,
    "density_metrics": 6,
}
# a GAN set in two spaces and what reads its metrics (not table 1: it compares the diffusion samplers)
GAN_DOWNSTREAM = {
    "sample_gan": 2,
    "gather_samples": 1,
    "samples_grid": 1,
    "extract_features": 2,
    "density_metrics": 2,
    "collect_metrics": 2,
    "fig1": 1,
    "fig7": 1,
    "fig17": 1,
    "fidelity": 1,
    "all": 1,
}
TINY_CELLS = {"hardness_a0_b0", "hardness_a0_b1", "hardness_a1_b0", "hardness_a1_b1", "softmax_a1_b0"}
# α = β = 0 is the baseline's prefix (cell_from_set); guidance's (0.5, 0.5) is not a tiny cell
CELL_JOBS = {"sample_cell": len(TINY_CELLS) - 1, "cell_from_set": 1}


def dry_run_with(tiny_run, snakemake_exe, repo, tmp_path, yaml_text):
    override = tmp_path / "override.yaml"
    override.write_text(yaml_text)
    return snakemake(snakemake_exe, repo, tiny_run, "-n", configs=("configs/tiny.yaml", str(override)))


def test_editing_sampling_reruns_sampling_and_downstream_only(tiny_run, snakemake_exe, repo, tmp_path):
    jobs = planned_jobs(dry_run_with(tiny_run, snakemake_exe, repo, tmp_path, "sampling:\n  seed: 5\n"))
    assert jobs == {**SAMPLING_DOWNSTREAM, **CELL_JOBS}


def test_editing_alpha_reruns_only_guided_sampling_and_downstream(tiny_run, snakemake_exe, repo, tmp_path):
    jobs = planned_jobs(dry_run_with(tiny_run, snakemake_exe, repo, tmp_path, "guidance:\n  alpha: 0.7\n"))
    assert jobs == GUIDED_DOWNSTREAM


def test_editing_the_gan_truncation_resamples_the_gan_only(tiny_run, snakemake_exe, repo, tmp_path):
    jobs = planned_jobs(dry_run_with(tiny_run, snakemake_exe, repo, tmp_path, "gan:\n  truncation: 0.5\n"))
    assert jobs == GAN_DOWNSTREAM
    jobs = planned_jobs(dry_run_with(tiny_run, snakemake_exe, repo, tmp_path, "gan:\n  train:\n    lr_g: 0.001\n"))
    assert jobs == {"train_gan": 1, **GAN_DOWNSTREAM}


def test_more_gpus_for_training_is_not_a_reason_to_retrain(tiny_run, snakemake_exe, repo, tmp_path):
    """The GPU count is a resource (data-parallel processes), not a parameter of the science."""
    output = dry_run_with(
        tiny_run, snakemake_exe, repo, tmp_path, "resources:\n  train_ddpm: {gpu: 2}\n  train_encoder: {gpu: 4}\n"
    )
    assert planned_jobs(output) == {}


def test_editing_training_reruns_training_and_downstream(tiny_run, snakemake_exe, repo, tmp_path):
    jobs = planned_jobs(dry_run_with(tiny_run, snakemake_exe, repo, tmp_path, "ddpm:\n  train:\n    lr: 0.002\n"))
    assert jobs == {"train_ddpm": 1, **DIFFUSION_DOWNSTREAM, **CELL_JOBS, "nll": 1, "fig11": 1}


def test_grid_wildcards_make_exactly_the_configured_cells(tiny_run, snakemake_exe, repo, tmp_path):
    made = {p.stem for p in (tiny_run / "results/samples/cells").glob("*.npz")}
    assert made == TINY_CELLS
    # a cell only figure 3 shows holds its shown seeds (classes 0 and 5: the first 6); the others cell_samples
    sizes = {c: len(np.load(tiny_run / f"results/samples/cells/{c}.npz")["seeds"]) for c in made}
    assert sizes == {c: 6 if c == "hardness_a0_b1" else 10 for c in made}
    # adding three α's to figure 4a's list samples exactly three new cells, each at exactly its α
    override = tmp_path / "alphas.yaml"
    override.write_text("guidance:\n  fig4a_alphas: [0.0, 1.0, 2.0, 0.1234567, 1.0e-5]\n")
    output = snakemake(snakemake_exe, repo, tiny_run, "-n", "-p", configs=("configs/tiny.yaml", str(override)))
    score_figures = {f: 1 for f in ("fig3", "fig4", "fig10", "figA5")}
    assert planned_jobs(output) == {"sample_cell": 3, "score_sample_sets": 1, **score_figures, "all": 1}
    for alpha in ("2", "0.1234567", "1e-05"):  # %g would sample 0.1234567 at 0.123457
        assert (
            f"results/samples/cells/hardness_a{alpha}_b0.npz" in output
            and f"--cell.alpha {alpha} --cell.beta 0" in output
        ), alpha


def test_zero_weight_cell_is_the_baseline_prefix_described_as_a_cell(tiny_run):
    """Copied from the baseline's shards (the sampler-level invariant that makes this exact is
    test_guidance.py's), with the metadata the guided sampler writes, so it is scored as a cell."""
    cell = np.load(tiny_run / "results/samples/cells/hardness_a0_b0.npz")
    baseline = np.load(tiny_run / "results/samples/baseline.npz")
    n = len(cell["seeds"])
    for key in ("images", "labels", "seeds", "indices"):
        np.testing.assert_array_equal(cell[key], baseline[key][:n])
    assert (float(cell["meta_alpha"]), float(cell["meta_beta"]), str(cell["meta_loss"])) == (0.0, 0.0, "hardness")
    moved = np.load(tiny_run / "results/samples/cells/hardness_a1_b0.npz")
    assert not np.array_equal(moved["images"], cell["images"])


def test_tiny_dag_produces_the_guidance_figures_and_tables(tiny_run):
    import pandas as pd

    for fig in FIGURES:
        pdf = tiny_run / f"paper_figures/{fig}.pdf"
        assert pdf.read_bytes()[:4] == b"%PDF", fig
        assert len(pd.read_csv(tiny_run / f"results/{fig}.csv")) > 0, fig
    scores = pd.read_csv(tiny_run / "results/guidance/hardness.csv")
    assert set(scores["set"]) == {"real", "baseline", "guided"} | TINY_CELLS
    assert len(scores[scores["set"] == "baseline"]) == 20 and len(scores[scores["set"] == "real"]) == 100
    precision = pd.read_csv(tiny_run / "results/guidance/precision.csv")
    assert precision["precision"].between(0, 1).all() and len(precision) == 2 + len(TINY_CELLS)
    for network in ("classifier", "discriminator"):
        accuracy = pd.read_csv(tiny_run / f"results/{network}/accuracy.csv")
        assert accuracy[accuracy["condition"] == "as is"]["timestep"].tolist() == [0, 500]
        assert accuracy["accuracy"].between(0, 1).all() and (accuracy["loss"] > 0).all()
    conditions = pd.read_csv(tiny_run / "results/discriminator/accuracy.csv")["condition"]
    assert list(dict.fromkeys(conditions)) == ["as is", "dark <= 3 set to 0", "dark <= 16 set to 0"]
    fidelity = pd.read_csv(tiny_run / "results/guidance/fig4b_fidelity.csv")
    metrics = ["improved_precision", "recall", "density", "coverage", "vendi_q0.5", "vendi", "vendi_q2"]
    assert list(dict.fromkeys(fidelity["metric"])) == metrics + ["prd_f1/8", "prd_f8"]
    assert len(fidelity) == 2 * 2 * 9  # spaces × β × metrics
    assert set(fidelity["space"]) == {"classifier", "efficientnet_lite0"} and set(fidelity["beta"]) == {0.0, 1.0}
    with_interval = fidelity[fidelity["metric"] != "recall"]  # the fakes' own balls change with each resample
    assert (with_interval["low"] <= with_interval["value"] + 1e-12).all() and (
        with_interval["value"] <= with_interval["high"] + 1e-12
    ).all()
    panel_b = pd.read_csv(tiny_run / "results/fig4.csv").query("panel == 'b'")
    assert {"improved_precision", "prd_f1/8"} <= set(panel_b["statistic"])


def test_ablation_wildcards_make_exactly_the_configured_variants(tiny_run, snakemake_exe, repo, tmp_path):
    """`snakemake discriminator_ablation` trains one discriminator per configured variant (and
    samples the extra pool one of them asks for); the study's table holds every variant."""
    import pandas as pd

    jobs = planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n", "discriminator_ablation"))
    if jobs:  # (a SLURM run may have made it already)
        assert jobs == {
            "train_discriminator_variant": 3,
            "sample_discriminator_pool": 2,
            "gather_samples": 1,
            "discriminator_ablation": 1,
        }
    override = tmp_path / "variants.yaml"
    override.write_text(
        "discriminator_ablation:\n  variants:\n    - {name: from_classifier, overrides: {init: classifier}}\n"
        "    - {name: wide, overrides: {timesteps: {max: 200}}}\n "
        "   - {name: flat, overrides: {timesteps: {max: null}}}\n"
    )
    output = snakemake(
        snakemake_exe, repo, tiny_run, "-n", "discriminator_ablation", configs=("configs/tiny.yaml", str(override))
    )
    assert (
        "results/discriminator/ablation/wide/accuracy.csv" in output
        and "results/discriminator/ablation/more_data" not in output
    )
    snakemake(snakemake_exe, repo, tiny_run, "discriminator_ablation")
    table = pd.read_csv(tiny_run / "results/discriminator/ablation.csv")
    assert sorted(set(table["variant"])) == ["default", "from_classifier", "frozen_head", "more_data"]
    assert len(table.query("variant != 'default'")) == 3 * 3 * 2  # variants × conditions × timesteps
    assert table["roc_auc"].between(0, 1).all()
    assert (
        table["accuracy"].between(0, 1).all() and (table["n"] == 2 * 5).all()
    )  # holdout 0.25 of 20 baseline samples, each side
    assert (tiny_run / "paper_figures/figD1.pdf").read_bytes()[:4] == b"%PDF"
    pool = np.load(tiny_run / "results/samples/discriminator_pool.npz")
    assert pool["seeds"].tolist() == [1_000_020 + i for i in range(10)]  # the baseline's seed stream continued


def test_fidelity_study_runs_every_rung_and_cell(tiny_run, snakemake_exe, repo):
    """`snakemake fidelity_study`: one baseline set, H′ and Gaussians per rung (each snapshot and the
    trained model), one job per (rung, α, β, form) cell (β = 0 once), the tidy table and figure D2.
    A rung's α = β = 0 cell is its baseline set's prefix bit for bit, and the trained model's rung
    is the pipeline's own baseline set."""
    import pandas as pd

    jobs = planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n", "fidelity_study"))
    if jobs:  # (a SLURM run may have made it already)
        cells = 2 * 2 * (1 + 2)  # rungs × α × (β = 0, and β = 1 in two forms)
        assert {k: jobs[k] for k in ("study_baseline", "study_discriminator", "study_cell", "rung_fidelity")} == {
            "study_baseline": 2,
            "study_discriminator": 2,
            "study_cell": cells,
            "rung_fidelity": 2,
        }
        assert jobs["extract_features"] == 2 * (cells + 2)  # two spaces × (cells and baselines)
    snakemake(snakemake_exe, repo, tiny_run, "fidelity_study")
    study = tiny_run / "results/fidelity_study"
    for rung in ("step10", "step30"):
        baseline, zero = np.load(study / rung / "baseline.npz"), np.load(study / rung / "cells/a0_b0.npz")
        np.testing.assert_array_equal(zero["images"], baseline["images"][:8])
    main = np.load(tiny_run / "results/samples/baseline.npz")
    np.testing.assert_array_equal(np.load(study / "step30/baseline.npz")["images"], main["images"])
    table = pd.read_csv(tiny_run / "results/fidelity_study.csv")
    assert sorted(set(table["rung"])) == [10, 30]
    gains = table[table["set"] == "gain"]
    assert len(gains) == 2 * 2 * 2 * 2  # rungs × spaces × α × forms, at β = 1
    assert (gains["low"] <= gains["value"]).all() and (gains["value"] <= gains["high"]).all()
    h_prime = table[(table["set"] == "discriminator") & (table["metric"] == "roc_auc")]
    assert len(h_prime) == 2 * 2 and h_prime["value"].between(0, 1).all()  # rungs × eval timesteps
    cells = table[table["set"] == "cell"]
    assert {"improved_precision", "prd_f8", "recall"} <= set(cells["metric"])
    assert (tiny_run / "paper_figures/figD2.pdf").read_bytes()[:4] == b"%PDF"


def test_sampler_sweep_makes_exactly_the_configured_points(tiny_run, snakemake_exe, repo, tmp_path):
    """`snakemake samplers`: one job per configured (sampler, strength) and the baseline point;
    adding a strength samples only the new point; the table, figure S1 and Table 1 per sampler."""
    import pandas as pd

    jobs = planned_jobs(snakemake(snakemake_exe, repo, tiny_run, "-n", "samplers"))
    if jobs:  # (a SLURM run may have made it already)
        assert jobs["sample_sweep_point"] == 1 + 1 + 2 + 2 + 1 and jobs["train_minority_classifier"] == 1
    snakemake(snakemake_exe, repo, tiny_run, "samplers")
    table = pd.read_csv(tiny_run / "results/samplers.csv")
    points = {(r.sampler, r.strength) for r in table.itertuples()}
    assert points == {
        ("baseline", 0),
        ("paper", 1),
        ("boost_and_skip", 1.5),
        ("boost_and_skip", 2.5),
        ("self_guided", 0.4),
        ("self_guided", 2),
        ("minority_guidance", 3.5),
    }
    assert sorted(set(table["space"])) == ["classifier", "efficientnet_lite0"] and (table["n"] == 12).all()
    assert table["outside_every_ball"].between(0, 1).all() and (table["seconds_per_image"] > 0).all()
    costs = pd.read_csv(tiny_run / "results/table1_samplers.csv")
    assert set(costs["sampler"]) == {"baseline", "paper", "boost_and_skip", "self_guided", "minority_guidance"}
    assert (tiny_run / "paper_figures/figS1.pdf").read_bytes()[:4] == b"%PDF"
    scores = pd.read_csv(tiny_run / "results/samplers/minority/scores.csv").query("split == 'train'")
    assert (scores.groupby(["label", "minority_class"]).size() == 5).all()  # 20 per class in 4 quantile classes
    baseline_point = np.load(tiny_run / "results/samples/sweep/baseline_0.npz")
    baseline_set = np.load(tiny_run / "results/samples/baseline.npz")
    np.testing.assert_array_equal(baseline_point["seeds"], baseline_set["seeds"][:12])  # the baseline's first seeds
    np.testing.assert_array_equal(baseline_point["labels"], baseline_set["labels"][:12])
    override = tmp_path / "strengths.yaml"
    override.write_text("samplers:\n  boost_and_skip: {strengths: [1.5, 2.5, 4.0], default: 2.5}\n")
    jobs = planned_jobs(
        snakemake(snakemake_exe, repo, tiny_run, "-n", "samplers", configs=("configs/tiny.yaml", str(override)))
    )
    assert jobs["sample_sweep_point"] == 1  # boost_and_skip_4 only
    assert jobs["extract_features"] == 2 and jobs["density_metrics"] == 2 and "train_minority_classifier" not in jobs


def markdown_rows(page: str, heading: str) -> dict[str, list[str]]:
    """The first pipe table after `heading` on a page, as {first cell: the other cells}."""
    lines = page.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in lines[start:end]]
    return {c[0]: c[1:] for c in cells[2:]}  # after the header and the alignment row


def test_docs_render_the_runs_pages_from_its_csvs(tiny_run, snakemake_exe, repo, tmp_path):
    """`snakemake docs` renders the results, samplers and fidelity-study pages of the tiny run, stamped with its
    configuration; their numbers are the CSVs' (the study's verdicts follow its intervals); the repository's README
    is left alone (the run is elsewhere); and with these pages the site builds with `mkdocs build --strict`."""
    import shutil

    import pandas as pd

    readme = (repo / "README.md").read_text()
    snakemake(snakemake_exe, repo, tiny_run, "docs")
    assert (repo / "README.md").read_text() == readme
    generated = tiny_run / "docs/generated"
    page = (generated / "results.md").read_text()
    assert "from the run of configuration `config.yaml + configs/tiny.yaml`" in page
    fig4 = pd.read_csv(tiny_run / "results/fig4.csv").query("panel == 'a' and statistic == 'median_hardness'")
    medians = markdown_rows(page, "(a) `results/fig4.csv`")
    assert {float(a): float(v[0]) for a, v in medians.items()} == pytest.approx(
        dict(zip(fig4["alpha"], fig4["value"])), rel=1e-5
    )
    sets = pd.read_csv(tiny_run / "results/metrics/efficientnet_lite0_sets.csv").set_index("set")
    shown = markdown_rows(page, "## Figure 7")
    columns = ["median_hardness", "median_avgknn", "median_lof", "precision", "recall", "density", "coverage", "vendi"]
    for name, row in sets.iterrows():
        cells = shown[name]
        values = [float(cell.split()[0]) for cell in cells[: len(columns)]]  # "value [low, high]" or "value"
        assert values == pytest.approx([row[c] for c in columns], rel=5e-3)  # shown to 3 or 4 significant figures
        for column, cell in zip(columns[3:], cells[3 : len(columns)]):
            if column != "recall":
                assert cell.split()[1:] == [f"[{row[column + '_low']:.3g},", f"{row[column + '_high']:.3g}]"], column
        assert float(cells[len(columns)]) == row["n"]
    memorization = pd.read_csv(tiny_run / "results/memorization.csv").set_index("set")
    shown = markdown_rows(page, "## Memorization")
    assert float(shown["guided"][0]) == pytest.approx(memorization.loc["guided", "mean_nn_distance"], rel=1e-4)
    for image in re.findall(r"\]\((img/[^)]+)\)", page):
        assert (generated / image).read_bytes()[:4] == b"\x89PNG", image
    samplers = (generated / "samplers.md").read_text()
    assert "results/samplers.csv" in samplers and "figS1.png" in samplers
    study = (generated / "fidelity_study.md").read_text()
    gains = pd.read_csv(tiny_run / "results/fidelity_study.csv").query("set == 'gain'")
    for g in gains.itertuples():  # each rung's verdict follows its interval
        verdict = "raises precision on" if g.low > 0 else "lowers it on" if g.high < 0 else "no detectable change on"
        line = next(v for v in study.splitlines() if v.startswith(f"- **{g.space}, {g.form} form, α = {g.alpha:g}**"))
        said = line.split(f"β = {g.beta:g} ", 1)[1]
        assert re.search(rf"{verdict} [^;]*step {g.rung} \(", said), (line, g)
    site = tmp_path / "site-source"
    shutil.copytree(repo / "docs", site / "docs")
    shutil.copy(repo / "mkdocs.yml", site)
    shutil.copytree(generated, site / "docs/generated", dirs_exist_ok=True)
    build = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=site,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (tmp_path / "site/generated/results/index.html").exists()


@pytest.mark.parametrize("threads", [1, 2])
def test_torch_uses_the_threads_of_its_rule(tiny_run, snakemake_exe, repo, tmp_path, threads):
    """A rule's `threads` reach torch inside the job (Snakemake exports OMP_NUM_THREADS; every
    network stage logs torch.get_num_threads()). The NLL rule reruns in a copy of the tiny run."""
    import shutil

    work = tmp_path / "run"
    shutil.copytree(tiny_run / "results", work / "results")
    snakemake(
        snakemake_exe,
        repo,
        work,
        "results/nll.csv",
        "--forcerun",
        "nll",
        "--set-threads",
        f"nll={threads}",
        "--max-threads",
        "2",
    )  # (the workflow profile gives every job one thread on a machine with < 4 cores)
    assert f"device cpu, torch threads {threads}" in (work / "logs/nll.log").read_text()


@pytest.mark.parametrize(
    "yaml_text, key",
    [
        ("sampling:\n  shards: many\n", "sampling.shards"),  # the schema
        ("diffusion:\n  num_steps: 30\n", "classifier.eval_timesteps"),  # keys that must agree
        ("sampling:\n  steps: ddim600\n", "sampling.steps"),
        ("figA7:\n  steps: [600]\n", "figA7.steps"),
    ],
)
def test_invalid_config_fails_the_dry_run_naming_the_key(snakemake_exe, repo, tmp_path, yaml_text, key):
    """Before any job runs: a dry run in an empty folder fails and names the key."""
    override = tmp_path / "bad.yaml"
    override.write_text(yaml_text)
    cmd = [
        snakemake_exe,
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(tmp_path / "work"),
        "-n",
        "--configfile",
        str(repo / "configs/tiny.yaml"),
        str(override),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode != 0
    assert f"config key '{key}'" in result.stdout + result.stderr
    assert not (tmp_path / "work/results").exists()


def test_a_failed_job_shows_its_log_in_the_terminal(repo, tmp_path):
    """A failing rule prints its log (the workflow profile's show-failed-logs), and the log holds one
    clear line from our CLI rather than a traceback."""
    override = tmp_path / "nodata.yaml"
    override.write_text(f"data:\n  root: {tmp_path / 'no-such-folder'}\n")
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(tmp_path / "work"),
        "results/data/val.npz",
        "--configfile",
        str(repo / "configs/tiny.yaml"),
        str(override),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Logfile logs/prepare_data/val.log:" in output
    assert (
        f"lowdensity prepare-data: error: Fashion-MNIST files not found: {tmp_path / 'no-such-folder'}/t10k-images"
        in output
    )
    assert "Traceback" not in (tmp_path / "work/logs/prepare_data/val.log").read_text()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_stopping_snakemake_stops_its_training_job_which_the_rerun_resumes(snakemake_exe, repo, tmp_path, signal_name):
    """`kill -INT` (or -TERM) of snakemake alone, as a scheduler or a user in another shell sends it:
    the running training job gets SIGTERM, checkpoints its step and exits, snakemake ends within
    seconds instead of waiting for the job, and the next run resumes from the checkpoint."""
    import signal
    import time

    long = tmp_path / "long.yaml"
    long.write_text("ddpm:\n  train:\n    steps: 1000000\n    checkpoint_every: 1000000\n")
    work, log = tmp_path / "work", tmp_path / "work/logs/train_ddpm.log"
    cmd = [snakemake_exe, "-s", str(repo / "Snakefile"), "-d", str(work), "--cores", "2", "results/ddpm/model.pt"]
    cmd += ["--configfile", str(repo / "configs/tiny.yaml"), str(long)]
    for attempt in ("first", "rerun"):
        if log.exists():
            log.unlink()
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
        deadline = time.time() + 300
        while not (log.exists() and "it/s" in log.read_text()) and time.time() < deadline:
            time.sleep(0.5)
        job.send_signal(getattr(signal, signal_name))
        sent = time.time()
        output, _ = job.communicate(timeout=120)
        assert job.returncode != 0 and time.time() - sent < 60, output[-3000:]
        text = log.read_text()
        assert re.search(r"stopped by SIGTERM after step \d+ of 1000000", text), text[-2000:]
        if attempt == "rerun":
            assert re.search(r"resuming from results/ddpm/checkpoint\.pt at step [1-9]\d*", text), text[-2000:]


def test_tiny_dag_produces_the_evaluation(tiny_run):
    import pandas as pd

    for fig in ("fig1", "fig7", "fig8", "fig9", "fig11", "fig17", "figA7"):
        assert (tiny_run / f"paper_figures/{fig}.pdf").read_bytes()[:4] == b"%PDF", fig
    for extractor in ("efficientnet_lite0", "classifier"):
        metrics = pd.read_csv(tiny_run / f"results/metrics/{extractor}.csv")
        assert set(metrics["metric"]) == {"hardness", "avgknn", "lof"}
        counts = metrics.groupby(["set", "metric"]).size()
        # the guided set is the baseline's first guidance.num_samples = 12 seeds (configs/tiny.yaml), the baseline 20
        assert (
            counts[("real", "lof")] == 100
            and counts[("baseline", "avgknn")] == 20
            and counts[("guided", "hardness")] == 12
        )
        assert counts[("gan", "lof")] == 20
        assert metrics["value"].notna().all()
        features = np.load(tiny_run / f"results/features/{extractor}/reference.npy", mmap_mode="r")
        labels = np.load(tiny_run / f"results/features/{extractor}/reference.labels.npy")
        assert features.dtype == np.float32 and len(features) == len(labels) == 100
    memorization = pd.read_csv(tiny_run / "results/memorization.csv").set_index("set")
    assert (memorization["mean_nn_distance"] > 0).all() and memorization.loc["guided", "n"] == 12
    pairs = pd.read_csv(tiny_run / "results/memorization_pairs.csv")
    assert len(pairs) == 4 and pairs["distance"].is_monotonic_increasing
    nll = pd.read_csv(tiny_run / "results/nll.csv")
    assert len(nll) == 8 and (nll["bpd"] > 0).all() and nll["chain"].iloc[0] == "10 of 1000 steps, 5 stratified terms"
    correlation = pd.read_csv(tiny_run / "results/nll_correlation.csv")
    assert len(correlation) == 6 and correlation["spearman"].between(-1, 1).all()
    table = pd.read_csv(tiny_run / "results/table1.csv")
    assert (
        len(table) == 6 and set(table["sampler"]) == {"baseline", "guided"} and (table["seconds_per_image"] > 0).all()
    )
    assert "guided" in (tiny_run / "results/table1.md").read_text()
    via_torch_fidelity = pd.read_csv(tiny_run / "results/metrics/efficientnet_lite0_fidelity.csv")
    assert (
        list(via_torch_fidelity["set"]) == ["baseline", "guided", "gan"]
        and (via_torch_fidelity["fid_efficientnet_lite0"] > 0).all()
    )
    ours = pd.read_csv(tiny_run / "results/metrics/efficientnet_lite0_sets.csv").set_index(
        "set"
    )  # the same features, our code
    for row in via_torch_fidelity.itertuples():
        assert (row.precision, row.recall) == pytest.approx(
            (ours.loc[row.set, "precision"], ours.loc[row.set, "recall"]), abs=1e-6
        )
    fidelity = pd.read_csv(tiny_run / "results/figA7_fidelity.csv")
    assert sorted(zip(fidelity["sampler"], fidelity["steps"])) == [
        ("baseline", 10),
        ("baseline", 50),
        ("guided", 10),
        ("guided", 50),
    ]


def with_paper_scale_weights(workdir: Path) -> Path:
    """The local weight files the paper-scale configurations name (validation checks they exist;
    a dry run reads nothing else)."""
    (workdir / "data/weights/biggan-deep-128").mkdir(parents=True)
    (workdir / "data/weights/resnet50_imagenet.pth").touch()
    return workdir


@pytest.mark.parametrize("name, shards", [("cifar10", 50), ("imagenet64", 500)])
def test_paper_scale_configs_build_their_dag(snakemake_exe, repo, tmp_path, name, shards):
    """The paper-scale configurations validate and plan the whole DAG (nothing runs)."""
    with_paper_scale_weights(tmp_path)
    jobs = planned_jobs(snakemake(snakemake_exe, repo, tmp_path, "-n", configs=(f"configs/{name}.yaml",)))
    assert jobs["sample_baseline"] == shards and jobs["sample_guided"] == shards
    assert jobs["train_ddpm"] == 1 and jobs["all"] == 1 and jobs["table1"] == 1
    assert jobs["sample_gan"] == shards  # cifar10 trains its GAN; imagenet64 samples the pretrained BigGAN-deep
    assert jobs.get("train_gan", 0) == (1 if name == "cifar10" else 0)


def test_report_gathers_the_figures_and_tables_with_captions(tiny_run, snakemake_exe, repo, tmp_path):
    report = tmp_path / "report.html"
    snakemake(snakemake_exe, repo, tiny_run, "--report", str(report))
    html = report.read_text()
    for caption in (
        "Figure 7. Distributions of hardness",
        "Table 1. Cost of collecting",
        "Memorization (Section 5)",
        "Figure A.7.",
        "not Inception FIDs",
    ):
        assert caption in html, caption
    for name in ("fig1.pdf", "fig7.pdf", "fig17.pdf", "table1.csv", "gan_grid.png"):
        assert name in html, name


def test_lint_reports_nothing(snakemake_exe, repo, tmp_path):
    assert "Congratulations, your workflow is in a good condition" in snakemake(snakemake_exe, repo, tmp_path, "--lint")


def test_the_workflow_parses_without_torch(repo, tmp_path):
    """Every Snakemake invocation (a dry run, each job of a cluster run) parses the Snakefile; its
    helpers (lowdensity.layout, lowdensity.config) leave out torch, which takes seconds to import."""
    blocked = "import sys; sys.modules['torch'] = None; from snakemake.cli import main; sys.exit(main())"
    cmd = [
        sys.executable,
        "-c",
        blocked,
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(tmp_path),
        "--cores",
        "1",
        "-n",
        "results/data/val.npz",
        "--configfile",
        str(repo / "configs/tiny.yaml"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0 and "prepare_data" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_slurm_profile_plans_the_paper_scale_figure_with_cluster_resources(repo, snakemake_exe, tmp_path):
    """`snakemake --profile slurm -n paper_figures/fig7.pdf` from the repository root: the profile
    selects the paper-scale configuration (CIFAR-10) and every GPU stage asks SLURM for a GPU."""
    with_paper_scale_weights(tmp_path)
    cmd = [snakemake_exe, "--profile", "slurm", "-n", "--directory", str(tmp_path), "paper_figures/fig7.pdf"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["sample_baseline"] == 50 and jobs["train_ddpm"] == 1  # configs/cifar10.yaml
    train = re.search(r"rule train_ddpm:.*?resources: ([^\n]*)", result.stdout + result.stderr, re.S).group(1)
    assert "gpu=1" in train and "runtime=2880" in train and "cpus_per_task=8" in train


def _rule_resources(output: str) -> list[tuple[str, str, str]]:
    """(rule, threads, sorted resources) of every job a dry run printed, in a canonical order."""
    jobs = re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", output, re.M | re.S)
    rows = []
    for rule, body in jobs:
        threads = re.search(r"threads: (\d+)", body)
        resources = re.search(r"resources: ([^\n]*)", body)
        rows.append(
            (
                rule,
                threads.group(1) if threads else "1",
                ", ".join(sorted(resources.group(1).split(", "))) if resources else "",
            )
        )
    return sorted(rows)


def test_the_workflow_profile_leaves_the_slurm_profile_as_it_was(repo, snakemake_exe, tmp_path):
    """profiles/default (read for every run) must not change what `--profile slurm` submits: with
    and without it, the same jobs with the same threads, GPUs, memory and runtime, and the
    profile's executor, `jobs` and resources untouched (the workflow profile sets none of them)."""
    with_paper_scale_weights(tmp_path)
    outputs = []
    for extra in ([], ["--workflow-profile", "none"]):
        cmd = [snakemake_exe, "--profile", "slurm", "-n", "--directory", str(tmp_path), *extra]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=repo)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outputs.append(result.stdout + result.stderr)
    assert "workflow specific profile profiles/default" in outputs[0]
    with_profile, without = (_rule_resources(o) for o in outputs)
    assert with_profile == without and len(with_profile) > 100
    assert any("cpus_per_task=8" in res and "gpu=1" in res for rule, _, res in with_profile if rule == "train_ddpm")
    keys = set(re.findall(r"^\s*([a-z][\w-]*):", (repo / "profiles/default/config.yaml").read_text(), re.M))
    assert keys == {"cores", "max-threads", "show-failed-logs"}, keys


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) >= 4, reason="the one-thread layout is for machines with fewer than 4 cores"
)
def test_a_small_machine_runs_every_job_on_one_thread(repo, snakemake_exe, tmp_path):
    """On fewer than 4 cores the workflow profile caps every local job at one thread (two jobs side
    by side); without the profile the stages' cpus_per_task (2) apply."""
    plans = []
    for extra in ([], ["--workflow-profile", "none", "--cores", "2"]):
        cmd = [snakemake_exe, "-n", "--directory", str(tmp_path), "results/table1.csv", *extra]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=repo)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        plans.append(result.stdout + result.stderr)
    assert "threads: 2" not in plans[0] and "rule train_ddpm" in plans[0]
    assert "threads: 2" in plans[1]


def test_commands_work_as_typed_without_cores(tiny_run, repo):
    """`snakemake results/table1.csv` (no --cores) in a finished run: the workflow profile gives the
    cores, and there is nothing to do."""
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(tiny_run),
        "results/table1.csv",
        "paper_figures/fig7.pdf",
        "--configfile",
        str(repo / "configs/tiny.yaml"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=tiny_run)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_each_target_plans_only_what_it_reads(snakemake_exe, repo, tmp_path):
    """Table 1 compares the diffusion samplers: its plan has no GAN rule; figure 7 shows the GAN."""
    table1 = planned_jobs(snakemake(snakemake_exe, repo, tmp_path, "-n", "results/table1.csv"))
    fig7 = planned_jobs(snakemake(snakemake_exe, repo, tmp_path, "-n", "paper_figures/fig7.pdf"))
    gan_rules = {"train_gan", "sample_gan"}
    assert not gan_rules & set(table1), table1
    assert table1["density_metrics"] == 3 and table1["reference_neighbours"] == 1  # real, baseline, guided in one space
    assert gan_rules <= set(fig7) and fig7["density_metrics"] == 4


def test_a_cell_waits_only_for_the_guides_its_weights_use(snakemake_exe, repo, tmp_path):
    """β = 0: no discriminator in the cell's plan (it runs beside H′'s training); α = 0: no classifier."""
    plan = {
        cell: planned_jobs(snakemake(snakemake_exe, repo, tmp_path, "-n", f"results/samples/cells/hardness_{cell}.npz"))
        for cell in ("a1_b0", "a0_b1", "a1_b1", "a0_b0")
    }
    assert {"train_classifier", "fit_classifier_gaussians"} <= set(plan["a1_b0"]) and "train_discriminator" not in plan[
        "a1_b0"
    ]
    assert "train_discriminator" in plan["a0_b1"] and "train_classifier" not in plan["a0_b1"]
    assert "train_discriminator" in plan["a1_b1"] and "train_classifier" in plan["a1_b1"]
    assert plan["a0_b0"] == {
        "prepare_data": 2,
        "train_ddpm": 1,
        "sample_baseline": 1,
        "cell_from_set": 1,
    }  # shard 0 holds it
    # the paper's sampler in the sweep likewise: with β = 0 its points do not wait for H′
    override = tmp_path / "beta0.yaml"
    override.write_text("samplers:\n  paper: {beta: 0.0}\n")
    point = planned_jobs(
        snakemake(
            snakemake_exe,
            repo,
            tmp_path,
            "-n",
            "results/samples/sweep/paper_1.npz",
            configs=("configs/tiny.yaml", str(override)),
        )
    )
    assert "train_classifier" in point and "train_discriminator" not in point


def test_a_cell_is_copied_from_the_guided_set_only_if_the_set_holds_it(snakemake_exe, repo, tmp_path):
    """The tiny cell (α, β) = (1, 1) holds 10 samples: at guidance's (1, 1) it is the guided set's prefix
    when that set has at least 10 (both of its 2 shards hold some); when it has 8, the cell continues
    its β = 0 twin's chains (`branch_source`), which are sampled whole."""
    plans = {}
    for size in (12, 8):
        override = tmp_path / f"guided_{size}.yaml"
        override.write_text(f"guidance: {{alpha: 1.0, beta: 1.0, num_samples: {size}}}\n")
        plans[size] = planned_jobs(
            snakemake(
                snakemake_exe,
                repo,
                tmp_path,
                "-n",
                "results/samples/cells/hardness_a1_b1.npz",
                configs=("configs/tiny.yaml", str(override)),
            )
        )
    assert (
        plans[12].get("cell_from_set") == 1 and plans[12].get("sample_guided") == 2 and "sample_cell" not in plans[12]
    )
    assert plans[8].get("sample_cell") == 2 and "cell_from_set" not in plans[8] and "sample_guided" not in plans[8]


def test_figure_numbers_reads_what_the_rules_wrote(tiny_run, repo):
    """benchmarks/figure_numbers.py (a change's before → after tables) quotes the runs' CSVs."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("figure_numbers", repo / "benchmarks/figure_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    numbers = module.figure_numbers(tiny_run / "results")
    sets = pd.read_csv(tiny_run / "results/metrics/efficientnet_lite0_sets.csv").set_index("set")
    assert numbers["baseline: precision / recall, FID (n)"].startswith(
        f"{sets.precision['baseline']:.3f} / {sets.recall['baseline']:.3f}"
    )
    assert numbers["guided: precision / recall, FID (n)"].endswith("(12)")  # guidance.num_samples of configs/tiny.yaml
    assert numbers["fig7 median AvgkNN: real / baseline / guided / gan"] == " / ".join(
        f"{sets.median_avgknn[s]:.2f}" for s in ("real", "baseline", "guided", "gan")
    )
    assert "fig4a median hardness at α = 0 / 1" in numbers and all(numbers.values())
    # the interval table: a run compared with itself lies inside its own intervals everywhere
    intervals = module.interval_numbers(tiny_run / "results")
    assert intervals["baseline precision (efficientnet_lite0)"] == (
        sets.precision["baseline"],
        sets.precision_low["baseline"],
        sets.precision_high["baseline"],
    )
    rows = module.compare_intervals(intervals, intervals)[2:]
    assert len(rows) == len(intervals) and all(row.endswith("| yes | yes |") for row in rows)
    finite = {key: v for key, v in intervals.items() if np.isfinite(v).all()}
    shifted = {key: (high + 1, high + 1, high + 2) for key, (value, low, high) in finite.items()}
    assert finite and all(row.endswith("| no | no |") for row in module.compare_intervals(finite, shifted)[2:])


def test_a_dry_run_prints_each_large_stages_estimated_hours(snakemake_exe, repo, tmp_path):
    """Planning the paper-scale CIFAR-10 run on CPUs shows, before anything runs, that its DDPM
    training is thousands of core-hours, scaled from the recorded default run."""
    cmd = [snakemake_exe, "-s", str(repo / "Snakefile"), "-d", str(tmp_path), "-n"]
    result = subprocess.run(
        [*cmd, "--configfile", str(repo / "configs/cifar10.yaml")], capture_output=True, text=True, timeout=300, env=ENV
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "estimated core-hours per stage on CPUs (scaled from the default run of" in result.stderr
    hours = {m[1]: m[2] for m in re.finditer(r"^  (\w+): ([\d,.]+) h$", result.stderr, flags=re.M)}
    assert set(hours) >= {"train_ddpm", "sample_baseline", "sample_guided"}
    assert float(hours["train_ddpm"].replace(",", "")) > 1000
