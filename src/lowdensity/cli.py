"""`lowdensity <stage>`: the entry points the Snakemake rules call.

Each stage takes the config section(s) it uses as one JSON string (`--params`), the
paths of its inputs and outputs, and nothing else, so that a rule passes exactly what
it depends on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _params(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--params must be a JSON object: {err}")


def cmd_prepare_data(a):
    from .data import prepare_split

    prepare_split(_params(a.params), a.split, a.out)


def cmd_train_ddpm(a):
    from .ddpm import train_ddpm

    train_ddpm(_params(a.params), a.data, a.model, a.loss_csv, a.checkpoint, a.device)


def cmd_sample(a):
    from .sampling import sample_shard

    sample_shard(_params(a.params), a.model, a.shard, a.out, a.device)


def cmd_gather(a):
    from .sampling import gather_shards

    gather_shards(a.shards, a.out)


def cmd_grid(a):
    from .sampling import samples_grid

    samples_grid(a.samples, a.out, a.per_class, a.title)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowdensity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="write one split of the dataset as uint8 .npz")
    p.add_argument("--params", required=True, help="the config's data section as JSON")
    p.add_argument("--split", required=True, choices=["train", "val"])
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare_data)

    p = sub.add_parser("train-ddpm", help="train the diffusion model (resumes from --checkpoint)")
    p.add_argument("--params", required=True, help='{"ddpm": ..., "diffusion": ...} as JSON')
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--loss-csv", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_train_ddpm)

    p = sub.add_parser("sample", help="draw one shard of baseline samples")
    p.add_argument("--params", required=True, help="the config's sampling section as JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("gather", help="concatenate sample shards in sample order")
    p.add_argument("--out", required=True)
    p.add_argument("shards", nargs="+")
    p.set_defaults(func=cmd_gather)

    p = sub.add_parser("grid", help="PNG grid of samples, one row per class")
    p.add_argument("--samples", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--title", default="")
    p.set_defaults(func=cmd_grid)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
