"""Destructive actions ask once, in the page's own dialog; other actions do not ask at all."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_resetting_a_whole_pool_asks_once_in_the_pages_dialog_and_cancel_sends_nothing(page, login, demo_data):
    from compute.classroom.models import DesktopPool

    pool = DesktopPool.objects.filter(course__code="CS101").first()
    native = []
    page.on("dialog", lambda dialog: (native.append(dialog.message), dialog.dismiss()))
    login("teacher1", demo_data)
    page.goto(f"/classroom/pools/{pool.pk}/")
    page.evaluate("() => { window.__shown = 0; document.addEventListener('show.bs.modal', () => window.__shown++); }")

    page.get_by_role("button", name="全部重置").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("确定重置整个桌面池的所有桌面")
    dialog.get_by_role("button", name="取消").click()
    expect(dialog).to_be_hidden()

    assert page.evaluate("window.__shown") == 1
    assert native == []
    assert page.url.endswith(f"/classroom/pools/{pool.pk}/")


def test_confirming_sends_the_action_of_the_button_pressed(page, login, demo_data):
    from compute.classroom.models import DesktopPool

    pool = DesktopPool.objects.filter(course__code="CS101").first()
    login("teacher1", demo_data)
    page.goto(f"/classroom/pools/{pool.pk}/")
    with page.expect_request(lambda r: r.method == "POST" and "/action/" in r.url) as sent:
        page.get_by_role("button", name="全部关机").click()
        page.get_by_test_id("confirm-ok").click()
    assert "action=stop" in (sent.value.post_data or "")


def test_starting_a_pool_is_not_destructive_and_asks_nothing(page, login, demo_data):
    from compute.classroom.models import DesktopPool

    pool = DesktopPool.objects.filter(course__code="CS101").first()
    login("teacher1", demo_data)
    page.goto(f"/classroom/pools/{pool.pk}/")
    with page.expect_request(lambda r: r.method == "POST" and "/action/" in r.url) as sent:
        page.get_by_role("button", name="全部开机").click()
    assert "action=start" in (sent.value.post_data or "")
    expect(page.get_by_test_id("confirm-dialog")).to_be_hidden()


def test_taking_a_seat_back_asks_once_in_the_pages_dialog_and_leaves_a_spare_seat(page, login, demo_data):
    from compute.classroom.models import DesktopPool, Seat
    from compute.models import Desktop

    pool = DesktopPool.objects.filter(course__code="CS101").first()
    seat = pool.seats.filter(state=Seat.State.ACTIVE, student__isnull=False).order_by("student__student_number").first()
    # No worker here: the demo's desktops stay "creating"; this one is made, stopped (only a live desktop
    # can be taken back).
    Desktop.objects.filter(pk=seat.desktop_id).update(state=Desktop.State.STOPPED)
    name = seat.holder_name
    native = []
    page.on("dialog", lambda dialog: (native.append(dialog.message), dialog.dismiss()))
    login("teacher1", demo_data)
    page.goto(f"/classroom/pools/{pool.pk}/")
    page.evaluate("() => { window.__shown = 0; document.addEventListener('show.bs.modal', () => window.__shown++); }")

    expect(page.get_by_test_id("take-back")).to_have_count(1)
    page.get_by_test_id("take-back").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"收回 {name} 的座位")
    assert page.evaluate("window.__shown") == 1
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_text("现为空闲座位")).to_be_visible()
    assert native == []
    seat.refresh_from_db()
    assert seat.is_spare
    expect(page.get_by_test_id("spare")).to_have_count(1)
