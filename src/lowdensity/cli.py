"""`lowdensity <stage> [ARGS]`: run one stage of the pipeline, exactly as its Snakemake rule does.

Each stage is one function with keyword-only, typed arguments and a docstring that describes
them; `lowdensity <stage> --help` is derived from those by jsonargparse, so a stage is declared
once (the function) and called once (its rule's shell line). Config sections are passed as JSON
or YAML (`--params '{"lr": 1e-4, ...}'`) and reach the function as dicts; lists and name → path
maps likewise (`--sets '["a.npy", "b.npy"]'`). `lowdensity <stage> ... --print_config > args.yaml`
writes a call's arguments to a file and `lowdensity <stage> --config args.yaml` runs it again.

`lowdensity --gpus N <stage> ...` runs a training stage as N data-parallel processes (torchrun):
the launcher's option, not the stage's, so that a job's GPU count never changes its outputs.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

STAGES = {
    "prepare-data": "lowdensity.stages.data:prepare_split",
    "grid": "lowdensity.stages.sampling:grid",
    "train-ddpm": "lowdensity.stages.ddpm:train_ddpm",
    "sample": "lowdensity.stages.sampling:sample",
    "gather": "lowdensity.stages.sampling:gather",
    "nll": "lowdensity.stages.evaluation:nll_bits_per_dim",
    "train-gan": "lowdensity.stages.gan:train_gan",
    "sample-gan": "lowdensity.stages.gan:sample_gan_shard",
    "train-classifier": "lowdensity.stages.guidance:train_classifier",
    "train-discriminator": "lowdensity.stages.guidance:train_discriminator",
    "fit-gaussians": "lowdensity.stages.guidance:fit_class_gaussians",
    "sample-guided": "lowdensity.stages.guidance:sample_guided_shard",
    "score-sets": "lowdensity.stages.guided_eval:score_sample_sets",
    "fig4b-fidelity": "lowdensity.stages.guided_eval:fig4b_fidelity",
    "extract-features": "lowdensity.stages.evaluation:extract_features",
    "reference-neighbours": "lowdensity.stages.evaluation:reference_neighbours",
    "density-metrics": "lowdensity.stages.evaluation:set_density_metrics",
    "collect-metrics": "lowdensity.stages.evaluation:collect_metrics",
    "memorization": "lowdensity.stages.evaluation:memorization",
    "fidelity": "lowdensity.stages.evaluation:fidelity_table",
    "table1": "lowdensity.stages.evaluation:make_table1",
    "train-minority-classifier": "lowdensity.stages.samplers:train_minority_classifier",
    "sample-sweep-point": "lowdensity.stages.samplers:sample_with",
    "samplers-table": "lowdensity.stages.sampler_comparison:samplers_table",
    "table1-samplers": "lowdensity.stages.sampler_comparison:table1_samplers",
    "stage-costs": "lowdensity.stages.stage_costs:stage_costs",
    "rung-fidelity": "lowdensity.stages.fidelity_study:rung_fidelity",
    "figD2": "lowdensity.stages.fidelity_study:figD2",
    "render-docs": "lowdensity.docs.render:render_docs",
    **{
        name: f"lowdensity.stages.figures:{name}"
        for name in ("fig1", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "fig11")
        + ("figA5", "figA7", "figD1", "figS1")
    },
}


def stage_function(name: str):
    module, function = STAGES[name].split(":")
    return getattr(importlib.import_module(module), function)


def usage() -> str:
    lines = [__doc__.strip(), "", "stages:"]
    for name in STAGES:
        doc = (stage_function(name).__doc__ or "").strip().splitlines()
        lines.append(f"  {name:27s} {doc[0] if doc else ''}")
    return "\n".join(lines)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    gpus = 1
    if argv[:1] == ["--gpus"] and len(argv) > 1:
        gpus, argv = int(argv[1]), argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, args = argv[0], argv[1:]
    if name not in STAGES:
        print(f"lowdensity: unknown stage {name!r}; the stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if gpus > 1 and "WORLD_SIZE" not in os.environ:
        # the same command as N data-parallel processes; each rank joins the group in the stage
        os.execv(
            sys.executable,
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
             "-m", "lowdensity.cli", *argv],
        )  # fmt: skip
    from jsonargparse import CLI

    try:
        result = CLI(stage_function(name), args=args, prog=f"lowdensity {name}", as_positional=False)
    except Exception as err:
        # errors whose message already says what is wrong, with which file or key, and the fix:
        # one line for the log's tail, no traceback (set LOWDENSITY_TRACEBACK=1 to see it)
        if not isinstance(err, _anticipated()) or os.environ.get("LOWDENSITY_TRACEBACK"):
            raise
        print(f"lowdensity {name}: error: {err}", file=sys.stderr)
        return 1
    if isinstance(result, str):  # a report (stage-costs' Markdown)
        print(result, end="")
    elif isinstance(result, list):  # the files written (render-docs)
        print("\n".join(map(str, result)))
    return 0


def _anticipated() -> tuple[type[BaseException], ...]:
    from lowdensity.config import ConfigError
    from lowdensity.core.training import NonFiniteLossError, TrainingInterrupted
    from lowdensity.data import DataMissingError, NonFiniteSampleError
    from lowdensity.io import ArtifactError, OutputWriteError

    return (
        ArtifactError,
        OutputWriteError,
        ConfigError,
        DataMissingError,
        NonFiniteLossError,
        NonFiniteSampleError,
        TrainingInterrupted,
    )


if __name__ == "__main__":
    sys.exit(main())
