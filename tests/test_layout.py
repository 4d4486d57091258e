"""The names the workflow and the stages share (lowdensity.layout)."""

import re

import pytest

from lowdensity.layout import WEIGHT_PATTERN, cell_name, cell_weights, parse_point, point_name, weight_text

WEIGHTS = [0, 0.5, 1, 2.0, 4, 0.25, 1e-05, 2.5e-07, 0.1234567, 1 / 3, 123456789.0, 1e16]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_a_weight_in_a_name_reads_back_as_the_same_float(weight):
    text = weight_text(weight)
    assert float(text) == weight and re.fullmatch(WEIGHT_PATTERN, text), text


def test_names_keep_the_short_form_where_it_is_exact():
    assert [weight_text(w) for w in (0, 0.5, 2.0, 1e-05)] == ["0", "0.5", "2", "1e-05"]
    assert weight_text(0.1234567) == "0.1234567"  # %g would write 0.123457, a different α
    assert cell_name("hardness", 0.5, 1) == "hardness_a0.5_b1" and point_name("self_guided", 0.4) == "self_guided_0.4"


@pytest.mark.parametrize("loss", ["hardness", "softmax"])
def test_cell_and_point_names_invert(loss):
    for alpha in WEIGHTS:
        for beta in (0, 1, 0.1234567, 1e-05):
            assert cell_weights(cell_name(loss, alpha, beta)) == (loss, float(alpha), float(beta))
        assert parse_point(point_name("minority_guidance", alpha)) == ("minority_guidance", float(alpha))


@pytest.mark.parametrize("weight", [float("inf"), float("nan"), -1.0])
def test_a_weight_that_cannot_name_a_file_is_refused(weight):
    with pytest.raises(ValueError, match="finite number ≥ 0"):
        weight_text(weight)


def test_a_name_that_is_not_a_cell_says_so():
    with pytest.raises(ValueError, match="'hardness_a_b1' is not a cell name"):
        cell_weights("hardness_a_b1")
