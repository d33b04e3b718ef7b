"""Top-level URLs."""
from django.contrib import admin
from django.urls import include, path

from coursesite import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("hello", views.hello, name="hello"),
    path("admin/", admin.site.urls),
    path("", include("demos.urls")),
    path("", include("learning.urls")),
    path("", include("lessons.urls")),
]
