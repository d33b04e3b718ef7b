"""Reader pages: the course list and a lesson. Thin views over LessonQuerySet.

Anonymous readers' pages are cached, keyed by a content version that every
save bumps, and served from the cache by lessons.middleware; staff always get
a fresh page (they may see drafts).
"""
from typing import Any

from django.core.cache import caches
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import SimpleTemplateResponse
from django.views.generic import DetailView, ListView, View

from coursesite.compression import compressed_copy
from lessons.models import Course, Lesson
from lessons.services import CACHE_ERRORS, reader_page_key

READER_PAGE_TTL_S = 600


class CachedForReadersMixin(View):
    """Cache what anonymous readers get; lessons.middleware serves the cached copies."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """Answer the request; file an anonymous reader's GET (or HEAD) page under the current content version."""
        key = None
        if request.method in ("GET", "HEAD") and not request.user.is_authenticated:
            try:
                # The version is read before the content: an edit made meanwhile bumps it,
                # so a page rendered from older content is never filed under the newer version.
                key = reader_page_key(path=request.path)
            except CACHE_ERRORS:  # Redis down: readers still get the page, just uncached
                pass
        response = super().dispatch(request, *args, **kwargs)
        # The reader views answer with template responses; anything else would pass through uncached.
        if key is not None and isinstance(response, SimpleTemplateResponse):
            response.add_post_render_callback(lambda rendered: _cache_quietly(key, rendered))
        return response


def _cache_quietly(key, response) -> None:
    # Both copies are kept, so that serving a page from the cache never compresses on the event loop.
    cached = {"plain": response, "gzip": compressed_copy(response)}
    try:
        caches["pages"].set(key, cached, READER_PAGE_TTL_S)
    except CACHE_ERRORS:
        pass


class HomeView(CachedForReadersMixin, ListView):
    template_name = "lessons/home.html"
    context_object_name = "courses"

    def get_queryset(self):
        return Course.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        lessons = Lesson.objects.visible_to(self.request.user).select_related("course")
        by_course: dict[int, list[Lesson]] = {}
        for lesson in lessons:
            by_course.setdefault(lesson.course_id, []).append(lesson)
        # Each course: its numbered lessons, then its reference pages (glossary, cheat sheet) apart.
        context["course_lessons"] = [
            (
                course,
                [lesson for lesson in by_course.get(course.id, []) if lesson.kind == Lesson.Kind.LESSON],
                [lesson for lesson in by_course.get(course.id, []) if lesson.kind == Lesson.Kind.REFERENCE],
            )
            for course in context["courses"]
        ]
        return context


class LessonDetailView(CachedForReadersMixin, DetailView):
    template_name = "lessons/lesson_detail.html"
    context_object_name = "lesson"

    def get_object(self, queryset=None):
        course = get_object_or_404(Course, slug=self.kwargs["course_slug"])
        lesson = Lesson.objects.visible_to(self.request.user).filter(course=course, slug=self.kwargs["lesson_slug"]).first()
        if lesson is None:
            raise Http404("No such lesson")
        return lesson

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        lesson = self.object
        # Neighbours among what this reader may see, in reading order.
        visible = Lesson.objects.visible_to(self.request.user).filter(course=lesson.course)
        siblings = list(visible.only("id", "title", "slug", "position", "course", "kind"))
        index = next(i for i, sibling in enumerate(siblings) if sibling.id == lesson.id)
        context["previous_lesson"] = siblings[index - 1] if index > 0 else None
        context["next_lesson"] = siblings[index + 1] if index + 1 < len(siblings) else None
        # Reference pages (glossary, cheat sheet) are read beside the lessons, not counted among them.
        numbered = [sibling for sibling in siblings if sibling.kind == Lesson.Kind.LESSON]
        context["lesson_number"] = next((i + 1 for i, s in enumerate(numbered) if s.id == lesson.id), None)
        context["lesson_count"] = len(numbered)
        return context
