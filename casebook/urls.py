"""Case-record pages."""

from django.urls import path

from . import views

app_name = "casebook"

urlpatterns = [
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/sections/<slug:key>/", views.section, name="section"),
    path("patients/<int:pk>/identity/", views.identity_edit, name="identity_edit"),
    path("patients/<int:pk>/death/", views.death_record, name="death_record"),
    path("patients/<int:pk>/move/", views.patient_move, name="patient_move"),
    path("patients/<int:pk>/diagnosis/", views.diagnosis_edit, name="diagnosis_edit"),
    path("patients/<int:pk>/lumbar-punctures/new/", views.lumbar_puncture_edit, name="lp_create"),
    path("patients/<int:pk>/lumbar-punctures/<int:lp_pk>/", views.lumbar_puncture_edit, name="lp_edit"),
    path("patients/<int:pk>/records/<slug:kind>/new/", views.record_edit, name="record_create"),
    path("patients/<int:pk>/records/<slug:kind>/<int:record_pk>/", views.record_edit, name="record_edit"),
    path(
        "patients/<int:pk>/records/<slug:kind>/<int:record_pk>/delete/",
        views.record_delete,
        name="record_delete",
    ),
    path("scores/<slug:kind>/", views.score, name="score"),
]
