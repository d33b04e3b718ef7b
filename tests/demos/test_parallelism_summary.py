"""parallelism's summary says what was measured: the median of alternating rounds, their range, and noise by name.

These feed `summarise` the numbers a run measures (each round's span and CPU
time on each side), so the wording rules are checked without timing anything
on a machine that may be busy.
"""
import re

import pytest

from demos.library.parallelism import summarise

IDLE = {"load_before": 0.3, "cores": 2}


def _lead(text: str) -> str:
    """The sentence the widget leads with (static/js/demos/summary.js `firstSentence`); the rest is in details."""
    match = re.match(r"^(.+?[.!?])\s+(?=[A-Z0-9\"(“])", text, re.S)
    return match[1] if match else text


def _summary(baseline_ms: list[float], chosen_ms: list[float], *, inflation: float | list[float] = 1.0,
             host: dict = IDLE, work: str = "cpu", noun: str = "process", jobs: int = 2, lane_count: int = 2) -> dict:
    """A run whose baseline computed through every millisecond of its stretches; `inflation`: the chosen
    workers' CPU time for the same pieces over the baseline's, for the whole run or round by round."""
    baseline_cpu = [ms / 1000 for ms in baseline_ms] if work != "io" else [0.0] * len(baseline_ms)
    inflations = inflation if isinstance(inflation, list) else [inflation] * len(baseline_ms)
    chosen_cpu = [cpu * factor for cpu, factor in zip(baseline_cpu, inflations, strict=True)]
    pieces = jobs * (16 if work != "io" else 1)
    return summarise(work=work, noun=noun, jobs=jobs, lane_count=lane_count, host=host, build="GIL",
                     baseline_ms=baseline_ms, chosen_ms=chosen_ms, baseline_cpu_s=baseline_cpu,
                     chosen_cpu_s=chosen_cpu, shares=[pieces * len(baseline_ms) // 2] * lane_count,
                     pieces=pieces, startup_ms=40.0)


def test_the_speedup_is_the_median_of_the_rounds_with_their_range_beside_it():
    # Rounds of 1.90, 2.00, 1.30 (a slow spell on the processes' side), 1.95 and 1.85: the median is 1.90,
    # where the totals' ratio (980 / 535 = 1.83) would carry the spell.
    summary = _summary([190, 200, 130, 195, 185], [100, 100, 100, 100, 100])
    assert summary["speedup"] == 1.9
    assert summary["round_speedups"] == [1.9, 2.0, 1.3, 1.95, 1.85]
    assert summary["rounds"] == 5 and not summary["noise"]
    lead = _lead(summary["text"])
    assert lead.startswith("2 cpu jobs ran 1.90× as fast on 2 processes as on one worker"), lead
    assert f"{summary['cores_busy']:.2f} cores busy of the 2 available" in lead, lead
    assert "noise" not in summary["text"]
    assert "median of the 5 rounds' own, which ranged from 1.30× to 2.00×" in summary["text"]
    assert "900 ms one after another and 500 ms on the processes" in summary["text"]


def test_a_round_above_the_cores_is_called_noise_while_the_median_stands():
    summary = _summary([190, 260, 185, 195, 180], [100, 100, 100, 100, 100])
    assert summary["speedup"] == 1.9 and not summary["noise"]
    assert "2.60" not in _lead(summary["text"])  # never the headline figure
    assert "A round above 2× cannot come from 2 cores" in summary["text"]
    assert "which is noise, and the median leaves it aside" in summary["text"]


def test_a_round_whose_pieces_cost_one_side_more_cpu_time_is_set_aside_and_named_and_the_median_is_of_the_rest():
    # Rounds 2 and 4 came out at 1.00x and 1.20x because the host slowed the cores while the processes ran
    # (the same pieces cost 2.0x and 1.6x the CPU time side by side): the median of rounds 1, 3, 5, 6 and 7.
    summary = _summary([190, 100, 195, 120, 185, 188, 192], [100] * 7, inflation=[1.0, 2.0, 1.05, 1.6, 0.97, 1.0, 1.02])
    assert summary["rounds"] == 7 and summary["rounds_counted"] == 5 and summary["rounds_set_aside"] == [2, 4]
    assert summary["speedup"] == 1.9 and not summary["noise"], summary
    assert summary["round_cpu_ratios"] == [1.0, 2.0, 1.05, 1.6, 0.97, 1.0, 1.02]
    assert _lead(summary["text"]).startswith("2 cpu jobs ran 1.90× as fast on 2 processes"), summary["text"]
    assert "median of those 5 rounds' own, which ranged from 1.85× to 1.95×" in summary["text"]
    assert "The 2 rounds set aside (2, 4) came out at 1.00×, 1.20×" in summary["text"]
    assert "took from 1.60× to 2.00× the CPU time side by side" in summary["text"]


def test_a_round_just_outside_the_tolerance_is_set_aside_though_its_ratio_shows_as_1_10():
    # 1.1004 is more than 10% over; shown to two places it reads 1.10 (CI on 480f2ee met one such round).
    summary = _summary([190, 195, 185, 188, 192, 150], [100] * 6, inflation=[1.0, 1.0, 1.0, 1.0, 1.0, 1.1004])
    assert summary["rounds_set_aside"] == [6] and summary["round_cpu_ratios"][5] == 1.1, summary
    assert summary["rounds_counted"] == 5 and summary["speedup"] == 1.9, summary
    assert "The round set aside (6) came out at 1.50×" in summary["text"], summary["text"]


def test_a_run_with_too_few_rounds_at_one_speed_is_noise_with_the_median_of_them_all():
    summary = _summary([100, 190, 120, 110, 185], [100] * 5, inflation=[2.0, 1.0, 1.6, 1.8, 1.0])
    assert summary["rounds_counted"] == 2 and summary["noise"], summary
    assert summary["speedup"] == 1.2  # the median of all five: not a finding, and the lead sentence says so
    lead = _lead(summary["text"])
    assert "in only 2 rounds of 5 did the same work cost both sides the same CPU time" in lead, lead
    assert "noise from the machine, not a finding" in lead, lead
    # The figure is still named for what it is, beside the cores kept busy (as every CPU-bound summary does).
    assert "the speedup above is the median of all 5" in summary["text"], summary["text"]


def test_a_median_above_the_cores_is_named_as_that_even_when_too_few_rounds_counted():
    # CI, 2026-12-02: 2.34x on 2 cores with most rounds set aside; the summary said noise for the set-aside
    # rounds and never that no two cores can give 2.34x.
    summary = _summary([227, 214, 187, 186, 218], [100] * 5, inflation=[1.0, 1.6, 1.7, 1.8, 1.0])
    assert summary["rounds_counted"] == 2 and summary["noise"], summary
    lead = _lead(summary["text"])
    assert "a 2.14× speedup is more than 2 cores can give" in lead and "not a finding" in lead, lead


@pytest.mark.parametrize(("baseline_ms", "chosen_ms", "inflation", "host", "why"), [
    ([230, 240, 235, 228, 232], [100] * 5, 1.0, IDLE, "more than 2 cores can give"),
    ([110, 115, 105, 112, 108], [100] * 5, 1.0, {"load_before": 3.4, "cores": 2}, "load average was 3.40"),
], ids=["median above the cores", "machine busy before"])
def test_a_result_the_machine_explains_is_called_noise_in_the_lead_sentence(baseline_ms, chosen_ms, inflation,
                                                                           host, why):
    summary = _summary(baseline_ms, chosen_ms, inflation=inflation, host=host)
    lead = _lead(summary["text"])
    assert summary["noise"], summary
    assert why in lead and "noise" in lead and "not a finding" in lead, lead


def test_waiting_work_runs_once_and_names_no_median_or_cores_busy():
    summary = _summary([800], [200], work="io", noun="thread", jobs=4, lane_count=4)
    assert summary["speedup"] == 4.0 and summary["rounds"] == 1 and not summary["noise"]
    assert _lead(summary["text"]) == "4 io jobs ran 4.00× as fast on 4 threads as on one worker, with 2 cores available."
    assert "median" not in summary["text"] and "cores busy" not in summary["text"]
