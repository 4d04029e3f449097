"""Referral requests as referrers send them (personal data included: these never leave
the referral service, which is what the tests check)."""

import re
import uuid
from typing import Any

CONTACT_NAME = "Fatima Jansen-El Amrani"
CONTACT_PHONE = "+31 6 12345678"
CONTACT_EMAIL = "fatima.jansen@example.nl"
DESCRIPTION = "Moeder Fatima zorgt alleen voor drie kinderen sinds vader vertrok; schulden lopen op."
PERSONAL_VALUES = (CONTACT_NAME, CONTACT_PHONE, CONTACT_EMAIL, DESCRIPTION, "Jansen", "Fatima")
RESPONSIBLE_PROFESSIONAL = "gezinsvoogd-ut-1"  # named by the bureau: an id, no name


def referral_request(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "referrer": {"type": "youth_care_bureau", "organisation_id": "bjz-utrecht"},
        "funder_id": "prov-utrecht",
        "region": {"province": "UT", "municipality": "GM0344"},
        "language": "nl",
        "interpreter_needed": False,
        "coordinator_preferences": {"language": "ar", "gender": "female"},
        "contact": {"name": CONTACT_NAME, "relation": "mother", "phone": CONTACT_PHONE, "email": CONTACT_EMAIL},
        "children": [{"age": 4}, {"age": 9}, {"age": 13}],
        "statutory_context": "supervision_order",
        "concern_categories": ["income_debt", "parenting"],
        "description": DESCRIPTION,
        "urgency": "normal",
        "consent": {"given_by": ["parent_with_responsibility"]},
        "bottom_line_requirements": ["De kinderen gaan elke dag naar school."],
        "responsible_professional_id": RESPONSIBLE_PROFESSIONAL,
    }
    request.update(overrides)
    return request


def submit_referral(organisation: str = "bjz-utrecht", reference: str | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        **referral_request(**overrides),
        "source_organisation_id": organisation,
        "external_reference": reference or f"BJZ/{uuid.uuid4().hex[:10]}",
    }


PUBLIC_FIELDS_NOT_TAKEN = ("funder_id", "statutory_context", "bottom_line_requirements", "responsible_professional_id")


def self_referral(**overrides: Any) -> dict[str, Any]:
    """A self-referral as the public sends it: the family's facts only (who pays, the
    statutory context and organisations are not the public's to say)."""
    request = {key: value for key, value in referral_request().items() if key not in PUBLIC_FIELDS_NOT_TAKEN}
    request |= {"referrer": {"type": "self"}, "consent": None}
    return request | overrides


def form_token(page: str) -> str:
    """The CSRF token of a self-referral form page (its cookie comes with the same answer)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the form carries no csrf_token"
    return found.group(1)


def form_values(**overrides: Any) -> dict[str, Any]:
    """The self-referral form's fields as a family member fills them in (no CSRF token)."""
    values = {
        "referrer_type": "family_member", "contact_name": "Oma Jansen", "contact_relation": "grandmother",
        "contact_phone": "06 12345678", "province": "UT", "language": "nl", "children": "4, 9",
        "concern_categories": ["parenting"], "description": "Ik maak me zorgen.",
    }  # fmt: skip
    return values | overrides


async def family_token(http: Any, case_id: str, giver: dict[str, str]) -> str:
    """A family token the way a family gets one (issue 23): the coordinator or ops (`giver`:
    their authorization header) asks referral for a one-time code, the family exchanges it.
    `http`: an httpx client of the referral service."""
    code = await http.post(f"/cases/{case_id}/family-access", headers=giver)
    assert code.status_code == 201, code.text
    granted = await http.post("/family-access", json={"code": code.json()["code"]})
    assert granted.status_code == 200, granted.text
    return str(granted.json()["family_access_token"])
