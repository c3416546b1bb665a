"""Import and export pages."""

from django.urls import path

from . import views

app_name = "exchange"

urlpatterns = [
    path("import/", views.import_upload, name="import"),
    path("import/<int:batch_pk>/apply/", views.import_apply, name="import_apply"),
    path("import/jobs/<uuid:job_id>/", views.import_job_result, name="import_job_result"),
    path("export/", views.export, name="export"),
    path("export/jobs/<uuid:job_id>/", views.export_download, name="export_download"),
]
