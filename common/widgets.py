"""Form widgets and fields that cost less than Django's on pages asked for many times a minute."""

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
    The choices' part of the key is worked out once per language for the choices a widget is given
    (a form's copies of its declared widget share it; choices set anew start afresh): the audit
    filter's ~130 labels translated for every request's key cost more than the cache saved.
    """

    @property
    def choices(self):
        return self._choices

    @choices.setter
    def choices(self, value):
        self._choices = value
        self._choices_keys = {}  # the choices as a key, per language (their labels in it)

    def __deepcopy__(self, memo):
        # A form's copy of its declared widget has the same choices: it keeps their keys too, so a
        # form built per request works them out once per language, not once per request.
        obj = super().__deepcopy__(memo)
        obj._choices_keys = self._choices_keys
        return obj

    def render(self, name, value, attrs=None, renderer=None):
        language = get_language()
        choices = self._choices_keys.get(language)
        if choices is None:
            choices = self._choices_keys[language] = _frozen(self.choices)
        key = (language, name, _frozen(value), _frozen(self.attrs), _frozen(attrs or {}), choices)
        html = _RENDERED.get(key)
        if html is None:
            html = super().render(name, value, attrs, renderer)
            if len(_RENDERED) >= _RENDERED_MAX:
                _RENDERED.clear()
            _RENDERED[key] = html
        return html


class FixedChoiceField(forms.ChoiceField):
    """A ChoiceField of fixed choices, which a form's copy of the declared field shares.

    Django deep-copies a ChoiceField's choices for every form instance: the audit filter's ~130
    actions, every request. Fixed choices are never changed in place, so the copy keeps them;
    choices set anew on a form's field replace the list, as with Django's field."""

    def __deepcopy__(self, memo):
        return super(forms.ChoiceField, self).__deepcopy__(memo)  # Field's copy: choices shared
