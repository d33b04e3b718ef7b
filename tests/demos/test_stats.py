"""demos.stats: a percentile is named only over 100 samples or more; below that the tail is the max, and says so."""
import pytest

from demos.stats import percentile, ratio_text, tail


def test_percentile_is_nearest_rank():
    values = list(range(1, 201))  # 1..200
    assert percentile(values, 0.99) == 198
    assert percentile(values, 0.5) == 100
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_under_100_samples_the_tail_is_the_max_by_name():
    values = [float(v) for v in range(25)]
    summary = tail(values)
    assert (summary.value, summary.label, summary.is_percentile) == (24.0, "max of 25", False)
    assert summary.describe() == "max of 25: 24 ms"


def test_from_100_samples_the_tail_is_a_p99():
    values = [1.0] * 98 + [50.0, 900.0]
    summary = tail(values)
    assert summary.is_percentile and summary.label == "p99 of 100" and summary.value == 50.0
    assert tail([], 0.99).label == "no samples"


def test_no_ratio_to_a_reference_of_zero():
    assert ratio_text(530.0, 0.0, "the longest single wait") is None
    assert ratio_text(310.0, 300.0, "the longest single wait") == "1.03 × the longest single wait (300 ms)"
