import copy
import re

import pytest
import yaml

from lowdensity.config import (
    ConfigError,
    deep_merge,
    estimated_core_hours,
    load_config,
    planning_estimate,
    validate_config,
)


@pytest.fixture()
def default(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def test_default_and_tiny_configs_are_valid(repo):
    load_config(repo / "config.yaml")
    load_config(repo / "config.yaml", repo / "configs" / "tiny.yaml")


def test_wrong_type_names_the_key(default):
    bad = copy.deepcopy(default)
    bad["ddpm"]["train"]["lr"] = "fast"
    with pytest.raises(ConfigError, match=r"'ddpm\.train\.lr': 'fast' is not of type 'number'"):
        validate_config(bad)


@pytest.mark.parametrize("section", [("ddpm", "train"), ("discriminator", "train"), ("gan", "train")])
def test_an_unknown_learning_rate_schedule_names_the_key(default, section):
    bad = copy.deepcopy(default)
    bad[section[0]][section[1]]["lr_schedule"] = "step"
    with pytest.raises(
        ConfigError,
        match=rf"'{section[0]}\.{section[1]}\.lr_schedule': 'step' is not one of \['constant', 'linear', 'cosine'\]",
    ):
        validate_config(bad)


@pytest.mark.parametrize("path", [("ddpm", "train"), ("sampling",), ("gan", "train"), ("evaluation", "extractors", 0)])
def test_an_unknown_precision_names_the_key(default, path):
    bad = copy.deepcopy(default)
    section = bad
    for part in path:
        section = section[part]
    section["precision"] = "fp16"
    key = re.escape(".".join(map(str, path)))
    with pytest.raises(ConfigError, match=rf"'{key}\.precision': 'fp16' is not one of \['fp32', 'bf16', 'auto'\]"):
        validate_config(bad)


def test_unknown_key_is_named(default):
    bad = copy.deepcopy(default)
    bad["sampling"]["num_sampels"] = 10
    with pytest.raises(ConfigError, match=r"config key 'sampling': unknown key\(s\) 'num_sampels'"):
        validate_config(bad)


def test_bad_enum_and_missing_key(default):
    bad = copy.deepcopy(default)
    bad["diffusion"]["schedule"] = "quadratic"
    del bad["data"]["root"]
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert "'diffusion.schedule'" in str(err.value) and "'root' is a required property" in str(err.value)


def test_deep_merge_overrides_nested_values():
    merged = deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 5}})
    assert merged == {"a": {"b": 1, "c": 5}, "d": 3}


@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"diffusion": {"num_steps": 30}},
            r"'classifier\.eval_timesteps': timesteps \[100, 250, 500, 750\] are outside the chain of "
            r"diffusion\.num_steps = 30",
        ),
        ({"sampling": {"steps": 2000}}, r"'sampling\.steps': 2000 is not a respacing of the 1000-step chain"),
        ({"sampling": {"steps": "0"}}, r"'sampling\.steps': '0' keeps no step of the chain"),
        ({"sampling": {"steps": "ddim600"}}, r"'sampling\.steps': 'ddim600' is not a respacing .*exactly 600 steps"),
        ({"figA7": {"steps": [10, 600]}}, r"'figA7\.steps': 'ddim600' is not a respacing"),
        ({"nll": {"steps": 1001}}, r"'nll\.steps': 1001 exceeds diffusion\.num_steps = 1000"),
        ({"nll": {"steps": 100, "terms": 200}}, r"'nll\.terms': 200 exceeds the 100 terms of the chain"),
        (
            {"samplers": {"paper": {"default": 3.0}}},
            r"'samplers\.paper\.default': 3\.0 is not one of samplers\.paper\.strengths",
        ),
        (
            {"samplers": {"boost_and_skip": {"skip": 100}}},
            r"'samplers\.boost_and_skip\.skip': 100 skips every one of the 100 steps",
        ),
        ({"samplers": {"rarity_k": 400}}, r"'samplers\.rarity_k': 400 does not fit samplers\.num_samples = 400"),
        ({"discriminator": {"timesteps": {"max": 5000}}}, r"'discriminator\.timesteps\.max': 5000 exceeds"),
        ({"sampling": {"shards": 3000}}, r"'sampling\.shards': 3000 shards for sampling\.num_samples = 2000"),
        ({"guidance": {"cell_samples": 5000}}, r"'guidance\.cell_samples': 5000 exceeds sampling\.num_samples = 2000"),
        (
            {"guidance": {"num_samples": 3}},
            r"'guidance\.num_samples': 3 samples for the guided set's sampling\.shards = 4",
        ),
        (
            {"guidance": {"num_samples": 20}},
            r"'guidance\.pairs': 24 baseline/guided pairs, but the two sets share only their first 20",
        ),
        ({"guidance": {"num_samples": 0}}, r"'guidance\.num_samples'"),
        (
            {"evaluation": {"lof_k": 10000}},
            r"'evaluation\.lof_k': 10000 neighbours need more than evaluation\.num_reference = 10000",
        ),
        ({"figA7": {"num_samples": 3}}, r"'evaluation\.precision_k': 3 exceeds the 3 samples of figA7\.num_samples"),
        (
            {
                "evaluation": {
                    "extractors": [
                        {"name": "resnet50", "timm_name": "resnet50", "weights": "/nowhere/r50.pth", "input_size": 224}
                    ]
                }
            },
            r"'evaluation\.extractors\[0\]\.weights': /nowhere/r50\.pth not found: download",
        ),
        ({"gan": {"pretrained": {"path": "/nowhere/biggan"}}}, r"'gan\.pretrained\.path': /nowhere/biggan not found"),
        ({"table1": {"space": "inception"}}, r"'table1\.space': 'inception' is none of the feature spaces"),
        (
            {"ddpm": {"train": {"snapshots": [300, 5000]}}},
            r"'ddpm\.train\.snapshots': steps \[5000\] come after the run's end \(ddpm\.train\.steps = 1800\)",
        ),
        ({"classifier": {"train": {"snapshots": [10]}}}, r"'classifier\.train\.snapshots': EMA snapshots are written"),
        ({"fidelity_study": {"betas": [1.0, 2.0]}}, r"'fidelity_study\.betas': \[1\.0, 2\.0\] must hold 0"),
        ({"discriminator": {"timesteps": {"law": "cosine"}}}, r"discriminator\.timesteps\.law"),
        (
            {"sampling": {"num_samples": 1_000_000_000, "shards": 4}},
            r"'sampling\.num_samples': stage sample_baseline would do 2\.6e\+13 pixel-steps .*set allow_large: true",
        ),
        (
            {"device": "cpu", "ddpm": {"train": {"steps": 10_000_000}}},
            r"'ddpm\.train\.steps': stage train_ddpm would do .* CPU cores \(device: cpu\)",
        ),
    ],
)
def test_related_keys_are_checked_at_validation(default, override, message):
    """Constraints between keys fail when the configuration is validated (before any job), naming the key."""
    with pytest.raises(ConfigError, match=message):
        validate_config(deep_merge(default, override))


def test_allow_large_runs_what_the_typo_guard_refuses(default):
    validate_config(deep_merge(default, {"allow_large": True, "sampling": {"num_samples": 1_000_000_000}}))


@pytest.mark.parametrize(
    "override, key, value",
    [
        ({"guidance": {"alpha": float("nan")}}, "guidance.alpha", "nan"),
        ({"ddpm": {"train": {"lr": float("inf")}}}, "ddpm.train.lr", "inf"),
        ({"guidance": {"fig4a_alphas": [0.0, float("inf")]}}, "guidance.fig4a_alphas.1", "inf"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(default, override, key, value):
    """NaN satisfies every bound of the schema (each comparison is false) and inf every one-sided bound, so
    they are refused on their own, before any job (a NaN alpha once gave all-black guided images)."""
    with pytest.raises(ConfigError, match=rf"config key '{re.escape(key)}': {value} is not a finite number"):
        validate_config(deep_merge(default, override))


def test_yaml_nan_is_refused(tmp_path, repo):
    bad = tmp_path / "nan.yaml"
    bad.write_text("guidance:\n  beta: .nan\n")
    with pytest.raises(ConfigError, match=r"'guidance\.beta': nan is not a finite number"):
        load_config(repo / "config.yaml", bad)


def test_core_hour_estimates_scale_the_measured_run_by_work_and_network_size(default):
    """The default against its own measurement gives back the measured times; twice the training steps
    twice the hours, twice the U-Net's width four times (multiply-adds grow with channels²)."""
    measured = [{"rule": "train_ddpm", "wall_s": "3600"}, {"rule": "sample_baseline", "wall_s": "1800"}]
    assert estimated_core_hours(default, default, measured) == {"train_ddpm": 1.0, "sample_baseline": 0.5}
    longer = deep_merge(default, {"ddpm": {"train": {"steps": 2 * default["ddpm"]["train"]["steps"]}}})
    assert estimated_core_hours(longer, default, measured)["train_ddpm"] == pytest.approx(2.0)
    wider = deep_merge(default, {"ddpm": {"model": {"channels": 2 * default["ddpm"]["model"]["channels"]}}})
    assert estimated_core_hours(wider, default, measured) == pytest.approx({"train_ddpm": 4.0, "sample_baseline": 2.0})


def test_planning_estimate_names_the_run_it_scales(default, repo, tmp_path):
    (tmp_path / "default_runs.csv").write_text(
        "date,commit,machine,cores,stage_costs,minutes_with_setup,note\n"
        "2026-01-01,abc1234,Some CPU,2,costs.csv,40,\n2026-01-02,def5678,Other CPU,2,,30,no table kept\n"
    )
    (tmp_path / "costs.csv").write_text("rule,jobs,wall_s\ntrain_ddpm,1,5400\n")
    lines = planning_estimate(default, repo / "config.yaml", tmp_path)
    assert "2026-01-01 at abc1234 on Some CPU" in lines[0] and lines[1:] == ["  train_ddpm: 1.5 h"]
    assert planning_estimate(default, repo / "config.yaml", tmp_path / "nowhere") == []
