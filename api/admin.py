"""API tokens in the admin: administrators see who holds which token and revoke them (audited)."""

from django.contrib import admin, messages
from knox.models import AuthToken

from .tokens import tokens_revoke

admin.site.unregister(AuthToken)  # knox's own admin would let a deletion go unrecorded


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ["token_key", "user", "created", "expiry"]
    list_select_related = ["user"]
    search_fields = ["token_key", "user__username"]
    readonly_fields = ["token_key", "user", "created", "expiry"]
    fields = ("token_key", "user", "created", "expiry")
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False  # tokens are issued by the token endpoint, to their owner only

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # revoking is the audited action below

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("revoke_tokens", None)
        return actions

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        count = tokens_revoke(
            queryset, actor=request.user, request=request, why="revoked by an administrator"
        )
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
