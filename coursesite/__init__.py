"""The course site project package.

Importing the Celery app here makes `shared_task` bind to it whenever Django
starts (the layout of celery's examples/django/proj).
"""
from .celery import app as celery_app

__all__ = ("celery_app",)
