// The transport lab: one pane per transport (WebSocket, SSE, long-polling), all in one room. Each pane holds
// its own connection (`shared: false`): sharing one SSE stream between tabs
// is what the chat page does, but here every pane measures its own.
import { TRANSPORT_NAMES, connect, isRoomName, newClientId } from "/client.js";
import { $, el } from "./dom.js";

const TRANSPORTS = ["ws", "sse", "poll"];
const WINDOW = 100; // samples behind p50/p99 and the byte average
const MAX_HIST = 5000; // samples kept for the histogram
const MAX_LOG = 200;
const LOSS_AFTER_MS = 5000; // a sent message not seen after this long is missing
// Histogram buckets (ms): roughly logarithmic, the same for both panes.
const EDGES = [0, 1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200, 300, 500, 1000];
const SVG_NS = "http://www.w3.org/2000/svg";

const params = new URLSearchParams(location.search);
const room = isRoomName(params.get("room")) ? params.get("room") : "lab";

// client_id -> {t0, from}: everything either pane has sent, for latency and loss.
const sent = new Map();
// WebSocket sends the server refused (rate limit): its error frame carries no
// client_id, so they are counted, and that many unanswered sends are not loss.
let refusedWs = 0;
const panes = {};

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function push(list, value, max) {
  list.push(value);
  if (list.length > max) list.splice(0, list.length - max);
}

function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

function ms(value) {
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function setFigure(node, main, detail) {
  node.replaceChildren(main);
  if (detail) node.append(" ", el("small", "", detail));
}

// -- one pane ---------------------------------------------------------------
function newStats() {
  return {
    rtt: [],
    delivery: [],
    bytes: [],
    framing: [],
    hist: [],
    received: 0,
    got: new Set(), // client_ids seen
    outstanding: new Map(), // client_id -> {t0, from}, sent but not seen yet
    ids: new Set(), // numeric ids seen
    minId: Infinity,
    maxId: -Infinity,
    numericIds: true,
    gaps: 0,
    errors: 0,
    reconnectBase: 0,
  };
}

function makePane(transport) {
  const node = $("pane-template").content.firstElementChild.cloneNode(true);
  node.dataset.transport = transport;
  const q = (selector) => node.querySelector(selector);
  q(".title").textContent = TRANSPORT_NAMES[transport];
  $("panes").append(node);

  const pane = {
    transport,
    node,
    q,
    stats: newStats(),
    conn: null,
    dropped: false,
  };

  q(".drop").addEventListener("click", () => drop(pane));
  q(".composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = q(".text");
    if (!input.value.trim()) return;
    sendFrom(pane, input.value);
    input.value = "";
  });
  return pane;
}

function logLine(pane, parts, className) {
  const log = pane.q(".log");
  const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const li = el("li", className);
  li.append(...parts);
  log.append(li);
  while (log.children.length > MAX_LOG) log.firstElementChild.remove();
  if (stick) log.scrollTop = log.scrollHeight;
}

function logEvent(pane, text) {
  logLine(pane, [el("span", "event", text)]);
}

function onStatus(pane, status) {
  const badge = pane.q(".status");
  badge.dataset.status = status;
  badge.textContent = status === "open" ? "connected" : status;
  if (status === "open" && pane.conn.reconnects > 0) {
    const how = pane.dropped ? "reopened by the page" : "reconnected by itself";
    const from = pane.conn.lastId ? ` from id ${pane.conn.lastId}` : "";
    logEvent(pane, `— ${how}, resuming${from}`);
    pane.dropped = false;
  } else if (status === "reconnecting" && !pane.dropped) {
    logEvent(pane, "— connection lost, reconnecting…");
  }
  scheduleRender();
}

function onEvent(pane, event, info) {
  const s = pane.stats;
  if (event.type === "message") {
    const now = performance.now();
    s.received += 1;
    push(s.bytes, info.bytes, WINDOW);
    push(s.framing, info.bytes - info.payloadBytes, WINDOW);
    trackId(s, event.id);
    const origin = event.client_id && sent.get(event.client_id);
    if (origin && !s.got.has(event.client_id)) {
      s.got.add(event.client_id);
      s.outstanding.delete(event.client_id);
      const latency = now - origin.t0;
      if (origin.from === pane.transport) {
        push(s.rtt, latency, WINDOW);
        push(s.hist, latency, MAX_HIST);
      } else {
        push(s.delivery, latency, WINDOW);
      }
    }
    logLine(pane, [el("span", "id", `#${event.id}`), el("span", "user", event.user), event.text]);
  } else if (event.type === "presence") {
    logEvent(pane, `${event.user} ${event.event === "join" ? "joined" : "left"} (${event.transport})`);
  } else if (event.type === "gap") {
    s.gaps += 1; // counted as loss; ids may start a new sequence from here
    s.ids.clear();
    s.minId = Infinity;
    s.maxId = -Infinity;
    logEvent(pane, `gap: ${event.detail}`);
  } else if (event.type === "error") {
    s.errors += 1;
    if (event.code === "rate_limited" && pane.transport === "ws") refusedWs += 1;
    logEvent(pane, `error ${event.code}: ${event.detail}`);
  }
  scheduleRender();
}

function trackId(s, id) {
  if (!/^\d+$/.test(id)) {
    s.numericIds = false;
    return;
  }
  const n = Number(id);
  s.ids.add(n);
  s.minId = Math.min(s.minId, n);
  s.maxId = Math.max(s.maxId, n);
}

function sendFrom(pane, text) {
  const clientId = newClientId(pane.transport);
  const origin = { t0: performance.now(), from: pane.transport };
  sent.set(clientId, origin);
  for (const p of Object.values(panes)) p.stats.outstanding.set(clientId, origin);
  return pane.conn.send(text, { clientId }).catch((err) => {
    // A WebSocket send the server refused answers with an error frame
    // (counted in onEvent), and its promise times out: not counted twice.
    if (err.code === "timeout") return;
    // Refused by the server (e.g. rate limited): nobody will receive it.
    sent.delete(clientId);
    for (const p of Object.values(panes)) p.stats.outstanding.delete(clientId);
    pane.stats.errors += 1;
    logEvent(pane, `not sent: ${err.message}`);
    scheduleRender();
  });
}

function drop(pane) {
  const delay = Number($("offline-for").value);
  pane.dropped = true;
  const from = pane.conn.lastId ? `since id ${pane.conn.lastId}` : "from the start";
  logEvent(pane, `— dropped by the page; back in ${delay / 1000} s, ${from}`);
  pane.conn.reconnect({ delayMs: delay });
}

// -- figures ------------------------------------------------------------------
let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    for (const pane of Object.values(panes)) render(pane);
  });
}

function latencyFigure(node, samples) {
  if (!samples.length) {
    setFigure(node, "–");
    return;
  }
  const p50 = percentile(samples, 50);
  const p99 = percentile(samples, 99);
  setFigure(node, `${ms(p50)} / ${ms(p99)} ms`, `n=${samples.length}`);
}

function lossCheck(s) {
  const now = performance.now();
  let waiting = 0;
  let missing = 0;
  let missingWs = 0;
  for (const { t0, from } of s.outstanding.values()) {
    if (now - t0 <= LOSS_AFTER_MS) waiting += 1;
    else if (from === "ws") missingWs += 1;
    else missing += 1;
  }
  missing += Math.max(0, missingWs - refusedWs);
  const holes = s.numericIds && s.ids.size ? s.maxId - s.minId + 1 - s.ids.size : 0;
  const idText = !s.ids.size
    ? "no ids yet"
    : s.numericIds
      ? `ids ${s.minId}–${s.maxId}${holes ? `, ${holes} not seen` : " contiguous"}`
      : "ids not numeric";
  const refused = refusedWs ? `; ${refusedWs} WebSocket sends refused by the rate limit` : "";
  const detail = `${idText}; ${s.got.size} of the panes' messages seen${refused}`;
  if (missing + holes + s.gaps > 0) {
    const parts = [];
    if (missing) parts.push(`${missing} sent not received`);
    if (holes) parts.push(`${holes} id${holes > 1 ? "s" : ""} skipped`);
    if (s.gaps) parts.push(`${s.gaps} gap notice${s.gaps > 1 ? "s" : ""}`);
    return { state: "bad", text: `${missing + holes} missing`, detail: `${parts.join(", ")}; ${detail}` };
  }
  if (waiting) return { state: "wait", text: `waiting for ${waiting}`, detail };
  return { state: "ok", text: "no loss ✓", detail };
}

function render(pane) {
  const s = pane.stats;
  const q = pane.q;
  latencyFigure(q(".rtt"), s.rtt);
  latencyFigure(q(".delivery"), s.delivery);
  if (s.bytes.length) {
    const avg = s.bytes.reduce((a, b) => a + b, 0) / s.bytes.length;
    const framing = s.framing.reduce((a, b) => a + b, 0) / s.framing.length;
    setFigure(q(".bytes"), `${avg.toFixed(0)} B`, `framing ${framing.toFixed(0)} B`);
  } else {
    setFigure(q(".bytes"), "–");
  }
  q(".reconnects").textContent = String(pane.conn.reconnects - s.reconnectBase);
  setFigure(q(".received"), String(s.received), s.errors ? `${s.errors} refused` : "");
  const loss = lossCheck(s);
  const lossNode = q(".loss");
  lossNode.dataset.state = loss.state;
  lossNode.textContent = loss.text;
  lossNode.title = loss.detail;
  drawHistogram(pane);
}

function drawHistogram(pane) {
  const samples = pane.stats.hist;
  const counts = EDGES.map(() => 0);
  for (const v of samples) {
    let i = EDGES.length - 1;
    while (i > 0 && v < EDGES[i]) i -= 1;
    counts[i] += 1;
  }
  const W = 400;
  const top = 14;
  const bottom = 96;
  const left = 10;
  const slot = (W - left - 24) / EDGES.length; // room for the unit on the right
  const max = Math.max(1, ...counts);
  const chart = pane.q(".histogram");
  const parts = [svg("line", { class: "axis", x1: left, x2: W - left, y1: bottom, y2: bottom })];
  counts.forEach((count, i) => {
    const x = left + i * slot;
    const h = ((bottom - top) * count) / max;
    if (count) {
      const bar = svg("rect", {
        class: `bar-${pane.transport}`,
        x: x + 1.5,
        y: bottom - h,
        width: slot - 3,
        height: h,
      });
      const hi = i + 1 < EDGES.length ? `${EDGES[i + 1]}` : "∞";
      bar.append(svg("title", {}, `${EDGES[i]}–${hi} ms: ${count}`));
      parts.push(bar, svg("text", { x: x + slot / 2, y: bottom - h - 3, "text-anchor": "middle" }, count));
    }
    // Bucket edges on the axis: bar i holds EDGES[i] <= ms < EDGES[i + 1].
    parts.push(svg("line", { class: "axis", x1: x, x2: x, y1: bottom, y2: bottom + 3 }));
    parts.push(svg("text", { x, y: bottom + 13, "text-anchor": "middle" }, EDGES[i]));
  });
  parts.push(svg("text", { x: W - left, y: bottom + 13, "text-anchor": "end" }, "ms →"));
  if (!samples.length) {
    parts.push(svg("text", { x: W / 2, y: bottom / 2 + 8, "text-anchor": "middle" }, "no samples yet"));
  }
  chart.replaceChildren(...parts);
  chart.setAttribute("aria-label", `Round trip histogram, ${samples.length} samples`);
  pane.q(".hist-caption").textContent = samples.length
    ? `Round trip of own messages, ms: ${samples.length} samples since the last reset`
    : "Round trip of own messages, ms (no samples yet)";
}

// -- burst --------------------------------------------------------------------
const sleep = (msDelay) => new Promise((resolve) => setTimeout(resolve, msDelay));

async function burst(pane, count, rate) {
  const start = performance.now();
  for (let i = 0; i < count; i += 1) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    sendFrom(pane, `burst ${i + 1}/${count} from ${TRANSPORT_NAMES[pane.transport]}`);
  }
}

$("burst").addEventListener("submit", async (e) => {
  e.preventDefault();
  const count = Math.min(1000, Math.max(1, Number($("burst-count").value) || 1));
  const rate = Math.min(200, Math.max(1, Number($("burst-rate").value) || 1));
  const button = $("burst-run");
  button.disabled = true;
  $("burst-state").textContent = `Sending ${count} messages from each pane at ${rate}/s…`;
  await Promise.all(Object.values(panes).map((pane) => burst(pane, count, rate)));
  button.disabled = false;
  $("burst-state").textContent = `Sent ${count} messages from each pane at ${rate}/s.`;
});

$("reset").addEventListener("click", () => {
  sent.clear();
  refusedWs = 0;
  for (const pane of Object.values(panes)) {
    pane.stats = newStats();
    pane.stats.reconnectBase = pane.conn.reconnects;
  }
  scheduleRender();
});

// -- start --------------------------------------------------------------------
$("room-name").textContent = `#${room}`;
$("chat-link").href = `/?room=${encodeURIComponent(room)}`;
document.title = `WebSocket vs SSE vs long-polling · #${room} · realtime`;
for (const transport of TRANSPORTS) panes[transport] = makePane(transport);
for (const pane of Object.values(panes)) {
  pane.conn = connect(room, { transport: pane.transport, user: `lab-${pane.transport}`, shared: false });
  for (const type of ["message", "presence", "gap", "error"]) {
    pane.conn.on(type, (event, info) => onEvent(pane, event, info));
  }
  pane.conn.on("state", ({ state }) => onStatus(pane, state));
}
// Outstanding messages turn into "missing" with time alone: re-check every second.
setInterval(scheduleRender, 1000);
scheduleRender();
