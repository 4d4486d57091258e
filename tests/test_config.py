import copy

import pytest
import yaml

from lowdensity.config import ConfigError, deep_merge, load_config, validate_config


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
