"""What every portal page shares: the language (Dutch first, English beside it), the signed
session, the CSRF token of every form, rendering, and calls to the services as the person."""

import hmac
import re
import io
import secrets
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.errors import Forbidden, InvalidInput, NotFound, TransientFault
from shared.http import page

HERE = Path(__file__).parent
LANGUAGES = ("nl", "en")  # Dutch first; msgids are English
LANGUAGE_COOKIE = "kring_lang"
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class SignInNeeded(Forbidden):
    """Nobody is signed in (or the sign-in expired): the page sends the browser to sign in."""


def catalogue(language: str) -> NullTranslations:
    """The language's translations, compiled in memory from its .po files (no binaries kept)."""
    if language == "en":
        return NullTranslations()
    merged = None
    for po in sorted((HERE / "locale" / language / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as file:
            read = read_po(file, locale=language)
        if merged is None:
            merged = read
        else:
            for message in read:
                if message.id:
                    merged[message.id] = message
    compiled = io.BytesIO()
    write_mo(compiled, merged)
    compiled.seek(0)
    return Translations(compiled)


@lru_cache(maxsize=len(LANGUAGES))
def templates(language: str) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), extensions=["jinja2.ext.i18n"]
    )
    environment.install_gettext_translations(catalogue(language), newstyle=True)  # type: ignore[attr-defined]
    environment.filters["day"] = lambda iso: format_date(date.fromisoformat(iso), format="long", locale=language)
    return environment


def language_of(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    return asked if asked in LANGUAGES else "nl"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, if it carries this session's CSRF token; Forbidden otherwise."""
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not request.session.get("csrf") or not hmac.compare_digest(sent, request.session["csrf"]):
        raise Forbidden("the form is not from this session")
    return {name: value for name, value in form.items() if isinstance(value, str)}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = language_of(request)
    html = templates(language).get_template(template).render(
        request=request, language=language, other_language="en" if language == "nl" else "nl",
        csrf=csrf_token(request), person=request.session.get("staff"), notice=request.session.pop("notice", None), **context,
    )  # fmt: skip
    response = page(html, status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, samesite="lax", httponly=True)
    return response


class Services:
    """The services' HTTP APIs, called with the person's own bearer token."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.http = httpx.AsyncClient(timeout=10)

    async def call(self, service: str, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        if not all(SEGMENT.fullmatch(segment) for segment in path.split("/")[1:]):
            raise NotFound("no such page")  # an id from a URL never walks to another route of the service
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self.http.request(method, self.urls[service] + path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise TransientFault(f"{service} cannot be reached") from error
        if response.status_code == 401:
            raise SignInNeeded(f"{service} does not accept the token (any more)")
        if response.status_code == 403:
            raise Forbidden(f"{service} refused")
        if response.status_code == 404:
            raise NotFound(f"{service} knows no such case")
        if response.status_code in (409, 422):
            raise InvalidInput(f"{service} refused the input")
        if response.status_code >= 500:
            raise TransientFault(f"{service} answered {response.status_code}")
        return response.json() if response.content else None

    async def close(self) -> None:
        await self.http.aclose()


async def call(request: Request, person: Any, service: str, method: str, path: str, **kwargs: Any) -> Any:
    """`service`'s answer to the signed-in person (their own token: the service decides)."""
    return await request.app.state.services.call(service, method, path, person.token, **kwargs)


async def optional(request: Request, person: Any, service: str, path: str) -> Any:
    """What `service` has of a case, or None while the case has not reached it yet."""
    try:
        return await call(request, person, service, "GET", path)
    except NotFound:
        return None


def current_meeting(plan: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan's latest meeting (its status, its plan), or None before a conference is planned."""
    meetings = (plan or {}).get("meetings") or []
    return meetings[-1] if meetings else None
