"""How a failure reaches an MCP client: every expected error becomes a ToolError with a clear
message (the SDK withholds the message of any other exception), and no secret is in it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from llmtap.settings import SettingsError, redact_url

P = ParamSpec("P")
R = TypeVar("R")


def guarded(
    url: str, error: type[Exception] = ToolError
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Return a decorator that turns Redis, settings and value errors into ``error``
    (ToolError for tools, ResourceError for resources).

    ``url`` is the Redis URL the server talks to; messages show it with the password hidden.
    """
    shown = redact_url(url)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except (ToolError, ResourceError):
                raise
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise error(f"cannot reach Redis at {shown}: {exc}") from None
            except redis.RedisError as exc:
                raise error(f"Redis error at {shown}: {exc}") from None
            except SettingsError as exc:
                raise error(f"bad setting: {exc}") from None
            except (ValueError, OSError) as exc:
                raise error(str(exc)) from None

        return call

    return decorate
