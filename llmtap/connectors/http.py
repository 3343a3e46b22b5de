"""``GET /metrics`` as an ASGI app: mounted by ``llmtap serve`` and served alone by ``llmtap
metrics``. With a token configured, a scrape needs ``Authorization: Bearer <token>`` (what
Prometheus sends with ``authorization: {credentials: ...}`` in its scrape config)."""

from __future__ import annotations

import logging
from typing import Final

import redis
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llmtap.connectors.prometheus import MetricsConfig, registry
from llmtap.serve import auth

log = logging.getLogger(__name__)
PATH: Final = "/metrics"


class MetricsEndpoint:
    """The ASGI app answering ``GET /metrics`` from Redis (503 when Redis does not answer)."""

    def __init__(self, client: redis.Redis, config: MetricsConfig, token: str | None) -> None:
        self.registry = registry(client, config)
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.respond(request)
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        """Return the exposition, 401 without the token, 405 for a method but GET/HEAD."""
        if request.method not in ("GET", "HEAD"):
            return JSONResponse({"error": "method not allowed"}, status_code=405)
        if not auth.allowed(request, self.token):
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        try:
            body = await run_in_threadpool(generate_latest, self.registry)
        except redis.RedisError as exc:
            log.warning("/metrics: redis unavailable: %s", exc)
            return JSONResponse({"error": f"redis unavailable: {exc}"}, status_code=503)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def metrics_app(client: redis.Redis, config: MetricsConfig, token: str | None) -> Starlette:
    """Return the app of ``llmtap metrics``: ``/metrics`` and ``/healthz`` only."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    endpoint = MetricsEndpoint(client, config, token)
    return Starlette(routes=[Route(PATH, endpoint), Route("/healthz", healthz)])
