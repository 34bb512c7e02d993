"""``GET /api/openapi.json``: a valid OpenAPI 3.1 document, and every route it
lists answers as it says (a documented status, a body matching its schema)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from openapi_spec_validator import validate

from .api_helpers import HEADERS, Client, api, call, make_api, publish

__all__ = ["api", "make_api"]


async def test_the_document_is_valid_openapi_3_1(api: Client) -> None:
    doc = await call(api, "GET", "/api/openapi.json")
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any error
    paths = set(doc["paths"])
    assert {
        "/api/publish",
        "/api/disconnect",
        "/api/rooms",
        "/api/rooms/{room}/history",
        "/api/rooms/{room}/presence",
        "/api/rooms/{room}/presence/stats",
        "/rooms/{room}/messages",
        "/rooms/{room}/events",
        "/rooms/{room}/poll",
        "/rooms/{room}/ws",
        "/rooms",
    } <= paths


def example_url(path: str, op: dict[str, Any]) -> tuple[str, dict[str, str]]:
    query = {}
    for p in op.get("parameters", []):
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", p["example"])
        elif p["in"] == "query":
            query[p["name"]] = p["example"]
    return path, query


def body_schema(doc: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any] | None:
    content = answer.get("content", {}).get("application/json")
    if content is None:
        return None
    return {**content["schema"], "components": doc["components"]}


async def test_every_documented_route_answers_as_documented(api: Client) -> None:
    doc = await call(api, "GET", "/api/openapi.json")
    for i in range(3):
        await publish(api, room="lobby", text=f"seed {i}")
    called = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            url, query = example_url(path, op)
            kwargs: dict[str, Any] = {"params": query, "headers": HEADERS}
            if "requestBody" in op:
                kwargs["json"] = op["requestBody"]["content"]["application/json"]["example"]
            async with api.request(method.upper(), url, **kwargs) as resp:
                where = f"{method.upper()} {url}"
                assert str(resp.status) in op["responses"], (where, resp.status)
                if resp.content_type == "text/event-stream":
                    assert await resp.content.readline() != b""  # the stream started
                    resp.close()
                    called += 1
                    continue
                schema = body_schema(doc, op["responses"][str(resp.status)])
                text = await resp.text()
                if schema is not None:
                    jsonschema.validate(json.loads(text), schema)
                    assert resp.content_type == "application/json", where
            called += 1
    assert called == sum(len(ops) for ops in doc["paths"].values())
