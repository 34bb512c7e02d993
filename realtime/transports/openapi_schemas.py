"""Building blocks of the OpenAPI description: helpers and the shared schemas."""

from __future__ import annotations

from typing import Any

from .api_publish import KEY_MAX, MAX_ROOMS
from .api_rooms import DEFAULT_LIMIT, MAX_LIMIT

JSON = "application/json"
ROOM_PATTERN = "^[A-Za-z0-9._-]{1,64}$"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **props: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": props}


def string(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def body(schema: Schema, example: Any) -> Schema:
    return {"required": True, "content": {JSON: {"schema": schema, "example": example}}}


def answer(description: str, schema: Schema | None = None, media: str = JSON) -> Schema:
    out: Schema = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def errors(*codes: int) -> dict[str, Schema]:
    text = {
        400: "bad input (see `code`)",
        401: "missing, expired or forged key or token",
        403: "refused (Origin, private room, token for another room)",
        404: "the server API is not enabled",
        413: "body too large",
        415: "not application/json",
        429: "rate limited; see Retry-After",
        503: "broker or history store unavailable; see Retry-After",
    }
    return {str(c): answer(text[c], ref("Error")) for c in codes}


def param(name: str, where: str, description: str, example: Any, **schema: Any) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string", **schema},
        "example": example,
    }


ROOM = param("room", "path", "room name", "lobby", pattern=ROOM_PATTERN)
LIMIT = param(
    "limit", "query", f"page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})", "10", pattern=r"^\d+$"
)
API_ERRORS = (400, 401, 404, 429)


def schemas() -> dict[str, Schema]:
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    message = obj(
        ["type", "room", "id", "user", "text", "ts"],
        type=string(const="message"),
        room=string(),
        id=string(),
        user=string(),
        text=string(),
        ts={"type": "number"},
        client_id=string(),
    )
    result = {
        "oneOf": [
            obj(["room", "id"], room=string(), id=string(), duplicate={"type": "boolean"}),
            obj(
                ["room", "error"],
                room={"type": ["string", "null"]},
                error=obj(["code", "detail"], code=string(), detail=string()),
            ),
        ]
    }
    return {
        "Error": obj(
            ["type", "code", "detail"], type=string(const="error"), code=string(), detail=string()
        ),
        "Message": message,
        "Messages": {"type": "array", "items": ref("Message")},
        "PublishRequest": obj(
            ["text"],
            room=string(pattern=ROOM_PATTERN),
            rooms={"type": "array", "items": string(), "minItems": 1, "maxItems": MAX_ROOMS},
            text=string(minLength=1),
            user=string(default="server"),
            client_id=string(maxLength=64),
            idempotency_key=string(minLength=1, maxLength=KEY_MAX),
        ),
        "PublishResponse": obj(["results"], results={"type": "array", "items": result}),
        "HistoryPage": obj(
            ["room", "messages", "next"],
            room=string(),
            messages=ref("Messages"),
            next={"type": ["string", "null"]},
        ),
        "Presence": obj(
            ["room", "members"],
            room=string(),
            members={
                "type": "array",
                "items": obj(
                    ["user", "connections", "transports"],
                    user=string(),
                    connections={"type": "integer"},
                    transports=counts,
                ),
            },
        ),
        "PresenceStats": obj(
            ["room", "connections", "users", "by_transport"],
            room=string(),
            connections={"type": "integer"},
            users={"type": "integer"},
            by_transport=counts,
        ),
        "RoomCounts": obj(
            ["room", "members", "total"], room=string(), members=counts, total={"type": "integer"}
        ),
        "RoomPage": obj(
            ["rooms", "next"],
            rooms={"type": "array", "items": ref("RoomCounts")},
            next={"type": ["string", "null"]},
        ),
        "DisconnectRequest": obj(
            ["user"],
            user=string(minLength=1, maxLength=32),
            room=string(pattern=ROOM_PATTERN),
            reason=string(maxLength=100),
            reconnect={"type": "boolean", "default": False},
        ),
        "Disconnected": obj(["disconnected"], disconnected={"type": "integer"}),
        "History": obj(
            ["room", "messages", "gap"],
            room=string(),
            messages=ref("Messages"),
            gap={"type": "boolean"},
        ),
        "Poll": obj(
            ["room", "events", "next"],
            room=string(),
            events={"type": "array", "items": {"type": "object", "required": ["type"]}},
            next={"type": ["string", "null"]},
        ),
        "Health": obj(
            ["status", "broker", "broker_ok", "pid"],
            status=string(enum=["ok", "degraded"]),
            broker=string(),
            broker_ok={"type": "boolean"},
            pid={"type": "integer"},
        ),
    }
