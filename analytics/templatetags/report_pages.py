"""Links between the pages of a long report table that keep the report's filters and options."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def with_param(context: template.Context, param: str, value: int) -> str:
    """This page's query string with ``param`` set to ``value`` (every other parameter kept)."""
    query = context["request"].GET.copy()
    query[param] = str(value)
    return "?" + query.urlencode()
