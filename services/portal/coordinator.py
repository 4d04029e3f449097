"""The coordinator's pages: my cases with their stage, next step and deadlines; a case page with
the preparation (the network by role: invited, confirmed; interpreter), date, attendance, the
plan taken down at the conference, the family's code and the three-month check. Every call goes
with the coordinator's own token: the services refuse a case that is not theirs."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.auth import Role
from shared.errors import InvalidInput

from . import forms
from .signin import Staff, signed_in
from .web import call, checked_form, current_meeting, optional, render

router = APIRouter(prefix="/coordinator")
EMPTY_ROWS = 2  # room for more agreements on the plan form (no JavaScript needed)


def coordinator(request: Request) -> Staff:
    return signed_in(request, Role.COORDINATOR)


def next_step(case: dict[str, Any], status: str | None) -> str:
    """What the coordinator does next, as a key the page names in words; `status` is the plan's
    current meeting's (None: plans has no meeting of the case yet)."""
    match case["stage"]:
        case "preparing":
            return "first_contact" if case.get("first_contact_at") is None else "prepare"
        case "scheduled":
            return "hold"
        case "held":
            return {"presented": "await_review", "revision_requested": "revise"}.get(status or "", "take_down_plan")
        case "closed":
            return "followup_check" if case.get("followup_due_at") else "done"
        case "awaiting_consent":
            return "await_consent"
    return "done"


@router.get("")
async def my_cases(request: Request) -> Response:
    person = coordinator(request)
    cases = await call(request, person, "scheduling", "GET", "/cases")
    plans = {line["case_id"]: line for line in await call(request, person, "plans", "GET", "/cases")}
    deadlines: dict[str, list[dict[str, Any]]] = {}
    for due in await call(request, person, "scheduling", "GET", "/cases/deadlines", params={"within_days": 30}):
        deadlines.setdefault(due["case_id"], []).append(due)
    rows = [
        {"case": case, "next": next_step(case, plans.get(case["case_id"], {}).get("status")), "deadlines": deadlines.get(case["case_id"], [])}
        for case in sorted(cases, key=lambda c: c["referral"]["received_at"], reverse=True)
    ]  # fmt: skip
    waiting = await call(request, person, "scheduling", "GET", "/cases/waiting")  # in the provinces I work in
    return render(request, "coordinator/cases.html", rows=rows, waiting=waiting)


@router.get("/zaak/{case_id}")
async def case_page(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    case = await call(request, person, "scheduling", "GET", f"/cases/{case_id}")
    plan = await optional(request, person, "plans", f"/cases/{case_id}/plan")
    followup = await optional(request, person, "followup", f"/cases/{case_id}") if case["stage"] == "closed" else None
    deadlines = [d for d in await call(request, person, "scheduling", "GET", "/cases/deadlines", params={"within_days": 365}) if d["case_id"] == case_id]
    meeting = current_meeting(plan)
    agreements = ((meeting or {}).get("plan") or {}).get("agreements", [])
    return render(
        request, "coordinator/case.html", case=case, plan=plan, meeting=meeting, followup=followup, deadlines=deadlines,
        next=next_step(case, (meeting or {}).get("status")), agreements=agreements, rows=len(agreements) + EMPTY_ROWS,
    )  # fmt: skip


def back(case_id: str, section: str, request: Request) -> Response:
    request.session["notice"] = "saved"
    return RedirectResponse(f"/coordinator/zaak/{case_id}#{section}", status_code=303)


@router.post("/zaak/{case_id}/eerste-contact")
async def first_contact(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    await checked_form(request)
    await call(request, person, "scheduling", "POST", f"/cases/{case_id}/first-contact", json={"contacted_at": datetime.now(UTC).isoformat()})
    return back(case_id, "contact", request)


@router.post("/zaak/{case_id}/voorbereiding")
async def preparation(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    form = await checked_form(request)
    body = {
        "network": forms.counts(form, "network"), "invited": forms.counts(form, "invited"), "accepted": forms.counts(form, "accepted"),
        "parents_with_responsibility": forms.count(form, "parents_with_responsibility"),
        **{flag: form.get(flag) == "on" for flag in ("interpreter_arranged", "location_booked", "catering_arranged")},
    }  # fmt: skip
    await call(request, person, "scheduling", "PUT", f"/cases/{case_id}/preparation", json=body)
    return back(case_id, "preparation", request)


@router.post("/zaak/{case_id}/datum")
async def conference_date(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    form = await checked_form(request)
    await call(request, person, "scheduling", "PUT", f"/cases/{case_id}/conference", json={"conference_date": forms.day(form, "conference_date")})
    return back(case_id, "date", request)


@router.post("/zaak/{case_id}/gehouden")
async def held(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    form = await checked_form(request)
    body = {"attended": forms.counts(form, "attended"), "all_parents_with_responsibility_attended": form.get("all_parents") == "on"}
    await call(request, person, "scheduling", "POST", f"/cases/{case_id}/held", json=body)
    return back(case_id, "attendance", request)


@router.post("/zaak/{case_id}/plan")
async def take_down_plan(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    form = await checked_form(request)
    plan = await call(request, person, "plans", "GET", f"/cases/{case_id}/plan")
    requirement_ids = [r["requirement_id"] for r in plan.get("requirements", [])]
    body = forms.plan(form, requirement_ids, forms.count(form, "rows"))
    await call(request, person, "plans", "PUT", f"/cases/{case_id}/plan", json=body)
    if form.get("action") == "present":
        await call(request, person, "plans", "POST", f"/cases/{case_id}/plan/presentation")
    return back(case_id, "plan", request)


@router.post("/zaak/{case_id}/gezinscode")
async def family_code(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    await checked_form(request)
    issued = await call(request, person, "referral", "POST", f"/cases/{case_id}/family-access")
    return render(request, "coordinator/family_code.html", case_id=case_id, issued=issued)


@router.get("/zaak/{case_id}/contactpersoon")
async def contact_person(request: Request, case_id: str) -> Response:
    """The family's contact person: asked for when needed (referral keeps a record of who read it)."""
    person = coordinator(request)
    contact = await call(request, person, "referral", "GET", f"/cases/{case_id}/contact")
    return render(request, "coordinator/contact.html", case_id=case_id, contact=contact)


@router.post("/zaak/{case_id}/driemaandencheck")
async def followup_check(request: Request, case_id: str) -> Response:
    person = coordinator(request)
    form = await checked_form(request)
    if form.get("execution_status") not in forms.EXECUTION:
        raise InvalidInput("how far the plan was carried out is missing", field="execution_status")
    outcomes = [form[name] for name in sorted(form) if name.startswith("child_outcome_") and form[name] in forms.CHILD_OUTCOMES]
    body = {
        "execution_status": form["execution_status"], "ratings_by_children": forms.scores(form, "ratings_by_children"),
        "ratings_by_family": forms.scores(form, "ratings_by_family"), "ratings_by_professionals": forms.scores(form, "ratings_by_professionals"),
        "child_outcomes": outcomes, "new_conference_requested": form.get("new_conference_requested") == "on",
    }  # fmt: skip
    await call(request, person, "followup", "POST", f"/cases/{case_id}/check", json=body)
    return back(case_id, "followup", request)
