"""Admin for saved report definitions and the cached report runs (read-only)."""

from django.contrib import admin

from .models import ReportDefinition, ReportRun


@admin.register(ReportDefinition)
class ReportDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "study", "is_default", "created_by", "updated_at")
    list_select_related = ("study", "created_by")  # created_by is nullable
    list_filter = ("study", "is_default")
    search_fields = ("name", "description")
    readonly_fields = ("created_by", "created_at", "updated_at")


@admin.register(ReportRun)
class ReportRunAdmin(admin.ModelAdmin):
    """Runs are computed, never edited: they can only be looked at, or deleted to force a recompute."""

    list_display = ("study", "computed_at", "n_records", "n_screened", "duration_ms", "requested_by")
    list_select_related = ("study", "requested_by")  # requested_by is nullable
    list_filter = ("study",)
    date_hierarchy = "computed_at"
    exclude = ("numbers",)
    readonly_fields = (
        "study",
        "filters",
        "options",
        "site_ids",
        "n_screened",
        "n_records",
        "computed_at",
        "duration_ms",
        "requested_by",
        "fingerprint",
        "cache_key",
        "scope_key",
    )

    def get_queryset(self, request):
        # A run's numbers (tens of kilobytes of JSON each) are never shown here.
        return super().get_queryset(request).defer("numbers")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
