"""Courses and lessons. A lesson keeps its Markdown and the HTML rendered from it."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse

from lessons.rendering import LessonRenderError, render_lesson_markdown


def content_changed() -> None:
    """Invalidate cached reader pages now, and again once the change is committed
    (a reader arriving in between could otherwise cache the old page)."""
    from lessons.services import content_changed as bump  # services imports models

    bump()
    transaction.on_commit(bump)


class Course(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    summary = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Courses are listed by this number, smallest first.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "title"]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        content_changed()


class LessonQuerySet(models.QuerySet):
    def published(self) -> LessonQuerySet:
        return self.filter(published=True)

    def update(self, **kwargs) -> int:
        # Bulk updates (admin actions, reordering) skip save(); pages still go stale.
        updated = super().update(**kwargs)
        content_changed()
        return updated

    def visible_to(self, user) -> LessonQuerySet:
        """Readers see published lessons; staff also see drafts."""
        if user.is_active and user.is_staff:
            return self.all()
        return self.published()


DEMO_HELP = """Markdown. Fenced blocks (three backticks and a kind) add the interactive parts; each is checked when you
save, and every problem is listed with its line.
<code>demo SLUG</code>: a live demo; its lines are preset parameters, <code>name: value</code>.
Compare: a line <code>---</code> starts a second configuration, and the demo opens with runs A and B side by side.
<code>demo-steps SLUG</code>: the step mode of a demo that has one (<code>scenario: NAME</code>).
<code>demo-planned SLUG</code>: marks where a demo that is not built yet will go.
<code>prediction</code>, right after a demo block: <code>question:</code>, <code>answer: number</code> (with
<code>tolerance: 25%</code>, optional <code>range: 0..5000</code>) or <code>answer: choice</code> (with
<code>choices: A = ... | B = ...</code>), <code>key:</code> a summary key of the demo, <code>explain:</code>;
after a compare block also <code>measure: faster</code> or <code>measure: ratio</code>.
<code>quiz</code>: a check question, <code>question:</code> then choices <code>- [ ] text :: why</code> with one
<code>- [x]</code>, or <code>answer: NUMBER</code> with <code>explain:</code>.
The full reference is docs/authoring.md; <a href="/api/demos/">/api/demos/</a> lists the demos, their
parameters and summary keys."""


class Lesson(models.Model):
    class Kind(models.TextChoices):
        LESSON = "lesson", "Lesson"
        REFERENCE = "reference", "Reference page (glossary, cheat sheet): not numbered among the lessons"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="lessons")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, help_text="Part of the lesson's address; unique within its course.")
    position = models.PositiveIntegerField(default=0, help_text="Lessons are read in this order, smallest first.")
    summary = models.CharField(max_length=300, blank=True, help_text="One sentence shown in the lesson list.")
    body = models.TextField(help_text=DEMO_HELP)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.LESSON)
    body_html = models.TextField(editable=False, default="")
    # The interactive blocks (predictions, check questions) parsed from `body` on save: what the server checks
    # a reader's answers against, without parsing Markdown on every request.
    blocks = models.JSONField(editable=False, default=list)
    toc = models.JSONField(editable=False, default=list)
    published = models.BooleanField(default=False, help_text="Only published lessons are visible to readers.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LessonQuerySet.as_manager()

    class Meta:
        ordering = ["course", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["course", "slug"], name="lesson_slug_unique_in_course")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        # Render on save so that reading a lesson does no Markdown work.
        rendered = render_lesson_markdown(self.body)
        self.body_html = rendered.html
        self.toc = rendered.toc
        self.blocks = rendered.blocks
        super().save(*args, **kwargs)
        content_changed()

    def get_absolute_url(self) -> str:
        return reverse("lessons:lesson", kwargs={"course_slug": self.course.slug, "lesson_slug": self.slug})

    def clean(self) -> None:
        try:
            render_lesson_markdown(self.body)
        except LessonRenderError as error:
            # One message per problem, so the admin lists them all under the body.
            raise ValidationError({"body": [f"line {line}: {message}" for line, message in error.errors]}) from error

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        content_changed()
        return result
