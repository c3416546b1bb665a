"""Protocol pages (reference, for every signed-in user) and the course actions of a case record."""

from django.urls import path

from . import course_views as views

app_name = "protocols"

urlpatterns = [
    path("protocols/", views.protocol_list, name="protocol_list"),
    path("protocols/<int:protocol_pk>/", views.protocol_detail, name="protocol_detail"),
    path("patients/<int:pk>/courses/new/", views.course_start, name="course_create"),
    path("patients/<int:pk>/courses/<int:course_pk>/stop/", views.course_stop, name="course_stop"),
    path(
        "patients/<int:pk>/courses/<int:course_pk>/injections/<int:injection_pk>/missed/",
        views.injection_missed,
        name="injection_missed",
    ),
]
