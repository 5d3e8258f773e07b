"""portal/templatetags/states.py: one colour per desktop state on every page that shows one."""

from django.template import Context, Template

from compute.models import Desktop
from portal.templatetags.states import state_badge


def test_every_state_has_its_colour():
    colours = {state: state_badge(state) for state in Desktop.State.values}
    assert colours["running"] == "text-bg-success"
    assert colours["stopped"] == "text-bg-secondary"
    assert colours["error"] == "text-bg-danger"
    assert colours["deleted"] == "text-bg-light"
    assert colours["provisioning"] == colours["starting"] == "text-bg-warning"


def test_the_seat_badge_and_the_desktop_badge_agree():
    desktop = Desktop(state="error")
    seat = Template('{% include "classroom/_state.html" %}').render(Context({"desktop": desktop}))
    listed = Template('{% include "compute/_desktop_state.html" %}').render(Context({"desktop": desktop}))
    assert 'class="badge text-bg-danger"' in seat and 'class="badge text-bg-danger"' in listed
