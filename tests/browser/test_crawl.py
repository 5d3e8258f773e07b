"""Every role walks every page it can reach by links on the demo data as shipped, in Chinese:
no link answers 4xx, no page raises a JavaScript error or logs one, no action prompts through the
browser's own dialog or twice, and no visible text is Latin-only (names, codes and units aside)."""

import re
from collections import deque

import pytest
from playwright.sync_api import expect

from tests.browser.crawl import (
    NOT_REQUESTED,
    NOT_VISITED,
    VISIBLE_TEXT_JS,
    known_names,
    latin_only,
    same_origin_links,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLES = ["student1", "teacher1", "cs_admin", "finance1", "auditor1", "sysadmin", "secadmin", "auditadmin"]
PER_PATTERN = 2  # pages of one shape (same path with other ids) visited per role
MAX_PAGES = 70


def _pattern(path: str) -> str:
    path, _, query = path.partition("?")
    keys = sorted(part.partition("=")[0] for part in query.split("&") if part)
    return re.sub(r"\d+", "N", path) + "?" + "&".join(keys)


class Watch:
    """What a page did behind the scenes: JavaScript errors, console errors, native dialogs."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"{page.url}: {msg.text}"))
        page.on("dialog", self._dialog)

    def page_errors(self) -> list[str]:
        """The errors, without those of a page whose connection dropped because this machine's
        interfaces changed (net::ERR_NETWORK_CHANGED: a testbed bridge or namespace made by another
        test process), which are not the page's: its polling requests fail and htmx reports them."""
        dropped = {error.partition(": ")[0] for error in self.errors if "net::ERR_NETWORK_CHANGED" in error}
        noise = ("net::ERR_NETWORK_CHANGED", "htmx:sendError", "htmx:afterRequest")
        return [
            error
            for error in self.errors
            if not (error.partition(": ")[0] in dropped and any(mark in error for mark in noise))
        ]

    def _dialog(self, dialog):
        self.dialogs.append(f"{dialog.page.url if hasattr(dialog, 'page') else ''}: {dialog.message}")
        dialog.dismiss()


def _confirmations_once(page, path: str, problems: list[str]) -> None:
    """The first destructive action of the page asks once, in the page's own dialog; cancelling it
    sends nothing."""
    target = page.locator("button[data-confirm]:visible, form[data-confirm] button:not([type=button]):visible").first
    if target.count() == 0:
        return
    if not target.evaluate("el => (el.form || el.closest('form')).checkValidity()"):
        return  # the browser stops an incomplete form before any confirmation (required fields)
    page.evaluate(
        """() => { window.__shown = 0;
        document.addEventListener('show.bs.modal', () => { window.__shown += 1; }); }"""
    )
    target.click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    page.wait_for_timeout(300)
    if page.evaluate("window.__shown") != 1:
        problems.append(f"{path}: {page.evaluate('window.__shown')} confirmations for one action")
    dialog.get_by_role("button", name="取消").click()
    expect(dialog).to_be_hidden()
    if not page.url.endswith(path):
        problems.append(f"{path}: cancelling the confirmation still sent the form ({page.url})")


def crawl(page, live_server, username: str, password: str) -> list[str]:
    watch = Watch(page)
    sign_in(page, username, password)
    names = known_names()
    problems: list[str] = []
    seen_links: set[str] = set()
    visits: dict[str, int] = {}
    queue = deque(["/"])
    pages = 0
    while queue and pages < MAX_PAGES:
        path = queue.popleft()
        pattern = _pattern(path)
        if visits.get(pattern, 0) >= PER_PATTERN:
            continue
        visits[pattern] = visits.get(pattern, 0) + 1
        pages += 1
        response = page.goto(path)
        page.wait_for_load_state("networkidle")
        if response is None or response.status >= 400:
            problems.append(f"{path}: answers {response and response.status}")
            continue
        if "text/html" not in (response.headers.get("content-type") or ""):
            continue
        bad = latin_only(page.evaluate(VISIBLE_TEXT_JS), names)
        problems += [f"{path}: Latin-only text {text!r}" for text in dict.fromkeys(bad)]
        for link in same_origin_links(page, live_server.url):
            if link in seen_links or NOT_REQUESTED.match(link):
                continue
            seen_links.add(link)
            if visits.get(_pattern(link), 0) >= PER_PATTERN and not NOT_VISITED.search(link):
                continue
            status = page.request.get(link).status
            if status >= 400:
                problems.append(f"{path}: link {link} answers {status}")
            elif not NOT_VISITED.search(link):
                queue.append(link)
        _confirmations_once(page, path, problems)
    problems += [f"JavaScript error {e}" for e in watch.page_errors()]
    problems += [f"browser dialog {d}" for d in watch.dialogs]
    assert pages > 3, f"{username} reached only {pages} pages"
    return problems


@pytest.mark.parametrize("username", ROLES)
def test_every_page_a_role_reaches_is_clean(page, live_server, demo_data, username):
    problems = crawl(page, live_server, username, demo_data)
    assert not problems, "\n".join(problems)
