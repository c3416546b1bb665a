"""Review workflow pages."""

from django.urls import path

from . import review_views as views
from . import status_views

app_name = "review"

urlpatterns = [
    path("patients/<int:pk>/review/<slug:key>/submit/", views.section_submit, name="submit"),
    path("patients/<int:pk>/review/<slug:key>/verify/", views.section_verify, name="verify"),
    path("patients/<int:pk>/review/<slug:key>/unlock/", views.unlock, name="unlock"),
    path("patients/<int:pk>/review/lock/", views.lock, name="lock"),
    path("patients/<int:pk>/review/submit-all/", views.patient_submit, name="patient_submit"),
    path("patients/<int:pk>/review/verify-all/", views.patient_verify, name="patient_verify"),
    path("patients/<int:pk>/review/<slug:key>/queries/new/", views.query_raise, name="query_raise"),
    path("queries/checks/", views.quality_sweep, name="quality_sweep"),
    path("queries/<int:query_pk>/<slug:action>/", views.query_reply, name="query_reply"),
    path("queries/", views.query_list, name="query_list"),
    path("record-status/", status_views.record_status, name="record_status"),
]
