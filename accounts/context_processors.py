"""Navigation links for the signed-in user, by what their roles allow."""

from typing import Any

from django.urls import NoReverseMatch, reverse

from .access import Capability, has_capability

NAVIGATION = (
    ("Patients", "casebook:patient_list", (Capability.VIEW_RECORDS,)),
    ("Record status", "review:record_status", (Capability.VIEW_RECORDS,)),
    ("Queries", "review:query_list", (Capability.REVIEW, Capability.EDIT_RECORDS)),
    ("Reports", "reports:index", (Capability.RUN_REPORTS,)),
    ("Export data", "exchange:export", (Capability.VIEW_RECORDS, Capability.RUN_REPORTS)),
    ("Import", "exchange:import", (Capability.MANAGE_SITE,)),
    ("Audit export", "audit:export", (Capability.REVIEW, Capability.MANAGE_SITE)),
)


def navigation(request):
    """The links, worked out once per request: a case record renders each of its sections with the
    request's context, which runs the context processors again for each (seven times a page)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    cached = getattr(request, "_navigation", None)
    if cached is None:
        cached = request._navigation = {"nav_links": _links(request, user)}
    return cached


def _links(request, user) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = []
    current = request.resolver_match.view_name if request.resolver_match else ""
    for label, name, capabilities in NAVIGATION:
        if not any(has_capability(user, capability) for capability in capabilities):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        links.append({"label": label, "url": url, "name": name, "current": False})
    # The page's own link if it has one (Queries and Record status share a namespace), else its app's.
    exact = [link for link in links if link["name"] == current]
    for link in exact or [link for link in links if current.startswith(link["name"].split(":")[0] + ":")]:
        link["current"] = True
    return links
