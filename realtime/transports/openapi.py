"""The OpenAPI 3.1 description of the server API and the public HTTP routes,
served at ``GET /api/openapi.json``. Tests validate it and call every route
it lists, so it cannot drift from the handlers unnoticed."""

from __future__ import annotations

from functools import cache
from typing import Any

from .openapi_schemas import (
    API_ERRORS,
    LIMIT,
    ROOM,
    Schema,
    answer,
    body,
    errors,
    obj,
    param,
    ref,
    schemas,
    string,
)


def api_paths() -> dict[str, Schema]:
    secured = {"security": [{"apiKey": []}, {"apiKeyAuthorization": []}], "tags": ["server API"]}
    return {
        "/api/publish": {
            "post": {
                **secured,
                "summary": "Publish one text to one room or up to 1,000 rooms",
                "requestBody": body(
                    ref("PublishRequest"),
                    {"rooms": ["lobby", "news"], "text": "deploy done", "idempotency_key": "d-1"},
                ),
                "responses": {
                    "200": answer("one result per room, in order", ref("PublishResponse")),
                    **errors(*API_ERRORS, 413, 415),
                },
            }
        },
        "/api/rooms/{room}/history": {
            "get": {
                **secured,
                "summary": "A page of a room's history, forward or backward",
                "parameters": [
                    ROOM,
                    param("since", "query", "exclusive lower bound (a message id)", "0"),
                    param("before", "query", "exclusive upper bound (a message id)", "999999"),
                    LIMIT,
                    param("reverse", "query", "1: newest first", "1", enum=["0", "1"]),
                ],
                "responses": {
                    "200": answer("the page; pass `next` back to continue", ref("HistoryPage")),
                    **errors(*API_ERRORS, 503),
                },
            }
        },
        "/api/rooms/{room}/presence": {
            "get": {
                **secured,
                "summary": "Users connected to a room, on every process",
                "parameters": [ROOM],
                "responses": {
                    "200": answer("members", ref("Presence")),
                    **errors(*API_ERRORS, 503),
                },
            }
        },
        "/api/rooms/{room}/presence/stats": {
            "get": {
                **secured,
                "summary": "Connection and user counts of a room",
                "parameters": [ROOM],
                "responses": {
                    "200": answer("counts", ref("PresenceStats")),
                    **errors(*API_ERRORS, 503),
                },
            }
        },
        "/api/rooms": {
            "get": {
                **secured,
                "summary": "Rooms with member counts, by name, paged",
                "parameters": [
                    param("prefix", "query", "only names starting with this", "lob"),
                    param("cursor", "query", "the `next` of the previous page", ""),
                    LIMIT,
                ],
                "responses": {
                    "200": answer("a page of rooms", ref("RoomPage")),
                    **errors(*API_ERRORS, 503),
                },
            }
        },
        "/api/disconnect": {
            "post": {
                **secured,
                "summary": "Close a user's connections on every process",
                "requestBody": body(ref("DisconnectRequest"), {"user": "ana", "reason": "banned"}),
                "responses": {
                    "200": answer("connections closed", ref("Disconnected")),
                    **errors(*API_ERRORS, 413, 415, 503),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                **secured,
                "summary": "This description",
                "responses": {
                    "200": answer("OpenAPI 3.1", {"type": "object"}),
                    **errors(*API_ERRORS),
                },
            }
        },
    }


def public_paths() -> dict[str, Schema]:
    public = {"tags": ["public"]}
    user = param("user", "query", "user name (ignored with a token)", "ana")
    since = param("since", "query", "resume after this message id", "0")
    return {
        "/rooms/{room}/messages": {
            "post": {
                **public,
                "summary": "Send a message (browsers; Origin and per-address limits apply)",
                "parameters": [ROOM],
                "requestBody": body(
                    obj(["text"], text=string(), user=string(), client_id=string()),
                    {"text": "hi", "user": "ana", "client_id": "c-1"},
                ),
                "responses": {
                    "201": answer("the stored message", ref("Message")),
                    **errors(400, 401, 403, 413, 415, 429, 503),
                },
            },
            "get": {
                **public,
                "summary": "History, oldest first",
                "parameters": [ROOM, since, LIMIT],
                "responses": {
                    "200": answer("messages", ref("History")),
                    **errors(400, 401, 403, 503),
                },
            },
        },
        "/rooms": {
            "get": {
                **public,
                "summary": "Public rooms with member counts per transport, by name, paged",
                "parameters": [
                    param("cursor", "query", "the `next` of the previous page", "lobby"),
                    param("limit", "query", "page size", "10", pattern=r"^\d+$"),
                ],
                "responses": {
                    "200": answer("a page of rooms", ref("RoomPage")),
                    **errors(400, 503),
                },
            }
        },
        "/rooms/{room}/events": {
            "get": {
                **public,
                "summary": "The room as a Server-Sent Events stream; Last-Event-ID resumes",
                "parameters": [ROOM, user, since],
                "responses": {
                    "200": answer("the stream", string(), media="text/event-stream"),
                    **errors(400, 401, 403, 429),
                },
            }
        },
        "/rooms/{room}/ws": {
            "get": {
                **public,
                "summary": "The room over WebSocket (subprotocol `realtime`)",
                "parameters": [ROOM, user, since],
                "responses": {
                    "101": answer("switching to WebSocket"),
                    **errors(400, 401, 403, 429),
                },
            }
        },
        "/rooms/{room}/poll": {
            "get": {
                **public,
                "summary": "Long-polling: the events after `since`, or wait up to `timeout` s",
                "parameters": [
                    ROOM,
                    user,
                    since,
                    param("timeout", "query", "seconds to hold, 0-60 (default 25)", "0"),
                ],
                "responses": {
                    "200": answer("events; pass `next` as `since` next time", ref("Poll")),
                    **errors(400, 401, 403, 429, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                **public,
                "summary": "Liveness and broker reachability",
                "responses": {
                    "200": answer("healthy", ref("Health")),
                    "503": answer("broker down", ref("Health")),
                },
            }
        },
        "/metrics": {
            "get": {
                **public,
                "summary": "Prometheus text format",
                "responses": {"200": answer("metrics", string(), media="text/plain")},
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "realtime",
            "version": "1",
            "description": "Chat rooms over WebSocket, SSE and HTTP; the server API under /api/ "
            "needs a key (--api-key) sent as X-API-Key or Authorization: apikey KEY.",
        },
        "paths": {**api_paths(), **public_paths()},
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "apiKeyAuthorization": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "the value `apikey KEY`",
                },
            },
        },
    }
