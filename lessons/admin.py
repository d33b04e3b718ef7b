"""Authoring: staff write, order, preview and publish lessons here.

The lesson form has a live preview beside the Markdown: the page posts the
body to `preview/` (debounced) and the server renders it exactly as saving
would (the same render_lesson_markdown, the same sanitiser), so what an author
sees is what readers get, errors included. A demo picker inserts a demo block
with presets from the demo's declared parameters (GET /api/demos/).
"""
from django.contrib import admin, messages
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from lessons.models import Course, Lesson
from lessons.rendering import LessonRenderError, render_lesson_markdown

# A preview renders what an author typed; bodies larger than this are refused rather than rendered.
PREVIEW_MAX_BODY_CHARS = 200_000


class LessonInline(admin.TabularInline):
    model = Lesson
    fields = ("position", "title", "published")
    readonly_fields = ("title",)
    extra = 0
    show_change_link = True
    can_delete = False


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "position")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [LessonInline]


@admin.register(Lesson)
class LessonAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "position", "published", "updated_at", "preview_link", "prediction_statistics")
    list_display_links = ("title",)
    list_editable = ("position", "published")
    list_filter = ("course", "kind", "published")
    search_fields = ("title", "summary", "body")
    prepopulated_fields = {"slug": ("title",)}
    fields = ("course", "title", "slug", "kind", "position", "summary", "body", "published", "prediction_statistics")
    readonly_fields = ("prediction_statistics",)
    actions = ("publish", "unpublish")
    save_on_top = True
    change_form_template = "admin/lessons/lesson/change_form.html"

    def get_urls(self):
        preview = self.admin_site.admin_view(require_POST(self.preview_view))
        return [path("preview/", preview, name="lessons_lesson_preview"), *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """POST body=<markdown>: the sanitised HTML and table of contents saving would store, or every error."""
        if not self.has_change_permission(request) and not self.has_add_permission(request):
            return JsonResponse({"errors": [{"line": None, "message": "You may not edit lessons."}]}, status=403)
        body = request.POST.get("body", "")
        if len(body) > PREVIEW_MAX_BODY_CHARS:
            message = f"The body is {len(body):,} characters; the preview renders at most {PREVIEW_MAX_BODY_CHARS:,}."
            return JsonResponse({"errors": [{"line": None, "message": message}]}, status=413)
        try:
            rendered = render_lesson_markdown(body)
        except LessonRenderError as error:
            return JsonResponse({"html": "", "toc": [], "errors": _error_list(error)})
        return JsonResponse({"html": rendered.html, "toc": rendered.toc, "errors": []})

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, str | list[str]]:
        """A new lesson goes after the last one (of the course asked for, else of all courses)."""
        initial = super().get_changeform_initial_data(request)
        if "position" not in initial:
            lessons = Lesson.objects.all()
            if initial.get("course"):
                lessons = lessons.filter(course=initial["course"])
            last = lessons.aggregate(last=Max("position"))["last"]
            initial["position"] = str(10 if last is None else last + 10)
        return initial

    def render_change_form(self, request, context, *args, **kwargs):
        context["preview_url"] = reverse("admin:lessons_lesson_preview")
        context["demos_url"] = reverse("demos:demo-list")
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description="Preview")
    def preview_link(self, lesson):
        label = "View" if lesson.published else "Preview draft"
        return format_html('<a href="{}">{}</a>', lesson.get_absolute_url(), label)

    @admin.display(description="Predictions")
    def prediction_statistics(self, lesson):
        # What readers predicted for this lesson's blocks (learning/admin.py draws the pages).
        if lesson.pk is None:
            return "-"
        return format_html('<a href="{}">Reader predictions</a>', reverse("admin:learning_prediction_lesson", args=[lesson.pk]))

    @admin.action(description="Publish the selected lessons")
    def publish(self, request, queryset):
        count = queryset.update(published=True)
        self.message_user(request, f"Published {count} lesson(s).", messages.SUCCESS)

    @admin.action(description="Unpublish the selected lessons (back to draft)")
    def unpublish(self, request, queryset):
        count = queryset.update(published=False)
        self.message_user(request, f"Unpublished {count} lesson(s).", messages.SUCCESS)


def _error_list(error: LessonRenderError) -> list[dict]:
    """Every problem the renderer found, each with its line (None when it has none)."""
    found = getattr(error, "errors", None)
    if found:
        return [{"line": line, "message": message} for line, message in found]
    return [{"line": None, "message": str(error)}]
