"""A reader's prediction, kept without an account or any personal data.

The reader is known only by a keyed hash of the random token their browser made: the raw
token is never stored, so a leaked table cannot be matched to a browser, and no address, user
or header is kept. A row also keeps what the run measured, so the statistics survive the
run records being cleared.
"""
from django.db import models

from demos.models import Run
from lessons.models import Lesson


class Prediction(models.Model):
    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="predictions")
    block = models.CharField(max_length=100, help_text="The prediction block's id within the lesson.")
    demo = models.CharField(max_length=100, help_text="The demo the block asks about (as the runs recorded it).")
    reader = models.CharField(max_length=64, help_text="HMAC-SHA256 of the browser's reader token, keyed by SECRET_KEY.")
    skipped = models.BooleanField(default=False)
    answer_number = models.FloatField(null=True, blank=True)
    answer_choice = models.CharField(max_length=100, blank=True)
    # The run it was checked against (side A of a compare), and side B. Kept null if a run record is deleted:
    # the measured value below stays.
    run = models.ForeignKey(Run, null=True, on_delete=models.SET_NULL, related_name="+")
    run_b = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    measured_number = models.FloatField(null=True, blank=True)
    measured_choice = models.CharField(max_length=100, blank=True)
    close = models.BooleanField(null=True, help_text="Within tolerance (number) or the measured choice; empty when "
                                                     "skipped or nothing was measured.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["lesson", "block"]), models.Index(fields=["demo"])]

    def __str__(self) -> str:
        return f"{self.block} ({self.lesson_id}): {self.answer_text}"

    @property
    def answer_text(self) -> str:
        """The guess as a reader gave it, or "skipped"."""
        if self.skipped:
            return "skipped"
        return self.answer_choice or f"{self.answer_number:g}"

    @property
    def measured(self) -> float | str | None:
        """What the run(s) measured: a number, a choice key, or None."""
        return self.measured_number if self.measured_number is not None else (self.measured_choice or None)


class DemoDashboard(Run):
    """No table of its own: gives the staff dashboard (runs and predictions per demo) its place in the admin index."""

    class Meta:
        proxy = True
        verbose_name = "demo dashboard"
        verbose_name_plural = "demo dashboard"
