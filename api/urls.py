"""API routes: /api/ (nested where natural), the OpenAPI schema and its interactive page."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework_nested import routers

from . import tokens, views

app_name = "api"

router = routers.SimpleRouter()
router.register("sites", views.SiteViewSet, basename="site")
router.register("studies", views.StudyViewSet, basename="study")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("protocols", views.ProtocolViewSet, basename="protocol")
router.register("screening-log", views.ScreeningLogViewSet, basename="screening-log")

patients = routers.NestedSimpleRouter(router, "patients", lookup="patient")
for prefix, viewset in views.VIEWSETS.items():
    patients.register(prefix, viewset, basename=f"patient-{prefix}")

npsle = routers.NestedSimpleRouter(patients, "npsle-diagnosis", lookup="diagnosis")
npsle.register("manifestations", views.MANIFESTATIONS, basename="npsle-manifestation")
lm = routers.NestedSimpleRouter(patients, "lm-diagnosis", lookup="diagnosis")
lm.register("mutations", views.MUTATIONS, basename="lm-mutation")
punctures = routers.NestedSimpleRouter(patients, "lumbar-punctures", lookup="lp")
punctures.register("csf", views.CSF, basename="lp-csf")
punctures.register("doses", views.DOSES, basename="lp-dose")
csf = routers.NestedSimpleRouter(punctures, "csf", lookup="csf")
csf.register("pathogen-tests", views.PATHOGEN_TESTS, basename="csf-pathogen-test")

urlpatterns = [
    path("", include(router.urls)),
    path("", include(patients.urls)),
    path("", include(npsle.urls)),
    path("", include(lm.urls)),
    path("", include(punctures.urls)),
    path("", include(csf.urls)),
    path("auth/token/", tokens.TokenObtainView.as_view(), name="token"),
    path("auth/token/revoke/", tokens.TokenRevokeCurrentView.as_view(), name="token-revoke"),
    path("auth/tokens/", tokens.TokenListView.as_view(), name="tokens"),
    path("auth/tokens/<str:token_key>/", tokens.TokenDetailView.as_view(), name="token-detail"),
    # The schema describes operations, never data: public, so clients and tools can read it.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    # The split view serves its start-up script as a file, so the page keeps the script-src 'self' policy.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
