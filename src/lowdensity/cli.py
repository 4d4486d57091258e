"""`lowdensity <stage>`: the entry points the Snakemake rules call.

Each stage takes the config section(s) it uses as one JSON string (`--params`), the
paths of its inputs and outputs, and nothing else, so that a rule passes exactly what
it depends on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _params(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--params must be a JSON object: {err}")


def _named(items: list[str], what: str) -> dict[str, str]:
    """NAME=VALUE arguments as a dict (the order kept)."""
    bad = [item for item in items if "=" not in item]
    if bad:
        raise SystemExit(f"{what} must be NAME=VALUE, not {bad[0]!r}")
    return dict(item.split("=", 1) for item in items)


def cmd_prepare_data(a):
    from .data import prepare_split

    prepare_split(_params(a.params), a.split, a.out)


def cmd_train_ddpm(a):
    from .ddpm import train_ddpm

    train_ddpm(_params(a.params), a.data, a.model, a.loss_csv, a.checkpoint, a.device)


def cmd_sample(a):
    from .sampling import sample_shard

    sample_shard(_params(a.params), a.model, a.shard, a.out, a.device)


def cmd_train_gan(a):
    from .gan import train_gan

    train_gan(_params(a.params), a.data, a.model, a.loss_csv, a.checkpoint, a.device)


def cmd_sample_gan(a):
    from .gan import sample_gan_shard

    sample_gan_shard(_params(a.params), _params(a.sampling), a.shard, a.out, a.model, a.data, a.device)


def cmd_gather(a):
    from .data import image_shape
    from .sampling import gather_shards

    gather_shards(a.shards, a.out, image_shape(a.data), a.first, json.loads(a.metadata) if a.metadata else None)


def cmd_grid(a):
    from .data import image_shape
    from .sampling import samples_grid

    samples_grid(a.samples, a.out, a.per_class, a.title, image_shape(a.data))


def cmd_train_classifier(a):
    from .classifier import train_classifier

    train_classifier(_params(a.params), a.data, a.val, a.model, a.accuracy, a.checkpoint, a.device)


def cmd_train_discriminator(a):
    from .classifier import train_discriminator

    train_discriminator(_params(a.params), a.data, a.samples, a.model, a.accuracy, a.checkpoint, a.device, a.classifier)


def cmd_fit_gaussians(a):
    from .classifier import fit_class_gaussians

    fit_class_gaussians(_params(a.params), a.model, a.data, a.out, a.summary, a.samples, a.device)


def cmd_sample_guided(a):
    from .guidance import sample_guided_shard

    sample_guided_shard(_params(a.params), a.alpha, a.beta, a.tau, a.loss, a.model, a.classifier,
                        a.discriminator, a.shard, a.out, a.device, a.step_scale,
                        keep_state_below=a.keep_state_below, branch_from=a.branch_from)


def cmd_score_sets(a):
    from .guided_eval import score_sample_sets

    score_sample_sets(_params(a.params), a.classifier, a.gaussians, a.train, a.val, a.sets, a.hardness_csv, a.precision_csv, a.device)


def cmd_figure(a):
    from . import figures
    from .data import image_shape

    p, i = _params(a.params), a.inputs
    shape = image_shape(a.data) if a.data else None
    if a.name == "fig3":
        figures.fig3_grid(i[:-1], shape, p["alphas"], p["betas"], p["classes"], i[-1], a.out, a.csv)
    elif a.name == "fig4":
        figures.fig4_hardness_precision(i[0], i[1], p["fig4a_alphas"], p["fig4b"]["alpha"], p["fig4b"]["betas"], a.out, a.csv)
    elif a.name == "fig5":
        figures.fig5_pairs(i[0], i[1], shape, p["pairs"], a.out, a.csv)
    elif a.name == "fig6":
        figures.fig6_classes(i[0], i[1], shape, p["fig6_classes"], p["per_class"], a.out, a.csv)
    elif a.name == "fig10":
        figures.fig10_progressive(i[:-1], shape, p["alphas"], p["beta"], p["seeds"], i[-1], a.out, a.csv)
    elif a.name == "figA5":
        figures.figA5_ablation(i[0], p["alphas"], p["beta"], a.out, a.csv)


def cmd_fig4b_fidelity(a):
    from .guided_eval import fig4b_fidelity

    references = _named(a.reference, "--reference")
    cells: dict[str, dict[float, str]] = {}
    for key, path in _named(a.cells, "cells").items():
        space, beta = key.rsplit(":", 1)
        cells.setdefault(space, {})[float(beta)] = path
    neighbours = _named(a.neighbours, "--neighbours")
    fig4b_fidelity(_params(a.params), references, neighbours, cells, a.out, a.device)


def cmd_discriminator_ablation(a):
    from .figures import figD1_discriminator_ablation

    figD1_discriminator_ablation(_named(a.accuracy, "--accuracy"), _params(a.overrides), a.out, a.figure)


def cmd_extract_features(a):
    from .evaluation import extract_features

    extract_features(_params(a.params), a.extractor, a.set, a.images, a.data, a.out, a.classifier, a.device)


def cmd_reference_neighbours(a):
    from .evaluation import reference_neighbours

    reference_neighbours(_params(a.params), a.reference, a.out, a.device)


def cmd_density_metrics(a):
    from .evaluation import set_density_metrics

    set_density_metrics(_params(a.params), a.extractor, a.reference, a.neighbours, a.set, a.features, a.metrics_csv,
                        a.summary_csv, a.device)


def cmd_stage_costs(a):
    from .stage_costs import stage_costs

    print(stage_costs(a.benchmarks, a.out, a.markdown), end="")


def cmd_render_docs(a):
    from .docs.render import render_docs

    for path in render_docs(a.pages, repo=a.repo, workdir=a.workdir, out=a.out, extractors=a.extractors,
                            config_label=a.config_label, readme=a.readme):
        print(path)


def cmd_collect_metrics(a):
    from .evaluation import collect_metrics

    collect_metrics(a.metrics, a.summaries, a.metrics_csv, a.sets_csv)


def cmd_memorization(a):
    from .evaluation import memorization

    memorization(_params(a.params), a.reference, a.guided, a.real, a.summary, a.pairs, a.neighbours, a.device)


def cmd_eval_figure(a):
    from . import figures
    from .evaluation import load_image_set

    p = _params(a.params)
    if a.name == "fig1":
        from .data import load_split

        samples = _named(a.inputs[2:], "fig1's samples")
        figures.fig1_overview(a.inputs[0], load_split(a.inputs[1]).images, samples, p["fig1_per_panel"], a.out, a.csv)
    elif a.name in ("fig7", "fig17"):
        title = {"fig7": "Figure 7: neighbourhood density", "fig17": "Figure 17: density in every feature space"}[a.name]
        figures.fig7_density(a.inputs, a.out, a.csv, title)
    else:
        reference_images, _ = load_image_set("reference", a.train, p["num_reference"])
        draw = figures.fig8_closest_pairs if a.name == "fig8" else figures.fig9_neighbours
        draw(a.inputs[0], a.inputs[1], reference_images, p["memorization"]["show"], a.out, a.csv)


def cmd_table1(a):
    from .cost import make_table1

    make_table1(_params(a.params), a.metrics, {"baseline": a.baseline, "guided": a.guided}, a.out, a.markdown)


def cmd_nll(a):
    from .nll import nll_bits_per_dim

    nll_bits_per_dim(_params(a.params), a.model, a.val, a.out, a.device)


def cmd_nll_correlation(a):
    from . import figures
    from .nll import nll_correlation

    nll_correlation(a.nll, a.metrics, a.out)
    figures.fig11_nll(a.nll, a.metrics[0], a.out, a.figure, a.figure_csv)


def cmd_fidelity_steps(a):
    from . import figures
    from .evaluation import fidelity_vs_steps

    sets = {}
    for key, path in _named(a.sets, "sets").items():
        sampler, steps = key.rsplit("_", 1)
        sets[(sampler, int(steps))] = path
    fidelity_vs_steps(_params(a.params), a.reference, a.neighbours, sets, a.out, a.device)
    figures.figA7_steps(a.out, a.figure, a.figure_csv)


def cmd_fidelity(a):
    from .fidelity import fidelity_table

    sets = _named(a.sets, "sets")
    fidelity_table(_params(a.params), a.extractor, a.reference, sets, a.out, a.device)


def cmd_train_minority_classifier(a):
    from .minority import train_minority_classifier

    train_minority_classifier(_params(a.params), a.ddpm, a.classifier, a.data, a.val, a.model, a.scores, a.accuracy,
                              a.checkpoint, a.device)


def cmd_sample_sweep_point(a):
    from .minority import sample_with

    sample_with(_params(a.params), a.sampler, a.strength, a.model, _named(a.guides, "--guides"), 0, a.out, a.device)


def cmd_samplers_table(a):
    from .sampler_comparison import sampler_table, write_markdown

    spaces = {space: {"reference": files.split(",")[0], "neighbours": files.split(",")[1], "sets": {}}
              for space, files in _named(a.spaces, "--spaces").items()}
    for key, files in _named(a.sets, "--sets").items():
        space, point = key.split("/", 1)
        spaces[space]["sets"][point] = tuple(files.split(","))
    sampler_table(a.rarity_k, _named(a.points, "--points"), spaces, a.out)
    write_markdown(a.out, a.markdown)


def cmd_figs1(a):
    from .sampler_comparison import figure_s1

    figure_s1(a.table, a.hardness_space, a.out, a.csv)


def cmd_table1_samplers(a):
    from .sampler_comparison import table1_samplers

    table1_samplers(_params(a.params), a.metrics, _named(a.points, "points"), a.out, a.markdown)


def _training_parser(sub, name: str, help_text: str, params_help: str, func, data_parallel: bool = True) -> None:
    """A training stage: prepared data in; final weights, loss log and a resumable checkpoint out."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--params", required=True, help=params_help)
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--loss-csv", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--device", default="auto")
    if data_parallel:
        p.add_argument("--gpus", type=int, default=1, help="data-parallel processes (torchrun) when > 1")
    p.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowdensity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="write one split of the dataset as uint8 .npz")
    p.add_argument("--params", required=True, help="the config's data section as JSON")
    p.add_argument("--split", required=True, choices=["train", "val"])
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare_data)

    _training_parser(sub, "train-ddpm", "train the diffusion model (resumes from --checkpoint)",
                     '{"ddpm": ..., "diffusion": ...} as JSON', cmd_train_ddpm)

    p = sub.add_parser("sample", help="draw one shard of baseline samples")
    p.add_argument("--params", required=True, help="the config's sampling section as JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("gather", help="concatenate sample shards in sample order")
    p.add_argument("--out", required=True)
    p.add_argument("--data", required=True, help="a prepared split: the (C, H, W) every sample file must have")
    p.add_argument("--first", type=int, default=None, help="write only samples 0 … FIRST − 1 (a cell that is the set's prefix)")
    p.add_argument("--metadata", default=None, help="JSON: the written file's meta_ entries instead of the shards' (with --first)")
    p.add_argument("shards", nargs="+")
    p.set_defaults(func=cmd_gather)

    p = sub.add_parser("grid", help="PNG grid of samples, one row per class")
    p.add_argument("--samples", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--title", default="")
    p.add_argument("--data", required=True, help="a prepared split: the (C, H, W) every sample file must have")
    p.set_defaults(func=cmd_grid)

    for name, func, doc in [("train-classifier", cmd_train_classifier, "the time-conditioned classifier g∘f"),
                            ("train-discriminator", cmd_train_discriminator, "the real-vs-synthetic discriminator")]:
        p = sub.add_parser(name, help=f"train {doc} (resumes from --checkpoint)")
        p.add_argument("--params", required=True, help='{"classifier"|"discriminator": ..., "diffusion": ...} as JSON')
        p.add_argument("--data", required=True, help="the prepared training split")
        if name == "train-classifier":
            p.add_argument("--val", required=True, help="the prepared validation split")
        else:
            p.add_argument("--samples", required=True, nargs="+", help="the gathered baseline samples [and the extra pool]")
            p.add_argument("--classifier", default=None, help="the trained classifier (discriminator.init: classifier)")
        p.add_argument("--model", required=True)
        p.add_argument("--accuracy", required=True, help="CSV of accuracy per timestep")
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--device", default="auto")
        p.add_argument("--gpus", type=int, default=1, help="data-parallel processes (torchrun) when > 1")
        p.set_defaults(func=func)

    p = sub.add_parser("fig4b-fidelity", help="improved precision and PRD of figure 4b's cells, with bootstrap intervals")
    p.add_argument("--params", required=True)
    p.add_argument("--reference", required=True, nargs="+", metavar="SPACE=FEATURES")
    p.add_argument("--neighbours", required=True, nargs="+", metavar="SPACE=NEIGHBOURS", help="each reference's own neighbours")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", help="where the ball tests run (auto: CUDA when present)")
    p.add_argument("cells", nargs="+", metavar="SPACE:BETA=FEATURES")
    p.set_defaults(func=cmd_fig4b_fidelity)

    p = sub.add_parser("discriminator-ablation", help="the discriminator study's table and figure D1")
    p.add_argument("--overrides", required=True, help="variant name → its overrides, as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--figure", required=True)
    p.add_argument("accuracy", nargs="+", metavar="VARIANT=ACCURACY_CSV")
    p.set_defaults(func=cmd_discriminator_ablation)

    p = sub.add_parser("fit-gaussians", help="class Gaussians of an encoder's embeddings (Eq. 3)")
    p.add_argument("--params", required=True, help='{"gaussians": ..., "diffusion": ...[, "discriminator": ...]} as JSON')
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--samples", default=None, nargs="+",
                   help="baseline samples [and the extra pool]: fit the discriminator's real/synthetic Gaussians")
    p.add_argument("--out", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_fit_gaussians)

    p = sub.add_parser("sample-guided", help="one shard of α/β-guided samples (Algorithm 1)")
    p.add_argument("--params", required=True, help="the sampling section as JSON")
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--beta", type=float, required=True)
    p.add_argument("--tau", type=float, required=True)
    p.add_argument("--loss", choices=["hardness", "softmax"], required=True)
    p.add_argument("--step-scale", choices=["variance", "std"], required=True, help="Σ_θ of Eq. 7: σ_t² or σ_t")
    p.add_argument("--model", required=True)
    p.add_argument("--classifier", nargs=2, metavar=("MODEL", "GAUSSIANS"), help="needed when α ≠ 0")
    p.add_argument("--discriminator", nargs=2, metavar=("MODEL", "GAUSSIANS"), help="needed when β ≠ 0")
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--keep-state-below", type=int, default=None, metavar="T_MAX",
                   help="also keep each chain's state before its first step with t < T_MAX (where β-variants branch off)")
    p.add_argument("--branch-from", default=None, metavar="FILE",
                   help="continue the chains kept in FILE (a sample file of the same loss, α, τ) instead of sampling them whole")
    p.set_defaults(func=cmd_sample_guided)

    p = sub.add_parser("score-sets", help="hardness, accuracy and precision of sample sets in the classifier space")
    p.add_argument("--params", required=True, help='{"precision": {"k": ..., "num_real": ...}} as JSON')
    p.add_argument("--classifier", required=True)
    p.add_argument("--gaussians", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--hardness-csv", required=True)
    p.add_argument("--precision-csv", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("sets", nargs="+")
    p.set_defaults(func=cmd_score_sets)

    p = sub.add_parser("figure", help="draw one of the guided sampler's figures")
    p.add_argument("name", choices=["fig3", "fig4", "fig5", "fig6", "fig10", "figA5"])
    p.add_argument("--params", required=True)
    p.add_argument("--data", default=None, help="a prepared split: the (C, H, W) of the samples (fig3, fig5, fig6, fig10)")
    p.add_argument("--out", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("extract-features", help="features of one image set in one evaluation space")
    p.add_argument("--params", required=True, help="the evaluation section as JSON")
    p.add_argument("--extractor", required=True, help="a configured extractor's name, or 'classifier'")
    p.add_argument("--set", required=True, help="reference | real | a sample set")
    p.add_argument("--images", required=True)
    p.add_argument("--data", required=True, help="a prepared split: the (C, H, W) every sample file must have")
    p.add_argument("--classifier", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_extract_features)

    p = sub.add_parser("reference-neighbours", help="the reference features' own nearest neighbours (LOF, precision balls)")
    p.add_argument("--params", required=True, help='{"lof_k": ..., "precision_k": ...} of the evaluation section as JSON')
    p.add_argument("--reference", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", help="where the search runs (auto: CUDA when present)")
    p.set_defaults(func=cmd_reference_neighbours)

    p = sub.add_parser("density-metrics", help="hardness, AvgkNN, LOF, precision/recall of one set in one space")
    p.add_argument("--params", required=True, help='{"knn_k": ..., "lof_k": ..., "precision_k": ...} as JSON')
    p.add_argument("--extractor", required=True)
    p.add_argument("--reference", required=True, help="the reference features")
    p.add_argument("--neighbours", required=True, help="the reference's own neighbours (reference-neighbours)")
    p.add_argument("--set", required=True, help="the set's name")
    p.add_argument("--features", required=True, help="the set's features")
    p.add_argument("--metrics-csv", required=True)
    p.add_argument("--summary-csv", required=True)
    p.add_argument("--device", default="auto", help="where the searches run (auto: CUDA when present)")
    p.set_defaults(func=cmd_density_metrics)

    p = sub.add_parser("stage-costs", help="wall-clock, CPU time and peak memory per stage of a run (from its benchmark files)")
    p.add_argument("--benchmarks", default="results/benchmarks", help="the folder the rules' benchmark: files are in")
    p.add_argument("--out", default="results/stage_costs.csv")
    p.add_argument("--markdown", default="results/stage_costs.md")
    p.set_defaults(func=cmd_stage_costs)

    p = sub.add_parser("collect-metrics", help="one space's per-set metrics as one per-image table and one per-set table")
    p.add_argument("--metrics", nargs="+", required=True, help="the sets' per-image metrics")
    p.add_argument("--summaries", nargs="+", required=True, help="the sets' summaries, in the same order")
    p.add_argument("--metrics-csv", required=True)
    p.add_argument("--sets-csv", required=True)
    p.set_defaults(func=cmd_collect_metrics)

    p = sub.add_parser("memorization", help="nearest-neighbour distances and closest pairs (Section 5)")
    p.add_argument("--params", required=True, help="the evaluation section as JSON")
    p.add_argument("--reference", required=True)
    p.add_argument("--guided", required=True)
    p.add_argument("--real", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--neighbours", required=True)
    p.add_argument("--device", default="auto", help="where the searches run (auto: CUDA when present)")
    p.set_defaults(func=cmd_memorization)

    _training_parser(sub, "train-gan", "train the BigGAN-style GAN baseline (resumes from --checkpoint)",
                     '{"model": ..., "train": ...} of the gan section as JSON', cmd_train_gan, data_parallel=False)

    p = sub.add_parser("sample-gan", help="one shard of GAN samples (trained GAN or pretrained BigGAN-deep)")
    p.add_argument("--params", required=True, help='{"truncation": ..., "pretrained": ...} of the gan section as JSON')
    p.add_argument("--sampling", required=True, help="the sampling section as JSON")
    p.add_argument("--model", default=None, help="the trained generator (without gan.pretrained.path)")
    p.add_argument("--data", default=None, help="the prepared training split (with gan.pretrained.path)")
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample_gan)

    p = sub.add_parser("eval-figure", help="draw one of the evaluation figures")
    p.add_argument("name", choices=["fig1", "fig7", "fig17", "fig8", "fig9"])
    p.add_argument("--params", required=True, help="the evaluation section as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--train", default=None, help="the prepared training split (fig8, fig9)")
    p.add_argument("inputs", nargs="+", help="fig1: METRICS.csv REAL.npz NAME=SAMPLES.npz ...; fig7/fig17: METRICS.csv ...;"
                   " fig8/fig9: TABLE.csv GUIDED.npz")
    p.set_defaults(func=cmd_eval_figure)

    p = sub.add_parser("table1", help="the sampling-cost table (Table 1)")
    p.add_argument("--params", required=True, help="the table1 section as JSON")
    p.add_argument("--metrics", nargs="+", required=True, help="per-image metrics of the real, baseline and guided sets in the chosen space")
    p.add_argument("--baseline", required=True)
    p.add_argument("--guided", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", required=True)
    p.set_defaults(func=cmd_table1)

    p = sub.add_parser("nll", help="NLL bound in bits/dim of held-out images (appendix A.2)")
    p.add_argument("--params", required=True, help="the nll section as JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_nll)

    p = sub.add_parser("nll-correlation", help="correlations of NLL with the density metrics, and figure 11")
    p.add_argument("--nll", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--figure", required=True)
    p.add_argument("--figure-csv", required=True)
    p.add_argument("metrics", nargs="+", help="per-image metrics tables; the first is drawn")
    p.set_defaults(func=cmd_nll_correlation)

    p = sub.add_parser("fidelity-steps", help="precision per number of DDIM steps, and figure A.7")
    p.add_argument("--params", required=True, help='{"precision_k": k} as JSON')
    p.add_argument("--reference", required=True)
    p.add_argument("--neighbours", required=True, help="the reference's own neighbours (reference-neighbours)")
    p.add_argument("--out", required=True)
    p.add_argument("--figure", required=True)
    p.add_argument("--figure-csv", required=True)
    p.add_argument("--device", default="auto", help="where the ball tests run (auto: CUDA when present)")
    p.add_argument("sets", nargs="+", help="SAMPLER_STEPS=FEATURES.npy")
    p.set_defaults(func=cmd_fidelity_steps)

    p = sub.add_parser("fidelity", help="FID and precision/recall via torch-fidelity's metrics in one evaluation space")
    p.add_argument("--params", required=True, help='{"precision_k": ...} as JSON')
    p.add_argument("--extractor", required=True)
    p.add_argument("--reference", required=True, help="the reference's features (extract_features)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", help="where the precision/recall distances are computed")
    p.add_argument("sets", nargs="+", help="NAME=FEATURES.npy")
    p.set_defaults(func=cmd_fidelity)

    p = sub.add_parser("train-minority-classifier", help="minority scores, their quantile classes and the noisy classifier p(l | x_t) (minority guidance)")
    p.add_argument("--params", required=True, help='{"samplers": {"minority_guidance": ..., "distance": ...}, "diffusion": ...} as JSON')
    p.add_argument("--ddpm", required=True)
    p.add_argument("--classifier", default=None, help="the pipeline's classifier (samplers.distance.kind: classifier)")
    p.add_argument("--data", required=True, help="the prepared training split")
    p.add_argument("--val", required=True, help="the prepared validation split")
    p.add_argument("--model", required=True)
    p.add_argument("--scores", required=True, help="CSV of every scored image's minority score and class")
    p.add_argument("--accuracy", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_train_minority_classifier)

    p = sub.add_parser("sample-sweep-point", help="one point of a low-density sampler's strength sweep")
    p.add_argument("--params", required=True, help='{"sampling": ..., "samplers": {SAMPLER: ...}, ...} as JSON')
    p.add_argument("--sampler", required=True, choices=["baseline", "paper", "boost_and_skip", "self_guided", "minority_guidance"])
    p.add_argument("--strength", required=True, type=float)
    p.add_argument("--model", required=True)
    p.add_argument("--guides", nargs="*", default=[], help="NAME=PATH of the guides the sampler reads")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample_sweep_point)

    p = sub.add_parser("samplers-table", help="every sweep point in every space: fidelity, density, Rarity, cost")
    p.add_argument("--rarity-k", required=True, type=int)
    p.add_argument("--points", nargs="+", required=True, help="POINT=SAMPLES.npz")
    p.add_argument("--spaces", nargs="+", required=True, help="SPACE=REFERENCE_FEATURES.npy,REFERENCE_NEIGHBOURS.npz")
    p.add_argument("--sets", nargs="+", required=True, help="SPACE/POINT=FEATURES.npy,SUMMARY.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", required=True)
    p.set_defaults(func=cmd_samplers_table)

    p = sub.add_parser("figS1", help="figure S1: precision against density per sampler")
    p.add_argument("--table", required=True, help="results/samplers.csv")
    p.add_argument("--hardness-space", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--csv", required=True)
    p.set_defaults(func=cmd_figs1)

    p = sub.add_parser("table1-samplers", help="Table 1 for every sampler at its default strength")
    p.add_argument("--params", required=True, help="the table1 section as JSON")
    p.add_argument("--metrics", nargs="+", required=True, help="per-image metrics of the real set and of each default point")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", required=True)
    p.add_argument("points", nargs="+", help="POINT=SAMPLES.npz (the baseline point and each sampler's default)")
    p.set_defaults(func=cmd_table1_samplers)

    p = sub.add_parser("render-docs", help="render the documentation's generated pages (docs/generated/)")
    p.add_argument("pages", nargs="+", choices=["configuration", "performance", "gpu_hours", "results", "samplers"])
    p.add_argument("--repo", default=".", help="the repository (schema, config.yaml, benchmarks/runs)")
    p.add_argument("--workdir", default=".", help="the run's folder holding results/ and paper_figures/")
    p.add_argument("--out", default="docs/generated")
    p.add_argument("--extractors", nargs="*", default=None, help="the run's feature spaces, the figures' first")
    p.add_argument("--config-label", default="config.yaml", help="the configuration files of the run, for the stamp")
    p.add_argument("--readme", default=None, help="README.md whose results block to rewrite (with the results page)")
    p.set_defaults(func=cmd_render_docs)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "gpus", 1) > 1 and "WORLD_SIZE" not in os.environ:
        # a training stage given several GPUs: run this same command as N data-parallel processes
        # (the job's GPU count is a resource, not a parameter: changing it does not retrain)
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc_per_node={args.gpus}", "-m", "lowdensity.cli", *argv])
    try:
        args.func(args)
    except Exception as err:
        # errors whose message already says what is wrong, with which file or key, and the fix:
        # one line for the log's tail, no traceback (set LOWDENSITY_TRACEBACK=1 to see it)
        if not isinstance(err, _anticipated()) or os.environ.get("LOWDENSITY_TRACEBACK"):
            raise
        print(f"lowdensity {argv[0] if argv else ''}: error: {err}", file=sys.stderr)
        return 1
    return 0


def _anticipated() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .data import DataMissingError, NonFiniteSampleError
    from .io import ArtifactError, OutputWriteError
    from .training import NonFiniteLossError

    return ArtifactError, OutputWriteError, ConfigError, DataMissingError, NonFiniteLossError, NonFiniteSampleError


if __name__ == "__main__":
    sys.exit(main())
