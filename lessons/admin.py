"""Authoring: staff write, order, preview and publish lessons here."""
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from lessons.models import Course, Lesson


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
