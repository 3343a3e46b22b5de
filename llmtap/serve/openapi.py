"""The OpenAPI 3.1 description of the HTTP API, built from the same endpoint table that
parses the requests, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from llmtap import __version__
from llmtap.serve.routes import Endpoint

_ERROR: Final = {
    "description": "an error: bad argument (400), token (401), not found (404), Redis "
    "unreachable (503)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}


def document(endpoints: Sequence[Endpoint], self_path: str) -> dict[str, Any]:
    """Return the OpenAPI document for ``endpoints``."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmtap",
            "version": __version__,
            "description": "The llmtap read tools, alerts, silences and pipeline health over "
            f"HTTP. This document: {self_path}.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": _ERROR},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": _operation_id(endpoint),
        "tags": [endpoint.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in endpoint.path_params
        ],
        "responses": {
            "200": {"description": "the answer", "content": {"application/json": {}}},
            "default": {"$ref": "#/components/responses/Error"},
        },
    }
    if endpoint.write:
        op["security"] = [{"bearer": []}]
        op["requestBody"] = {
            "required": bool(endpoint.params),
            "content": {"application/json": {"schema": _body_schema(endpoint)}},
        }
    else:
        op["parameters"] += [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.description,
                "schema": p.schema(),
            }
            for p in endpoint.params
        ]
    return op


def _body_schema(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.body_description == "whole-body":
        param = endpoint.params[0]
        return {"type": "object", "description": param.description}
    return {
        "type": "object",
        "properties": {
            p.name: {**p.schema(), "description": p.description} for p in endpoint.params
        },
        "required": [p.name for p in endpoint.params if p.required],
        "additionalProperties": False,
    }


def _operation_id(endpoint: Endpoint) -> str:
    words = [w for w in endpoint.path.removeprefix("/api/v1/").split("/") if w]
    name = "_".join(w.strip("{}") for w in words)
    return f"{endpoint.method.lower()}_{name}"
