"""The referral: what comes in, who consented, and what the other services may know of it.

Pure rules, no I/O. A referral holds the family's personal data (contact person, free
text); it never leaves this service except to the assigned coordinator over HTTP. The
events built here carry only codes, bands and counts.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator

from shared.contract.events import (
    ConsentRecorded,
    ReferralAccepted,
    ReferralReceived,
    ReferralWithdrawn,
)
from shared.contract.vocabulary import (
    AgeBand,
    CaseId,
    ConcernCategory,
    ConsentingParty,
    ConsentState,
    CoordinatorPreferences,
    Identifier,
    LanguageCode,
    ReferrerType,
    Region,
    StatutoryContext,
    Urgency,
    WithdrawalReason,
)
from shared.domain import Change, Strict
from shared.errors import InvalidInput, NotFound, RuleViolation

NON_PROFESSIONAL = frozenset({ReferrerType.FAMILY_MEMBER, ReferrerType.SELF})
STATUTORY = frozenset({StatutoryContext.SUPERVISION_ORDER, StatutoryContext.OUT_OF_HOME_PLACEMENT})
# From 16 a young person decides on their own care (WGBO); their own consent is needed.
OWN_CONSENT_AGE = 16

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


# --- what a referrer sends ----------------------------------------------------------


class Referrer(Strict):
    type: ReferrerType
    organisation_id: Identifier | None = Field(
        default=None, description="required for professional referrers; used for conflict-of-interest checks"
    )

    @model_validator(mode="after")
    def _professionals_name_their_organisation(self) -> Self:
        if self.type not in NON_PROFESSIONAL and self.organisation_id is None:
            raise ValueError("organisation_id is required for a professional referrer")
        return self


class ContactPerson(Strict):
    """The family's contact for the coordinator. Personal data: stays in this service."""

    name: Annotated[Text, StringConstraints(max_length=120)]
    relation: Annotated[Text, StringConstraints(max_length=60)] = Field(description="e.g. mother, grandfather")
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{6,20}$")] | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")] | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if self.phone is None and self.email is None:
            raise ValueError("give a phone number or an e-mail address")
        return self


class Child(Strict):
    """No more identity than needed: an age, or expected (unborn)."""

    age: int | None = Field(default=None, ge=0, le=23, description="age in years")
    expected: bool = Field(default=False, description="not yet born")

    @model_validator(mode="after")
    def _age_or_expected(self) -> Self:
        if (self.age is None) == (not self.expected):
            raise ValueError("give either an age or expected=true")
        return self

    @property
    def age_band(self) -> AgeBand:
        if self.expected or self.age is None:
            return AgeBand.UNBORN
        for limit, band in ((3, AgeBand.AGE_0_3), (11, AgeBand.AGE_4_11), (15, AgeBand.AGE_12_15), (17, AgeBand.AGE_16_17)):
            if self.age <= limit:
                return band
        return AgeBand.ADULT


class ConsentGiven(Strict):
    given_by: list[ConsentingParty] = Field(min_length=1, max_length=6)


class FamilyFacts(Strict):
    """What anyone asking for a conference tells about the family."""

    region: Region
    language: LanguageCode = Field(description="the family's language, ISO 639")
    interpreter_needed: bool = False
    coordinator_preferences: CoordinatorPreferences = CoordinatorPreferences()
    contact: ContactPerson
    children: list[Child] = Field(min_length=1, max_length=20)
    concern_categories: list[ConcernCategory] = Field(min_length=1, max_length=9)
    description: Annotated[Text, StringConstraints(max_length=5000)] = Field(
        description="the reason for the referral in the referrer's words (personal data)"
    )
    urgency: Urgency = Urgency.NORMAL
    consent: ConsentGiven | None = Field(
        default=None, description="who consented already; absent = consent still to be asked"
    )

    @model_validator(mode="after")
    def _consent_rules(self) -> Self:
        if self.consent is not None and (problem := consent_problem(self.children, self.consent)):
            raise ValueError(problem)
        return self


class ReferralRequest(FamilyFacts):
    """A referral as bureaus (AMQP or HTTP) and referrers (HTTP) send it, and as every
    referral is kept (a public one with what the service derived)."""

    referrer: Referrer
    funder_id: Identifier | None = Field(
        default=None,
        description="who pays: required from a professional referrer (bureaus: always); only a family (family_member, "
        "self) may leave it out, then the municipality (Youth Act) pays, else the province",
    )
    statutory_context: StatutoryContext = StatutoryContext.NONE
    bottom_line_requirements: list[Annotated[Text, StringConstraints(max_length=1000)]] = Field(
        default=[],
        max_length=20,
        description="minimum safety conditions set by a professional with statutory responsibility",
    )

    @property
    def funder(self) -> str:
        return self.funder_id or default_funder(self.region)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.funder_id is None and self.referrer.type not in NON_PROFESSIONAL:
            raise ValueError("funder_id is required for a professional referrer")
        if self.bottom_line_requirements and self.statutory_context not in STATUTORY:
            raise ValueError("bottom_line_requirements need a supervision order or out-of-home placement")
        if self.bottom_line_requirements and self.referrer.type in NON_PROFESSIONAL:
            raise ValueError("only a professional with statutory responsibility sets bottom_line_requirements")
        return self


class PublicReferrer(Strict):
    type: Literal[ReferrerType.FAMILY_MEMBER, ReferrerType.SELF] = Field(
        description="family_member or self; professionals use POST /referrals"
    )


class PublicReferralRequest(FamilyFacts):
    """A self-referral, from anyone, unauthenticated: only the family's facts. Who pays,
    the statutory context and any organisation are not the public's to say: the service
    derives them (`as_referral`)."""

    referrer: PublicReferrer

    def as_referral(self) -> ReferralRequest:
        return ReferralRequest(
            **{name: getattr(self, name) for name in FamilyFacts.model_fields},
            referrer=Referrer(type=self.referrer.type),
            funder_id=default_funder(self.region),
            statutory_context=StatutoryContext.NONE,
        )


def default_funder(region: Region) -> str:
    """Who pays when the referrer does not say: the municipality (Youth Act), else the province."""
    return region.municipality or f"province-{region.province}"


class SubmitReferral(ReferralRequest):
    """The intake command a bureau publishes (routing key `referral.submit`)."""

    source_organisation_id: Identifier | None = Field(
        default=None,
        description="optional: the sender is the bureau whose broker user published the command "
        "(bureau-<organisation id>); if given, it must be that organisation, or the command is rejected",
    )
    external_reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$")] = Field(
        description="the bureau's own reference; resubmitting it answers the same case id"
    )


def consent_problem(children: list[Child], consent: ConsentGiven) -> str | None:
    if any((child.age or 0) >= OWN_CONSENT_AGE for child in children) and (
        ConsentingParty.YOUNG_PERSON not in consent.given_by
    ):
        return f"a young person of {OWN_CONSENT_AGE} or older must consent themselves (given_by young_person)"
    return None


# --- the referral as kept --------------------------------------------------------------


class ConsentEntry(BaseModel):
    state: ConsentState
    given_by: list[ConsentingParty] = []
    recorded_at: AwareDatetime
    recorded_by_role: str


class Referral(BaseModel):
    case_id: CaseId
    received_at: AwareDatetime
    channel: str = Field(description="amqp, http or form")
    source_organisation_id: Identifier | None = None
    external_reference: str | None = None
    request: ReferralRequest
    consent: list[ConsentEntry]
    withdrawn_at: AwareDatetime | None = None
    withdrawal_reason: WithdrawalReason | None = None
    coordinator_id: Identifier | None = None
    intake_accepted: bool = Field(
        default=True,
        description="false for an anonymous self-referral until an intake worker has spoken to the family",
    )
    intake_accepted_at: AwareDatetime | None = None

    @property
    def consent_state(self) -> ConsentState:
        return self.consent[-1].state

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


def received(
    case_id: str,
    request: ReferralRequest,
    *,
    now: datetime,
    channel: str,
    recorded_by_role: str,
    source_organisation_id: str | None = None,
    external_reference: str | None = None,
    anonymous: bool = False,
) -> Referral:
    """`anonymous`: from the public (self-referral); it waits for intake (`accept_intake`)."""
    consent = (
        ConsentEntry(state=ConsentState.GIVEN, given_by=request.consent.given_by, recorded_at=now, recorded_by_role=recorded_by_role)
        if request.consent
        else ConsentEntry(state=ConsentState.PENDING, recorded_at=now, recorded_by_role=recorded_by_role)
    )
    return Referral(
        case_id=case_id,
        received_at=now,
        channel=channel,
        source_organisation_id=source_organisation_id,
        external_reference=external_reference,
        request=request,
        consent=[consent],
        intake_accepted=not anonymous,
    )


def received_event(referral: Referral) -> ReferralReceived:
    """What the other services need to know of a new referral, and nothing more."""
    request = referral.request
    return ReferralReceived(
        case_id=referral.case_id,
        received_at=referral.received_at,
        referrer_type=request.referrer.type,
        referrer_organisation_id=request.referrer.organisation_id,
        funder_id=request.funder,
        region=request.region,
        language=request.language,
        interpreter_needed=request.interpreter_needed,
        coordinator_preferences=request.coordinator_preferences,
        concern_categories=sorted(set(request.concern_categories)),
        child_age_bands=[child.age_band for child in request.children],
        statutory_context=request.statutory_context,
        urgency=request.urgency,
        consent=referral.consent_state,
        bottom_line_requirements_set=bool(request.bottom_line_requirements),
    )


def open_case(existing: Referral | None, new: Referral) -> Change[Referral] | None:
    """A new case; None if it exists already (a resubmission changes nothing). An anonymous
    self-referral is not announced yet: anyone can send one, and the other services would
    give it a coordinator's place (scheduling reserves one on ReferralReceived)."""
    if existing is not None:
        return None
    return Change(new, [received_event(new)] if new.intake_accepted else [])


def accept_intake(referral: Referral | None, *, now: datetime) -> Change[Referral] | None:
    """An intake worker spoke to the family and takes the self-referral on: only now do the
    other services hear of the case (with the consent as it stands). Again: nothing new."""
    referral = _existing(referral)
    if referral.intake_accepted:
        return None
    if not referral.active:
        raise RuleViolation("the referral was withdrawn; a new referral is needed")
    accepted = referral.model_copy(update={"intake_accepted": True, "intake_accepted_at": now})
    return Change(accepted, [received_event(accepted)])


def may_read_contact(role: str, subject: str, referral: Referral) -> bool:
    """The assigned coordinator; before intake, the intake worker (ops) who phones the family."""
    if role == "coordinator":
        return referral.coordinator_id == subject
    return role == "ops" and not referral.intake_accepted


def _announced(referral: Referral, events: list[Any]) -> list[Any]:
    """Events about a case the other services know; none before intake."""
    return events if referral.intake_accepted else []


def submit(existing: Referral | None, new: Referral, *, now: datetime) -> Change[Referral]:
    """A bureau's command: a new case, or for a resubmission the existing case id again."""
    opened = open_case(existing, new)
    referral = existing or new
    reply = _accepted(referral, now, resubmission=existing is not None)
    return Change(referral, [*(opened.events if opened else ()), reply])


def _accepted(referral: Referral, now: datetime, *, resubmission: bool) -> ReferralAccepted:
    assert referral.source_organisation_id and referral.external_reference
    return ReferralAccepted(
        source_organisation_id=referral.source_organisation_id,
        external_reference=referral.external_reference,
        case_id=referral.case_id,
        accepted_at=now,
        resubmission=resubmission,
    )


def give_consent(referral: Referral | None, consent: ConsentGiven, *, now: datetime, role: str) -> Change[Referral] | None:
    referral = _existing(referral)
    if not referral.active:
        raise RuleViolation("the referral was withdrawn; a new referral is needed")
    if problem := consent_problem(referral.request.children, consent):
        raise InvalidInput(problem, field="given_by")
    if referral.consent_state is ConsentState.GIVEN and set(consent.given_by) <= set(referral.consent[-1].given_by):
        return None  # nothing new
    entry = ConsentEntry(state=ConsentState.GIVEN, given_by=consent.given_by, recorded_at=now, recorded_by_role=role)
    updated = referral.model_copy(update={"consent": [*referral.consent, entry]})
    event = ConsentRecorded(case_id=referral.case_id, consent=ConsentState.GIVEN, given_by=consent.given_by, recorded_at=now)
    return Change(updated, _announced(referral, [event]))


def withdraw(referral: Referral | None, reason: WithdrawalReason, *, now: datetime, role: str) -> Change[Referral]:
    """Withdrawal is possible at any time; a family withdrawing consent is recorded as such."""
    referral = _existing(referral)
    if not referral.active:
        raise RuleViolation("the referral was already withdrawn")
    events: list[ConsentRecorded | ReferralWithdrawn] = []
    consent = referral.consent
    if reason is WithdrawalReason.CONSENT_WITHDRAWN:
        consent = [*consent, ConsentEntry(state=ConsentState.WITHDRAWN, recorded_at=now, recorded_by_role=role)]
        events.append(ConsentRecorded(case_id=referral.case_id, consent=ConsentState.WITHDRAWN, recorded_at=now))
    events.append(ReferralWithdrawn(case_id=referral.case_id, withdrawn_at=now, reason=reason))
    updated = referral.model_copy(update={"consent": consent, "withdrawn_at": now, "withdrawal_reason": reason})
    return Change(updated, _announced(referral, events))


def assign_coordinator(referral: Referral | None, coordinator_id: str) -> Change[Referral] | None:
    """Remember the coordinator (scheduling decides): only they may read the contact person."""
    if referral is None or referral.coordinator_id == coordinator_id:
        return None
    return Change(referral.model_copy(update={"coordinator_id": coordinator_id}))


def _existing(referral: Referral | None) -> Referral:
    if referral is None:
        raise NotFound("no such case")
    return referral


def reference_of(referral: Referral) -> str | None:
    """A bureau's (organisation, own reference): one case each."""
    if referral.source_organisation_id and referral.external_reference:
        return f"{referral.source_organisation_id}:{referral.external_reference}"
    return None
