"""Audit pages."""

from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("patients/<int:pk>/history/", views.patient_history, name="patient_history"),
    path("audit/export/", views.audit_export, name="export"),
]
