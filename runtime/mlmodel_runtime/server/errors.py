"""Domain errors of the server and the one table that maps them to HTTP status codes.

Like KServe's `errors.py`: code below the transport raises these; the app turns them into the
protocol's `{"error": "..."}` body with the status from `STATUS` (nearest class in the MRO).
"""

from __future__ import annotations

import math

from starlette.requests import ClientDisconnect

from mlmodel_runtime.backends.errors import InferenceError


class ServingError(Exception):
    """Base of the errors a client can cause or meet; the message goes into the response."""

    headers: dict[str, str] = {}


class InvalidInput(ServingError):
    """The request does not fit the protocol or the model's signature."""


class ModelNotFound(ServingError):
    """No model (or version) of this name is served here."""


class ModelNotReady(ServingError):
    """The model is still loading, failed, or the server is draining."""

    headers = {"Retry-After": "1"}  # every 503 says when to come back (another replica may answer)


class QueueFull(ServingError):
    """Too many requests wait for the model; the client should retry shortly."""

    headers = {"Retry-After": "1"}


class Overloaded(ServingError):
    """The requests in flight hold the whole byte budget; the client should retry shortly."""

    headers = {"Retry-After": "1"}


class Unauthenticated(ServingError):
    """No bearer token, or one that is not valid (server/auth.py)."""

    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ServingError):
    """A valid token whose subject may not use this model."""


class AuthUnavailable(ServingError):
    """The token cannot be checked now (the API server is unreachable); the client should retry."""

    headers = {"Retry-After": "1"}


class RateLimited(ServingError):
    """The client is over its rate limit (server/ratelimit.py); Retry-After says when it has a token again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


class PayloadTooLarge(ServingError):
    """The request body is over the configured limit."""

    # the rest of the body may still be on its way: do not read it only to throw it away
    headers = {"Connection": "close"}


class UnsupportedEncoding(ServingError):
    """A Content-Encoding the server does not decode."""


STATUS: dict[type[Exception], int] = {
    InvalidInput: 400,
    # the framework refused validated inputs (e.g. an index out of range): a problem of this input
    InferenceError: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    ModelNotFound: 404,
    PayloadTooLarge: 413,
    UnsupportedEncoding: 415,
    RateLimited: 429,
    ModelNotReady: 503,
    AuthUnavailable: 503,
    QueueFull: 503,
    Overloaded: 503,
    # the client hung up while sending; nobody reads the answer (nginx's code, for the metrics)
    ClientDisconnect: 499,
}


def status_for(exc: BaseException) -> int:
    """The HTTP status of an error: its nearest class in STATUS, else 500."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500
