"""Cohort report pages under /reports/."""

from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("", views.report_index, name="index"),
    path("<int:pk>/", views.report_detail, name="detail"),
    path("<int:pk>/save/", views.report_save, name="save"),
    path("<int:pk>/figures/<str:key>.svg", views.report_figure, name="figure"),
    path("<int:pk>/runs/<int:run_pk>/figures/<str:key>.svg", views.run_figure, name="run_figure"),
    path(
        "<int:pk>/runs/<int:run_pk>/figures/<str:key>/inline",
        views.run_figure_inline,
        name="run_figure_inline",
    ),
    *(
        path(f"<int:pk>/report.{fmt}", views.report_download, {"fmt": fmt}, name=fmt)
        for fmt in ("html", "pdf", "xlsx", "json")
    ),
    path("<int:pk>/dataset.zip", views.dataset_download, name="dataset"),
]
