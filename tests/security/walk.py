"""Walk the application's OpenAPI document: every operation, with plausible parameters and bodies.

The security tests derive their targets from ``app.openapi()`` rather than from a hand-kept list,
so a route added later is covered (or makes a test fail until someone says how to cover it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import find
from hypothesis import strategies as st
from sqlalchemy import Connection, select

from rapport.models import Base

API = "/api/v1"
METHODS = ("get", "post", "put", "patch", "delete")

# Field-name hints for values a generic string would not satisfy (or would make implausible).
NAME_HINTS: dict[str, Any] = {
    "value": "walker@example.com",  # contact point value; first enum kind is "email"
    "email": "walker@example.com",
    "password": "Quiet-Harbour-Lamp-42",
    "new_password": "Quiet-Harbour-Lamp-42",
    "current_password": "Blue-Lantern-Orbit-77",
    "currency": "CNY",
    "country": "CN",
}

FUTURE_TIMES = frozenset({"expires_at", "due_at", "valid_until"})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Mapping[str, Any]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[Mapping[str, Any]]:
        return list(self.spec.get("parameters", []))

    @property
    def has_record_id(self) -> bool:
        return any(p["name"] == "record_id" and p["in"] == "path" for p in self.params)

    @property
    def record_segment(self) -> str:
        """The collection whose id ``record_id`` is: the path segment just before it."""
        parts = self.path.split("/")
        return parts[parts.index("{record_id}") - 1]

    def content(self) -> tuple[str | None, Mapping[str, Any] | None]:
        body = self.spec.get("requestBody", {}).get("content", {})
        for media_type, media in body.items():
            return media_type, media.get("schema")
        return None, None


def operations(app: FastAPI) -> list[Operation]:
    doc = app.openapi()
    return [
        Operation(method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


class Examples:
    """Minimal valid instances of the document's schemas: required fields, first enum choice."""

    def __init__(self, app: FastAPI, overrides: Mapping[str, Any] | None = None) -> None:
        self.components = app.openapi().get("components", {}).get("schemas", {})
        self.overrides = dict(overrides or {})

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def properties(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.resolve(schema).get("properties", {}))

    def body(self, schema: Mapping[str, Any] | None) -> Any:
        """A top-level body; PATCH-style schemas with nothing required get their first field."""
        if schema is None:
            return None
        value = self.value(schema, None)
        resolved = self.resolve(schema)
        if isinstance(value, dict) and not value and resolved.get("properties"):
            for name, prop in resolved["properties"].items():
                kind = self.resolve(self._branch(prop)).get("type")
                if kind in ("string", "integer", "number", "boolean"):
                    value[name] = self.value(prop, name)
                    break
        return value

    @staticmethod
    def _branch(schema: Mapping[str, Any]) -> Mapping[str, Any]:
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return next(b for b in schema[key] if b.get("type") != "null")
        if "allOf" in schema:
            return dict(schema["allOf"][0])
        return schema

    def value(self, schema: Mapping[str, Any], name: str | None) -> Any:
        if name is not None and name in self.overrides:
            return self.overrides[name]
        schema = self.resolve(self._branch(self.resolve(schema)))
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            required = schema.get("required", [])
            props = schema.get("properties", {})
            return {key: self.value(props[key], key) for key in required}
        if kind == "array":
            return [self.value(schema["items"], None) for _ in range(schema.get("minItems", 0))]
        if kind == "integer":
            return int(schema.get("minimum", 1))
        if kind == "number":
            return schema.get("minimum", 1)
        if kind == "boolean":
            return False
        if kind == "string":
            return self._string(schema, name)
        raise AssertionError(f"walk.Examples cannot build a value for {name}: {schema}")

    def _string(self, schema: Mapping[str, Any], name: str | None) -> str:
        if name in NAME_HINTS:
            return str(NAME_HINTS[name])
        fmt = schema.get("format")
        if fmt == "date-time":
            # Past by default (occurred/ordered "at" must not be in the future); expiries ahead.
            ahead = dt.timedelta(days=30 if name in FUTURE_TIMES else -1)
            return (dt.datetime.now(dt.UTC) + ahead).isoformat()
        if fmt == "date":
            return "2000-01-01"
        if fmt == "email":
            return str(NAME_HINTS["email"])
        if "pattern" in schema:
            return _matching(schema["pattern"], schema.get("minLength", 1))
        text = "Walk sample"
        low, high = schema.get("minLength", 0), schema.get("maxLength", len(text))
        return (text * (1 + low // len(text)))[: max(low, min(high, len(text)))]


@cache
def _matching(pattern: str, min_length: int) -> str:
    # The simplest string hypothesis can find for the pattern: deterministic, no hand-kept table.
    return str(find(st.from_regex(pattern, fullmatch=True), lambda s: len(s) >= min_length))


def request(
    client: TestClient,
    op: Operation,
    *,
    record_id: int | str = 1,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    query: Mapping[str, Any] | None = None,
) -> Response:
    url = op.path.replace("{record_id}", str(record_id))
    assert "{" not in url, f"{op}: walk only knows the path parameter record_id"
    media_type, _ = op.content()
    kwargs: dict[str, Any] = {"headers": dict(headers or {}), "params": dict(query or {})}
    if media_type == "application/json":
        kwargs["json"] = body
    elif media_type == "application/x-www-form-urlencoded":
        kwargs["data"] = body
    elif media_type is not None:
        raise AssertionError(f"{op}: walk does not know how to send {media_type}")
    return client.request(op.method, url, **kwargs)


def required_query(examples: Examples, op: Operation) -> dict[str, Any]:
    return {
        p["name"]: examples.value(p["schema"], p["name"])
        for p in op.params
        if p["in"] == "query" and p.get("required")
    }


def snapshot(conn: Connection, *, skip: tuple[str, ...] = ("audit_event",)) -> dict[str, list[Any]]:
    """Every row of every table (except ``skip``), for before/after comparisons."""
    out: dict[str, list[Any]] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in skip:
            continue
        order = list(table.primary_key.columns) or list(table.columns)
        out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out


def find_keys(data: Any, keys: frozenset[str]) -> Iterator[str]:
    """Every forbidden key anywhere inside ``data`` (dicts and lists, recursively)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in keys:
                yield key
            yield from find_keys(value, keys)
    elif isinstance(data, list):
        for item in data:
            yield from find_keys(item, keys)
