"""Load the shipped course content where it is missing (`make run` calls this)."""
from django.core.management.base import BaseCommand

from lessons.services import course_load, lessons_rerender, shipped_courses


class Command(BaseCommand):
    help = "Create the shipped courses and lessons that are missing; --refresh overwrites existing ones."

    def add_arguments(self, parser):
        parser.add_argument("--refresh", action="store_true", help="overwrite lessons with the shipped text")

    def handle(self, *args, refresh=False, **options):
        for directory in shipped_courses():
            report = course_load(directory=directory, refresh=refresh)
            self.stdout.write(
                f"{directory.name}: {report.created} created, {report.updated} refreshed, {report.kept} kept as they were"
            )
        for problem in lessons_rerender():
            self.stderr.write(f"kept the old page of {problem}")
