"""URL configuration: sign-in, the case-record pages, reports and the admin."""

from django.contrib import admin
from django.urls import include, path

from casebook.views import home

handler403 = "audit.views.permission_denied"
handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"

urlpatterns = [
    path("", home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("casebook.urls")),
    path("", include("audit.urls")),
    path("", include("casebook.review_urls")),
    path("", include("casebook.course_urls")),
    path("reports/", include("analytics.urls")),
    path("api/", include("api.urls")),
    path("data/", include("exchange.urls")),
    path("jobs/", include("jobs.urls")),
    path("admin/", admin.site.urls),
]
