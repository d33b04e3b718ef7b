"""Reader URLs: / and /<course>/<lesson>/."""
from django.urls import path

from lessons import views

app_name = "lessons"
urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("<slug:course_slug>/<slug:lesson_slug>/", views.LessonDetailView.as_view(), name="lesson"),
]
