"""Staff pages: what readers predicted for each block of a lesson (chart, table, CSV) and a dashboard per demo.

The pages hang off the Prediction admin (so they share its permission: viewing predictions);
the dashboard is the change list of a proxy model, which gives it a place in the admin index.
"""
from __future__ import annotations

import csv

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from learning.charts import choices_svg, histogram_svg
from learning.models import DemoDashboard, Prediction
from learning.stats import MIN_FOR_PERCENT, block_statistics, demo_dashboard, lesson_prediction_counts
from lessons.models import Lesson


def prediction_blocks(lesson: Lesson) -> list[dict]:
    """The lesson's prediction blocks, in lesson order."""
    return [block for block in lesson.blocks or [] if isinstance(block, dict) and block.get("kind") == "prediction"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "lesson", "block", "answer_text", "measured", "close")
    list_filter = ("lesson", "close", "skipped")
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("lesson/<int:lesson_id>/", view(self.lesson_view), name="learning_prediction_lesson"),
            path("lesson/<int:lesson_id>/<str:block_id>/", view(self.block_view), name="learning_prediction_block"),
            path("lesson/<int:lesson_id>/<str:block_id>/csv/", view(self.csv_view), name="learning_prediction_csv"),
            *super().get_urls(),
        ]

    def _lesson_and_block(self, request: HttpRequest, lesson_id: int, block_id: str | None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        lesson = get_object_or_404(Lesson.objects.select_related("course"), id=lesson_id)
        if block_id is None:
            return lesson, None
        block = next((b for b in prediction_blocks(lesson) if b.get("id") == block_id), None)
        if block is None:
            raise Http404("This lesson has no such prediction block.")
        return lesson, block

    def lesson_view(self, request: HttpRequest, lesson_id: int) -> TemplateResponse:
        """Every prediction block of a lesson with how many predicted and skipped, each linking to its page."""
        lesson, _ = self._lesson_and_block(request, lesson_id, None)
        counts = lesson_prediction_counts(lesson_id=lesson.id)
        rows = [(block, counts.get(block["id"], {"predicted": 0, "skipped": 0})) for block in prediction_blocks(lesson)]
        return TemplateResponse(request, "learning/admin/lesson_predictions.html", {
            **self.admin_site.each_context(request), "title": f"Predictions: {lesson.title}",
            "lesson": lesson, "rows": rows, "opts": self.model._meta,
        })

    def block_view(self, request: HttpRequest, lesson_id: int, block_id: str) -> TemplateResponse:
        """One block: counts, the distribution of guesses against the measured values, share close, top wrong choice."""
        lesson, block = self._lesson_and_block(request, lesson_id, block_id)
        stats = block_statistics(lesson_id=lesson.id, block=block)
        unit = block.get("unit") or ""
        chart = (histogram_svg(stats.bins, stats.measured_values, unit=unit, ident="prediction-chart")
                 if block["answer"] == "number" else choices_svg(stats.choices, ident="prediction-chart"))
        wrong_label = None
        if stats.most_common_wrong:
            labels = {c.key: c.label for c in stats.choices}
            wrong_label = labels.get(stats.most_common_wrong[0], stats.most_common_wrong[0])
        return TemplateResponse(request, "learning/admin/block_statistics.html", {
            **self.admin_site.each_context(request), "title": f"Prediction {block['id']}",
            "lesson": lesson, "prediction": block, "stats": stats, "chart": chart, "unit": unit,
            "wrong_label": wrong_label, "opts": self.model._meta,
            "csv_url": reverse("admin:learning_prediction_csv", args=[lesson.id, block["id"]]),
            "lesson_url": reverse("admin:learning_prediction_lesson", args=[lesson.id]),
        })

    def csv_view(self, request: HttpRequest, lesson_id: int, block_id: str) -> HttpResponse:
        """Every prediction of one block as CSV, oldest first (reader is the keyed hash, shortened)."""
        lesson, block = self._lesson_and_block(request, lesson_id, block_id)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="predictions-{lesson.id}-{block["id"]}.csv"'
        writer = csv.writer(response)
        writer.writerow(["created_at", "reader", "skipped", "answer", "measured", "close", "run", "run_b"])
        for p in Prediction.objects.filter(lesson=lesson, block=block["id"]).order_by("created_at", "id"):
            answer = "" if p.skipped else p.answer_text
            measured = "" if p.measured is None else (f"{p.measured:g}" if isinstance(p.measured, float) else p.measured)
            close = "" if p.close is None else ("yes" if p.close else "no")
            writer.writerow([p.created_at.isoformat(), p.reader[:12], "yes" if p.skipped else "no", answer, measured, close,
                             p.run_id or "", p.run_b_id or ""])
        return response


@admin.register(DemoDashboard)
class DemoDashboardAdmin(admin.ModelAdmin):
    """The dashboard in place of a change list: nothing here is edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(request, "learning/admin/dashboard.html", {
            **self.admin_site.each_context(request), "title": "Demo dashboard", "rows": demo_dashboard(),
            "min_for_percent": MIN_FOR_PERCENT, "opts": self.model._meta,
        })
