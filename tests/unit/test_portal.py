"""The portal without servers: its Dutch catalogue is complete, forms need the session's CSRF
token, production refuses plain HTTP and a missing session key (issue 25)."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.portal.app import create_app
from services.portal.settings import PortalSettings
from services.portal.web import HERE, catalogue
from shared.errors import InsecureConfiguration

TEXT = re.compile(r"""_\((["'])(.+?)\1\)""")


def texts_of_the_templates() -> set[str]:
    return {match[1] for path in (HERE / "templates").rglob("*.html") for match in TEXT.findall(path.read_text())}


def test_every_text_of_every_page_has_its_dutch_translation() -> None:
    dutch = catalogue("nl")
    texts = texts_of_the_templates()
    assert len(texts) > 30
    untranslated = sorted(text for text in texts if dutch.gettext(text) == text)
    assert not untranslated


def development(tmp_path: Path) -> TestClient:
    return TestClient(create_app(PortalSettings(environment="development", dev_key_dir=tmp_path)))


def test_pages_are_dutch_first_and_english_when_asked(tmp_path: Path) -> None:
    client = development(tmp_path)
    assert '<html lang="nl">' in client.get("/").text
    english = client.get("/gezin?lang=en")
    assert '<html lang="en">' in english.text and "Enter your family code" in english.text
    assert '<html lang="en">' in client.get("/").text  # the choice stays, in a cookie


def test_a_form_without_the_sessions_csrf_token_is_refused(tmp_path: Path) -> None:
    client = development(tmp_path)
    page = client.get("/gezin").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    assert client.post("/gezin", data={"code": "AAAA-BBBB-CCCC", "csrf": "forged"}).status_code == 403
    assert client.post("/gezin", data={"code": "AAAA-BBBB-CCCC"}).status_code == 403
    other_browser = development(tmp_path)  # the same token from another session is no good either
    assert other_browser.post("/gezin", data={"code": "AAAA-BBBB-CCCC", "csrf": token[1]}).status_code == 403


def test_a_family_page_without_family_access_is_refused(tmp_path: Path) -> None:
    response = development(tmp_path).get("/gezin/zaak/some-case")
    assert response.status_code == 403 and "U mag deze pagina niet zien" in response.text


def test_production_refuses_plain_http_and_a_missing_session_key(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfiguration, match="not https"):
        create_app(PortalSettings(environment="production", portal_public_url="http://portal.example"))
    with pytest.raises(InsecureConfiguration, match="SESSION_KEY_FILE"):
        create_app(PortalSettings(environment="production", portal_public_url="https://portal.example"))
    key = tmp_path / "session.key"
    key.write_text("x" * 40)
    settings = PortalSettings(environment="production", portal_public_url="https://portal.example", portal_session_key_file=key)
    assert create_app(settings).title == "Kring portal"
