"""web/client.js in real headless Chromium: tabs sharing one SSE connection,
leader handover, a server restart, other origins, reconnecting when back online.

The chat page (web/chat.js) is the client.js user in most of these: eight tabs
of one browser profile share localStorage, Web Locks and BroadcastChannels.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, BrowserContext, Page, expect

from realtime.core.room import CloseReason
from realtime.policy.tokens import mint
from realtime.transports.state import HUB
from realtime.workers import free_port

from .browser import Pages, pages_on
from .conftest import MakeClient
from .helpers import post

TABS = 8


async def open_connections(client: Any, transport: str = "sse") -> int:
    """The server's count of open connections over ``transport``, from /metrics."""
    resp = await client.get("/metrics")
    line = rf'^realtime_connections\{{transport="{transport}"\}} (\S+)$'
    match = re.search(line, await resp.text(), re.M)
    return int(float(match[1])) if match else 0


NAMES = {"ws": "WebSocket", "sse": "SSE"}


async def open_tabs(
    pages: Pages, room: str, n: int = TABS, transport: str = "sse"
) -> tuple[BrowserContext, list[Page]]:
    """``n`` chat tabs of one profile as "ana" (on SSE the first one leads)."""
    context = await pages.context()
    await context.add_init_script(
        f"localStorage.setItem('realtime.transport', '{transport}');"
        "localStorage.setItem('realtime.name', 'ana');"
    )
    tabs = [await pages.open(f"/?room={room}", context=context) for _ in range(n)]
    for tab in tabs:
        await expect(tab.locator("#status")).to_have_text(f"connected · {NAMES[transport]}")
    return context, tabs


async def texts(page: Page) -> list[str]:
    return await page.locator(".message .text").all_text_contents()


async def shows_exactly(tabs: list[Page], expected: list[str]) -> None:
    """Every tab shows ``expected`` in order, each once, and no gap notice."""
    for tab in tabs:
        await expect(tab.locator(".message .text")).to_have_text(expected, timeout=15_000)
    await asyncio.sleep(0.3)  # a duplicate would come right behind
    for tab in tabs:
        assert await texts(tab) == expected
        await expect(tab.locator(".notice.warn")).to_have_count(0)


async def leader_of(tabs: list[Page]) -> Page:
    for tab in tabs:
        await expect(tab.locator("#share")).to_have_attribute("data-role", re.compile("."))
    leaders = [t for t in tabs if await t.locator("#share").get_attribute("data-role") == "leader"]
    assert len(leaders) == 1, f"{len(leaders)} leaders"
    return leaders[0]


async def test_eight_tabs_share_one_sse_connection_and_each_can_send(
    pages: Pages, client: TestClient[Any, Any]
) -> None:
    _, tabs = await open_tabs(pages, "tabs")
    assert await open_connections(client) == 1
    leader = await leader_of(tabs)
    for tab in tabs:
        held = "this tab" if tab is leader else "another tab"
        await expect(tab.locator("#share")).to_have_text(
            f"one connection for 8 tabs, held by {held}"
        )

    await post(client, "tabs", "from outside", "bo")
    for i, tab in enumerate(tabs):
        await tab.fill("#text", f"from tab {i}")
        await tab.press("#text", "Enter")
        # Sent one after the other, so every tab must show this order.
        await expect(tab.locator(".message .text").last).to_have_text(f"from tab {i}")
        await expect(tab.locator(".message.pending")).to_have_count(0)
    await shows_exactly(tabs, ["from outside", *(f"from tab {i}" for i in range(TABS))])
    await expect(tabs[3].locator("#members .member")).to_have_count(1)  # one "ana", on SSE
    assert await open_connections(client) == 1


async def test_closing_the_leader_hands_over_within_a_second_without_gap_or_duplicate(
    pages: Pages, client: TestClient[Any, Any]
) -> None:
    _, tabs = await open_tabs(pages, "handover")
    leader = await leader_of(tabs)
    expected = [f"tick {i}" for i in range(60)]

    async def publish() -> None:
        for text in expected:
            await post(client, "handover", text, "bo")
            await asyncio.sleep(0.02)

    publisher = asyncio.create_task(publish())
    await expect(leader.locator(".message .text", has_text="tick 10")).to_have_count(1)
    closed_at = await leader.evaluate("Date.now()")
    await leader.close()
    tabs.remove(leader)
    await publisher

    new_leader = await leader_of(tabs)
    await expect(new_leader.locator("#status")).to_have_text("connected · SSE")
    opened_at = int(await new_leader.locator("#status").get_attribute("data-open-at") or 0)
    handover_ms = opened_at - closed_at
    print(f"leader handover: {handover_ms} ms")
    assert 0 < handover_ms < 1000
    await shows_exactly(tabs, expected)
    assert await open_connections(client) == 1


async def test_without_web_locks_each_tab_connects_on_its_own(
    pages: Pages, client: TestClient[Any, Any]
) -> None:
    context = await pages.context()
    await context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined})"
    )
    await context.add_init_script("localStorage.setItem('realtime.transport', 'sse')")
    tabs = [await pages.open("/?room=nolocks", context=context) for _ in range(2)]
    for tab in tabs:
        await expect(tab.locator("#status")).to_have_text("connected · SSE")
        await expect(tab.locator("#share")).to_be_hidden()
    assert await open_connections(client) == 2
    await tabs[0].fill("#text", "alone")
    await tabs[0].press("#text", "Enter")
    await shows_exactly(tabs, ["alone"])


@contextlib.contextmanager
def server_process(port: int, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m realtime`` on ``port``; killed on the way out."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "realtime", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def healthy(http: aiohttp.ClientSession, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with asyncio.timeout(15):
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited; see {log}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get("/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)


async def test_every_tab_resumes_without_gap_after_a_server_restart(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    args = ("--store", f"sqlite:{tmp_path / 'x.db'}", "--rate-limit", "10000/s")
    before = [f"before {i}" for i in range(5)]
    after = [f"after {i}" for i in range(5)]
    async with aiohttp.ClientSession(base) as http, pages_on(browser, base, request) as pages:
        pages.network_errors_expected = True
        with server_process(port, log, *args) as proc:
            await healthy(http, proc, log)
            _, tabs = await open_tabs(pages, "restart")
            for text in before:
                await post(http, "restart", text, "bo")
            await shows_exactly(tabs, before)
            proc.kill()  # SIGKILL: no goodbye to anyone
        for tab in tabs:
            await expect(tab.locator("#status")).to_have_text("reconnecting…")
        with server_process(port, log, *args) as proc:
            await healthy(http, proc, log)
            for text in after:  # stored before the tabs are back: they resume to get them
                await post(http, "restart", text, "bo")
            await shows_exactly(tabs, before + after)
            assert await open_connections(http) == 1


APP_PAGE = '<!doctype html><link rel="icon" href="data:,"><title>an app elsewhere</title>'


@pytest.mark.parametrize("allowed", [True, False])
async def test_an_app_on_an_allowed_origin_uses_the_server(
    pages: Pages, make_client: MakeClient, aiohttp_server: Any, allowed: bool
) -> None:
    app = web.Application()

    async def app_page(request: web.Request) -> web.Response:
        return web.Response(text=APP_PAGE, content_type="text/html")

    app.router.add_get("/", app_page)
    app_server = await aiohttp_server(app)
    app_origin = f"http://app.test:{app_server.port}"  # not loopback: needs --allow-origin
    client = await make_client(allow_origin=app_origin if allowed else "")
    server = str(client.make_url("")).rstrip("/")
    pages.network_errors_expected = not allowed
    page = await pages.open(app_origin + "/")

    results = await page.evaluate(
        """async (server) => {
            const { connect } = await import(server + "/client.js");
            const late = (ms) => new Promise((ok) => setTimeout(() => ok("timeout"), ms));
            const results = {};
            for (const transport of ["ws", "sse"]) {
                const options = { transport, baseUrl: server, user: "app" };
                const conn = connect(`elsewhere-${transport}`, options);
                const got = new Promise((ok) => conn.on("message", (m) => ok(m.text)));
                const open = new Promise((ok) => {
                    conn.on("state", ({ state }) => state === "open" && ok());
                });
                const state = await Promise.race([open.then(() => "open"), late(3000)]);
                const sent = await conn.send(`hi over ${transport}`).then(
                    (m) => m.text,
                    (e) => `refused: ${e.message}`,
                );
                results[transport] = { state, sent, got: await Promise.race([got, late(1000)]) };
                conn.close();
            }
            return results;
        }""",
        server,
    )
    for transport in ("ws", "sse"):
        text = f"hi over {transport}"
        if allowed:
            assert results[transport] == {"state": "open", "sent": text, "got": text}
        else:
            assert results[transport]["state"] == "timeout"
            assert results[transport]["sent"].startswith("refused")

    resp = await client.get("/client.js")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.content_type in ("text/javascript", "application/javascript")
    resp = await client.get("/client.d.ts")
    assert resp.content_type == "application/typescript"
    declared = set(re.findall(r"^export (?:function|const) (\w+)", await resp.text(), re.M))
    exported = await page.evaluate(
        "async (url) => Object.keys(await import(url)).sort()", server + "/client.js"
    )
    assert declared == set(exported)


@pytest.mark.parametrize("trigger", ["online", "visible"])
async def test_back_online_or_shown_again_reconnects_at_once(
    pages: Pages, client: TestClient[Any, Any], trigger: str
) -> None:
    # Any page of the server's origin will do (it has no icon: a 404 logged),
    # and going offline logs failed requests.
    pages.network_errors_expected = True
    page = await pages.open("/healthz")
    await page.evaluate(
        """async () => {
            const { connect } = await import("/client.js");
            // A minute of backoff: only the trigger can bring it back within the test.
            const conn = connect("wake", { transport: "ws", backoff: { initialMs: 60000 } });
            window.states = [];
            window.texts = [];
            conn.on("state", ({ state }) => window.states.push(state));
            conn.on("message", (m) => window.texts.push(m.text));
        }"""
    )
    await page.wait_for_function("window.states.at(-1) === 'open'")
    if trigger == "online":
        await page.context.set_offline(True)
    else:
        await page.evaluate(
            """() => {
                const state = { value: "hidden", configurable: true };
                Object.defineProperty(document, "visibilityState", state);
                document.dispatchEvent(new Event("visibilitychange"));
            }"""
        )
    client.server.app[HUB].close_all(CloseReason.SHUTDOWN)
    await page.wait_for_function("window.states.at(-1) === 'reconnecting'")
    await post(client, "wake", "while away")
    if trigger == "online":
        await page.context.set_offline(False)
    else:
        await page.evaluate(
            """() => {
                const state = { value: "visible", configurable: true };
                Object.defineProperty(document, "visibilityState", state);
                document.dispatchEvent(new Event("visibilitychange"));
            }"""
        )
    await page.wait_for_function("window.states.at(-1) === 'open'")
    await page.wait_for_function("window.texts.includes('while away')")


SECRET = "test-secret-" + "x" * 32
# window.within(promise): the promise, or an error after 5 s instead of a hung test.
WITHIN = """() => {
    window.within = (promise) => Promise.race([
        promise,
        new Promise((_, fail) => setTimeout(() => fail(new Error("timed out")), 5000)),
    ]);
}"""


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
async def test_a_private_room_with_an_expired_token_asks_the_provider_for_a_new_one(
    browser: Browser, make_client: MakeClient, request: pytest.FixtureRequest, transport: str
) -> None:
    client = await make_client(secret=SECRET, private_rooms="team-*")
    async with pages_on(browser, str(client.make_url("/")), request) as pages:
        await token_refresh_in_a_private_room(pages, transport)


async def token_refresh_in_a_private_room(pages: Pages, transport: str) -> None:
    pages.network_errors_expected = True  # the stand-in page has no icon: a 404 logged
    page = await pages.open("/healthz")
    minted: list[str] = []

    def fresh_token() -> str:
        minted.append(mint(SECRET, "ana", ["team-*"], 60))
        return minted[-1]

    await page.expose_function("freshToken", fresh_token)
    await page.evaluate(WITHIN)
    expired = mint(SECRET, "ana", ["team-*"], -10)
    sent = await page.evaluate(
        """async ([transport, expired]) => {
            const { connect } = await import("/client.js");
            const conn = connect("team-a", {
                transport, token: expired, tokenProvider: () => window.freshToken(),
            });
            window.texts = [];
            conn.on("message", (m) => window.texts.push(`${m.user}: ${m.text}`));
            await within(new Promise((ok) => conn.on("state", (s) => s.state === "open" && ok())));
            return (await conn.send("with a fresh token")).user;
        }""",
        [transport, expired],
    )
    assert sent == "ana"  # the token names the user
    assert len(minted) == 1
    await page.wait_for_function("window.texts.includes('ana: with a fresh token')")

    # Without a provider an expired token ends it at once: the server would refuse it.
    ending = await page.evaluate(
        """async ([transport, expired]) => {
            const { connect } = await import("/client.js");
            const conn = connect("team-b", { transport, token: expired });
            return await within(new Promise((ok) => conn.on("state", (s) => s.final && ok(s))));
        }""",
        [transport, expired],
    )
    assert ending["state"] == "closed"
    assert ending["code"] == "token_expired"


API_KEY = "test-api-key"


async def api_disconnect(client: TestClient[Any, Any], **body: Any) -> int:
    resp = await client.post("/api/disconnect", json=body, headers={"X-API-Key": API_KEY})
    assert resp.status == 200, await resp.text()
    count: int = (await resp.json())["disconnected"]
    return count


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_deliberate_disconnect_reaches_every_tab_and_4001_brings_them_back(
    browser: Browser, make_client: MakeClient, request: pytest.FixtureRequest, transport: str
) -> None:
    client = await make_client(api_key=API_KEY)
    connections = 1 if transport == "sse" else 3  # shared over SSE, one each over WebSocket
    async with pages_on(browser, str(client.make_url("/")), request) as pages:
        _, tabs = await open_tabs(pages, "kick", 3, transport)
        # Asked to come back: they do, resuming (over SSE the leader does, for all).
        assert await api_disconnect(client, user="ana", reconnect=True) == connections
        await post(client, "kick", "while kicked", "bo")
        await shows_exactly(tabs, ["while kicked"])
        for tab in tabs:
            await expect(tab.locator("#status")).to_have_text(f"connected · {NAMES[transport]}")

        # Told to stay away: every tab stops, none takes the lead in its place.
        bye = await api_disconnect(client, user="ana", reason="bye", reconnect=False)
        assert bye == connections
        for tab in tabs:
            await expect(tab.locator("#status")).to_have_text("closed")
            await expect(
                tab.locator(".notice", has_text="Disconnected by the server: bye")
            ).to_have_count(1)
        await asyncio.sleep(1)
        assert await open_connections(client, transport) == 0


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
async def test_a_connection_closed_at_token_expiry_resumes_with_a_new_token(
    browser: Browser, make_client: MakeClient, request: pytest.FixtureRequest, transport: str
) -> None:
    client = await make_client(secret=SECRET, private_rooms="team-*")
    async with pages_on(browser, str(client.make_url("/")), request) as pages:
        pages.network_errors_expected = True  # the stand-in page has no icon: a 404 logged
        page = await pages.open("/healthz")
        minted: list[str] = []

        def fresh_token() -> str:
            # The first lives 2 s: the server closes the connection when it expires.
            minted.append(mint(SECRET, "ana", ["team-*"], 60 if minted else 2))
            return minted[-1]

        await page.expose_function("freshToken", fresh_token)
        await page.evaluate(WITHIN)
        await page.evaluate(
            """async (transport) => {
                const { connect } = await import("/client.js");
                const tokenProvider = () => window.freshToken();
                const conn = connect("team-x", { transport, tokenProvider });
                window.texts = [];
                window.codes = [];
                conn.on("message", (m) => window.texts.push(m.text));
                conn.on("state", (s) => s.code && window.codes.push(s.code));
                const isOpen = (s) => s.state === "open";
                await within(new Promise((ok) => conn.on("state", (s) => isOpen(s) && ok())));
            }""",
            transport,
        )
        bo = {"Authorization": "Bearer " + mint(SECRET, "bo", ["team-*"], 60)}
        expected = [f"tick {i}" for i in range(12)]
        for text in expected:  # across the expiry
            resp = await client.post("/rooms/team-x/messages", json={"text": text}, headers=bo)
            assert resp.status == 201, await resp.text()
            await asyncio.sleep(0.25)
        await page.wait_for_function(f"window.texts.length >= {len(expected)}")
        await asyncio.sleep(0.3)
        assert await page.evaluate("window.texts") == expected
        assert len(minted) >= 2  # renewed


async def test_tabs_sharing_a_private_room_send_and_catch_up_with_the_providers_token(
    browser: Browser, make_client: MakeClient, request: pytest.FixtureRequest
) -> None:
    client = await make_client(secret=SECRET, private_rooms="team-*")
    bo = {"Authorization": "Bearer " + mint(SECRET, "bo", ["team-*"], 60)}
    resp = await client.post("/rooms/team-s/messages", json={"text": "earlier"}, headers=bo)
    assert resp.status == 201
    async with pages_on(browser, str(client.make_url("/")), request) as pages:
        pages.network_errors_expected = True  # the stand-in page has no icon: a 404 logged
        context = await pages.context()
        await context.expose_function("freshToken", lambda: mint(SECRET, "ana", ["team-*"], 60))
        tabs = [await pages.open("/healthz", context=context) for _ in range(2)]
        for tab in tabs:
            await tab.evaluate(WITHIN)
            await tab.evaluate(
                """async () => {
                    const { connect } = await import("/client.js");
                    const tokenProvider = () => window.freshToken();
                    window.conn = connect("team-s", { transport: "sse", tokenProvider });
                    window.texts = [];
                    conn.on("message", (m) => window.texts.push(`${m.user}: ${m.text}`));
                    const shared = new Promise((ok) => conn.on("share", ok));
                    await within(shared);
                }"""
            )
        roles = [await tab.evaluate("conn.role") for tab in tabs]
        assert sorted(roles) == ["follower", "leader"]
        follower = tabs[roles.index("follower")]
        assert (
            await follower.evaluate("within(conn.send('from the follower')).then((m) => m.user)")
            == "ana"
        )
        for tab in tabs:
            await tab.wait_for_function("window.texts.length === 2")
            assert await tab.evaluate("window.texts") == ["bo: earlier", "ana: from the follower"]
        assert await open_connections(client) == 1


async def test_it_gives_up_after_the_deadline_without_a_connection(pages: Pages) -> None:
    pages.network_errors_expected = True  # every attempt is refused, and logged
    page = await pages.open("/healthz")
    await page.evaluate(WITHIN)
    with socket.socket() as bound:  # bound, never listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{bound.getsockname()[1]}"
        ending = await page.evaluate(
            """async (nowhere) => {
                const { connect } = await import("/client.js");
                const backoff = { initialMs: 50 };
                const conn = connect("void", { baseUrl: nowhere, giveUpAfterMs: 1000, backoff });
                const errors = [];
                conn.on("error", (e) => errors.push(e.code));
                const final = new Promise((ok) => conn.on("state", (s) => s.final && ok(s)));
                const s = await within(final);
                return { state: s.state, code: s.code, errors, attempts: conn.reconnects };
            }""",
            nowhere,
        )
    assert ending == {"state": "closed", "code": "gave_up", "errors": ["gave_up"], "attempts": 0}


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_the_chat_page_renews_its_token_before_it_expires(
    browser: Browser, aiohttp_client: Any, request: pytest.FixtureRequest, transport: str
) -> None:
    """?token= and ?token_url=: the page asks the app's endpoint for a new token
    ahead of exp; a WebSocket refreshes in place, SSE reconnects from its last
    id; the server never has to end the connection for an expired token."""
    from realtime import Settings, create_app

    app = create_app(Settings(store="memory", secret=SECRET, private_rooms="team-*"))
    handed: list[str] = []

    async def token_endpoint(req: web.Request) -> web.Response:
        handed.append(mint(SECRET, "ana", ["team-*"], 60))
        return web.json_response({"token": handed[-1]})

    app.router.add_get("/app/realtime-token", token_endpoint)
    client = await aiohttp_client(app)
    first = mint(SECRET, "ana", ["team-*"], 3)
    async with pages_on(browser, str(client.make_url("/")), request) as pages:
        context = await pages.context()
        await context.add_init_script(f"localStorage.setItem('realtime.transport', '{transport}');")
        page = await pages.open(
            f"/?room=team-a&token={first}&token_url=/app/realtime-token", context=context
        )
        await expect(page.locator("#status")).to_have_text(f"connected · {NAMES[transport]}")
        await asyncio.sleep(4.5)  # past the first token's exp
        bo = {"Authorization": "Bearer " + mint(SECRET, "bo", ["team-*"], 60)}
        resp = await client.post("/rooms/team-a/messages", json={"text": "later"}, headers=bo)
        assert resp.status == 201
        await expect(page.locator(".message .text")).to_have_text(["later"])
        await expect(page.locator("#status")).to_have_text(f"connected · {NAMES[transport]}")
        assert handed, "the page never asked for a new token"
        metrics = await (await client.get("/metrics")).text()
        metric = r"^realtime_token_expiries(?:_total)?(?:\{[^}]*\})? (\S+)$"
        expiries = re.findall(metric, metrics, re.M)
        assert expiries and all(float(v) == 0 for v in expiries), expiries
        await expect(page.locator(".notice.warn")).to_have_count(0)


async def test_a_refused_websocket_send_rejects_at_once_with_the_servers_code(
    browser: Browser, make_client: MakeClient, request: pytest.FixtureRequest
) -> None:
    client = await make_client(rate_limit="1/min", rate_burst=1)
    async with pages_on(browser, str(client.make_url("/")), request) as pages:
        pages.network_errors_expected = True  # the stand-in page has no icon: a 404 logged
        page = await pages.open("/healthz")
        await page.evaluate(WITHIN)
        outcome = await page.evaluate(
            """async () => {
                const { connect } = await import("/client.js");
                const conn = connect("limits", { transport: "ws" });
                const isOpen = (s) => s.state === "open";
                await within(new Promise((ok) => conn.on("state", (s) => isOpen(s) && ok())));
                const first = await conn.send("one");
                const started = performance.now();
                try {
                    await conn.send("two");
                    return { first: first.text, second: "accepted" };
                } catch (err) {
                    return { first: first.text, second: err.code, ms: performance.now() - started };
                }
            }"""
        )
    assert outcome["first"] == "one" and outcome["second"] == "rate_limited"
    assert outcome["ms"] < 2000  # the server named the send: no waiting for a timeout
