"""The professional's pages: my statutory cases, setting bottom-line requirements before the
conference (shared with the family), and reviewing a presented plan against each requirement:
accepted when every one is answered, a revision asked for naming the unmet ones otherwise, or
accepted with a justification. Plans decides which cases are theirs."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.auth import Role
from shared.errors import InvalidInput

from .signin import Staff, signed_in
from .web import call, checked_form, current_meeting, render

router = APIRouter(prefix="/professional")


def professional(request: Request) -> Staff:
    return signed_in(request, Role.PROFESSIONAL)


def answered_by(plan: dict[str, Any], meeting: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Per requirement, the agreements of the current meeting's plan that answer it."""
    agreements = ((meeting or {}).get("plan") or {}).get("agreements", [])
    return {r["requirement_id"]: [a for a in agreements if r["requirement_id"] in a.get("answers_requirements", [])] for r in plan.get("requirements", [])}


@router.get("")
async def my_cases(request: Request) -> Response:
    person = professional(request)
    cases = await call(request, person, "plans", "GET", "/cases")
    return render(request, "professional/cases.html", cases=cases)


@router.get("/zaak/{case_id}")
async def case_page(request: Request, case_id: str) -> Response:
    person = professional(request)
    plan = await call(request, person, "plans", "GET", f"/cases/{case_id}/plan")
    meeting = current_meeting(plan)
    return render(request, "professional/case.html", case_id=case_id, plan=plan, meeting=meeting, answered=answered_by(plan, meeting))


@router.post("/zaak/{case_id}/eis")
async def add_requirement(request: Request, case_id: str) -> Response:
    person = professional(request)
    form = await checked_form(request)
    if form.get("shared_with_family") != "on":
        raise InvalidInput("a bottom-line requirement is shared with the family before it is set", field="shared_with_family")
    body = {"text": form.get("text", "").strip(), "shared_with_family_at": datetime.now(UTC).isoformat()}
    await call(request, person, "plans", "POST", f"/cases/{case_id}/requirements", json=body)
    request.session["notice"] = "saved"
    return RedirectResponse(f"/professional/zaak/{case_id}#requirements", status_code=303)


@router.post("/zaak/{case_id}/beoordeling")
async def review(request: Request, case_id: str) -> Response:
    person = professional(request)
    form = await checked_form(request)
    justification = form.get("justification", "").strip()
    reviewed = await call(request, person, "plans", "POST", f"/cases/{case_id}/plan/review", json={"justification": justification or None})
    request.session["notice"] = reviewed["meetings"][-1]["status"]  # accepted or revision_requested
    return RedirectResponse(f"/professional/zaak/{case_id}#review", status_code=303)
