"""Runs a stopped server left 'running' are swept to failed, not left running forever."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from demos.models import Run

pytestmark = pytest.mark.django_db


def test_sweep_marks_only_old_running_runs_failed(capsys):
    stale = Run.objects.create(demo="one-cook", placement="loop")
    Run.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(hours=1))
    fresh = Run.objects.create(demo="one-cook", placement="loop")
    done = Run.objects.create(demo="one-cook", placement="loop", status="succeeded")
    Run.objects.filter(id=done.id).update(created_at=timezone.now() - timedelta(hours=1))
    call_command("sweep_runs")
    assert "1 stale run(s)" in capsys.readouterr().out
    for run in (stale, fresh, done):
        run.refresh_from_db()
    assert (stale.status, fresh.status, done.status) == ("failed", "running", "succeeded")
    assert "interrupted" in stale.summary["text"]
