"""The API asks the same access layer as the pages: reading needs case-record rights at the record's
site, writing needs edit rights there. Objects outside the user's sites are never found (404)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.access import has_capability, site_of


class CaseRecordPermission(BasePermission):
    message = "Your role does not allow changes to case records at this site."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        return has_capability(request.user, view.write_capability)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        site = site_of(obj)
        return (
            has_capability(request.user, view.write_capability, site) if site else request.user.is_superuser
        )
