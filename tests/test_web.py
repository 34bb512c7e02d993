"""The pages in web/, driven in real headless Chromium against a real server.

Each test opens pages in fresh browser contexts (their own localStorage), and
fails if a page throws, logs a console error or opens a dialog (tests/browser.py).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from .browser import Pages
from .helpers import post


async def set_name(page: Page, name: str) -> None:
    await page.fill("#name", name)
    await page.press("#name", "Tab")  # commits the field: the page reconnects as `name`


async def connected(page: Page, transport: str) -> None:
    await expect(page.locator("#status")).to_have_text(f"connected · {transport}")


# -- the chat page ----------------------------------------------------------


async def test_two_pages_chat_across_transports(pages: Pages) -> None:
    ana = await pages.open("/?room=across")
    await set_name(ana, "ana")
    await connected(ana, "WebSocket")

    bo = await pages.open("/?room=across")
    await bo.click("label:has-text('SSE')")
    await set_name(bo, "bo")
    await connected(bo, "SSE")
    await expect(ana.locator("#members .member")).to_have_count(2)

    await ana.fill("#text", "hello over a WebSocket")
    await ana.press("#text", "Enter")
    await bo.fill("#text", "hi back over SSE")
    await bo.click("#composer button")

    for page in (ana, bo):
        from_ana = page.locator(".message", has_text="hello over a WebSocket")
        from_bo = page.locator(".message", has_text="hi back over SSE")
        await expect(from_ana).to_have_count(1)
        await expect(from_bo).to_have_count(1)
        await expect(from_ana.locator(".user")).to_have_text("ana")
        await expect(from_bo.locator(".user")).to_have_text("bo")
        await expect(page.locator(".message.pending")).to_have_count(0)

    # A reload keeps the transport and the name and shows the recent history.
    await bo.reload()
    await connected(bo, "SSE")
    await expect(bo.locator("input[value=sse]")).to_be_checked()
    await expect(bo.locator("#name")).to_have_value("bo")
    await expect(bo.locator(".message .text")).to_have_text(
        ["hello over a WebSocket", "hi back over SSE"]
    )


async def test_message_text_is_shown_literally_and_never_run(
    pages: Pages, client: TestClient[Any, Any]
) -> None:
    payload = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script><b>b</b>'
    user = "<b onmouseover=alert(2)>m</b>"
    page = await pages.open("/?room=xss")
    await connected(page, "WebSocket")
    await post(client, "xss", payload, user)
    await page.fill("#text", payload)  # and once more through the page's own input
    await page.press("#text", "Enter")

    texts = page.locator(".message .text")
    await expect(texts).to_have_text([payload, payload])
    await expect(page.locator(".message .user").first).to_have_text(user)
    lab = await pages.open("/compare?room=xss")
    await expect(lab.locator("[data-transport=sse] .log li", has_text=payload)).to_have_count(2)

    await asyncio.sleep(0.3)  # time for a broken image to fire onerror, were there one
    for p in (page, lab):
        assert await p.locator("main img, main script, main b").count() == 0
        assert await p.evaluate("typeof window.__xss") == "undefined"
    assert pages.dialogs == []


async def test_chat_at_phone_width_fits_and_sends(
    pages: Pages, client: TestClient[Any, Any]
) -> None:
    for i in range(30):  # more than a phone screen holds
        await post(client, "phone", f"earlier {i}", "someone")
    page = await pages.open("/?room=phone", width=390, height=844)
    await connected(page, "WebSocket")
    await page.fill("#text", "from a phone")
    await page.click("#composer button")
    await expect(page.locator(".message .text").last).to_have_text("from a phone")
    await expect(page.locator("#composer button")).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    # A long history scrolls inside the list: it never covers the settings.
    settings = await page.locator(".settings").bounding_box()
    messages = await page.locator("#messages").bounding_box()
    assert settings and messages and messages["y"] >= settings["y"] + settings["height"] - 1
    await expect(page.locator(".switch")).to_be_visible()


# -- the compare page -------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
async def test_dropped_connection_resumes_without_loss(
    pages: Pages, client: TestClient[Any, Any], transport: str
) -> None:
    room = f"resume-{transport}"
    page = await pages.open(f"/compare?room={room}")
    pane = page.locator(f"[data-transport={transport}]")
    await expect(page.locator(".pane .status")).to_have_text(["connected"] * 3)
    await post(client, room, "before the drop", "outsider")
    await expect(pane.locator(".log li", has_text="before the drop")).to_have_count(1)

    await page.select_option("#offline-for", "2000")
    await pane.locator(".drop").click()
    await expect(pane.locator(".status")).to_have_text("offline")
    texts = [f"while away {i}" for i in range(5)]
    for text in texts:
        await post(client, room, text, "outsider")
    assert await pane.locator(".status").text_content() == "offline", "posted too late"

    await expect(pane.locator(".status")).to_have_text("connected")
    await expect(pane.locator(".reconnects")).to_have_text("1")
    for text in texts:
        await expect(pane.locator(".log li", has_text=text)).to_have_count(1)
    await asyncio.sleep(0.3)  # a duplicate would arrive right behind
    for text in [*texts, "before the drop"]:
        for p in await page.locator(".pane").all():
            assert await p.locator(".log li", has_text=text).count() == 1, text
    await expect(pane.locator(".loss")).to_have_text("no loss ✓")


async def test_burst_fills_the_figures_of_all_three_panes(pages: Pages) -> None:
    page = await pages.open("/compare?room=burst")
    await expect(page.locator(".pane .status")).to_have_text(["connected"] * 3)
    await page.fill("#burst-count", "10")
    await page.fill("#burst-rate", "50")
    await page.click("#burst-run")
    await expect(page.locator("#burst-state")).to_have_text(re.compile("^Sent 10"))

    for transport in ("ws", "sse", "poll"):
        pane = page.locator(f"[data-transport={transport}]")
        latency = r"^\d+(\.\d)? / \d+(\.\d)? ms n=%d$"
        await expect(pane.locator(".rtt")).to_have_text(re.compile(latency % 10))
        # Delivery: the 10 messages of each of the two other panes.
        await expect(pane.locator(".delivery")).to_have_text(re.compile(latency % 20))
        await expect(pane.locator(".received")).to_have_text("30")
        await expect(pane.locator(".loss")).to_have_text("no loss ✓")
        await expect(pane.locator(".hist-caption")).to_contain_text("10 samples")
        bars = pane.locator(f".histogram rect.bar-{transport}")
        assert await bars.count() >= 1
        bytes_text = await pane.locator(".bytes").text_content() or ""
        match = re.fullmatch(r"(\d+) B framing (\d+) B", bytes_text)
        assert match, bytes_text
        total, framing = int(match[1]), int(match[2])
        # WebSocket: a 2 or 4 byte frame header; SSE: id/event/data lines;
        # long-polling: an HTTP answer's status line, headers and envelope,
        # shared by the messages it carries (a few each at this rate).
        if transport == "ws":
            assert framing in (2, 4)
        elif transport == "sse":
            assert 25 <= framing <= 40
        else:
            assert 0 < framing <= 400, framing
        assert total > framing


async def test_chat_over_long_polling(pages: Pages, client: TestClient[Any, Any]) -> None:
    await post(client, "polled", "before", "ana")
    cy = await pages.open("/?room=polled")
    await cy.click("label:has-text('Long-polling')")
    await set_name(cy, "cy")
    await connected(cy, "Long-polling")
    await cy.fill("#text", "sent while polling")
    await cy.press("#text", "Enter")
    await post(client, "polled", "after", "ana")
    await expect(cy.locator(".message .text")).to_have_text(
        ["before", "sent while polling", "after"]
    )
    await expect(cy.locator(".message.pending")).to_have_count(0)
    await cy.reload()
    await connected(cy, "Long-polling")
    await expect(cy.locator("input[value=poll]")).to_be_checked()
