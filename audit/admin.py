"""Security events are shown read-only to superusers."""

from django.contrib import admin

from .models import SecurityEvent


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "kind", "user", "username", "ip_address", "path"]
    list_select_related = ["user"]  # nullable: the admin's own select_related() would skip it
    list_filter = ["kind"]
    search_fields = ["username", "user__username", "path"]
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser
