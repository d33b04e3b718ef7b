"""Recorded runs, read-only in the admin (handy when a reader reports a problem)."""
from django.contrib import admin

from demos.models import Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "demo", "status", "created_at", "finished_at")
    list_filter = ("status", "demo")
    readonly_fields = ("id", "demo", "placement", "params", "status", "summary", "events_dropped", "created_at", "finished_at")
    exclude = ("events",)

    def has_add_permission(self, request):
        return False
