// The chat page: one room, one connection over WebSocket, SSE or long-polling.
// Over SSE the tabs of this browser share one connection (client.js's `shared`).
import { TRANSPORT_NAMES, connect as open, isRoomName, newClientId } from "/client.js";
import { $, el } from "./dom.js";

const MAX_SHOWN = 500;
const STATUS_TEXT = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  offline: "offline",
  closed: "closed",
};

const list = $("messages");
const statusEl = $("status");
const nameInput = $("name");
const textInput = $("text");

const params = new URLSearchParams(location.search);
const requested = params.get("room") || "lobby";
const room = isRoomName(requested) ? requested : "lobby";

let user = localStorage.getItem("realtime.name") || `guest-${Math.random().toString(36).slice(2, 6)}`;
const stored = localStorage.getItem("realtime.transport");
let transport = Object.hasOwn(TRANSPORT_NAMES, stored) ? stored : "ws";
let conn = null;
// Private rooms: ?token= is the first token; ?token_url= (a path on this
// origin, e.g. your backend behind the same proxy) answers a fresh one, as
// text or {"token": …}, whenever the client needs it: before the token
// expires, and after the server ended a connection at its exp.
const tokenUrl = sameOrigin(params.get("token_url"));
const tokenOptions = {
  token: params.get("token") || undefined,
  tokenProvider: tokenUrl ? () => fetchToken(tokenUrl) : undefined,
};
const pending = new Map(); // client_id -> <li> shown before the server's copy

function sameOrigin(path) {
  if (!path) return null;
  const url = new URL(path, location.origin);
  return url.origin === location.origin ? url : null;
}

async function fetchToken(url) {
  const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!resp.ok) throw new Error(`token endpoint answered ${resp.status}`);
  const body = (await resp.text()).trim();
  return body.startsWith("{") ? JSON.parse(body).token : body;
}

const shownIds = new Set();

function formatTime(ts) {
  const date = new Date(ts * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function nearBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

function append(node) {
  const stick = nearBottom();
  list.append(node);
  while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
  if (stick) list.scrollTop = list.scrollHeight;
}

function messageItem(msg, { mine = false } = {}) {
  const li = el("li", mine ? "message mine" : "message");
  const head = el("div", "meta");
  head.append(el("span", "user", msg.user));
  const time = el("time", "time", msg.ts ? formatTime(msg.ts) : "sending…");
  if (msg.ts) {
    time.dateTime = new Date(msg.ts * 1000).toISOString();
    time.title = new Date(msg.ts * 1000).toLocaleString();
  }
  head.append(time);
  li.append(head, el("p", "text", msg.text));
  if (msg.id) li.dataset.id = msg.id;
  return li;
}

function notice(text, kind = "info") {
  append(el("li", `notice ${kind}`, text));
}

function showMessage(msg) {
  if (shownIds.has(msg.id)) return;
  shownIds.add(msg.id);
  const mine = msg.user === user;
  const item = messageItem(msg, { mine });
  const waiting = msg.client_id && pending.get(msg.client_id);
  if (waiting) {
    pending.delete(msg.client_id);
    waiting.replaceWith(item);
  } else {
    append(item);
  }
}

function showMembers(members) {
  const ul = $("members");
  ul.replaceChildren();
  const sorted = [...members].sort((a, b) => a.user.localeCompare(b.user));
  for (const m of sorted) {
    const li = el("li", m.user === user ? "member me" : "member");
    li.append(el("span", "user", m.user), el("span", `badge ${m.transport}`, m.transport));
    ul.append(li);
  }
  $("member-count").textContent = String(members.length);
}

function onEvent(event) {
  switch (event.type) {
    case "message":
      showMessage(event);
      break;
    case "presence":
      showMembers(event.members || []);
      break;
    case "gap":
      shownIds.clear(); // ids may start again (a server without storage restarted)
      notice(`Some messages were missed: ${event.detail || "history no longer holds them"}`, "warn");
      break;
    case "error":
      notice(`Server: ${event.detail || event.code}`, "error");
      break;
  }
}

function onState({ state, reason }) {
  statusEl.dataset.status = state;
  const via = state === "open" ? ` · ${TRANSPORT_NAMES[transport]}` : "";
  statusEl.textContent = STATUS_TEXT[state] + via;
  if (state === "open") statusEl.dataset.openAt = String(Date.now());
  if (state === "closed" && reason) notice(`Disconnected by the server: ${reason}`, "warn");
}

// Who holds the connection: this tab, or another tab of this browser.
function onShare({ role, tabs }) {
  const share = $("share");
  share.hidden = false;
  share.dataset.role = role;
  const held = role === "leader" ? "held by this tab" : "held by another tab";
  share.textContent = `one connection for ${tabs} tab${tabs === 1 ? "" : "s"}, ${held}`;
}

function connect() {
  const since = conn ? conn.lastId : null;
  if (conn) conn.close();
  $("share").hidden = true;
  conn = open(room, { transport, user, since, ...tokenOptions });
  for (const type of ["message", "presence", "gap", "error"]) conn.on(type, onEvent);
  conn.on("state", onState);
  conn.on("share", onShare);
}

function send(text) {
  const clientId = newClientId("chat");
  const item = messageItem({ user, text }, { mine: true });
  item.classList.add("pending");
  pending.set(clientId, item);
  append(item);
  conn.send(text, { clientId }).catch((err) => {
    pending.delete(clientId);
    item.classList.replace("pending", "failed");
    item.querySelector(".time").textContent = `not sent: ${err.message}`;
  });
}

// -- wiring ------------------------------------------------------------------
document.title = `#${room} · realtime`;
$("room-name").textContent = `#${room}`;
$("compare-link").href = `/compare?room=${encodeURIComponent(room)}`;
if (room !== requested) notice(`"${requested}" is not a valid room name; showing #lobby.`, "warn");

nameInput.value = user;
nameInput.addEventListener("change", () => {
  const name = nameInput.value.trim();
  if (!name || name === user) {
    nameInput.value = user;
    return;
  }
  user = name;
  localStorage.setItem("realtime.name", user);
  connect();
});
localStorage.setItem("realtime.name", user);

for (const radio of document.querySelectorAll('input[name="transport"]')) {
  radio.checked = radio.value === transport;
  radio.addEventListener("change", () => {
    if (!radio.checked) return;
    transport = radio.value;
    localStorage.setItem("realtime.transport", transport);
    connect();
  });
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = textInput.value;
  if (!text.trim()) return;
  textInput.value = "";
  send(text);
  textInput.focus();
});

connect();
