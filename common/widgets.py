"""Form widgets that cost less than Django's on pages asked for many times a minute."""

from django import forms
from django.utils.translation import get_language

# Rendered selects by (language, name, value, attributes, choices); cleared when full.
_RENDERED: dict[tuple, str] = {}
_RENDERED_MAX = 512


def _frozen(value) -> tuple:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return (str(value),)


class CachedSelect(forms.Select):
    """A Select of fixed choices whose HTML is made once per language, value and attributes.

    Django renders every ``<option>`` through a template: the audit log's filter of ~130 actions
    took longer to render than the page's 50 events. The HTML is Django's own, kept in the
    process by everything it depends on (the choices' labels in the current language included,
    so a changed label makes a new entry); at most ``_RENDERED_MAX`` entries, then it starts over.
    For fixed choices only: choices read from the database would be read to make the key anyway.
    """

    def render(self, name, value, attrs=None, renderer=None):
        key = (get_language(), name, _frozen(value), _frozen(self.attrs), _frozen(attrs or {}), _frozen(self.choices))
        html = _RENDERED.get(key)
        if html is None:
            html = super().render(name, value, attrs, renderer)
            if len(_RENDERED) >= _RENDERED_MAX:
                _RENDERED.clear()
            _RENDERED[key] = html
        return html
