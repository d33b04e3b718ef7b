"""Authors see what readers predicted: counts, the chart and its table, the share close, the top wrong choice, CSV;
and staff see per demo how runs went."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from demos.models import Run
from learning.stats import BUSY_REFUSAL_TEXT
from tests.learning.conftest import make_run
from tests.learning.test_prediction_api import payload, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    client = Client()
    client.force_login(User.objects.create_superuser("author", "author@example.com", "correct horse battery"))
    return client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _figure(html: str, name: str) -> str:
    return re.search(rf'data-figure="{name}">([^<]*)<', html).group(1).strip()


def test_a_number_block_page_counts_guesses_draws_them_and_exports_them(lesson, staff):
    run = make_run(total_ms=200.0, requests=3)
    for answer in (210, 190, 900, None):
        assert post(payload(lesson, run, answer=answer)).status_code == 201
    page = staff.get(f"/admin/learning/prediction/lesson/{lesson.id}/total-time/")
    assert page.status_code == 200
    html = page.content.decode()
    assert (_figure(html, "predicted"), _figure(html, "skipped"), _figure(html, "close")) == ("3", "1", "2 of 3")
    chart = re.search(r"<svg class=\"prediction-chart\".*?</svg>", html, re.S).group(0)
    assert 'role="img"' in chart and "<title" in chart and "3 guesses in 10 bins from 190 to 900 ms" in chart
    assert chart.count('class="bar-guess"') == 10 and chart.count('class="mark-measured"') == 4
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>(\d+)</td><td>(\d+)</td></tr>", html)
    assert sum(int(guesses) for *_, guesses, _ in rows) == 3 and sum(int(m) for *_, m in rows) == 4
    assert rows[0][2:] == ("2", "4") and rows[-1][2:] == ("1", "0")

    export = staff.get(f"/admin/learning/prediction/lesson/{lesson.id}/total-time/csv/")
    assert export["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [(r["answer"], r["skipped"], r["measured"], r["close"]) for r in table] == [
        ("210", "no", "200", "yes"), ("190", "no", "200", "yes"), ("900", "no", "200", "no"), ("", "yes", "200", "")]
    assert all(r["run"] == str(run.id) and len(r["reader"]) == 12 for r in table)


def test_a_choice_block_page_names_the_most_common_wrong_choice(lesson, staff):
    run = make_run(total_ms=200.0, requests=3)
    for answer in ("10", "10", "5", "3", "3"):
        post(payload(lesson, run, block="how-many", answer=answer))
    html = staff.get(f"/admin/learning/prediction/lesson/{lesson.id}/how-many/").content.decode()
    assert _figure(html, "most-common-wrong") == "Ten (2)"
    assert _figure(html, "close") == "2 of 5"
    assert "Three: guessed 2, measured 5; Five: guessed 1, measured 0; Ten: guessed 2, measured 0" in html
    assert re.search(r"Ten <code>10</code></th><td>2</td><td>0</td>", html)


def test_a_share_shows_as_a_percentage_only_from_ten_guesses(lesson, staff):
    run = make_run(total_ms=200.0, requests=3)
    for answer in [200] * 7 + [5000] * 3:
        post(payload(lesson, run, answer=answer))
    html = staff.get(f"/admin/learning/prediction/lesson/{lesson.id}/total-time/").content.decode()
    assert _figure(html, "close") == "7 of 10 (70 %)"


def test_the_lesson_admin_links_to_its_prediction_blocks(lesson, staff):
    run = make_run(total_ms=200.0, requests=3)
    post(payload(lesson, run, answer=100))
    post(payload(lesson, run, block="how-many", answer=None))
    stats_url = f"/admin/learning/prediction/lesson/{lesson.id}/"
    assert stats_url in staff.get("/admin/lessons/lesson/").content.decode()
    assert stats_url in staff.get(f"/admin/lessons/lesson/{lesson.id}/change/").content.decode()
    listing = _text(staff.get(stats_url).content.decode())
    assert "total-time How long will the three waits take? one-cook 1 0" in listing
    assert "how-many How many requests? one-cook 0 1" in listing
    assert "quiz-1" not in listing


def test_only_staff_see_the_statistics(lesson):
    for url in (f"/admin/learning/prediction/lesson/{lesson.id}/total-time/", "/admin/learning/demodashboard/"):
        response = Client().get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Client().get("/admin/learning/prediction/lesson/1/total-time/csv/").status_code == 302


def test_the_dashboard_shows_runs_refusals_failures_duration_and_accuracy_per_demo(lesson, staff):
    now = timezone.now()
    runs = [make_run(total_ms=200.0, requests=3) for _ in range(3)]
    for run, seconds in zip(runs, (0.2, 0.4, 3.0), strict=True):
        Run.objects.filter(id=run.id).update(created_at=now - timedelta(seconds=seconds), finished_at=now)
    make_run(status=Run.Status.FAILED)
    make_run(status=Run.Status.TIMED_OUT)
    Run.objects.create(demo="one-cook", placement="loop", status=Run.Status.CANCELLED,
                       summary={"text": BUSY_REFUSAL_TEXT, "elapsed_ms": 0.0})
    make_run(status=Run.Status.CANCELLED)  # stopped by its reader: neither busy nor failed
    for answer in (190, 5000, None):
        post(payload(lesson, runs[0], answer=answer))

    html = staff.get("/admin/learning/demodashboard/").content.decode()
    row = _text(re.search(r'<tr data-demo="one-cook">(.*?)</tr>', html, re.S).group(1))
    assert "7" in row.split() and "1 of 7" in row and "2 of 6" in row
    assert "400 ms (median of 3)" in row
    assert row.strip().endswith("2 1 of 2")
    assert "Demo dashboard" in staff.get("/admin/").content.decode()


def test_the_dashboard_counts_busy_refusals_by_the_words_the_engine_records_them_with():
    import inspect

    from demos import supervisor

    # The engine records a run it turned away as cancelled with this summary; if its words change, so must ours.
    assert f'"{BUSY_REFUSAL_TEXT}"' in inspect.getsource(supervisor.start_run)
