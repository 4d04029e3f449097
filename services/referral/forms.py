"""The self-referral form: plain HTML that works without JavaScript, labelled for screen
readers, re-shown with the problems next to the fields when something is missing.

Against cross-site requests, a double-submit token: the form page sets a random token in a
SameSite=Strict, HttpOnly cookie and in a hidden field; a POST whose two copies differ (or
lack) is refused. Only text is taken from the form: a file in a field is refused (422)."""

import hmac
import secrets
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData

from shared.contract.vocabulary import ConcernCategory, ConsentingParty, Province, Subject
from shared.errors import InvalidInput

from .domain import PublicReferralRequest

Values = dict[str, list[str]]

LANGUAGES = {
    "nl": "Nederlands", "en": "English", "ar": "العربية (Arabic)", "tr": "Türkçe", "pl": "Polski",
    "ti": "ትግርኛ (Tigrinya)", "so": "Soomaali", "pap": "Papiamentu", "fy": "Frysk", "uk": "Українська",
}  # fmt: skip
CONCERNS = {
    ConcernCategory.HOUSING: "Housing", ConcernCategory.INCOME_DEBT: "Money or debts",
    ConcernCategory.PARENTING: "Raising the children", ConcernCategory.ADDICTION: "Addiction",
    ConcernCategory.HEALTH_DISABILITY: "Health or disability", ConcernCategory.DIVORCE: "Divorce or separation",
    ConcernCategory.NUISANCE: "Trouble with neighbours or police", ConcernCategory.SAFETY: "Safety at home",
    ConcernCategory.OTHER: "Something else",
}  # fmt: skip
CONSENTING = {
    ConsentingParty.PARENT_WITH_RESPONSIBILITY: "A parent with parental responsibility",
    ConsentingParty.YOUNG_PERSON: "The young person (16 or older must agree themselves)",
    ConsentingParty.LEGAL_GUARDIAN: "A legal guardian",
}
SUBJECTS = {
    Subject.CHILD: "A child or children", Subject.ADULT: "An adult (for example an aunt or a grandparent)",
    Subject.HOUSEHOLD: "The whole household",
}  # fmt: skip
# Where a problem with a field of the request is shown in the form.
INPUT_OF_FIELD = {
    "referrer": "referrer_type", "contact.name": "contact_name", "contact.relation": "contact_relation",
    "contact.phone": "contact_phone", "contact.email": "contact_email", "contact": "contact_phone",
    "region.province": "province", "region.municipality": "municipality", "region": "province",
    "subject": "subject", "children": "children", "concern_categories": "concern_categories", "description": "description",
    "consent": "consent", "language": "language",
}  # fmt: skip

FORM_COOKIE = "kring_form"
FORM_COOKIE_SECONDS = 4 * 3600
STYLESHEET = (Path(__file__).parent / "static" / "form.css").read_text(encoding="utf-8")

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)


def _first(values: Values, name: str) -> str:
    return (values.get(name) or [""])[0].strip()


def _children(text: str) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        if part.lower() in ("expected", "verwacht"):
            children.append({"expected": True})
        else:
            children.append({"age": part})  # not a number: the model says so
    return children


def form_token(current: str | None) -> str:
    """The browser's token if it has a well-formed one (several tabs keep working), else new."""
    if current and len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def same_token(cookie: str | None, field: object) -> bool:
    if not cookie or not isinstance(field, str) or not field:
        return False
    return hmac.compare_digest(cookie.encode(), field.encode())


def text_values(form: FormData) -> Values:
    """The form's values by field, text only (raises InvalidInput naming the field)."""
    values: Values = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise InvalidInput("must be text, not a file", field=key)
        values.setdefault(key, []).append(value)
    return values


def parse(values: Values) -> PublicReferralRequest:
    """The form's fields as a public referral request (raises pydantic.ValidationError)."""
    given_by = [v for v in values.get("consent", []) if v]
    return PublicReferralRequest.model_validate(
        {
            "referrer": {"type": _first(values, "referrer_type")},
            "region": {"province": _first(values, "province"), "municipality": _first(values, "municipality") or None},
            "language": _first(values, "language"),
            "interpreter_needed": bool(_first(values, "interpreter_needed")),
            "contact": {
                "name": _first(values, "contact_name"),
                "relation": _first(values, "contact_relation"),
                "phone": _first(values, "contact_phone") or None,
                "email": _first(values, "contact_email") or None,
            },
            "subject": _first(values, "subject") or "child",
            "children": _children(_first(values, "children")),
            "concern_categories": [v for v in values.get("concern_categories", []) if v],
            "description": _first(values, "description"),
            "urgency": "urgent" if _first(values, "urgent") else "normal",
            "consent": {"given_by": given_by} if given_by else None,
        }
    )


def errors_by_input(fields: list[dict[str, str]]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for item in fields:
        path = item["field"]
        name = next(
            (INPUT_OF_FIELD[prefix] for prefix in sorted(INPUT_OF_FIELD, key=len, reverse=True) if path.startswith(prefix)),
            "form",
        )
        errors.setdefault(name, []).append(item["problem"].removeprefix("Value error, "))
    return errors


def render_form(values: Values | None = None, errors: dict[str, list[str]] | None = None, *, csrf_token: str) -> str:
    return _templates.get_template("self_referral.html").render(
        csrf_token=csrf_token,
        values=values or {},
        errors=errors or {},
        first=lambda name: _first(values or {}, name),
        provinces=list(Province),
        languages=LANGUAGES,
        concerns=CONCERNS,
        consenting=CONSENTING,
        subjects=SUBJECTS,
    )


def render_thanks(case_id: str) -> str:
    return _templates.get_template("thanks.html").render(case_id=case_id)


def render_refused() -> str:
    return _templates.get_template("refused.html").render()
