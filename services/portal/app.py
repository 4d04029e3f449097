"""The portal's one wiring point: settings, session middleware, pages, error pages."""

import contextlib
import secrets
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from shared.auth import write_once
from shared.errors import Forbidden, InsecureConfiguration, InvalidInput, NotFound, TransientFault
from shared.http import SecurityHeaders

from . import coordinator, family, funder, operations, professional, signin
from .settings import PortalSettings
from .web import HERE, Services, SignInNeeded, render

SESSION_HOURS = 8


def session_key(settings: PortalSettings) -> str:
    if settings.portal_session_key_file is not None:
        return settings.portal_session_key_file.read_text().strip()
    path = settings.dev_key_dir / "portal-session.key"  # development only (insecurity() refuses it in production)
    if not path.exists():
        write_once(path, secrets.token_urlsafe(48).encode())
    return path.read_text().strip()


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    if reason := settings.insecurity():
        raise InsecureConfiguration(f"refusing to start the portal: {reason}")
    services = Services(settings.service_urls)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.close()

    app = FastAPI(title="Kring portal", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings, app.state.services, app.state.issuer = settings, services, signin.issuer_client(settings)
    app.add_middleware(
        SessionMiddleware, secret_key=session_key(settings), session_cookie="kring_session", max_age=SESSION_HOURS * 3600,
        same_site="lax", https_only=not settings.development,
    )  # fmt: skip
    app.add_middleware(SecurityHeaders, production=not settings.development)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for pages in (family, signin, coordinator, professional, funder, operations):
        app.include_router(pages.router)

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> dict[str, str]:  # nothing of its own to wait for: the services answer for themselves
        return {"status": "ready"}

    @app.get("/")
    async def home(request: Request) -> Response:
        return render(request, "home.html")

    problems = {Forbidden: (403, "refused"), NotFound: (404, "not_found"), InvalidInput: (422, "invalid"), TransientFault: (503, "unavailable")}
    for error_type, (status_code, kind) in problems.items():

        async def problem(request: Request, _: Exception, status_code: int = status_code, kind: str = kind) -> Response:
            return render(request, "problem.html", status_code, kind=kind)

        app.add_exception_handler(error_type, problem)

    async def sign_in_first(request: Request, _: Exception) -> Response:
        if request.url.path.startswith("/gezin"):  # a family's access ended: only a new code opens it again
            return render(request, "problem.html", 403, kind="refused")
        return signin.sign_in_page(request)

    app.add_exception_handler(SignInNeeded, sign_in_first)
    return app
