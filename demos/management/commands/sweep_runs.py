"""Mark runs left 'running' by a stopped server as failed (`make run` calls this at start-up)."""
from django.core.management.base import BaseCommand

from demos.tasks import sweep_stale_runs


class Command(BaseCommand):
    help = "Mark runs still 'running' long past every demo's time limit as failed."

    def handle(self, *args, **options):
        swept = sweep_stale_runs()  # called directly, not queued: start-up needs it done
        self.stdout.write(f"{swept} stale run(s) marked as failed")
