"""The ASGI app of ``llmtap serve``: the JSON API of :mod:`llmtap.serve.routes`, the dashboard's
static files, ``/healthz``, errors as ``{"error": ...}``, the bearer token, and mounts (such as
an MCP server at ``/mcp``) whose lifespans run inside the app's."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from llmtap.read.bucketcache import BucketCache
from llmtap.read.params import BadArgument, parse_all
from llmtap.read.plugins import PluginRead
from llmtap.serve import auth, openapi
from llmtap.serve.redact import mask
from llmtap.serve.routes import ENDPOINTS, Context, Endpoint, Raw, plugin_endpoint
from llmtap.settings import Settings, SettingsError

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).parent / "static"
OPENAPI_PATH: Final = "/api/v1/openapi.json"
#: A sub-app mounted at a path, with the lifespan it needs (None if it needs none): for the MCP
#: SDK's streamable HTTP app, ``("/mcp", mcp.streamable_http_app(), mcp.session_manager.run)``.
AppMount = tuple[str, ASGIApp, Callable[[], AbstractAsyncContextManager[Any]] | None]
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-src 'self' blob: data:; connect-src 'self'; "
        b"frame-ancestors 'none'",
    ),
)


class _Cache:
    """Answers of cached endpoints, reused for ``ttl_s`` (the dashboard polls every few s)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._items: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> Any | None:
        hit = self._items.get(key)
        return hit[1] if hit is not None and self.clock() - hit[0] < self.ttl_s else None

    def clear(self) -> None:
        self._items.clear()

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        now = self.clock()
        self._items = {k: v for k, v in self._items.items() if now - v[0] < self.ttl_s}
        self._items[key] = (now, value)


class _SecurityHeaders:
    """Adds the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    client: redis.Redis,
    *,
    token: str | None = None,
    settings: Settings | None = None,
    secrets: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] | None = None,
    cache_ttl_s: float = 2.0,
    clock: Callable[[], float] = time.time,
    monthly_budget_usd: float | None = None,
    mounts: Sequence[AppMount] = (),
    buckets: BucketCache | None = None,
    reads: Sequence[PluginRead] = (),
) -> Starlette:
    """Return the app serving the API, the dashboard and ``mounts`` on ``client``.

    With ``token``, every ``/api`` request needs ``Authorization: Bearer <token>``; writes
    always need it when it is set. ``secrets`` are masked in every response. CORS is off
    unless ``cors_origins`` names origins; ``allowed_hosts`` (None: any) guards against DNS
    rebinding of a loopback server. ``buckets`` keeps decoded closed buckets for every request
    (see :mod:`llmtap.read.bucketcache`; None reads everything from Redis each time).
    ``reads`` are plugins' read functions, served at ``/api/v1/x/<name>`` like the tools.
    """
    ctx = Context(client, settings, clock, monthly_budget_usd, buckets)
    endpoints = (*ENDPOINTS, *(plugin_endpoint(read) for read in reads))
    api = _Api(ctx, token, tuple(secrets), _Cache(cache_ttl_s, clock), endpoints)
    routes: list[BaseRoute] = [
        Route("/healthz", api.healthz),
        Route(OPENAPI_PATH, api.openapi),
        *(Route(e.path, api.endpoint(e), methods=[e.method]) for e in endpoints),
        Route("/api/{rest:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/", _index),
        Route("/favicon.ico", _favicon),
        Mount("/static", StaticFiles(directory=STATIC)),
        # A mount serves its own path (the MCP app routes /mcp itself, without a trailing /).
        *(Route(path, app) for path, app, _ in mounts),
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=_lifespan([m[2] for m in mounts if m[2] is not None]),
        exception_handlers={HTTPException: api.http_error, Exception: api.internal_error},
    )


def _lifespan(
    contexts: list[Callable[[], AbstractAsyncContextManager[Any]]],
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for enter in contexts:
                await stack.enter_async_context(enter())
            yield

    return lifespan


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


async def _favicon(request: Request) -> Response:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


class _Api:
    """The API's request handling: auth, arguments, the worker thread, the cache, errors."""

    def __init__(
        self,
        ctx: Context,
        token: str | None,
        secrets: tuple[str, ...],
        cache: _Cache,
        endpoints: Sequence[Endpoint] = ENDPOINTS,
    ) -> None:
        self.ctx = ctx
        self.token = token
        self.secrets = secrets
        self.cache = cache
        self.endpoints = tuple(endpoints)

    def json(
        self, value: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        """Return ``value`` as JSON (NaN and infinities as null), secrets masked."""
        body = json.dumps(_finite(value), default=str, allow_nan=False)  # keeps the tools order
        return Response(mask(body, self.secrets), status, headers, "application/json")

    def error(self, status: int, message: str) -> Response:
        """Return ``{"error": message}`` with ``status``."""
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        return self.json({"error": message}, status, headers)

    async def healthz(self, request: Request) -> Response:
        """200 when Redis answers PING, else 503 (for compose's healthcheck)."""
        try:
            await run_in_threadpool(self.ctx.client.ping)
        except redis.RedisError as exc:
            return self.json({"status": "unavailable", "error": _redis_message(exc)}, 503)
        return self.json({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI 3.1 description of the API."""
        return self.json(openapi.document(self.endpoints, OPENAPI_PATH))

    async def not_found(self, request: Request) -> Response:
        """404 for any other ``/api`` path."""
        return self.error(404, f"no endpoint {request.method} {request.url.path}")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own errors (404, 405...) as JSON."""
        assert isinstance(exc, HTTPException)
        return self.error(exc.status_code, str(exc.detail))

    async def internal_error(self, request: Request, exc: Exception) -> Response:
        """Anything unexpected: logged with its traceback, answered without it."""
        log.exception("%s %s failed", request.method, request.url.path)
        return self.error(500, "internal error (see the server log)")

    def endpoint(self, endpoint: Endpoint) -> Callable[[Request], Any]:
        """Return the request handler of ``endpoint``."""

        async def handle(request: Request) -> Response:
            if not auth.allowed(request, self.token):
                return self.error(401, "missing or wrong bearer token (LLMTAP_API_TOKEN)")
            try:
                args = await _arguments(request, endpoint)
                result = await self._answer(endpoint, args)
            except (BadArgument, SettingsError, ValueError) as exc:
                return self.error(400, str(exc))
            except LookupError as exc:
                return self.error(404, str(exc.args[0]) if exc.args else "not found")
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                return self.error(503, f"Redis is unreachable: {_redis_message(exc)}")
            if isinstance(result, Raw):
                return self._raw(result)
            return self.json(result)

        return handle

    async def _answer(self, endpoint: Endpoint, args: dict[str, Any]) -> Any:
        key = (endpoint.path, tuple(sorted((k, repr(v)) for k, v in args.items())))
        if endpoint.cached:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        result = await run_in_threadpool(endpoint.handler, self.ctx, args)
        if endpoint.cached:
            self.cache.put(key, result)
        elif endpoint.write:
            self.cache.clear()  # a write changes what the reads would say
        return result

    def _raw(self, raw: Raw) -> Response:
        headers = {}
        if raw.filename:
            headers["content-disposition"] = f'attachment; filename="{raw.filename}"'
        return Response(mask(raw.body, self.secrets), 200, headers, raw.media_type)


async def _arguments(request: Request, endpoint: Endpoint) -> dict[str, Any]:
    given: dict[str, Any] = dict(request.query_params)
    if endpoint.method == "POST":
        given = await _body(request, endpoint)
    path = {name: request.path_params[name] for name in endpoint.path_params}
    return {**parse_all(endpoint.params, given), **path}


async def _body(request: Request, endpoint: Endpoint) -> dict[str, Any]:
    raw = await request.body()
    if not endpoint.params:
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadArgument("body", "send JSON with Content-Type: application/json")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise BadArgument("body", "not valid JSON") from None
    if not isinstance(body, dict):
        raise BadArgument("body", "must be a JSON object")
    return {"body": body} if endpoint.body_description == "whole-body" else body


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _redis_message(exc: redis.RedisError) -> str:
    # redis-py's connection errors name host and port, never the password; say no more.
    return str(exc).split("\n")[0][:200] or type(exc).__name__
