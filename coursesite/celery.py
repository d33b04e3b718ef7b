"""Celery application for the course site: worker-placed demos run here."""
import os

from celery import Celery

from demos.discovery import demo_packages

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coursesite.settings.dev")

app = Celery("coursesite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# A demo package's own jobs (its `tasks.py`), whether or not it is a Django app.
app.autodiscover_tasks(demo_packages)
