"""`{% load navigation %}{% nav_links nav_items %}`: base.html's sidebar entries, rendered once per language and
entries and then reused: every page of a role shows the same ~20 links (one of them active), and rendering
them through the template cost each page about as much as a table of 20 rows."""

from django import template
from django.template.loader import render_to_string
from django.utils.translation import get_language

register = template.Library()

# Rendered entries by (language, the entries' URLs, icons, labels and which is active); cleared when full.
_RENDERED: dict[tuple, str] = {}
_RENDERED_MAX = 256


@register.simple_tag
def nav_links(items) -> str:
    key = (get_language(), tuple((item["url"], item["icon"], str(item["label"]), item["active"]) for item in items))
    html = _RENDERED.get(key)
    if html is None:
        html = render_to_string("portal/_nav_links.html", {"nav_items": items})
        if len(_RENDERED) >= _RENDERED_MAX:
            _RENDERED.clear()
        _RENDERED[key] = html
    return html
