"""`{% load states %}{{ desktop.state|state_badge }}`: the badge colour of a desktop's state, one mapping for
every page that shows one (the desktop list and detail, a pool's seat grid, 我的桌面)."""

from django import template

from compute import rows

register = template.Library()


@register.filter
def state_badge(state: str) -> str:
    """Running green, stopped grey, in error red, deleted light; every state on the way somewhere yellow
    (the mapping is compute.rows.state_badge's, which also colours the desktop list's rows)."""
    return rows.state_badge(state)
