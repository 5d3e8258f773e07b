"""Debian's Chromium (``/usr/bin/chromium``, installed by ``make test``) driven through Playwright on
pytest-django's live server; one browser per test process. Never a browser downloaded by Playwright.
A failing test leaves a screenshot in test-artifacts/.
"""

import os
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop in the main thread; the ORM calls that tests
# make around it are synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(browser, live_server, request):
    """A fresh browser context (Chinese locale, as most users have) on the live portal."""
    context = browser.new_context(locale="zh-CN", base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def login(page):
    """Log in through the real login form: `login("teacher1", password)`."""

    def _login(username: str, password: str):
        page.goto("/accounts/login/")
        page.get_by_label("用户名").fill(username)
        page.get_by_label("密码").fill(password)
        page.get_by_role("button", name="登录").click()
        page.wait_for_load_state("networkidle")
        return page

    return _login


@pytest.fixture
def demo_data(transactional_db, settings):
    """The README's demo accounts and data, as `seed_demo` makes them."""
    from django.core.management import call_command

    # With a live worker (the celery_worker fixture) the demo's first desktops are provisioned while
    # seeding goes on; seed_demo runs a seeder MariaDB picked as a deadlock victim again itself.
    call_command("seed_demo", verbosity=0)
    return settings.DEMO_PASSWORD
