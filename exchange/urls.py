"""Import and export pages."""

from django.urls import path

from . import views

app_name = "exchange"

urlpatterns = [
    path("import/", views.import_upload, name="import"),
    path("import/<int:batch_pk>/apply/", views.import_apply, name="import_apply"),
    path("export/", views.export, name="export"),
]
