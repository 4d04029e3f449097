"""The self-referral form: plain HTML that works without JavaScript, labelled for screen
readers, re-shown with the problems next to the fields when something is missing."""

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.contract.vocabulary import ConcernCategory, ConsentingParty, Province

from .domain import ReferralRequest

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
# Where a problem with a field of the request is shown in the form.
INPUT_OF_FIELD = {
    "referrer": "referrer_type", "contact.name": "contact_name", "contact.relation": "contact_relation",
    "contact.phone": "contact_phone", "contact.email": "contact_email", "contact": "contact_phone",
    "region.province": "province", "region.municipality": "municipality", "region": "province",
    "children": "children", "concern_categories": "concern_categories", "description": "description",
    "consent": "consent", "language": "language",
}  # fmt: skip

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


def parse(values: Values) -> ReferralRequest:
    """The form's fields as a referral request (raises pydantic.ValidationError)."""
    given_by = [v for v in values.get("consent", []) if v]
    return ReferralRequest.model_validate(
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


def render_form(values: Values | None = None, errors: dict[str, list[str]] | None = None) -> str:
    return _templates.get_template("self_referral.html").render(
        values=values or {},
        errors=errors or {},
        first=lambda name: _first(values or {}, name),
        provinces=list(Province),
        languages=LANGUAGES,
        concerns=CONCERNS,
        consenting=CONSENTING,
    )


def render_thanks(case_id: str, family_token: str) -> str:
    return _templates.get_template("thanks.html").render(case_id=case_id, family_token=family_token)
