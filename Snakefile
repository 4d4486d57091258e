# lowdensity: "Generating High Fidelity Data from Low-density Regions using Diffusion
# Models" (Sehwag et al., CVPR 2022) end to end. The science lives in src/lowdensity/;
# every rule calls one `lowdensity <stage>` entry point with the config section it uses.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default; --configfile files are merged on top of it.
configfile: f"{workflow.basedir}/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/ddpm.smk"
include: "workflow/rules/guidance.smk"
include: "workflow/rules/discriminator.smk"
include: "workflow/rules/gan.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/samplers.smk"
include: "workflow/rules/fidelity_study.smk"


rule all:
    default_target: True
    input:
        "results/data/val.npz",
        "results/data/train_grid.png",
        "results/ddpm/loss.csv",
        expand("results/samples/{generator}_grid.png", generator=GENERATORS),
        "results/classifier/accuracy.csv",
        "results/discriminator/accuracy.csv",
        expand("paper_figures/{fig}.pdf", fig=["fig3", "fig4", "fig5", "fig6", "fig10", "figA5"]),
        expand("paper_figures/{fig}.pdf", fig=["fig1", "fig7", "fig8", "fig9", "fig11", "fig17", "figA7"]),
        "results/memorization.csv",
        "results/table1.csv",
        expand("results/metrics/{extractor}_sets.csv", extractor=EXTRACTORS),
        expand("results/metrics/{extractor}_fidelity.csv", extractor=EXTRACTORS[:-1]),
        ["results/gan/loss.csv"] if GAN and not config["gan"]["pretrained"]["path"] else [],


include: "workflow/rules/docs.smk"
