"""`{% load states %}{{ desktop.state|state_badge }}`: the badge colour of a desktop's state, one mapping for
every page that shows one (the desktop list and detail, a pool's seat grid, 我的桌面)."""

from django import template

register = template.Library()

_BADGES = {"running": "text-bg-success", "stopped": "text-bg-secondary", "error": "text-bg-danger"}


@register.filter
def state_badge(state: str) -> str:
    """Running green, stopped grey, in error red, deleted light; every state on the way somewhere yellow."""
    return _BADGES.get(state, "text-bg-light" if state == "deleted" else "text-bg-warning")
