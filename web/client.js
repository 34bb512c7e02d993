// @ts-self-types="./client.d.ts"
/**
 * realtime browser client: one room over WebSocket, Server-Sent Events or
 * long-polling, with resume, de-duplication, gaps, backoff and, for SSE, one
 * connection shared by every tab of the origin.
 *
 *   import { connect } from "https://chat.example/client.js";
 *   const conn = connect("lobby", { transport: "sse", baseUrl: "https://chat.example", user: "ana" });
 *   conn.on("message", (msg) => console.log(msg.id, msg.user, msg.text));
 *   conn.on("state", ({ state }) => console.log(state));
 *   await conn.send("hello");   // the stored message, with its id
 *   conn.close();
 *
 * Events: "message", "presence", "gap", "error" (the server's JSON objects,
 * with a second argument `info` = {transport, bytes, payloadBytes, relayed}),
 * "state" ({state, previous, role, reconnects, code, reason}) and "share"
 * ({role, tabs}). Types and every option: /client.d.ts.
 *
 * Resume: every message id delivered is remembered (`conn.lastId`); after a
 * drop the connection comes back with `since=<lastId>` and anything not newer
 * than it is dropped, so no message is shown twice and none is skipped. Ids
 * are "17" or Redis stream ids "1700000000000-3", compared as integer pairs.
 *
 * Sharing (`shared`, the default for SSE): the tabs of one origin using the
 * same server, room, transport and user elect a leader with the Web Locks
 * API. Only the leader connects; it relays each event, with the id before
 * it, over a BroadcastChannel. A tab that sees a break in that chain (or has
 * just opened) reads the missing messages from the history route. When the
 * leader closes, the next tab in the lock's queue takes over and resumes from
 * its own last id. Without Web Locks (plain-HTTP pages other than localhost)
 * or BroadcastChannel, each tab connects on its own.
 */

export const ROOM_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isRoomName(name) {
  return typeof name === "string" && ROOM_PATTERN.test(name);
}

// Ids are "17" (memory, SQLite) or "1700000000000-3" (Redis streams).
function idKey(id) {
  const [head, tail = "0"] = String(id).split("-");
  return [Number(head), Number(tail)];
}

export function compareIds(a, b) {
  const [a1, a2] = idKey(a);
  const [b1, b2] = idKey(b);
  return a1 - b1 || a2 - b2;
}

const encoder = new TextEncoder();

export function utf8Length(text) {
  return encoder.encode(text).length;
}

// Server-to-client WebSocket frame: payload + 2, 4 or 10 header bytes (unmasked).
export function wsFrameBytes(payloadBytes) {
  if (payloadBytes < 126) return payloadBytes + 2;
  if (payloadBytes < 65536) return payloadBytes + 4;
  return payloadBytes + 10;
}

// The SSE block as the server wrote it: "id: 17\nevent: message\ndata: {…}\n\n".
export function sseEventBytes(type, data, id) {
  return utf8Length(`${id ? `id: ${id}\n` : ""}event: ${type}\ndata: ${data}\n\n`);
}

let counter = 0;
const pageSession = Math.random().toString(36).slice(2, 8);

/** A client_id unique to this page load: `prefix-session-n`. */
export function newClientId(prefix = "c") {
  counter += 1;
  return `${prefix}-${pageSession}-${counter}`;
}

export const TRANSPORT_NAMES = { ws: "WebSocket", sse: "SSE", poll: "Long-polling" };
const DEFAULTS = { initialMs: 250, maxMs: 15000, healthyMs: 10000 };
const SEND_TIMEOUT_MS = 10000;
const RELAYED = ["message", "presence", "gap"];

/** Open a connection to `room`; see /client.d.ts for the options. */
export function connect(room, options = {}) {
  const conn = new Connection(room, options);
  // Started after the caller's listeners are attached: they see every event.
  queueMicrotask(() => conn._start());
  return conn;
}

/** `exp` of a JWT in ms, or null. */
function tokenExpiry(token) {
  const claims = tokenClaims(token);
  return claims && typeof claims.exp === "number" ? claims.exp * 1000 : null;
}

function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

class ClientError extends Error {
  constructor(code, detail, status) {
    super(detail || code);
    this.code = code;
    this.status = status;
  }
}

async function errorFrom(resp) {
  try {
    const body = await resp.json();
    return new ClientError(body.code || `http_${resp.status}`, body.detail, resp.status);
  } catch {
    return new ClientError(`http_${resp.status}`, `HTTP ${resp.status}`, resp.status);
  }
}

class Connection {
  constructor(room, options) {
    if (!isRoomName(room)) throw new TypeError(`not a room name: ${JSON.stringify(room)}`);
    const transport = options.transport || "ws";
    if (!(transport in TRANSPORT_NAMES)) throw new TypeError(`unknown transport ${transport}`);
    this.room = room;
    this.transport = transport;
    this.baseUrl = new URL(options.baseUrl || globalThis.location.origin);
    this.user = options.user || null;
    this.lastId = options.since || null;
    this.token = options.token || null;
    this.tokenProvider = options.tokenProvider || null;
    this.backoff = { ...DEFAULTS, ...(options.backoff || {}) };
    this.giveUpAfterMs = options.giveUpAfterMs ?? null;
    this.pollTimeout = options.pollTimeout ?? 25;
    this.state = "connecting";
    this.role = "alone";
    this.reconnects = 0;
    this._shared = (options.shared ?? transport === "sse") && canShare();
    this._listeners = new Map();
    this._pending = new Map(); // client_id -> {resolve, reject, timer}: WebSocket sends
    this._wanted = true;
    this._leading = false;
    this._gen = 0; // one per attempt; callbacks of older attempts are ignored
    this._link = null;
    this._attempt = 0;
    this._opened = false;
    this._downSince = null;
    this._timer = null;
    this._healthy = null;
    this._share = null;
    this._onOnline = () => this._wake();
    this._onVisible = () => document.visibilityState === "visible" && this._wake();
  }

  // -- public -----------------------------------------------------------------
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  /** Send `text`; resolves with the stored message (its id, ts, client_id). */
  send(text, { clientId } = {}) {
    const client_id = clientId || newClientId();
    const link = this._link;
    if (this.transport === "ws" && link && link.ws && link.ws.readyState === WebSocket.OPEN) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this._pending.delete(client_id);
          reject(new ClientError("timeout", "no acknowledgement from the server"));
        }, SEND_TIMEOUT_MS);
        this._pending.set(client_id, { resolve, reject, timer });
        link.ws.send(JSON.stringify({ type: "send", text, client_id }));
      });
    }
    return this._post(text, client_id);
  }

  /** Drop the connection now and come back after `delayMs`, from the last id. */
  reconnect({ delayMs = 0 } = {}) {
    if (!this._wanted || !this._leading) return;
    this._drop();
    this._setState("offline");
    this._schedule(delayMs);
  }

  close() {
    if (!this._wanted) return;
    this._stop("closed", {});
  }

  // -- delivery -----------------------------------------------------------------
  _emit(type, ...args) {
    for (const fn of [...(this._listeners.get(type) || [])]) {
      try {
        fn(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  // Every event from the server, over this tab's link or relayed, comes here.
  _deliver(event, info) {
    if (event.type === "message") {
      if (this.lastId !== null && compareIds(event.id, this.lastId) <= 0) return false;
      this.lastId = event.id;
      const waiting = event.client_id && this._pending.get(event.client_id);
      if (waiting) {
        clearTimeout(waiting.timer);
        this._pending.delete(event.client_id);
        waiting.resolve(event);
      }
    } else if (event.type === "error" && event.client_id) {
      // The server refused one of our WebSocket sends: it names the send.
      const waiting = this._pending.get(event.client_id);
      if (waiting) {
        clearTimeout(waiting.timer);
        this._pending.delete(event.client_id);
        waiting.reject(new ClientError(event.code, event.detail));
      }
    } else if (event.type === "gap") {
      // The server no longer holds our last id (or forgot it, after a reset):
      // what follows starts a new sequence.
      this.lastId = null;
    }
    this._emit(event.type, event, info);
    return true;
  }

  _setState(state, extra = {}) {
    const previous = this.state;
    if (state === previous && !extra.code) return;
    this.state = state;
    const detail = { state, previous, role: this.role, reconnects: this.reconnects, ...extra };
    this._emit("state", detail);
    if (this._leading && this._share) this._share.post({ t: "state", ...detail });
  }

  // -- the link: this tab's own connection ---------------------------------------
  _start() {
    if (!this._wanted) return; // closed before it started
    if (typeof window !== "undefined") {
      window.addEventListener("online", this._onOnline);
      document.addEventListener("visibilitychange", this._onVisible);
    }
    if (this._shared) {
      this._share = new Share(this);
      this._share.start();
    } else {
      this._lead();
    }
  }

  _lead() {
    this._leading = true;
    this._attempt = 0;
    this._open();
  }

  async _open() {
    if (!this._wanted || !this._leading) return;
    const gen = ++this._gen;
    clearTimeout(this._timer);
    this._setState(this._opened ? "reconnecting" : "connecting");
    if (this._tokenStale()) {
      if (!(await this._refreshToken(gen))) return;
    } else if (this.token && (tokenExpiry(this.token) ?? Infinity) <= Date.now()) {
      // The server would refuse it, and nothing here can make a new one.
      const detail = "the token has expired and there is no tokenProvider";
      this._emit("error", { type: "error", code: "token_expired", detail }, {});
      return this._stop("closed", { code: "token_expired", reason: detail, final: true });
    }
    if (gen !== this._gen || !this._wanted) return;
    this._link = OPENERS[this.transport](this, gen);
  }

  async _refreshToken(gen) {
    try {
      this.token = await this.tokenProvider();
      return true;
    } catch (err) {
      if (gen !== this._gen) return false;
      this._emit("error", { type: "error", code: "token_refresh_failed", detail: String(err) }, {});
      this._failed(gen, { retry: "backoff" });
      return false;
    }
  }

  _drop() {
    this._gen += 1;
    clearTimeout(this._timer);
    clearTimeout(this._healthy);
    clearTimeout(this._renewal);
    const link = this._link;
    this._link = null;
    if (link) link.close();
  }

  _didOpen(gen) {
    if (gen !== this._gen) return;
    if (this._opened) this.reconnects += 1;
    this._opened = true;
    this._downSince = null;
    clearTimeout(this._healthy);
    this._healthy = setTimeout(() => (this._attempt = 0), this.backoff.healthyMs);
    this._setState("open");
    this._planRenewal(gen);
  }

  // With a tokenProvider, renew the token before it expires: a WebSocket in
  // place ({"type":"refresh"}), SSE and long-polling by reconnecting with the
  // new token from the last id (no gap). Without one, the server ends the
  // connection at the token's exp (4003 / token_expired).
  _planRenewal(gen) {
    clearTimeout(this._renewal);
    const expires = this.token ? tokenExpiry(this.token) : null;
    if (!this.tokenProvider || expires === null) return;
    const left = expires - Date.now();
    const ahead = Math.min(30000, Math.max(1000, left / 5));
    this._renewal = setTimeout(() => this._renew(gen), Math.max(0, left - ahead));
  }

  async _renew(gen) {
    let token;
    try {
      token = await this.tokenProvider();
    } catch (err) {
      // Not fatal: at exp the server ends the link and _open asks again.
      this._emit("error", { type: "error", code: "token_refresh_failed", detail: String(err) }, {});
      return;
    }
    if (gen !== this._gen || !this._link) return;
    this.token = token;
    if (this._link.ws && this._link.ws.readyState === WebSocket.OPEN) {
      this._link.ws.send(JSON.stringify({ type: "refresh", token }));
      this._planRenewal(gen);
    } else {
      this._drop();
      this._open();
    }
  }

  // The link ended. how.retry: "now" | "soon" | "backoff" | "token" | "never".
  _failed(gen, how) {
    if (gen !== this._gen || !this._wanted) return;
    this._link = null;
    clearTimeout(this._healthy);
    clearTimeout(this._renewal);
    const extra = how.code ? { code: how.code, reason: how.reason || "" } : {};
    if (how.retry === "never") {
      this._stop("closed", { ...extra, final: true });
      return;
    }
    if (how.retry === "token") {
      if (!this.tokenProvider) {
        this._stop("closed", { ...extra, final: true });
        return;
      }
      this.token = null; // _open asks the provider
    }
    this._downSince ??= Date.now();
    if (this.giveUpAfterMs !== null && Date.now() - this._downSince > this.giveUpAfterMs) {
      this._emit("error", { type: "error", code: "gave_up", detail: "no connection" }, {});
      this._stop("closed", { ...extra, code: "gave_up", final: true });
      return;
    }
    this._setState("reconnecting", extra);
    let delay = how.retry === "soon" ? Math.random() * this.backoff.initialMs : 0;
    if (how.retry === "backoff") {
      const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this._attempt);
      this._attempt += 1;
      delay = base / 2 + (Math.random() * base) / 2; // "equal jitter"
    }
    this._schedule(delay);
  }

  _schedule(delay) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delay);
  }

  // Back online, or a hidden tab shown again: retry now instead of after the backoff.
  _wake() {
    if (!this._wanted) return;
    if (this._leading && this.state === "reconnecting") this._open();
    else if (!this._leading && this._share) this._share.post({ t: "wake" });
  }

  _stop(state, extra) {
    this._wanted = false;
    this._drop();
    if (this._share) this._share.stop(extra.final ? extra : null);
    this._leading = false;
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new ClientError("closed", "the connection was closed"));
    }
    this._pending.clear();
    if (typeof window !== "undefined") {
      window.removeEventListener("online", this._onOnline);
      document.removeEventListener("visibilitychange", this._onVisible);
    }
    this._setState(state, extra);
  }

  // -- HTTP ---------------------------------------------------------------------
  url(kind, params = {}) {
    const url = new URL(`rooms/${encodeURIComponent(this.room)}/${kind}`, this._root());
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) url.searchParams.set(k, v);
    return url;
  }

  // The server's root: baseUrl with a trailing slash (it may carry a path prefix).
  _root() {
    const root = new URL(this.baseUrl);
    if (!root.pathname.endsWith("/")) root.pathname += "/";
    root.search = "";
    root.hash = "";
    return root;
  }

  // Whether to ask the provider before using the token: none yet, or it expires within 5 s.
  _tokenStale() {
    const expires = this.token ? (tokenExpiry(this.token) ?? Infinity) : 0;
    return !!this.tokenProvider && expires < Date.now() + 5000;
  }

  // An HTTP request with the token as a Bearer header (any tab, leader or not):
  // renewed first when stale, and once more if the server answers 401.
  async _fetch(url, init = {}) {
    for (let retried = false; ; retried = true) {
      if (this._tokenStale()) this.token = await this.tokenProvider();
      const headers = { ...init.headers };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const resp = await fetch(url, { ...init, headers });
      if (resp.ok) return resp;
      const err = await errorFrom(resp);
      if (retried || !this.tokenProvider || err.status !== 401) throw err;
      this.token = null;
    }
  }

  async _post(text, client_id) {
    const body = { text, client_id };
    if (this.user) body.user = this.user;
    const headers = { "Content-Type": "application/json" };
    const resp = await this._fetch(this.url("messages"), { method: "POST", headers, body: JSON.stringify(body) });
    return resp.json();
  }

  /** History after `since` (every page), or the room's last messages. */
  async _history(since, signal) {
    const messages = [];
    let gap = false;
    let after = since;
    for (;;) {
      const resp = await this._fetch(this.url("messages", { since: after }), { signal });
      const page = await resp.json();
      gap ||= page.gap;
      messages.push(...page.messages);
      if (after === null || !page.messages.length) return { messages, gap };
      after = page.messages[page.messages.length - 1].id;
    }
  }
}

// -- transports: each opens one link and reports back to the connection -------

function openWebSocket(conn, gen) {
  const url = conn.url("ws", { user: conn.user, since: conn.lastId });
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  // The token travels as a subprotocol: a URL ends up in logs, this does not.
  const ws = new WebSocket(url, conn.token ? ["realtime", conn.token] : ["realtime"]);
  ws.addEventListener("open", () => conn._didOpen(gen));
  ws.addEventListener("message", (e) => {
    if (gen !== conn._gen || typeof e.data !== "string") return;
    const payloadBytes = utf8Length(e.data);
    receive(conn, e.data, { transport: "ws", bytes: wsFrameBytes(payloadBytes), payloadBytes });
  });
  ws.addEventListener("close", (e) => conn._failed(gen, wsCloseAction(e.code, e.reason)));
  return { ws, close: () => ws.close(1000, "closed by the client") };
}

// The last event of an SSE stream or a poll the server ends on purpose:
// {"type": "disconnect", "code", "reason", "reconnect"}.
function disconnectAction({ code, reason, reconnect }) {
  const how = wsCloseAction(code, reason);
  if (reconnect === true && how.retry === "never") return { ...how, retry: "soon" };
  if (reconnect === false && ["backoff", "soon"].includes(how.retry)) return { ...how, retry: "never" };
  return how;
}

// An event that ends the link (long-polling carries them among the others).
function endingIn(event) {
  if (event.type === "disconnect") return disconnectAction(event);
  if (event.type === "error" && event.code === "token_expired") {
    return { retry: "token", code: 4003, reason: event.detail };
  }
  return null;
}

function wsCloseAction(code, reason) {
  if (code === 4003) return { retry: "token", code, reason };
  if (code === 4001) return { retry: "soon", code, reason }; // asked to come back
  if (code >= 4000 && code <= 4099) return { retry: "never", code, reason };
  if (code === 1013) return { retry: "now", code, reason }; // dropped as slow: resume at once
  return { retry: "backoff" };
}

function openEventSource(conn, gen) {
  // We reopen it ourselves after every drop (never the browser's own
  // reconnect): the URL carries `since`, and backoff and deliberate
  // disconnects stay in our hands.
  const es = new EventSource(conn.url("events", { user: conn.user, since: conn.lastId, token: conn.token }));
  const end = (how) => {
    es.close();
    conn._failed(gen, how);
  };
  es.addEventListener("open", () => conn._didOpen(gen));
  for (const type of RELAYED) {
    es.addEventListener(type, (e) => {
      if (gen !== conn._gen) return;
      const payloadBytes = utf8Length(e.data);
      const bytes = sseEventBytes(type, e.data, type === "message" ? e.lastEventId : "");
      receive(conn, e.data, { transport: "sse", bytes, payloadBytes });
    });
  }
  es.addEventListener("disconnect", (e) => end(disconnectAction(parse(e.data) || {})));
  es.addEventListener("error", (e) => {
    if (gen !== conn._gen) return;
    if (!(e instanceof MessageEvent) || !e.data) return end({ retry: "backoff" }); // the stream failed
    const event = parse(e.data); // `event: error` from the server
    if (!event) return;
    const ending = endingIn(event);
    if (ending) return end(ending);
    conn._emit("error", event, { transport: "sse" });
  });
  return { close: () => es.close() };
}

function openPoll(conn, gen) {
  const abort = new AbortController();
  (async () => {
    let since = conn.lastId;
    let timeout = 0; // the first answer comes at once: it tells the link is up
    while (gen === conn._gen) {
      let resp;
      let text;
      try {
        const url = conn.url("poll", { user: conn.user, since, timeout, token: conn.token });
        resp = await fetch(url, { cache: "no-store", signal: abort.signal });
        text = await resp.text();
      } catch {
        return conn._failed(gen, { retry: "backoff" });
      }
      if (gen !== conn._gen) return;
      const body = parse(text);
      if (!resp.ok || !body) {
        const code = body && body.code;
        if (body) conn._emit("error", body, { transport: "poll" });
        if (code === "token_expired" || code === "bad_token") return conn._failed(gen, { retry: "token", code: resp.status, reason: code });
        return conn._failed(gen, { retry: resp.status === 403 ? "never" : "backoff", code: resp.status, reason: code || "" });
      }
      if (conn.state !== "open") conn._didOpen(gen);
      const events = body.events || [];
      const messages = events.filter((e) => e.type === "message").length || 1;
      const bytes = responseBytes(resp, text);
      for (const event of events) {
        const ending = endingIn(event);
        if (ending) return conn._failed(gen, ending);
        const payload = JSON.stringify(event);
        const payloadBytes = utf8Length(payload);
        const share = event.type === "message" ? Math.round(bytes / messages) : payloadBytes;
        deliverParsed(conn, event, { transport: "poll", bytes: share, payloadBytes });
      }
      since = body.next || conn.lastId;
      timeout = conn.pollTimeout;
    }
  })();
  return { close: () => abort.abort() };
}

// Status line, headers and body of an HTTP answer, as the server sent them.
function responseBytes(resp, text) {
  let head = `HTTP/1.1 ${resp.status} ${resp.statusText}\r\n`;
  resp.headers.forEach((value, name) => (head += `${name}: ${value}\r\n`));
  return utf8Length(`${head}\r\n`) + utf8Length(text);
}

const OPENERS = { ws: openWebSocket, sse: openEventSource, poll: openPoll };

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

function receive(conn, data, info) {
  const event = parse(data);
  if (event) deliverParsed(conn, event, info);
}

function deliverParsed(conn, event, info) {
  const prev = conn.lastId;
  if (!conn._deliver(event, info)) return;
  if (conn._share && RELAYED.includes(event.type)) conn._share.relay(event, info, prev);
}

// -- sharing one link between the tabs of an origin -----------------------------

function canShare() {
  return typeof BroadcastChannel === "function" && typeof navigator !== "undefined" && !!navigator.locks;
}

class Share {
  constructor(conn) {
    const who = (conn.token && tokenClaims(conn.token)?.sub) || conn.user || "";
    this.conn = conn;
    this.name = `realtime:${conn._root().href}|${conn.room}|${conn.transport}|${who}`;
    this.channel = new BroadcastChannel(this.name);
    this.abort = new AbortController();
    this.release = null; // resolves the lock callback's promise: gives up the lead
    this.syncing = null; // AbortController of a history read in progress
    this.held = []; // relays that arrived while syncing
    this.presence = null; // the last presence event, for tabs that open later
    this.tabs = 1;
    this.onPageHide = () => this.post({ t: "bye" });
  }

  start() {
    const conn = this.conn;
    this.channel.onmessage = (e) => this._receive(e.data);
    const hold = (lock) => {
      if (!lock) return false;
      return new Promise((resolve) => {
        this.release = resolve;
        this._takeOver();
      });
    };
    const { signal } = this.abort;
    navigator.locks.request(this.name, { ifAvailable: true }, (lock) => {
      if (lock) return hold(lock);
      conn.role = "follower";
      this.post({ t: "hello" });
      this._sync();
      const queued = navigator.locks.request(this.name, { signal }, hold).catch(() => {});
      this.countTabs(300);
      return queued;
    });
    if (typeof window !== "undefined") window.addEventListener("pagehide", this.onPageHide);
  }

  _takeOver() {
    const conn = this.conn;
    if (!conn._wanted) return this.release();
    this.syncing?.abort(); // the link resumes from lastId instead
    this.syncing = null;
    this.held = [];
    conn.role = "leader";
    this.post({ t: "leader" });
    this.countTabs();
    conn._lead();
  }

  post(message) {
    try {
      this.channel.postMessage(message);
    } catch {
      // closed
    }
  }

  relay(event, info, prev) {
    if (event.type === "presence") this.presence = event;
    this.post({ t: "event", event, info, prev });
  }

  _receive(m) {
    const conn = this.conn;
    if (!conn._wanted) return;
    // Count now, and again once the lock requests of a tab just opened or closed are settled.
    if (m.t === "hello" || m.t === "bye" || m.t === "leader") this.countTabs().then(() => this.countTabs(300));
    if (conn._leading) {
      if (m.t === "hello") this.post({ t: "snapshot", state: conn.state, reconnects: conn.reconnects, presence: this.presence });
      else if (m.t === "wake") conn._wake();
      return;
    }
    if (m.t === "event") this._relayed(m);
    else if (m.t === "snapshot") {
      if (m.presence && !this.presence) conn._emit("presence", (this.presence = m.presence), { relayed: true });
      this._mirror(m);
    } else if (m.t === "state" && m.final) {
      conn._stop("closed", { code: m.code, reason: m.reason, final: true }); // for every tab
    } else if (m.t === "state") {
      this._mirror(m);
    }
  }

  _mirror(m) {
    this.conn.reconnects = m.reconnects;
    this.conn._setState(m.state, m.code ? { code: m.code, reason: m.reason } : {});
  }

  // A relayed event continues our sequence when the id before it is at most
  // our last id; otherwise something was missed: read it from the history.
  _relayed({ event, info, prev }) {
    const conn = this.conn;
    if (this.syncing) return void this.held.push({ event, info, prev });
    if (event.type === "message") {
      const last = conn.lastId;
      if (last !== null && compareIds(event.id, last) <= 0) return;
      const follows = prev === null || prev === undefined ? last === null : last !== null && compareIds(prev, last) <= 0;
      if (!follows) {
        this.held.push({ event, info, prev });
        return void this._sync();
      }
    }
    if (event.type === "presence") this.presence = event;
    conn._deliver(event, { ...info, relayed: true });
  }

  // Read what this tab has not seen from the history route, holding relays meanwhile.
  async _sync() {
    const conn = this.conn;
    if (this.syncing) return;
    const abort = (this.syncing = new AbortController());
    const since = conn.lastId;
    let attempt = 0;
    for (;;) {
      try {
        const { messages, gap } = await conn._history(since, abort.signal);
        if (abort.signal.aborted) return;
        if (gap) {
          const detail = `messages after id ${since} are no longer held`;
          conn._deliver({ type: "gap", room: conn.room, since, first_id: messages[0]?.id ?? null, detail }, { relayed: true });
        }
        for (const msg of messages) conn._deliver(msg, { transport: "http", relayed: true });
        break;
      } catch {
        if (abort.signal.aborted) return;
        attempt += 1;
        await new Promise((r) => setTimeout(r, Math.min(conn.backoff.maxMs, conn.backoff.initialMs * 2 ** attempt)));
        if (abort.signal.aborted) return;
      }
    }
    this.syncing = null;
    const held = this.held.splice(0);
    // Held relays older than the history read are duplicates; a break among the rest syncs again.
    for (const relay of held) this._relayed(relay);
  }

  async countTabs(delay = 0) {
    if (delay) await new Promise((r) => setTimeout(r, delay));
    try {
      const { held = [], pending = [] } = await navigator.locks.query();
      const mine = (l) => l.name === this.name;
      this.tabs = Math.max(1, held.filter(mine).length + pending.filter(mine).length);
    } catch {
      return;
    }
    if (this.conn._wanted) this.conn._emit("share", { role: this.conn.role, tabs: this.tabs });
  }

  stop(final) {
    if (final && this.conn._leading) this.post({ t: "state", ...final, state: "closed", reconnects: this.conn.reconnects });
    if (typeof window !== "undefined") window.removeEventListener("pagehide", this.onPageHide);
    this.syncing?.abort();
    this.abort.abort();
    if (this.release) this.release();
    this.post({ t: "bye" });
    this.channel.close();
  }
}
