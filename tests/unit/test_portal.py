"""The portal without servers: its Dutch catalogue is complete, forms need the session's CSRF
token, production refuses plain HTTP and a missing session key (issue 25)."""

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from services.portal import forms
from services.portal.app import create_app
from services.portal.coordinator import next_step
from services.portal.settings import PortalSettings
from services.portal.signin import _local
from services.portal.web import HERE, Services, catalogue
from shared.errors import InsecureConfiguration, InvalidInput, NotFound

TEXT = re.compile(r"""_\((["'])(.+?)\1\)""")


def texts_of_the_templates() -> set[str]:
    return {match[1] for path in (HERE / "templates").rglob("*.html") for match in TEXT.findall(path.read_text())}


def dutch_texts() -> dict[str, str]:
    translated = {}
    for po in (HERE / "locale" / "nl" / "LC_MESSAGES").glob("*.po"):
        with po.open("rb") as file:
            translated |= {message.id: message.string for message in read_po(file) if message.id and message.string}
    return translated


def test_every_text_of_every_page_has_its_dutch_translation() -> None:
    texts = texts_of_the_templates()
    assert len(texts) > 200
    untranslated = sorted(texts - set(dutch_texts()))
    assert not untranslated
    assert catalogue("nl").gettext("Sign in for work") == "Aanmelden voor uw werk"  # what the pages get is the catalogue


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
    with pytest.raises(InsecureConfiguration, match="KRING_OIDC_ISSUER is not https"):
        create_app(settings.model_copy(update={"oidc_issuer": "http://issuer.example/kring"}))
    with pytest.raises(InsecureConfiguration, match="CLIENT_SECRET_FILE"):
        create_app(settings.model_copy(update={"oidc_issuer": "https://issuer.example/kring"}))


@pytest.mark.parametrize("page", ["/coordinator", "/coordinator/zaak/case-1", "/professional", "/financier", "/financier/rapport.csv", "/beheer"])
def test_a_staff_page_without_sign_in_sends_the_browser_to_sign_in_and_back(tmp_path: Path, page: str) -> None:
    response = development(tmp_path).get(page, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == f"/aanmelden?terug={quote(page)}"


def test_sign_in_without_an_issuer_says_kring_cannot_answer(tmp_path: Path) -> None:
    response = development(tmp_path).get("/aanmelden")
    assert response.status_code == 503 and "Kring is even bezet" in response.text


def test_only_a_path_of_the_portal_is_a_place_to_come_back_to() -> None:
    assert _local("/coordinator/zaak/case-1?lang=en") == "/coordinator/zaak/case-1?lang=en"
    for elsewhere in ("//evil.example/x", "https://evil.example", "/\\evil.example", "", None):
        assert _local(elsewhere) is None


@pytest.mark.anyio
async def test_an_id_from_a_url_never_walks_to_another_route_of_a_service() -> None:
    services = Services({"scheduling": "http://127.0.0.1:9"})
    try:
        for path in ("/cases/../coordinators", "/cases/%2e%2e/x", "/cases//x", "/cases/a b"):
            with pytest.raises(NotFound):
                await services.call("scheduling", "GET", path, "token")
    finally:
        await services.close()


def test_the_plan_form_becomes_the_plans_body() -> None:
    form = {
        "central_question": " Hoe blijven de kinderen veilig? ", "what_0": "Oma brengt de kinderen.", "who_0": "grandparent",
        "kind_0": "network_support", "by_when_0": "2027-03-01", "answers_0_r1": "on", "answers_0_r9": "on", "id_0": "a1",
        "what_1": "", "who_1": "", "what_2": "Schuldhulp", "who_2": "professional_service", "kind_2": "professional_help",
        "category_2": "debt_counselling", "by_when_2": "2027-01-15",
    }  # fmt: skip
    assert forms.plan(form, ["r1", "r2"], 3) == {
        "central_question": "Hoe blijven de kinderen veilig?",
        "agreements": [
            {"agreement_id": "a1", "what": "Oma brengt de kinderen.", "who": "grandparent", "kind": "network_support", "by_when": "2027-03-01", "answers_requirements": ["r1"]},
            {"agreement_id": "a3", "what": "Schuldhulp", "who": "professional_service", "kind": "professional_help", "by_when": "2027-01-15",
             "answers_requirements": [], "service_category": "debt_counselling"},
        ],
    }  # fmt: skip
    with pytest.raises(InvalidInput):
        forms.plan({**form, "who_0": "neighbour-of-a-friend"}, [], 1)
    with pytest.raises(InvalidInput):
        forms.plan({**form, "by_when_0": "1 maart"}, [], 1)


def test_counts_and_marks_refuse_what_is_not_a_number() -> None:
    assert forms.counts({"invited_parents": "2", "invited_friends": ""}, "invited") == {role: 2 if role == "parents" else 0 for role in forms.ROLES}
    assert forms.scores({"marks": "7, 8 10"}, "marks") == [7, 8, 10]
    for bad in ({"invited_parents": "-1"}, {"invited_parents": "twee"}, {"invited_parents": "5000"}):
        with pytest.raises(InvalidInput):
            forms.counts(bad, "invited")
    with pytest.raises(InvalidInput):
        forms.scores({"marks": "7 11"}, "marks")


def test_the_coordinators_next_step_follows_the_case() -> None:
    assert next_step({"stage": "preparing", "first_contact_at": None}, None) == "first_contact"
    assert next_step({"stage": "preparing", "first_contact_at": "2026-12-01T10:00:00Z"}, None) == "prepare"
    assert next_step({"stage": "held"}, "held") == "take_down_plan"
    assert next_step({"stage": "held"}, None) == "take_down_plan"  # plans has not heard of the conference yet
    assert next_step({"stage": "held"}, "revision_requested") == "revise"
    assert next_step({"stage": "held"}, "presented") == "await_review"
    assert next_step({"stage": "closed", "followup_due_at": "2027-03-01T00:00:00Z"}, None) == "followup_check"
