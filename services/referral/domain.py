"""The referral: what comes in, who consented, and what the other services may know of it.

Pure rules, no I/O. A referral holds the family's personal data (contact person, free
text); it never leaves this service except to the assigned coordinator over HTTP. The
events built here carry only codes, bands and counts.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from shared.contract.events import (
    ConsentRecorded,
    PersonalDataErased,
    ReferralAccepted,
    ReferralReceived,
    ReferralRejected,
    ReferralWithdrawn,
    RejectedField,
)
from shared.contract.vocabulary import (
    AgeBand,
    CaseId,
    ConcernCategory,
    ConsentingParty,
    ConsentState,
    CoordinatorPreferences,
    ErasureReason,
    ErasureRequestReason,
    Identifier,
    LanguageCode,
    ReferrerType,
    Region,
    StatutoryContext,
    Subject,
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
    subject: Subject = Field(
        default=Subject.CHILD,
        description="whom the conference is about: a child (list at least one), an adult, or a whole household",
    )
    children: list[Child] = Field(
        default=[], max_length=20, validate_default=True,
        description="the children concerned; at least one when the subject is a child",
    )  # fmt: skip
    concern_categories: list[ConcernCategory] = Field(min_length=1, max_length=9)
    description: Annotated[Text, StringConstraints(max_length=5000)] = Field(
        description="the reason for the referral in the referrer's words (personal data)"
    )
    urgency: Urgency = Urgency.NORMAL
    consent: ConsentGiven | None = Field(
        default=None, description="who consented already; absent = consent still to be asked"
    )

    @field_validator("children")
    @classmethod
    def _a_child_subject_names_a_child(cls, children: list[Child], info: ValidationInfo) -> list[Child]:
        if info.data.get("subject", Subject.CHILD) is Subject.CHILD and not children:
            raise ValueError("list at least one child, or give subject adult or household")
        return children

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
    responsible_professional_id: Identifier | None = Field(
        default=None, validate_default=True,
        description="the professional with statutory responsibility (an identifier, no name): required with a "
        "supervision order or out-of-home placement, refused otherwise; only they set requirements and review the plan",
    )  # fmt: skip

    @field_validator("responsible_professional_id")
    @classmethod
    def _only_statutory_cases_have_a_professional(cls, professional: str | None, info: ValidationInfo) -> str | None:
        context = info.data.get("statutory_context")
        if professional is not None and context is not None and context not in STATUTORY:
            raise ValueError("only a supervision order or out-of-home placement has a responsible professional")
        return professional

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
        if self.statutory_context in STATUTORY and not self.children:
            raise ValueError("a supervision order or out-of-home placement concerns a child: list the children")
        return self


class NewReferralRequest(ReferralRequest):
    """A referral as a bureau or referrer sends it now: a statutory one names its responsible
    professional. (Referrals kept from before that rule still load as ReferralRequest; plans
    refuses their requirements and reviews until operations binds a professional.)"""

    @field_validator("responsible_professional_id")
    @classmethod
    def _statutory_cases_name_their_professional(cls, professional: str | None, info: ValidationInfo) -> str | None:
        if professional is None and info.data.get("statutory_context") in STATUTORY:
            raise ValueError("a supervision order or out-of-home placement names its responsible professional")
        return professional


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


class SubmitReferral(NewReferralRequest):
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


class Lifecycle(StrEnum):
    OPEN = "open"
    ENDED = "ended"  # withdrawn, no plan reached, or the follow-up done: the retention period runs
    ERASED = "erased"  # the personal data is gone; codes and counts stay


Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,63}$")]


class Erasure(BaseModel):
    """Why and when a case's personal data was erased: codes, never a value."""

    erased_at: AwareDatetime
    reason: ErasureReason
    request_reason: ErasureRequestReason | None = None
    reference: Reference | None = Field(default=None, description="e.g. the number of the request in the privacy desk's system")
    by_role: str


class Referral(BaseModel):
    case_id: CaseId
    received_at: AwareDatetime
    channel: str = Field(description="amqp, http or form")
    source_organisation_id: Identifier | None = None
    external_reference: str | None = None
    request: ReferralRequest | None = Field(description="the family's data as referred; None once erased")
    referrer_organisation_id: Identifier | None = Field(default=None, description="kept after erasure: who may see the case")
    lifecycle: Lifecycle = Lifecycle.OPEN
    ended_at: AwareDatetime | None = None
    erasure: Erasure | None = None
    consent: list[ConsentEntry]
    withdrawn_at: AwareDatetime | None = None
    withdrawal_reason: WithdrawalReason | None = None
    coordinator_id: Identifier | None = None
    intake_accepted: bool = Field(
        default=True,
        description="false for an anonymous self-referral until an intake worker has spoken to the family",
    )
    intake_accepted_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ended_by_an_earlier_withdrawal(self) -> Self:
        """A case withdrawn before cases had a lifecycle ended then: its retention runs from it."""
        if self.lifecycle is Lifecycle.OPEN and self.withdrawn_at is not None:
            self.lifecycle, self.ended_at = Lifecycle.ENDED, self.withdrawn_at
        return self

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
        referrer_organisation_id=request.referrer.organisation_id,
        consent=[consent],
        intake_accepted=not anonymous,
    )


def received_event(referral: Referral) -> ReferralReceived:
    """What the other services need to know of a new referral, and nothing more."""
    request = kept(referral)
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
        subject=request.subject,
        statutory_context=request.statutory_context,
        urgency=request.urgency,
        consent=referral.consent_state,
        bottom_line_requirements_set=bool(request.bottom_line_requirements),
        bottom_line_requirements=request.bottom_line_requirements,
        responsible_professional_id=request.responsible_professional_id,
    )


RESUBMISSION_CHANGED = (
    "differs from the referral already accepted under this external_reference; a resubmission must repeat it "
    "exactly and nothing was changed: tell the case's coordinator, or withdraw the case and refer again "
    "under a new external_reference"
)


def changed_fields(before: ReferralRequest, after: ReferralRequest) -> list[str]:
    """The fields (dotted paths) in which a resubmission differs from the referral accepted
    under its reference: names only, never the values."""

    def paths(old: Any, new: Any, at: str) -> list[str]:
        if isinstance(old, dict) and isinstance(new, dict):
            keys = sorted(old.keys() | new.keys())
            return [path for key in keys for path in paths(old.get(key), new.get(key), f"{at}.{key}" if at else key)]
        return [] if old == new else [at]

    return paths(before.model_dump(mode="json"), after.model_dump(mode="json"), "")


def open_case(existing: Referral | None, new: Referral) -> Change[Referral] | None:
    """A new case; None if it exists already and the resubmission repeats it (it changes
    nothing). A resubmission that differs is refused, naming the changed fields: neither
    dropped unsaid nor applied unseen. An anonymous self-referral is not announced yet:
    anyone can send one, and the other services would give it a coordinator's place
    (scheduling reserves one on ReferralReceived)."""
    if existing is not None:
        if changed := changed_fields(existing.request, new.request):
            raise RuleViolation(f"{', '.join(changed)}: {RESUBMISSION_CHANGED}")
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
    """A bureau's command: a new case, or for an identical resubmission the existing case id
    again. A resubmission that differs is answered ReferralRejected naming the changed
    fields (never their values); the case stays as it was accepted."""
    if existing is not None and (changed := changed_fields(existing.request, new.request)):
        return Change(existing, [_rejected(existing, changed, now)])
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


def _rejected(referral: Referral, changed: list[str], now: datetime) -> ReferralRejected:
    assert referral.source_organisation_id and referral.external_reference
    return ReferralRejected(
        source_organisation_id=referral.source_organisation_id,
        external_reference=referral.external_reference,
        rejected_at=now,
        errors=[RejectedField(field=name, problem=RESUBMISSION_CHANGED) for name in changed],
    )


def give_consent(referral: Referral | None, consent: ConsentGiven, *, now: datetime, role: str) -> Change[Referral] | None:
    referral = _existing(referral)
    if not referral.active:
        raise RuleViolation("the referral was withdrawn; a new referral is needed")
    if problem := consent_problem(kept(referral).children, consent):
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
    updated = referral.model_copy(update={"consent": consent, "withdrawn_at": now, "withdrawal_reason": reason, **_end(referral, now)})
    return Change(updated, _announced(referral, events))


# --- the end of a case, retention and erasure --------------------------------------------

ERASED = "the case's personal data was erased"


def _end(referral: Referral, now: datetime) -> dict[str, Any]:
    """The case ends (once: a later end does not restart the retention period)."""
    if referral.lifecycle is not Lifecycle.OPEN:
        return {}
    return {"lifecycle": Lifecycle.ENDED, "ended_at": now}


def case_ended(referral: Referral | None, at: datetime) -> Change[Referral] | None:
    """No plan was reached, or the follow-up was done: the case is over; the retention
    period runs from `at`. Nothing changes for a case that ended already (or is unknown)."""
    if referral is None or referral.lifecycle is not Lifecycle.OPEN:
        return None
    return Change(referral.model_copy(update=_end(referral, at)))


def past_retention(referral: Referral, now: datetime, period: timedelta) -> bool:
    return referral.lifecycle is Lifecycle.ENDED and referral.ended_at is not None and referral.ended_at + period <= now


def erase(
    referral: Referral | None,
    *,
    now: datetime,
    reason: ErasureReason,
    role: str,
    request_reason: ErasureRequestReason | None = None,
    reference: str | None = None,
) -> Change[Referral] | None:
    """Erase the family's personal data: the request (contact, children, description,
    preferences, bottom-line texts) and the bureau's own reference go; codes, dates and
    the consent history stay. A case still running is closed first (ReferralWithdrawn,
    reason personal_data_erased: scheduling frees the coordinator's place). Every service
    erases its own part on PersonalDataErased. Erasing twice changes nothing."""
    referral = _found(referral)
    if referral.lifecycle is Lifecycle.ERASED:
        return None
    events: list[Any] = []
    update: dict[str, Any] = {}
    if referral.active and referral.lifecycle is Lifecycle.OPEN:
        reason_code = WithdrawalReason.PERSONAL_DATA_ERASED
        events += _announced(referral, [ReferralWithdrawn(case_id=referral.case_id, withdrawn_at=now, reason=reason_code)])
        update = {"withdrawn_at": now, "withdrawal_reason": reason_code}
    erasure = Erasure(erased_at=now, reason=reason, request_reason=request_reason, reference=reference, by_role=role)
    events.append(PersonalDataErased(case_id=referral.case_id, erased_at=now, reason=reason, announced=referral.intake_accepted))
    erased = referral.model_copy(
        update={
            **update, "request": None, "external_reference": None, "lifecycle": Lifecycle.ERASED,
            "ended_at": referral.ended_at or now, "erasure": erasure,
        }
    )  # fmt: skip
    return Change(erased, events)


def kept(referral: Referral) -> ReferralRequest:
    """The family's data, unless erased (then the case can only be looked up by operations)."""
    if referral.request is None:
        raise NotFound(ERASED)
    return referral.request


def assign_coordinator(referral: Referral | None, coordinator_id: str) -> Change[Referral] | None:
    """Remember the coordinator (scheduling decides): only they may read the contact person."""
    if referral is None or referral.coordinator_id == coordinator_id:
        return None
    return Change(referral.model_copy(update={"coordinator_id": coordinator_id}))


def _found(referral: Referral | None) -> Referral:
    if referral is None:
        raise NotFound("no such case")
    return referral


def _existing(referral: Referral | None) -> Referral:
    """A case whose data is still there: nothing more is done with an erased one."""
    referral = _found(referral)
    if referral.lifecycle is Lifecycle.ERASED:
        raise RuleViolation(ERASED)
    return referral


def reference_of(referral: Referral) -> str | None:
    """A bureau's (organisation, own reference): one case each."""
    if referral.source_organisation_id and referral.external_reference:
        return f"{referral.source_organisation_id}:{referral.external_reference}"
    return None
