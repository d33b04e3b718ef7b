"""The learning app: predictions readers make before a run, and the statistics authors read."""
from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = "Learning"
    default_auto_field = "django.db.models.BigAutoField"
