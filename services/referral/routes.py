"""HTTP of the referral service.

Who may do what:
- bureau, referrer: submit referrals for their own organisation; read, give consent for,
  withdraw the referrals of their organisation;
- anyone (one rate limit per address for all these routes, shared by the replicas):
  self-referral as family member or the family itself, JSON or the HTML form (CSRF
  double-submit cookie), with the family's facts only (who pays and the statutory context
  are derived); the answer gives no access to the case: whoever sent the form may not be
  the family. The case waits for intake: it takes no coordinator's place and the other
  services hear nothing of it until ops accepts it (POST /cases/{id}/intake);
- anyone with a one-time code (same rate limit): exchange it once for a family token
  (POST /family-access, services/referral/family_codes.py);
- family (token for its case, until the case is withdrawn or erased: shared.family_access): read its
  case (with the bottom-line requirements), give or withdraw consent;
- coordinator: the same for the cases assigned to them, the contact person, and a one-time
  code for the family (POST /cases/{id}/family-access) to hand over at the first call;
- ops: read any case's non-personal summary, withdraw, a one-time code; accept a
  self-referral's intake, and before that read its contact person to phone the family;
  erase a case's personal data on request (POST /cases/{id}/erasure, a coded ground), in
  every service.
An erased case answers 404 to every read; every access to a case is in the audit log.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pydantic
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.access import ANY_CASE, OWN_CASE, OWN_CASES, Ownership, Scope, change_owned, ownership, read_owned
from shared.auth import ROLE_LIFETIME, Principal, Role, authorised, issue_token
from shared.contract.vocabulary import (
    AgeBand,
    ConcernCategory,
    ConsentingParty,
    ConsentState,
    CoordinatorPreferences,
    ErasureReason,
    ErasureRequestReason,
    ReferrerType,
    Region,
    StatutoryContext,
    Subject,
    Urgency,
    WithdrawalReason,
)
from shared.domain import Change
from shared.errors import Forbidden, RuleViolation
from shared.http import CACHEABLE, Refusal, field_errors, page, public_rate_limit
from shared.settings import KringSettings
from shared.store import AggregateStore, Result

from . import domain, family_codes, forms
from .domain import Referral
from .storage import open_referral

# The services a family's contact person reads its own case at.
FAMILY_SERVICES = ("referral", "plans")
PROFESSIONAL_ROLES = (Role.BUREAU, Role.REFERRER)


class ReferralSubmission(domain.NewReferralRequest):
    external_reference: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$",
        description="your own reference; submitting it again answers the same case",
    )


class CaseCreated(BaseModel):
    case_id: str
    resubmission: bool = False


class FamilyCodeIssued(BaseModel):
    """A one-time code for the family, to hand over in person or by phone: never by e-mail
    or in a letter to an address that was not verified."""

    case_id: str
    code: str = Field(description="e.g. K7QM-4XRT-9PWC: single use, typed in by the family at POST /family-access")
    expires_at: AwareDatetime


class CodeExchange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=40)


class FamilyAccessGranted(BaseModel):
    case_id: str
    family_access_token: str = Field(description="lets the family read its own case and plan, until it expires or the case ends")
    expires_at: AwareDatetime


class ConsentView(BaseModel):
    state: ConsentState
    given_by: list[ConsentingParty]
    recorded_at: AwareDatetime


class CaseView(BaseModel):
    """A case without the family's personal data, for everyone allowed to see the case."""

    case_id: str
    received_at: AwareDatetime
    active: bool
    withdrawn_at: AwareDatetime | None
    withdrawal_reason: WithdrawalReason | None
    referrer_type: ReferrerType
    region: Region
    language: str
    interpreter_needed: bool
    coordinator_preferences: CoordinatorPreferences
    subject: Subject
    child_age_bands: list[AgeBand]
    statutory_context: StatutoryContext
    responsible_professional_id: str | None = Field(description="the professional with statutory responsibility (an id)")
    concern_categories: list[ConcernCategory]
    urgency: Urgency
    consent: ConsentView
    consent_history: list[ConsentView]
    bottom_line_requirements: list[str] = Field(description="visible to the family before the conference")
    coordinator_id: str | None
    intake_accepted: bool = Field(description="false: a self-referral waiting for an intake worker; no place taken yet")


class ContactView(BaseModel):
    """What the assigned coordinator (or, before intake, the intake worker) needs to start:
    personal data, for them only."""

    case_id: str
    contact: domain.ContactPerson
    description: str
    children: list[domain.Child]
    language: str
    interpreter_needed: bool


class ErasureRequest(BaseModel):
    """Why operations erase a case now: a code and, if there is one, the request's number
    (e.g. in the privacy desk's system); never a value."""

    model_config = ConfigDict(extra="forbid")
    reason: ErasureRequestReason
    reference: domain.Reference | None = None


class ErasureView(BaseModel):
    case_id: str
    erased_at: AwareDatetime
    reason: ErasureReason
    request_reason: ErasureRequestReason | None
    reference: str | None
    withdrawn_at: AwareDatetime | None


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: WithdrawalReason


def case_view(referral: domain.Referral) -> CaseView:
    request = domain.kept(referral)  # an erased case: 404
    history = [ConsentView(state=e.state, given_by=e.given_by, recorded_at=e.recorded_at) for e in referral.consent]
    return CaseView(
        case_id=referral.case_id,
        received_at=referral.received_at,
        active=referral.active,
        withdrawn_at=referral.withdrawn_at,
        withdrawal_reason=referral.withdrawal_reason,
        referrer_type=request.referrer.type,
        region=request.region,
        language=request.language,
        interpreter_needed=request.interpreter_needed,
        coordinator_preferences=request.coordinator_preferences,
        subject=request.subject,
        child_age_bands=[child.age_band for child in request.children],
        statutory_context=request.statutory_context,
        responsible_professional_id=request.responsible_professional_id,
        concern_categories=request.concern_categories,
        urgency=request.urgency,
        consent=history[-1],
        consent_history=history,
        bottom_line_requirements=request.bottom_line_requirements,
        coordinator_id=referral.coordinator_id,
        intake_accepted=referral.intake_accepted,
    )


def erasure_view(referral: domain.Referral) -> ErasureView:
    assert referral.erasure is not None
    e = referral.erasure
    return ErasureView(
        case_id=referral.case_id, erased_at=e.erased_at, reason=e.reason, request_reason=e.request_reason,
        reference=e.reference, withdrawn_at=referral.withdrawn_at,
    )  # fmt: skip


ORGANISATION_CASES = "its organisation's cases only (the token's org)"


@ownership(
    {
        Role.BUREAU: ORGANISATION_CASES,
        Role.REFERRER: ORGANISATION_CASES,
        Role.FAMILY: OWN_CASE,
        Role.COORDINATOR: OWN_CASES,
        Role.OPS: ANY_CASE,
    }
)
def may_see(caller: Principal, referral: domain.Referral) -> bool:
    match caller.role:
        case Role.OPS:
            return True
        case Role.FAMILY:
            return caller.case_id == referral.case_id
        case Role.COORDINATOR:
            return referral.coordinator_id == caller.subject
        case Role.BUREAU | Role.REFERRER:
            organisations = {referral.source_organisation_id, referral.referrer_organisation_id}
            if referral.request is not None:  # kept before referrer_organisation_id was
                organisations.add(referral.request.referrer.organisation_id)
            return caller.organisation_id is not None and caller.organisation_id in organisations
    return False


# The contact person: may_see, then domain.may_read_contact (in the route).
CONTACT = Ownership(may_see, {Role.COORDINATOR: "the coordinator assigned to the case only", Role.OPS: "before a self-referral's intake only"})
# Checked in the route: the body's referrer.organisation_id must be the token's org.
OWN_ORGANISATION = "for its own organisation only (referrer.organisation_id = the token's org)"
FOR_OWN_ORGANISATION = Scope({Role.BUREAU: OWN_ORGANISATION, Role.REFERRER: OWN_ORGANISATION})


def router(
    referrals: AggregateStore[Referral], codes: AggregateStore[family_codes.FamilyCode], settings: KringSettings,
    clock: Callable[[], datetime],
) -> APIRouter:  # fmt: skip
    api = APIRouter()
    public = [Depends(public_rate_limit)]
    secure_cookie = not settings.development
    anyone_on_the_case = authorised(Role.BUREAU, Role.REFERRER, Role.FAMILY, Role.COORDINATOR, Role.OPS, owned=may_see)

    async def open_case(
        request: domain.ReferralRequest, *, channel: str, role: str, organisation: str | None, reference: str | None,
        anonymous: bool = False,
    ) -> CaseCreated:  # fmt: skip
        def opened(case_id: str, existing: Referral | None) -> Change[Referral] | None:
            new = domain.received(
                case_id, request, now=clock(), channel=channel, recorded_by_role=role,
                source_organisation_id=organisation, external_reference=reference, anonymous=anonymous,
            )  # fmt: skip
            return domain.open_case(existing, new)

        mutation = await open_referral(referrals, f"{organisation}:{reference}" if organisation and reference else None, opened)
        assert mutation.state is not None
        return CaseCreated(case_id=mutation.state.case_id, resubmission=mutation.result is Result.UNCHANGED)

    def family_token(case_id: str) -> str:
        return issue_token(settings, subject=f"family-{case_id}", role=Role.FAMILY, audience=FAMILY_SERVICES, case_id=case_id)

    async def change(case_id: str, caller: Principal, decide: Callable[[Referral], Any]) -> CaseView:
        return case_view(await change_owned(referrals, case_id, caller, may_see, decide))

    @api.post("/referrals", status_code=201, response_model=CaseCreated, tags=["referrals"])
    async def submit_referral(
        submission: ReferralSubmission, caller: Principal = Depends(authorised(*PROFESSIONAL_ROLES, owned=FOR_OWN_ORGANISATION))
    ) -> CaseCreated:
        """A bureau or professional referrer refers a family. Sending an external_reference
        again answers the same case if the referral is identical, and 409 naming the changed
        fields if it is not (nothing is changed)."""
        if submission.referrer.organisation_id != caller.organisation_id:
            raise Forbidden("you may refer only for your own organisation")
        request = domain.ReferralRequest.model_validate(submission.model_dump(exclude={"external_reference"}))
        return await open_case(
            request, channel="http", role=caller.role, organisation=caller.organisation_id,
            reference=submission.external_reference,
        )  # fmt: skip

    async def open_self_referral(request: domain.PublicReferralRequest, channel: str) -> CaseCreated:
        # No token for whoever sent it (perhaps a neighbour): the family gets its access from
        # the coordinator or the intake worker who spoke to it (a one-time code).
        return await open_case(request.as_referral(), channel=channel, role="family", organisation=None, reference=None, anonymous=True)

    @api.post("/self-referrals", status_code=201, response_model=CaseCreated, tags=["referrals"], dependencies=public)
    async def self_referral(request: domain.PublicReferralRequest) -> CaseCreated:
        """A family member or the family itself asks for a conference (no account needed).
        An intake worker phones the contact person before the case goes further."""
        return await open_self_referral(request, "http")

    @api.get("/self-referral", response_class=HTMLResponse, tags=["form"], dependencies=public)
    async def self_referral_form(http_request: Request) -> HTMLResponse:
        token = forms.form_token(http_request.cookies.get(forms.FORM_COOKIE))
        response = page(forms.render_form(csrf_token=token))
        response.set_cookie(
            forms.FORM_COOKIE, token, max_age=forms.FORM_COOKIE_SECONDS, path="/self-referral",
            secure=secure_cookie, httponly=True, samesite="strict",
        )  # fmt: skip
        return response

    @api.get("/self-referral/style.css", include_in_schema=False)
    async def self_referral_style() -> Response:
        return Response(forms.STYLESHEET, media_type="text/css", headers={"cache-control": CACHEABLE})

    @api.post(
        "/self-referral", response_class=HTMLResponse, tags=["form"], dependencies=public,
        responses={
            201: {"description": "thanks page with the family's link", "content": {"text/html": {}}},
            403: {"description": "the form token (cookie kring_form and hidden field) is missing or does not match", "content": {"text/html": {}}},
            422: {"description": "the form again, with the invalid fields marked (a file in a field: JSON InvalidRequest)", "content": {"text/html": {}}},
        },
    )  # fmt: skip
    async def self_referral_form_sent(http_request: Request) -> HTMLResponse:
        form = await http_request.form()
        cookie = http_request.cookies.get(forms.FORM_COOKIE)
        if not forms.same_token(cookie, form.get("csrf_token")):
            return page(forms.render_refused(), 403)
        values = forms.text_values(form)  # raises InvalidInput (422) for a file in a field
        assert cookie is not None
        try:
            request = forms.parse(values)
        except pydantic.ValidationError as error:
            return page(forms.render_form(values, forms.errors_by_input(field_errors(error.errors())), csrf_token=cookie), 422)
        created = await open_self_referral(request, "form")
        return page(forms.render_thanks(created.case_id), 201)

    @api.post("/cases/{case_id}/intake", response_model=CaseView, tags=["cases"])
    async def accept_intake(case_id: str, caller: Principal = Depends(authorised(Role.OPS, owned=may_see))) -> CaseView:
        """An intake worker spoke to the family of a self-referral and takes it on: only now
        is the case announced to the other services (and a coordinator's place reserved)."""
        now = clock()
        return await change(case_id, caller, lambda r: domain.accept_intake(r, now=now))

    @api.get("/cases/{case_id}", response_model=CaseView, tags=["cases"])
    async def read_case(case_id: str, caller: Principal = Depends(anyone_on_the_case)) -> CaseView:
        return case_view(await read_owned(referrals, case_id, caller, may_see))

    @api.get("/cases/{case_id}/contact", response_model=ContactView, tags=["cases"])
    async def read_contact(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR, Role.OPS, owned=CONTACT))) -> ContactView:
        """The family's contact person, for the coordinator assigned to the case only; before
        a self-referral's intake, for the intake worker (ops) who phones the family."""
        referral = await read_owned(referrals, case_id, caller, CONTACT)
        if not domain.may_read_contact(caller.role, caller.subject, referral):
            raise Forbidden("only the assigned coordinator reads the contact person (ops: before intake only)")
        request = domain.kept(referral)
        return ContactView(
            case_id=case_id, contact=request.contact, description=request.description,
            children=request.children, language=request.language,
            interpreter_needed=request.interpreter_needed,
        )  # fmt: skip

    @api.post("/cases/{case_id}/consent", response_model=CaseView, tags=["consent"])
    async def give_consent(
        case_id: str, consent: domain.ConsentGiven, caller: Principal = Depends(anyone_on_the_case)
    ) -> CaseView:
        """Record who consented to the conference (parents with responsibility, the young person)."""
        now = clock()
        return await change(case_id, caller, lambda r: domain.give_consent(r, consent, now=now, role=caller.role))

    @api.post("/cases/{case_id}/withdrawal", response_model=CaseView, tags=["consent"])
    async def withdraw(case_id: str, withdrawal: Withdrawal, caller: Principal = Depends(anyone_on_the_case)) -> CaseView:
        """Withdraw the referral, at any time; `consent_withdrawn` records the family's no."""
        now = clock()
        return await change(case_id, caller, lambda r: domain.withdraw(r, withdrawal.reason, now=now, role=caller.role))

    @api.post("/cases/{case_id}/erasure", response_model=ErasureView, tags=["privacy"])
    async def erase(case_id: str, erasure: ErasureRequest, caller: Principal = Depends(authorised(Role.OPS, owned=may_see))) -> ErasureView:
        """Erase the case's personal data now, in every service (AVG art. 17), with the
        ground as a code. A running case is closed first (the coordinator's place is freed).
        Erasing an erased case again changes nothing and answers the first erasure."""
        now = clock()
        decide = lambda r: domain.erase(  # noqa: E731
            r, now=now, reason=ErasureReason.REQUEST, role=caller.role, request_reason=erasure.reason, reference=erasure.reference
        )
        return erasure_view(await change_owned(referrals, case_id, caller, may_see, decide))

    @api.post("/cases/{case_id}/family-access", response_model=FamilyCodeIssued, status_code=201, tags=["family access"])
    async def family_access_code(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR, Role.OPS, owned=may_see))) -> FamilyCodeIssued:
        """A one-time code for the family's contact person, for the case's coordinator (or ops,
        e.g. the intake worker on the phone) to hand over at the first call. It is shown once:
        only its hash is kept."""
        referral = await read_owned(referrals, case_id, caller, may_see)
        domain.kept(referral)  # none for an erased case
        if not referral.active:
            raise RuleViolation("the case was withdrawn: the family's access has ended")
        for _ in range(20):  # a live code holding the drawn key: draw again
            code_id, secret = family_codes.new_code()
            now = clock()
            code = family_codes.record(case_id, secret, now=now, role=caller.role)
            try:
                await codes.mutate(code_id, lambda current: family_codes.issued(current, code, now))
            except family_codes.CodeKeyTaken:
                continue
            return FamilyCodeIssued(case_id=case_id, code=family_codes.formatted(code_id, secret), expires_at=code.expires_at)
        raise RuleViolation("no free code could be drawn: try again")

    @api.post(
        "/family-access", response_model=FamilyAccessGranted, tags=["family access"], dependencies=public,
        responses={403: {"model": Refusal, "description": "the code is wrong, used, expired or tried too often, or the case ended"}},
    )  # fmt: skip
    async def exchange_family_code(body: CodeExchange) -> FamilyAccessGranted:
        """The family exchanges its one-time code, once, for its access token."""
        typed = family_codes.parsed(body.code)
        if typed is None:
            raise Forbidden(family_codes.REFUSED)
        code_id, secret = typed
        now = clock()
        mutation = await codes.mutate(code_id, lambda current: family_codes.exchanged(current, secret, now))
        used = mutation.state
        if used is None or used.used_at != now:
            raise Forbidden(family_codes.REFUSED)
        referral = await referrals.get(used.case_id)
        if referral is None or not referral.active or referral.erasure is not None:
            raise Forbidden(family_codes.REFUSED)
        token = family_token(used.case_id)
        return FamilyAccessGranted(
            case_id=used.case_id, family_access_token=token, expires_at=now + ROLE_LIFETIME[Role.FAMILY]
        )  # fmt: skip

    return api

