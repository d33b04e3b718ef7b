"""A recorded demo run: what was asked, how it ended, and what streamed."""
import uuid

from django.db import models

# Events kept per run for replay; a run that streams more keeps the first ones
# and counts the rest in `events_dropped`.
MAX_STORED_EVENTS = 25_000


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        TIMED_OUT = "timed_out"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    demo = models.CharField(max_length=100)
    placement = models.CharField(max_length=10)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    summary = models.JSONField(default=dict)
    events = models.JSONField(default=list)
    events_dropped = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.demo} {self.id} ({self.status})"
