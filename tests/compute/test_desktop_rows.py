"""The desktop list's rows (compute/rows.py, compute/_desktop_rows.html) are what the per-row template with
its tags made of a desktop with its related rows: the same HTML for every state, owner, tenant name,
course and language, on the list page, in a row's poll and in a row after an action."""

import datetime
import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils import translation

from compute.models import Desktop
from tenants.models import Course, User
from tests.compute.conftest import desktop_of

# The row template before compute/rows.py (compute/_desktop_row.html), kept as the reference.
_BEFORE = (Path(__file__).parent / "desktop_row_before.html").read_text()

_ROW = re.compile(r'<tr id="desktop-row-(\d+)".*?</tr>\n', re.S)


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False


def _before(desktop_pk: int, language: str) -> str:
    desktop = Desktop.objects.get(pk=desktop_pk)  # related rows read as the old template read them
    with translation.override(language):
        return Template(_BEFORE).render(Context({"desktop": desktop}))


@pytest.fixture
def desktops(scenario, compute_env):
    course = Course.objects.create(
        tenant=scenario.tenant_a,
        code="CS<201>",
        name="操作系统",
        teacher=scenario.teacher,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 15),
    )
    scenario.tenant_a.name_en = "School & Co"
    scenario.tenant_a.save(update_fields=["name_en"])
    owners = [
        None,  # a spare seat's desktop
        scenario.student,
        User.objects.create(username="rows-full", first_name="Ann", last_name="Lee"),
        User.objects.create(username="rows-bare"),
        User.objects.create(username="rows-shown", display_name="张三 <b>"),
    ]
    made = []
    for n, state in enumerate(Desktop.State.values):
        desktop = desktop_of(
            scenario.tenant_a, env=compute_env, owner=owners[n % 5], state=state, course=course if n % 2 else None
        )
        desktop.name = f'desk-{n} <"&>' if n % 3 == 0 else desktop.name
        desktop.error_reason = ("quota exceeded", "libvirt: <raw>\nTraceback")[n % 2] if state == "error" else ""
        desktop.memory_mib = 1536 * (n + 1)
        desktop.save()
        made.append(desktop)
    return made


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_list_rows_are_what_the_per_row_template_made(scenario, desktops, language):
    client = Client()
    client.force_login(scenario.tenant_admin)
    client.cookies["django_language"] = language
    page = client.get("/compute/").content.decode()
    rows = {int(m.group(1)): m.group(0) for m in _ROW.finditer(page)}
    shown = [d for d in desktops if d.state != Desktop.State.DELETED]

    assert set(rows) == {d.pk for d in shown}
    for desktop in shown:
        assert rows[desktop.pk] == _before(desktop.pk, language), desktop.state


def test_a_rows_poll_and_a_row_after_an_action_are_the_same_rows(scenario, desktops):
    client = Client()
    client.force_login(scenario.tenant_admin)
    for desktop in desktops:
        assert client.get(f"/compute/desktops/{desktop.pk}/row/").content.decode() == _before(desktop.pk, "zh-hans")
    running = next(d for d in desktops if d.state == Desktop.State.RUNNING)
    Desktop.objects.filter(pk=running.pk).update(state=Desktop.State.STOPPED)  # what stopping leads to

    after = client.post(f"/compute/desktops/{running.pk}/stop/", HTTP_HX_REQUEST="true").content.decode()

    assert after == _before(running.pk, "zh-hans")
