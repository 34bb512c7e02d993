"""Real headless Chromium for the tests of web/: the browser, and pages that
fail their test if they throw, log a console error or open a dialog. On
failure every open page is saved to test-artifacts/<test>-<n>.png."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
    expect,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    # A second origin for pages that use the server from elsewhere.
    "--host-resolver-rules=MAP app.test 127.0.0.1",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 5_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=15_000
        )
        try:
            yield browser
        finally:
            await browser.close()


class Pages:
    """Opens pages on the test server and records what went wrong in them."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url.rstrip("/")
        self.contexts: list[BrowserContext] = []
        # Set by tests that stop the server or refuse requests: the browser
        # then logs each failed request as a console error.
        self.network_errors_expected = False
        self.pages: list[Page] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    async def context(self, *, width: int = 1280, height: int = 800) -> BrowserContext:
        """A fresh browser profile; its tabs share localStorage, locks and channels."""
        context = await self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return context

    async def open(
        self,
        path: str,
        *,
        width: int = 1280,
        height: int = 800,
        context: BrowserContext | None = None,
    ) -> Page:
        """``path`` in a new tab: of ``context``, else of a fresh profile of its own."""
        context = context or await self.context(width=width, height=height)
        page = await context.new_page()
        self.pages.append(page)
        page.on("pageerror", lambda exc: self.errors.append(f"{path}: uncaught {exc}"))
        tab = len(self.pages) - 1

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type != "error":
                return
            if self.network_errors_expected:
                return
            self.errors.append(f"{path} (tab {tab}): console {msg.text}")

        page.on("console", on_console)

        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{path}: {dialog.type} {dialog.message!r}")
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        await page.goto(path if "://" in path else self.base_url + path)
        return page

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        for n, page in enumerate(self.pages):
            if not page.is_closed():
                await page.screenshot(path=ARTIFACTS / f"{safe}-{n}.png", full_page=True)

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@asynccontextmanager
async def pages_on(
    browser: Browser, base_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Pages]:
    """Pages on the server at ``base_url``; on failure, screenshots of them all."""
    opened = Pages(browser, base_url)
    failed_before = request.session.testsfailed
    yield opened
    # The call phase is reported before teardown, so a failure is counted by now.
    if request.session.testsfailed > failed_before or opened.errors or opened.dialogs:
        await opened.screenshot(request.node.name)
    await opened.close()
    assert not opened.errors, "errors in the page:\n" + "\n".join(opened.errors)
    assert not opened.dialogs, "dialogs opened:\n" + "\n".join(opened.dialogs)


@pytest.fixture
async def pages(
    browser: Browser, client: TestClient[Any, Any], request: pytest.FixtureRequest
) -> AsyncIterator[Pages]:
    async with pages_on(browser, str(client.make_url("/")), request) as opened:
        yield opened
