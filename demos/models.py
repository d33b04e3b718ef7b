"""A recorded demo run: what was asked, how it ended, and what streamed."""
from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import MD5, Cast

# Events kept per run for replay; a run that streams more keeps the first ones
# and counts the rest in `events_dropped`.
MAX_STORED_EVENTS = 25_000


def params_digest(params: models.Expression | str = "params") -> MD5:
    """md5 of a run's parameters as PostgreSQL writes jsonb out (keys in its own order, so key order never matters)."""
    source = models.F(params) if isinstance(params, str) else params
    return MD5(Cast(source, models.TextField()))


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
    # The two runs of one side-by-side compare share a group; the widget names the group and the side.
    compare_group = models.UUIDField(null=True, blank=True)
    compare_side = models.CharField(max_length=1, blank=True, default="", choices=[("A", "A"), ("B", "B")])
    # Where the reader started the run: a lesson and its demo block (1-based), checked before they are stored.
    origin_lesson = models.ForeignKey("lessons.Lesson", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    origin_block = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["compare_group"], condition=models.Q(compare_group__isnull=False), name="run_compare_group"),
            # The newest succeeded run of a demo with given parameters (the recording a turned-away reader is offered):
            # a hash of the parameters, since a program among them can be too long for an index entry.
            models.Index(models.F("demo"), params_digest(), models.F("created_at").desc(),
                         condition=models.Q(status="succeeded"), name="run_recording_lookup"),
        ]

    def __str__(self) -> str:
        return f"{self.demo} {self.id} ({self.status})"

    def compare_partner(self) -> Run | None:
        """The other side of this run's compare: the earliest run of its group on the other side, if any."""
        if self.compare_group is None or not self.compare_side:
            return None
        return (Run.objects.filter(compare_group=self.compare_group).exclude(compare_side=self.compare_side)
                .exclude(compare_side="").exclude(id=self.id).order_by("created_at").first())
