"""Demo engine URLs."""
from django.urls import path

from demos import views

app_name = "demos"
urlpatterns = [
    path("api/demos/", views.demo_list, name="demo-list"),
    path("api/demos/<slug:slug>/", views.demo_detail, name="demo-detail"),
    path("api/demos/<slug:slug>/recording/", views.demo_recording, name="demo-recording"),
    path("api/runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<uuid:run_id>/", views.run_replay, name="run-replay"),
    path("edit-and-run/", views.edit_and_run, name="edit-and-run"),
]
