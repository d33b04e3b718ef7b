"""Mark runs left 'running' by a stopped server as failed (`make run` calls this at start-up)."""
from datetime import timedelta

from django.core.management.base import BaseCommand

from demos.registry import DEMOS
from demos.services import run_sweep_stale


class Command(BaseCommand):
    help = "Mark runs still 'running' long past every demo's time limit as failed."

    def handle(self, *args, **options):
        # Past the longest time limit plus the worker watchdog's grace, no run can still be live.
        longest = max((demo.time_limit_s for demo in DEMOS.values()), default=60)
        swept = run_sweep_stale(older_than=timedelta(seconds=longest + 30))
        self.stdout.write(f"{swept} stale run(s) marked as failed")
