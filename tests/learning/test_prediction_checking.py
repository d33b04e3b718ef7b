"""The rule that says what a run measured for a prediction and whether a guess was close (pure, no database)."""
import pytest

from learning.checking import Checked, check_prediction, measure
from tests.learning.conftest import COUNT, FASTER, RATIO, TOTAL


def test_a_relative_tolerance_is_a_share_of_the_measured_value():
    summary = [{"total_ms": 200.0}]
    assert check_prediction(TOTAL, summary, 250) == Checked(200.0, True)
    assert check_prediction(TOTAL, summary, 251) == Checked(200.0, False)
    assert check_prediction(TOTAL, summary, 150) == Checked(200.0, True)


def test_an_absolute_tolerance_and_no_tolerance():
    absolute = {**TOTAL, "tolerance": {"absolute": 50}}
    assert check_prediction(absolute, [{"total_ms": 200}], 250).close is True
    assert check_prediction(absolute, [{"total_ms": 200}], 250.5).close is False
    exact = {**TOTAL, "tolerance": None}
    assert check_prediction(exact, [{"total_ms": 200}], 200).close is True
    assert check_prediction(exact, [{"total_ms": 200}], 201).close is False


def test_choices_match_summary_values_as_json_writes_them():
    boolean = {**COUNT, "key": "lost_any", "choices": [{"key": "true", "label": "Yes"}, {"key": "false", "label": "No"}]}
    assert check_prediction(boolean, [{"lost_any": True}], "true") == Checked("true", True)
    assert check_prediction(boolean, [{"lost_any": False}], "true") == Checked("false", False)
    assert check_prediction(COUNT, [{"requests": 3}], "3") == Checked("3", True)


@pytest.mark.parametrize(("side_a", "side_b", "faster"), [
    (600, 200, "B"), (200, 600, "A"), (200, 219, "same"), (200, 222.3, "A"), (0, 0, "same"),
])
def test_faster_is_the_smaller_side_unless_within_ten_percent_of_the_larger(side_a, side_b, faster):
    assert measure(FASTER, [{"total_ms": side_a}, {"total_ms": side_b}]) == faster


def test_ratio_is_larger_over_smaller_and_unknown_when_a_side_is_zero():
    assert measure(RATIO, [{"total_ms": 100}, {"total_ms": 400}]) == 4.0
    assert check_prediction(RATIO, [{"total_ms": 0}, {"total_ms": 400}], 3) == Checked(None, None)


def test_nothing_measured_or_skipped_is_judged_neither_way():
    assert check_prediction(TOTAL, [{"text": "failed"}], 200) == Checked(None, None)
    assert check_prediction(TOTAL, [{"total_ms": True}], 1) == Checked(None, None)
    assert check_prediction(TOTAL, [{"total_ms": 200}], None) == Checked(200.0, None)
