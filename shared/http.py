"""The HTTP side of a Kring service: one FastAPI app per service process.

`create_http_app` gives every service the same lifecycle (the app's lifespan starts and
stops the broker, database and relay), `/health/live` and `/health/ready`, a request
size limit (413), a content-type check (415), and one error shape for bad input:

    {"error": "invalid request", "fields": [{"field": "children.0.age", "problem": "..."}]}

Values from the request are never echoed in errors or logs: they may be personal data.
Kring's own errors (shared.errors) are answered here, once for every route: NotFound 404,
Forbidden 403, RuleViolation 409 (`{"detail": message}`), InvalidInput 422 in the common
shape, TransientFault and a database outage 503 with Retry-After. Nothing a client sends
should produce 500.
"""

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pymongo.errors import PyMongoError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Forbidden, InvalidInput, NotFound, RuleViolation, TransientFault
from .logging import get_logger
from .mongo import database_unavailable

if TYPE_CHECKING:
    from .runtime import KringService

log = get_logger("kring.http")

BODY_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")


def create_http_app(service: "KringService", routers: Iterable[APIRouter] = (), *, version: str = "1.0.0") -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        await service.broker.start()
        try:
            yield
        finally:
            await service.broker.stop()
            await service.stop()

    app = FastAPI(
        title=f"Kring {service.name} service",
        version=version,
        description=service.description,
        lifespan=lifespan,
    )
    app.state.settings = service.settings
    app.state.kring = service

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "alive", "service": service.name}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        checks = await service.readiness()
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

    app.add_exception_handler(RequestValidationError, _invalid_request)
    for error, status_code in REFUSALS.items():
        app.add_exception_handler(error, _refusal(status_code))
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(TransientFault, _unavailable)
    app.add_exception_handler(PyMongoError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(RequestLimits, max_body_bytes=service.settings.http_max_body_bytes)
    for router in routers:
        app.include_router(router)
    return app


def field_errors(errors: Iterable[Any]) -> list[dict[str, str]]:
    """Pydantic errors as [{field, problem}], without the offending values."""
    fields = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        fields.append({"field": ".".join(location) or "(body)", "problem": error.get("msg", "invalid")})
    return fields


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"error": "the body is not valid JSON", "fields": []}, status.HTTP_400_BAD_REQUEST)
    return JSONResponse(
        {"error": "invalid request", "fields": field_errors(errors)}, status.HTTP_422_UNPROCESSABLE_CONTENT
    )


REFUSALS = {NotFound: status.HTTP_404_NOT_FOUND, Forbidden: status.HTTP_403_FORBIDDEN, RuleViolation: status.HTTP_409_CONFLICT}


def _refusal(status_code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def answer(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code)

    return answer


async def _invalid_input(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidInput)
    fields = [{"field": error.field or "(body)", "problem": error.problem}]
    return JSONResponse({"error": "invalid request", "fields": fields}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("temporarily unavailable", path=request.url.path, error=type(error).__name__)
    return _try_again()


def _try_again() -> JSONResponse:
    return JSONResponse(
        {"error": "temporarily unavailable, try again shortly"}, status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"}
    )


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    if not database_unavailable(error):
        log.error("database error", path=request.url.path, error=type(error).__name__, code=getattr(error, "code", None))
        return JSONResponse({"error": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)
    log.warning("database unavailable", path=request.url.path, error=type(error).__name__)
    return _try_again()


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error", path=request.url.path, error=type(error).__name__)
    return JSONResponse({"error": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)


class RequestLimits:
    """ASGI middleware: bodies over `max_body_bytes` → 413 (by header or while streaming);
    a body of a type no route reads → 415."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(send, 413, f"the body is larger than {self.max_body_bytes} bytes")
            return
        has_body = (declared.isdigit() and int(declared) > 0) or "transfer-encoding" in headers
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and content_type not in BODY_CONTENT_TYPES:
            await _answer(send, 415, f"content type must be one of {', '.join(BODY_CONTENT_TYPES)}")
            return

        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Whatever the app makes of a cut-off body, the client is told why.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not too_large:
                await send(message)
            elif not answered:
                answered = True
                await _answer(send, 413, f"the body is larger than {self.max_body_bytes} bytes")

        await self.app(scope, counting_receive, guarded_send)


async def _answer(send: Send, status_code: int, error: str) -> None:
    response = JSONResponse({"error": error}, status_code)
    await send({"type": "http.response.start", "status": status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def rate_limited(limit: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency allowing each client address `limit` requests (e.g. "30/minute") to
    the routes that use it, per replica (in memory)."""
    item = parse_limit(limit)
    limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check(request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        if not limiter.hit(item, request.url.path, client):
            reset = limiter.get_window_stats(item, request.url.path, client).reset_time
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="too many requests from this address, try again later",
                headers={"Retry-After": str(max(1, int(reset - time.time())))},
            )

    return check
