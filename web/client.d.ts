/**
 * Types of the realtime browser client, served at /client.d.ts beside /client.js.
 *
 *   import { connect } from "https://chat.example/client.js";
 *   const conn = connect("lobby", { transport: "sse", baseUrl: "https://chat.example" });
 *   conn.on("message", (msg) => console.log(msg.text));
 */

export type Transport = "ws" | "sse" | "poll";

/** connecting → open ⇄ reconnecting; offline after reconnect({delayMs}); closed at the end. */
export type State = "connecting" | "open" | "reconnecting" | "offline" | "closed";

/** alone: this tab connects itself; leader: it connects for the tabs sharing it; follower: another tab does. */
export type Role = "alone" | "leader" | "follower";

export interface Member {
  user: string;
  transport: string;
}

export interface RoomMessage {
  type: "message";
  room: string;
  /** "17", or a Redis stream id "1700000000000-3"; compare with compareIds. */
  id: string;
  user: string;
  text: string;
  /** Unix time in seconds. */
  ts: number;
  client_id?: string;
}

export interface PresenceEvent {
  type: "presence";
  room: string;
  event: "join" | "leave";
  user: string;
  transport: string;
  /** Every member; `members` lists at most the server's --presence-limit. */
  count: number;
  members: Member[];
}

/** Messages after `since` are no longer held: some were missed. */
export interface GapEvent {
  type: "gap";
  room: string;
  since: string;
  first_id: string | null;
  detail: string;
}

/** From the server (bad_message, rate_limited, …) or the client (gave_up, token_refresh_failed). */
export interface ErrorEvent {
  type: "error";
  code: string;
  detail: string;
}

/** How an event reached this tab. */
export interface DeliveryInfo {
  /** "http" for messages a follower tab read from the history route. */
  transport?: Transport | "http";
  /** Bytes on the wire for this event, framing included. */
  bytes?: number;
  /** Bytes of the event's JSON. */
  payloadBytes?: number;
  /** Relayed by the tab that holds the shared connection. */
  relayed?: boolean;
}

export interface StateChange {
  state: State;
  previous: State;
  role: Role;
  reconnects: number;
  /** Why: a close code 4000–4099 (server API) or 1013 (slow), an HTTP status, "gave_up" or "token_expired". */
  code?: number | string;
  reason?: string;
  /** No reconnect will follow (a deliberate disconnect, an expired token without a provider, gave up). */
  final?: boolean;
}

export interface ShareChange {
  role: Role;
  /** Tabs of this browser sharing the connection, this one included. */
  tabs: number;
}

export interface EventMap {
  message: [RoomMessage, DeliveryInfo];
  presence: [PresenceEvent, DeliveryInfo];
  gap: [GapEvent, DeliveryInfo];
  error: [ErrorEvent, DeliveryInfo];
  state: [StateChange];
  share: [ShareChange];
}

export interface BackoffOptions {
  /** First delay after a failure, ms (default 250); doubles per failure in a row, with jitter. */
  initialMs?: number;
  /** Longest delay, ms (default 15000). */
  maxMs?: number;
  /** Open this long (ms, default 10000) and the next failure starts from initialMs again. */
  healthyMs?: number;
}

export interface ConnectOptions {
  /** Default "ws". */
  transport?: Transport;
  /** The server's root URL (a path prefix is kept); default: this page's origin. */
  baseUrl?: string | URL;
  /** Display name; ignored when a token names the user. */
  user?: string;
  /** Resume after this message id instead of receiving the room's last messages. */
  since?: string | null;
  /** JWT for private rooms (WebSocket subprotocol, ?token= for SSE and polling, Bearer for POST). */
  token?: string;
  /** Asked for a token before connecting when there is none or it expires within 5 s, before the open connection's token expires (a WebSocket sends {"type":"refresh"} in place; SSE and long-polling reconnect from the last id), and after the server ends a connection because the token expired. */
  tokenProvider?: () => string | Promise<string>;
  /** Share one connection among this origin's tabs (Web Locks + BroadcastChannel). Default: true for "sse". */
  shared?: boolean;
  backoff?: BackoffOptions;
  /** Stop reconnecting after this many ms without a connection ("error" gave_up, then "closed"). Default: never. */
  giveUpAfterMs?: number | null;
  /** Seconds a long-poll may be held by the server (default 25, at most 60). */
  pollTimeout?: number;
}

export interface SendOptions {
  /** Echoed back in the stored message; default: a new unique id. */
  clientId?: string;
}

/** A failed send: `code` is the server's error code, "timeout" or "closed". */
export interface ClientError extends Error {
  code: string;
  status?: number;
}

export interface Connection {
  readonly room: string;
  readonly transport: Transport;
  readonly state: State;
  readonly role: Role;
  /** The id of the last message delivered, where a reconnect resumes. */
  readonly lastId: string | null;
  /** Times the connection came back after a drop. */
  readonly reconnects: number;
  /** Add a listener; returns a function that removes it. */
  on<K extends keyof EventMap>(type: K, listener: (...args: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(type: K, listener: (...args: EventMap[K]) => void): void;
  /** Over the open WebSocket, else by POST; resolves with the stored message. Rejects with a ClientError. */
  send(text: string, options?: SendOptions): Promise<RoomMessage>;
  /** Drop the connection, stay "offline" for delayMs, then resume from lastId (the tab holding the connection only). */
  reconnect(options?: { delayMs?: number }): void;
  /** Close for good; a shared connection passes to another tab. */
  close(): void;
}

export function connect(room: string, options?: ConnectOptions): Connection;

/** Letters, digits, "-", "_" and ".", 1 to 64 of them. */
export const ROOM_PATTERN: RegExp;
export function isRoomName(name: unknown): name is string;
/** Orders ids: negative when a is older than b. */
export function compareIds(a: string, b: string): number;
/** A client_id unique to this page load: `prefix-session-n`. */
export function newClientId(prefix?: string): string;
export const TRANSPORT_NAMES: Readonly<Record<Transport, string>>;
export function utf8Length(text: string): number;
/** A server WebSocket frame's size for a payload of this many bytes. */
export function wsFrameBytes(payloadBytes: number): number;
/** An SSE event block's size: `id:`, `event:` and `data:` lines. */
export function sseEventBytes(type: string, data: string, id?: string): number;
