#!/usr/bin/env bash
# make slurm-test: the tiny configuration through `snakemake --profile slurm` on a real
# single-node SLURM cluster (tests/slurm/cluster.sh), then the checks of a local run that read the run
# (tests/test_workflow.py's reads_tiny_run tests, against the SLURM outputs; the rest ran in `make test`)
# and the GPU requests (tests/test_slurm_run.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
WORK=$(mktemp -d /tmp/lowdensity-slurm-run.XXXXXX)
bash tests/slurm/cluster.sh start
trap 'bash "$REPO/tests/slurm/cluster.sh" stop' EXIT

# the profile as users run it; for this cluster without accounting: squeue for job status, no account,
# quick status polls (the tiny jobs take seconds)
start=$(date +%s)
timeout 2400 snakemake --profile slurm -s "$REPO/Snakefile" --directory "$WORK" --configfile "$REPO/configs/tiny.yaml" \
  --slurm-status-command squeue --slurm-no-account --slurm-init-seconds-before-status-checks 5 \
  --seconds-between-status-checks 5 --latency-wait 5 --jobs 4 --quiet rules
echo "tiny DAG through SLURM: $(( $(date +%s) - start )) s"
scontrol show job -o > "$WORK/slurm_jobs.txt"
LOWDENSITY_TINY_RUN="$WORK" LOWDENSITY_SLURM_JOBS="$WORK/slurm_jobs.txt" \
  python -m pytest -q -m reads_tiny_run tests/test_slurm_run.py tests/test_workflow.py -p no:cacheprovider
