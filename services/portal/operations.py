"""Operations' page: the coordinators (register, availability by caseload, ties), the waiting
list, cases at risk of the 60 days, late three-month checks, and the audit of a case in every
service. Queue, dead-letter and outbox figures stay with kring-ops and the dashboards: the
portal reaches the services' HTTP APIs only, never the broker or a database."""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.auth import SERVICES, Role

from . import forms
from .signin import signed_in
from .web import call, checked_form, render

router = APIRouter(prefix="/beheer")


def words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]


@router.get("")
async def overview(request: Request, zaak: str | None = None) -> Response:
    person = signed_in(request, Role.OPS)
    coordinators = await call(request, person, "scheduling", "GET", "/coordinators")
    waiting = await call(request, person, "scheduling", "GET", "/cases/waiting")
    at_risk = await call(request, person, "scheduling", "GET", "/cases/at-risk")
    late = await call(request, person, "followup", "GET", "/checks/late")
    audit = []
    if zaak := (zaak or "").strip():
        for service in SERVICES:  # each keeps the audit of what went through it
            audit += await call(request, person, service, "GET", "/audit", params={"case_id": zaak, "limit": 200})
        audit.sort(key=lambda entry: entry["at"])
    return render(request, "operations/overview.html", coordinators=coordinators, waiting=waiting, at_risk=at_risk, late=late, audit=audit, case_id=zaak)


@router.post("/coordinator")
async def register_coordinator(request: Request) -> Response:
    person = signed_in(request, Role.OPS)
    form = await checked_form(request)
    profile = {
        "provinces": words(form.get("provinces", "").upper()), "languages": words(form.get("languages", "").lower()),
        "max_cases": int(form["max_cases"]) if form.get("max_cases", "").isdigit() else 0,
        "tied_organisations": words(form.get("tied_organisations", "")), "professional_care_provider": False,
        "unavailable": [{"starts": forms.day(form, "away_from"), "ends": forms.day(form, "away_until")}] if form.get("away_from") else [],
    }  # fmt: skip
    await call(request, person, "scheduling", "PUT", f"/coordinators/{form.get('coordinator_id', '').strip()}", json=profile)
    request.session["notice"] = "saved"
    return RedirectResponse("/beheer#coordinators", status_code=303)
