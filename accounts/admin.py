"""Users and their site roles."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from simple_history.admin import SimpleHistoryAdmin

from .models import SiteMembership, User


class MembershipInline(admin.TabularInline):
    model = SiteMembership
    extra = 0


@admin.register(User)
class RegistryUserAdmin(UserAdmin):
    inlines = [MembershipInline]
    list_display = ["username", "first_name", "last_name", "email", "is_staff", "is_active"]


@admin.register(SiteMembership)
class SiteMembershipAdmin(SimpleHistoryAdmin):
    list_display = ["user", "site", "role", "granted_at"]
    list_filter = ["role", "site"]
    search_fields = ["user__username"]
