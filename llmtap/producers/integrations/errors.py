"""Normalised error types for failed LLM calls, read from any client library's exception.

Every client names its errors differently (``RateLimitError``, ``ThrottlingException``,
``ResponseError`` with status 429); dashboards and alert rules want one vocabulary. The map is
a pure function of the exception: its HTTP status, its AWS error code, then its class names.
"""

from __future__ import annotations

from typing import Any, Final

RATE_LIMIT: Final = "rate_limit"
TIMEOUT: Final = "timeout"
CONNECTION: Final = "connection"
AUTH: Final = "auth"
BAD_REQUEST: Final = "bad_request"
NOT_FOUND: Final = "not_found"
OVERLOADED: Final = "overloaded"
SERVER_ERROR: Final = "server_error"
API_ERROR: Final = "api_error"
BREAKER_OPEN: Final = "breaker_open"

_BY_STATUS: Final = {
    400: BAD_REQUEST,
    401: AUTH,
    403: AUTH,
    404: NOT_FOUND,
    408: TIMEOUT,
    413: BAD_REQUEST,
    422: BAD_REQUEST,
    429: RATE_LIMIT,
    503: OVERLOADED,
    504: TIMEOUT,
    529: OVERLOADED,
}

# AWS error codes (Bedrock's service errors and botocore's own).
_BY_CODE: Final = {
    "ThrottlingException": RATE_LIMIT,
    "TooManyRequestsException": RATE_LIMIT,
    "ServiceQuotaExceededException": RATE_LIMIT,
    "ModelTimeoutException": TIMEOUT,
    "ValidationException": BAD_REQUEST,
    "ModelErrorException": SERVER_ERROR,
    "InternalServerException": SERVER_ERROR,
    "ServiceUnavailableException": OVERLOADED,
    "ModelNotReadyException": OVERLOADED,
    "AccessDeniedException": AUTH,
    "UnrecognizedClientException": AUTH,
    "ResourceNotFoundException": NOT_FOUND,
}

# Class names, checked along the exception's MRO, for errors that carry no status.
_BY_NAME: Final = {
    "CircuitBreakerError": BREAKER_OPEN,
    "RateLimitError": RATE_LIMIT,
    "OverloadedError": OVERLOADED,
    "APITimeoutError": TIMEOUT,
    "Timeout": TIMEOUT,
    "TimeoutError": TIMEOUT,
    "TimeoutException": TIMEOUT,
    "ReadTimeoutError": TIMEOUT,
    "ConnectTimeoutError": TIMEOUT,
    "APIConnectionError": CONNECTION,
    "ConnectionError": CONNECTION,
    "ConnectError": CONNECTION,
    "EndpointConnectionError": CONNECTION,
    "AuthenticationError": AUTH,
    "PermissionDeniedError": AUTH,
    "NoCredentialsError": AUTH,
    "ClientError": API_ERROR,
    "APIError": API_ERROR,
    "ResponseError": API_ERROR,
    "EventStreamError": API_ERROR,
}


def status_of(exc: BaseException) -> int | None:
    """Return the HTTP status an exception carries (``status_code`` or botocore's metadata)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status > 0:
        return status
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and status > 0:
            return status
    return None


def aws_code(exc: BaseException) -> str | None:
    """Return the AWS error code of a botocore ``ClientError``, or None."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None


def error_type(exc: BaseException) -> str:
    """Return the normalised type of a failed call's exception.

    One of ``rate_limit``, ``timeout``, ``connection``, ``auth``, ``bad_request``,
    ``not_found``, ``overloaded``, ``server_error``, ``api_error``, ``breaker_open``; an
    exception none of these fit (a bug in the caller's code, say) keeps its class name.
    """
    by_name = _from_names(exc)
    if by_name in (BREAKER_OPEN, TIMEOUT, CONNECTION, RATE_LIMIT, OVERLOADED):
        return by_name
    code = aws_code(exc)
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    status = status_of(exc)
    if status is not None:
        return _BY_STATUS.get(status, SERVER_ERROR if status >= 500 else API_ERROR)
    return by_name or type(exc).__name__


def _from_names(exc: BaseException) -> str | None:
    for cls in type(exc).__mro__:
        found = _BY_NAME.get(cls.__name__)
        if found is not None:
            return found
    return None
