"""Reader pages: the course list and a lesson. Thin views over LessonQuerySet."""
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.views.generic import DetailView, ListView

from lessons.models import Course, Lesson


class HomeView(ListView):
    template_name = "lessons/home.html"
    context_object_name = "courses"

    def get_queryset(self):
        return Course.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        lessons = Lesson.objects.visible_to(self.request.user).select_related("course")
        by_course = {}
        for lesson in lessons:
            by_course.setdefault(lesson.course_id, []).append(lesson)
        context["course_lessons"] = [(course, by_course.get(course.id, [])) for course in context["courses"]]
        return context


class LessonDetailView(DetailView):
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
        siblings = list(Lesson.objects.visible_to(self.request.user).filter(course=lesson.course).only("id", "title", "slug", "position", "course"))
        index = next(i for i, sibling in enumerate(siblings) if sibling.id == lesson.id)
        context["previous_lesson"] = siblings[index - 1] if index > 0 else None
        context["next_lesson"] = siblings[index + 1] if index + 1 < len(siblings) else None
        context["lesson_number"] = index + 1
        context["lesson_count"] = len(siblings)
        return context
