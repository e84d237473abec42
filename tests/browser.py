"""Browser fixtures for every suite that drives Chromium (end-to-end, XSS): Playwright's sync
API driving Debian's Chromium. Loaded once as a plugin (``-p tests.browser``) so one browser
serves the whole session; two session fixtures would start Playwright twice in one thread.

No browser is ever downloaded; a missing /usr/bin/chromium fails the tests instead of
skipping them, so a machine without it cannot pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install "
            "chromium) to run the browser tests."
        )
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
    # from a thread with a running loop; the live server and the fixtures only do sync work.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Open a page in a fresh browser context: one per person, cookies kept apart."""
    contexts: list[BrowserContext] = []

    def open_page() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """Save a full-page screenshot when E2E_SCREENSHOTS names a folder; do nothing otherwise."""
    folder = os.environ.get("E2E_SCREENSHOTS")

    def take(page: Page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return take
