"""common.widgets.CachedSelect: Django's own HTML, once per language, value and attributes."""

from django import forms
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from audit.forms import EventFilterForm
from common.widgets import CachedSelect

CHOICES = [("", _("全部")), (_("桌面"), [("desktop.created", _("创建桌面")), ("desktop.deleted", _("删除桌面"))])]


def test_the_html_is_djangos_for_every_value_and_language():
    cached, plain = CachedSelect(choices=CHOICES), forms.Select(choices=CHOICES)
    for language in ("zh-hans", "en"):
        with translation.override(language):
            for value in ("", "desktop.created", "desktop.deleted", "no-such-action"):
                attrs = {"id": "id_action", "class": "form-select"}
                assert cached.render("action", value, attrs) == plain.render("action", value, attrs)
                assert cached.render("action", value, attrs) == plain.render("action", value, attrs)  # from the cache
    with translation.override("zh-hans"):
        chinese = cached.render("action", "desktop.created")
    with translation.override("en"):
        english = cached.render("action", "desktop.created")
    assert ">全部<" in chinese and ">All<" in english
    assert 'value="desktop.created" selected' in chinese


def test_the_audit_filter_shows_the_chosen_action_selected_and_no_other():
    first = str(EventFilterForm({"action": "desktop.created"})["action"])
    second = str(EventFilterForm({"action": "desktop.deleted"})["action"])
    assert 'value="desktop.created" selected' in first and 'value="desktop.deleted" selected' not in first
    assert 'value="desktop.deleted" selected' in second and 'value="desktop.created" selected' not in second


def test_a_forms_fields_share_the_declared_choices_and_new_choices_are_their_own():
    declared = EventFilterForm.base_fields["action"]
    first, second = EventFilterForm(), EventFilterForm()
    assert first.fields["action"].choices is declared.choices is second.fields["action"].choices

    first.fields["action"].choices = [("desktop.created", "only this one")]

    assert "only this one" in str(first["action"]) and "only this one" not in str(second["action"])
    assert 'value="desktop.deleted"' in str(second["action"]) and 'value="desktop.deleted"' not in str(first["action"])
    assert declared.choices is second.fields["action"].choices


def test_the_choices_key_is_worked_out_once_per_language_for_every_copy():
    with translation.override("en"):
        str(EventFilterForm()["action"])
        keys = EventFilterForm.base_fields["action"].widget._choices_keys
        assert "en" in keys
        again = EventFilterForm()
        assert again.fields["action"].widget._choices_keys is keys
        assert ">All<" in str(again["action"])


def test_the_request_filters_selects_are_djangos_for_every_value():
    from tenants.forms import RequestFilterForm

    for name in ("state", "kind"):
        choices = RequestFilterForm.base_fields[name].choices
        plain = forms.Select(choices=choices, attrs={"class": "form-select"})
        for language in ("zh-hans", "en"):
            with translation.override(language):
                for value, _label in choices:
                    form = RequestFilterForm({name: value})
                    assert str(form[name]) == plain.render(name, value, {"id": f"id_{name}"}), (name, value)
