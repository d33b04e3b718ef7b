"""Reader-facing URLs of the learning app."""
from django.urls import path

from learning import views

app_name = "learning"
urlpatterns = [
    path("api/predictions/", views.prediction_create, name="prediction-create"),
]
