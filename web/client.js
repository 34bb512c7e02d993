// One interface over both transports of a room:
//
//   const conn = createConnection("ws" | "sse");
//   conn.onEvent = (event, info) => …   // event: the server's JSON object
//                                        // info: {transport, bytes, payloadBytes}
//   conn.onStatus = (status) => …       // connecting | open | reconnecting | offline | closed
//   conn.connect(room, user, {since});
//   await conn.send(text, clientId);
//   conn.reconnect({delay});            // drop now, come back with the last id
//   conn.close();
//
// Both resume from the last message id after a drop (WebSocket: `since=`,
// SSE: the browser's Last-Event-ID, or `since=` when we reopen it
// ourselves), and both drop any message whose id is not newer than the last
// one delivered, so a resume never shows a message twice.

const encoder = new TextEncoder();

export const TRANSPORT_NAMES = { ws: "WebSocket", sse: "SSE" };

export function utf8Length(text) {
  return encoder.encode(text).length;
}

// Ids are "17" (memory, sqlite) or "1700000000000-3" (Redis streams).
function idKey(id) {
  const [head, tail = "0"] = String(id).split("-");
  return [Number(head), Number(tail)];
}

export function compareIds(a, b) {
  const [a1, a2] = idKey(a);
  const [b1, b2] = idKey(b);
  return a1 - b1 || a2 - b2;
}

// Size of a server-to-client WebSocket frame: payload plus a 2, 4 or 10
// byte header (server frames are not masked).
export function wsFrameBytes(payloadBytes) {
  if (payloadBytes < 126) return payloadBytes + 2;
  if (payloadBytes < 65536) return payloadBytes + 4;
  return payloadBytes + 10;
}

// Size of the SSE event block as the server wrote it:
// "id: 17\nevent: message\ndata: {…}\n\n".
export function sseEventBytes(type, data, id) {
  let block = "";
  if (id) block += `id: ${id}\n`;
  block += `event: ${type}\ndata: ${data}\n\n`;
  return utf8Length(block);
}

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

class Connection {
  constructor(transport) {
    this.transport = transport;
    this.room = null;
    this.user = null;
    this.lastId = null;
    this.reconnects = 0;
    this.status = "closed";
    this.onEvent = () => {};
    this.onStatus = () => {};
    this._wanted = false; // connect() was called and close() was not
    this._opened = false; // opened at least once
    this._attempt = 0;
    this._timer = null;
  }

  connect(room, user, { since = null } = {}) {
    this.close();
    this.room = room;
    this.user = user;
    this.lastId = since || null;
    this._wanted = true;
    this._opened = false;
    this._attempt = 0;
    this._setStatus("connecting");
    this._open();
  }

  // Drop the connection, stay down for `delay` ms, then resume from the last id.
  reconnect({ delay = 0 } = {}) {
    if (!this._wanted) return;
    clearTimeout(this._timer);
    this._drop();
    this._setStatus("offline");
    this._timer = setTimeout(() => {
      this._setStatus("reconnecting");
      this._open();
    }, delay);
  }

  close() {
    this._wanted = false;
    clearTimeout(this._timer);
    this._drop();
    this._setStatus("closed");
  }

  url(kind) {
    const url = new URL(`/rooms/${encodeURIComponent(this.room)}/${kind}`, location.href);
    url.searchParams.set("user", this.user);
    if (this.lastId) url.searchParams.set("since", this.lastId);
    return url;
  }

  // -- for the transports below ------------------------------------------
  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.onStatus(status);
  }

  _didOpen() {
    if (this._opened) this.reconnects += 1;
    this._opened = true;
    this._attempt = 0;
    this._setStatus("open");
  }

  // Try again later, waiting longer after each failure in a row.
  _retryLater() {
    if (!this._wanted) return;
    const base = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
    this._attempt += 1;
    this._setStatus("reconnecting");
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), base * (0.75 + Math.random() / 2));
  }

  // `payloadBytes`: the JSON text; `bytes`: that plus the transport's framing.
  _receive(data, payloadBytes, bytes) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (event.type === "message") {
      if (this.lastId !== null && compareIds(event.id, this.lastId) <= 0) return;
      this.lastId = event.id;
    } else if (event.type === "gap") {
      // The server no longer holds (or never knew, after a reset) our last id:
      // what follows starts a new sequence, so accept it as it comes.
      this.lastId = null;
    }
    this.onEvent(event, { transport: this.transport, bytes, payloadBytes });
  }
}

class WebSocketConnection extends Connection {
  constructor() {
    super("ws");
    this._ws = null;
    this._outbox = []; // frames sent while not connected
  }

  _open() {
    const url = this.url("ws");
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this._ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this._ws) return;
      this._didOpen();
      for (const frame of this._outbox.splice(0)) ws.send(frame);
    });
    ws.addEventListener("message", (e) => {
      if (ws !== this._ws || typeof e.data !== "string") return;
      const payload = utf8Length(e.data);
      this._receive(e.data, payload, wsFrameBytes(payload));
    });
    ws.addEventListener("close", () => {
      if (ws !== this._ws) return;
      this._ws = null;
      this._retryLater();
    });
  }

  _drop() {
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "closed by the page");
  }

  async send(text, clientId) {
    const frame = JSON.stringify({ type: "send", text, client_id: clientId });
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(frame);
    else this._outbox.push(frame);
  }
}

class EventSourceConnection extends Connection {
  constructor() {
    super("sse");
    this._es = null;
  }

  _open() {
    // A new EventSource sends no Last-Event-ID: the URL carries `since`.
    const es = new EventSource(this.url("events"));
    this._es = es;
    es.addEventListener("open", () => {
      if (es === this._es) this._didOpen();
    });
    for (const type of ["message", "presence", "gap"]) {
      es.addEventListener(type, (e) => this._event(es, type, e));
    }
    es.addEventListener("error", (e) => {
      if (es !== this._es) return;
      // `event: error` from the server is a MessageEvent with data;
      // a plain Event is the connection failing.
      if (e instanceof MessageEvent && e.data) {
        this._event(es, "error", e);
      } else if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself and sends Last-Event-ID.
        this._setStatus("reconnecting");
      } else {
        // It gave up (an HTTP error answer): reopen it ourselves.
        this._es = null;
        es.close();
        this._retryLater();
      }
    });
  }

  _event(es, type, e) {
    if (es !== this._es) return;
    const id = type === "message" ? e.lastEventId : "";
    this._receive(e.data, utf8Length(e.data), sseEventBytes(type, e.data, id));
  }

  _drop() {
    const es = this._es;
    this._es = null;
    if (es) es.close();
  }

  async send(text, clientId) {
    const resp = await fetch(`/rooms/${encodeURIComponent(this.room)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text, user: this.user, client_id: clientId }),
    });
    if (!resp.ok) {
      let detail = `HTTP ${resp.status}`;
      try {
        const body = await resp.json();
        detail = body.detail || body.code || detail;
      } catch {
        // not JSON: keep the status line
      }
      throw new Error(detail);
    }
    return resp.json();
  }
}

export function createConnection(transport) {
  return transport === "sse" ? new EventSourceConnection() : new WebSocketConnection();
}

let counter = 0;
const session = Math.random().toString(36).slice(2, 8);

// A client_id unique to this page load: `prefix-session-n`.
export function newClientId(prefix = "c") {
  counter += 1;
  return `${prefix}-${session}-${counter}`;
}

export function randomName() {
  return `guest-${Math.random().toString(36).slice(2, 6)}`;
}
