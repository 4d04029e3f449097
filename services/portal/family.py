"""The family's pages: in with the one-time code its coordinator gave, its plan and the
bottom-line requirements in plain words, and withdrawing consent. The services decide what the
family's token may see: the portal only asks with it."""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.errors import Forbidden

from .web import checked_form, render

router = APIRouter(prefix="/gezin")


def family_token(request: Request) -> str:
    token = request.session.get("family_token")
    if not isinstance(token, str):
        raise Forbidden("no family access in this session")
    return token


@router.get("")
async def code_form(request: Request) -> Response:
    return render(request, "family/code.html", refused=False)


@router.post("")
async def exchange_code(request: Request) -> Response:
    form = await checked_form(request)
    try:
        granted = await request.app.state.services.call("referral", "POST", "/family-access", json={"code": form.get("code", "").strip()})
    except Forbidden:
        return render(request, "family/code.html", 403, refused=True)
    request.session.clear()  # a new person in this browser: nothing of an earlier session stays
    request.session["family_token"], request.session["case_id"] = granted["family_access_token"], granted["case_id"]
    return RedirectResponse(f"/gezin/zaak/{granted['case_id']}", status_code=303)


@router.get("/zaak/{case_id}")
async def plan(request: Request, case_id: str) -> Response:
    case_plan = await request.app.state.services.call("plans", "GET", f"/cases/{case_id}/plan", family_token(request))
    meetings = [m for m in case_plan.get("meetings", []) if m.get("plan")]
    return render(request, "family/plan.html", case_id=case_id, plan=meetings[-1] if meetings else None, requirements=case_plan.get("requirements", []))


@router.get("/zaak/{case_id}/intrekken")
async def withdrawal_form(request: Request, case_id: str) -> Response:
    family_token(request)
    return render(request, "family/withdraw.html", case_id=case_id)


@router.post("/zaak/{case_id}/intrekken")
async def withdraw(request: Request, case_id: str) -> Response:
    await checked_form(request)
    await request.app.state.services.call(
        "referral", "POST", f"/cases/{case_id}/withdrawal", family_token(request), json={"reason": "consent_withdrawn"}
    )
    request.session.clear()
    return render(request, "family/withdrawn.html")

