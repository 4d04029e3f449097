"""The HTTP side of a Kring service: one FastAPI app per service process.

`create_http_app` gives every service the same lifecycle (the app's lifespan starts and
stops the broker, database and relay), `/health/live` and `/health/ready`, a request
size limit (413), a content-type check (415), and one error shape for bad input:

    {"error": "invalid request", "fields": [{"field": "children.0.age", "problem": "..."}]}

Every response carries the security headers (`SecurityHeaders`): a Content-Security-Policy
(`default-src 'none'` unless a page sets its own), nosniff, no framing, no referrer,
`Cache-Control: no-store` unless a route marks its response cacheable (static assets
only), and HSTS in production. /docs and /openapi.json exist only with `api_docs` on,
with Swagger UI served from the service itself.

The public routes share one rate limit per client address per service (`public_rate_limit`),
counted in the service's database so that every replica sees the same count. The client
address is the peer's, unless the peer is one of `trusted_proxies`.

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
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from limits import RateLimitItem
from limits import parse as parse_limit
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from .audit import audit_router, close_access, entry_for, note_refusal, open_access
from .errors import Forbidden, InvalidInput, NotFound, RuleViolation, TransientFault
from .family_access import FAMILY_SERVICES
from .logging import get_logger
from .mongo import database_unavailable
from .observability import HttpMetrics, redact_http
from .ratelimit import MongoCounters

if TYPE_CHECKING:
    from .runtime import KringService

log = get_logger("kring.http")

BODY_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")


# --- the error bodies: the handlers below answer with these models, and the OpenAPI of
# every route documents them (`openapi_document`), so document and answer are one object.


class FieldProblem(BaseModel):
    field: str = Field(description="where: a dotted path into the body or the parameter's name, e.g. children.0.age; (body) for the whole body")
    problem: str = Field(description="what is wrong, in words; never the value sent")


class InvalidRequest(BaseModel):
    """400 (the body is not JSON: `fields` empty) and 422 (every invalid field named)."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description='"invalid request", or (400) "the body is not valid JSON" / "the body cannot be read"')
    fields: list[FieldProblem]


class Refusal(BaseModel):
    """401 (no valid token), 403 (a role the route does not admit, or not yours), 404, 409 (not
    allowed in the case's current state) and 429 (too many public requests)."""

    model_config = ConfigDict(extra="forbid")
    detail: str = Field(description="which rule refused, in words")


class ErrorMessage(BaseModel):
    """413 (body too large), 415 (content type), 503 (database or key server away: retry after
    Retry-After seconds)."""

    model_config = ConfigDict(extra="forbid")
    error: str


def _invalid(error: str, fields: list[dict[str, str]], status_code: int) -> JSONResponse:
    body = InvalidRequest(error=error, fields=[FieldProblem(**field) for field in fields])
    return JSONResponse(body.model_dump(), status_code)


def _error(error: str, status_code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorMessage(error=error).model_dump(), status_code, headers=headers)


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

    settings = service.settings
    app = FastAPI(
        title=f"Kring {service.name} service",
        version=version,
        description=service.description,
        lifespan=lifespan,
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.kring = service
    counters: Storage = MemoryStorage() if service.memory is not None else MongoCounters(service.db["rate_limits"])
    app.state.public_limit = PublicLimit(settings.public_rate_limit, counters, service.name)
    if settings.api_docs:
        _serve_docs(app)
    _serve_asyncapi(app, service)

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "alive", "service": service.name}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        checks = await service.readiness()
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for error, status_code in REFUSALS.items():
        app.add_exception_handler(error, _refusal(status_code))
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(TransientFault, _unavailable)
    app.add_exception_handler(PyMongoError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(AuditTrail, service=service)
    app.add_middleware(RequestLimits, max_body_bytes=settings.http_max_body_bytes)
    # Outermost: the answers of RequestLimits (413, 415) carry the headers too.
    app.add_middleware(SecurityHeaders, production=not settings.development)
    if service.metrics is not None:  # counts every answer, 413/415 included
        app.add_middleware(HttpMetrics, metrics=service.metrics)
    for router in routers:
        app.include_router(router)
    if service.tracer_provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=service.tracer_provider, excluded_urls="/health/.*", server_request_hook=redact_http
        )
    app.include_router(audit_router(service.audit, family=service.name in FAMILY_SERVICES))
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
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
        return _invalid("the body is not valid JSON", [], status.HTTP_400_BAD_REQUEST)
    return _invalid("invalid request", field_errors(errors), status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_exception(request: Request, error: Exception) -> Response:
    """FastAPI's own 400 (a body it cannot parse) in the shape of every bad body; the other
    HTTPExceptions (401, 403, 429 from shared.auth and the rate limit) as FastAPI answers them,
    `{"detail": …}` (Refusal)."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == status.HTTP_400_BAD_REQUEST:
        return _invalid("the body cannot be read", [], status.HTTP_400_BAD_REQUEST)
    return await http_exception_handler(request, error)


REFUSALS = {NotFound: status.HTTP_404_NOT_FOUND, Forbidden: status.HTTP_403_FORBIDDEN, RuleViolation: status.HTTP_409_CONFLICT}
REFUSAL_CODES = {NotFound: "not_found", Forbidden: "forbidden", RuleViolation: "rule_violation"}


def _refusal(status_code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def answer(request: Request, error: Exception) -> JSONResponse:
        # For the audit log: Kring's refusals are fixed sentences written in the code.
        code = next(code for kind, code in REFUSAL_CODES.items() if isinstance(error, kind))
        note_refusal(code, str(error) if isinstance(error, Forbidden) else None)
        return JSONResponse(Refusal(detail=str(error)).model_dump(), status_code)

    return answer


async def _invalid_input(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidInput)
    fields = [{"field": error.field or "(body)", "problem": error.problem}]
    return _invalid("invalid request", fields, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("temporarily unavailable", path=request.url.path, error=type(error).__name__)
    return _try_again()


def _try_again() -> JSONResponse:
    return _error("temporarily unavailable, try again shortly", status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    if not database_unavailable(error):
        log.error("database error", path=request.url.path, error=type(error).__name__, code=getattr(error, "code", None))
        return JSONResponse({"error": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)
    log.warning("database unavailable", path=request.url.path, error=type(error).__name__)
    return _try_again()


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error", path=request.url.path, error=type(error).__name__)
    # Starlette answers this outside every middleware: the headers are added here.
    production = not request.app.state.settings.development
    return JSONResponse({"error": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR, headers=security_headers(production))


class AuditTrail:
    """ASGI middleware: every request that touched or named a case, or was refused (401,
    403), leaves one entry in the service's audit log (shared.audit), written before the
    answer starts. If it cannot be written, the answer is 503 instead: nothing is answered
    that is not accounted for."""

    def __init__(self, app: ASGIApp, *, service: "KringService") -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access, token = open_access()
        withheld = False
        answered = False

        async def audited(message: Message) -> None:
            nonlocal withheld, answered
            if message["type"] == "http.response.start":
                answered = True
                if not await self._recorded(scope, access, message["status"]):
                    withheld = True
                    response = _try_again()
                    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
                    await send({"type": "http.response.body", "body": response.body, "more_body": False})
                    return
            elif withheld:
                return  # the original answer's body stays here
            await send(message)

        try:
            await self.app(scope, receive, audited)
        except Exception:
            if not answered:  # a bug (500, answered outside): still say who tried what
                await self._recorded(scope, access, status.HTTP_500_INTERNAL_SERVER_ERROR)
            raise
        finally:
            close_access(token)

    async def _recorded(self, scope: Scope, access: Any, status_code: int) -> bool:
        log_ = self.service.audit
        entry = entry_for(self.service.name, dict(scope), access, status_code, log_.clock())
        if entry is None:
            return True
        try:
            await log_.record(entry)
        except Exception as error:
            log.error("audit write failed: answer withheld", operation=entry.operation, case_id=entry.case_id, error=type(error).__name__)
            return False
        return True


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
    response = _error(error, status_code)
    await send({"type": "http.response.start", "status": status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class PublicLimit:
    """`limit` requests per client address to all public routes of one service together;
    the counters live in `storage` (the service's database: shared by its replicas)."""

    def __init__(self, limit: str, storage: Storage, service: str) -> None:
        self.item: RateLimitItem = parse_limit(limit)
        self.limiter = FixedWindowRateLimiter(storage)
        self.service = service

    async def check(self, client: str) -> None:
        if not await self.limiter.hit(self.item, self.service, "public", client):
            reset = (await self.limiter.get_window_stats(self.item, self.service, "public", client)).reset_time
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="too many requests from this address, try again later",
                headers={"Retry-After": str(max(1, int(reset - time.time())))},
            )


async def public_rate_limit(request: Request) -> None:
    """A dependency for public routes. `request.client` is the peer, or the address a
    trusted proxy forwarded (uvicorn's proxy headers, on only with `trusted_proxies`)."""
    limit: PublicLimit = request.app.state.public_limit
    await limit.check(request.client.host if request.client else "unknown")


# --- security headers ------------------------------------------------------------------

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Pages for people: the service's own stylesheet and form target, no script at all.
PAGE_POLICY = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CACHEABLE = "public, max-age=86400"


def security_headers(production: bool) -> dict[str, str]:
    headers = {
        "content-security-policy": API_POLICY,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
    }
    if production:
        headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
    return headers


class SecurityHeaders:
    """ASGI middleware: every response gets `security_headers`; a route's own
    Content-Security-Policy (pages) or Cache-Control (static assets) is kept."""

    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self.headers = [(name.encode(), value.encode()) for name, value in security_headers(production).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *((n, v) for n, v in self.headers if n not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)


def page(html: str, status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """An HTML page for people, under the page policy (no script, own stylesheet)."""
    return HTMLResponse(html, status_code, headers={"content-security-policy": PAGE_POLICY, **(headers or {})})


# --- API docs (only with api_docs on) ---------------------------------------------------

SWAGGER_ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""
# A file, not inline: the page's policy allows no inline script.
DOCS_INIT = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'


def _serve_docs(app: FastAPI) -> None:
    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE.format(title=app.title), headers={"content-security-policy": DOCS_POLICY})

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name == "init.js":
            return Response(DOCS_INIT, media_type="application/javascript", headers={"cache-control": CACHEABLE})
        if name not in SWAGGER_ASSETS:
            raise NotFound("no such asset")
        return FileResponse(swagger_ui_path / name, media_type=SWAGGER_ASSETS[name], headers={"cache-control": CACHEABLE})


# --- OpenAPI: who may call each route, and every error as it is really answered ----------

BEARER = "bearer"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT (ES256)",
    "description": (
        "A JWT signed ES256 by the identity provider (production: its JWKS; development: "
        "`python -m shared.auth`). Claims: `iss`, `aud` naming `kring-<service>`, `sub`, `role` "
        "(bureau, referrer, coordinator, professional, funder, ops, family), `iat`, `exp` within "
        "the role's lifetime (family 28 days, ops 8 h, others 12 h); `org` for bureau, referrer "
        "and funder, `case` for family. Missing or invalid: 401 with `WWW-Authenticate: Bearer`; "
        "a role the route does not admit: 403."
    ),
}
ERROR_MODELS = (FieldProblem, InvalidRequest, Refusal, ErrorMessage)
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def route_access(route: Any) -> tuple[tuple[Any, ...], Any, bool]:
    """(roles the route's `authorised` dependency admits, the scope it then applies, public?),
    read from the dependencies themselves (shared.auth.authorised marks its checks)."""
    roles: tuple[Any, ...] = ()
    scope = None
    public = False
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        pending.extend(dependency.dependencies)
        call = dependency.call
        if call is public_rate_limit:
            public = True
        if getattr(call, "kring_roles", None):
            roles, scope = call.kring_roles, call.kring_scope  # type: ignore[union-attr]
    return roles, scope, public


def _response(description: str, model: type[BaseModel], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _errors(route: Any, method: str, operation: dict[str, Any], roles: tuple[Any, ...], public: bool) -> dict[str, Any]:
    """The error answers this route can really give (shared.http, shared.auth, the domain's
    rules on a case). A route answering another (404 on a resource that is no case, a page
    for people) declares it with FastAPI's `responses=` (`"model": Refusal`): kept as is."""
    body = method in CHANGES
    json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
    errors: dict[str, Any] = {}
    if json_body:
        errors["400"] = _response("the body is not valid JSON, or cannot be read (`fields` is empty)", InvalidRequest)
    if roles:
        www = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
        errors["401"] = _response("no bearer token, or one that is invalid, expired or not for this service", Refusal, www)
        errors["403"] = _response("your role may not call this route, or the case (figures) is not yours", Refusal)
    on_a_case = "{case_id}" in route.path_format
    if on_a_case:
        errors["404"] = _response("no such case", Refusal)
    if on_a_case and body:
        errors["409"] = _response("well-formed, but not allowed in the case's current state (the rule is named)", Refusal)
    if body:
        errors["413"] = _response("the body is larger than KRING_HTTP_MAX_BODY_BYTES (default 262144)", ErrorMessage)
        errors["415"] = _response(f"a body of another content type than {', '.join(BODY_CONTENT_TYPES)}", ErrorMessage)
    if json_body or operation.get("parameters") or body:
        errors["422"] = _response("invalid input: every invalid field named, never its value", InvalidRequest)
    if public:
        errors["429"] = _response("too many requests from this address to the public routes", Refusal, RETRY_AFTER)
    errors["503"] = _response("the database (or the token key server) is away for a moment", ErrorMessage, RETRY_AFTER)
    return errors


def _describe_access(operation: dict[str, Any], roles: tuple[Any, ...], scope: Any, public: bool) -> None:
    says = dict(getattr(scope, "says", {}) or {})
    if roles:
        operation["security"] = [{BEARER: []}]
        operation["x-kring-roles"] = [str(role) for role in roles]
        operation["x-kring-ownership"] = {str(role): says[role] for role in roles if role in says}
        admitted = ", ".join(f"{role} ({says[role]})" if role in says else str(role) for role in roles)
        line = f"**Roles:** {admitted}."
    else:
        operation["security"] = []
        operation["x-kring-roles"] = []
        operation["x-kring-public"] = True
        line = "**Public:** no token; one rate limit per client address over all public routes of this service (429)."
    operation["description"] = f"{line}\n\n{operation['description']}" if operation.get("description") else line


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The service's OpenAPI: FastAPI's, with the bearer scheme, each route's roles and
    ownership (from its `authorised` dependency) and the error answers as they are sent."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for fastapi_own in ("HTTPValidationError", "ValidationError"):  # not what Kring answers
        schemas.pop(fastapi_own, None)
    for model in ERROR_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)  # each is a component of its own
        schemas[model.__name__] = schema
    components["securitySchemes"] = {BEARER: BEARER_SCHEME}
    for context in iter_route_contexts(app.routes):  # included routers' routes too
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        route: Any = context  # the route as included (path with prefix, dependencies added)
        roles, scope, public = route_access(route)
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            _describe_access(operation, roles, scope, public)
            responses = operation.setdefault("responses", {})
            declared = {str(code) for code in route.responses}
            for code, answer in _errors(route, method, operation, roles, public).items():
                if code not in declared:
                    responses[code] = answer
    app.openapi_schema = document
    return document


# --- AsyncAPI: public, like the contract it is (no secrets: the broker named is the published one)


def _serve_asyncapi(app: FastAPI, service: "KringService") -> None:
    """/asyncapi.json (the document), /asyncapi (the same for people: HTML without script, so
    the API's policy holds) and /asyncapi/schemas/<file> (the JSON Schemas it links)."""
    from .messaging.asyncapi import event_schemas, render_html

    cached: dict[str, Any] = {}

    def spec() -> dict[str, Any]:
        if "document" not in cached:
            cached["document"] = service.asyncapi()
        return cached["document"]

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(spec())

    @app.get("/asyncapi", include_in_schema=False)
    async def asyncapi_page() -> HTMLResponse:
        return page(render_html(spec()))

    @app.get("/asyncapi/schemas/{name}", include_in_schema=False)
    async def asyncapi_schema(name: str) -> JSONResponse:
        schemas = cached.setdefault("schemas", event_schemas(service))
        if name not in schemas:
            raise NotFound("no such schema")
        return JSONResponse(schemas[name], media_type="application/schema+json")
