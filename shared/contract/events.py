"""The event catalogue: the single source of truth of what travels between services.

One pydantic model per event. The model is the event's `data`; the CloudEvents
envelope around it lives in `shared.contract.envelope`. Rules:
- changes are additive: a new field is optional (has a default); removing, retyping
  or requiring a field is a breaking change and needs a new `version` of the event
  (tests/unit/test_contract.py compares against the checked-in JSON Schemas);
- readers are tolerant (unknown fields are ignored) so producers can add fields first;
- no personal data: a pseudonymous case id, codes, counts and age bands only
  (tests/unit/test_contract.py checks every field name against the personal-data list, and
  that every string is a closed code, an identifier or a date: tests/unit/test_code_lists.py);
- funders (the partner exchange) never get the case id every service shares: a partner event
  names a case by the funder's own pseudonym (`PartnerEvent`, shared.pseudonym).
"""

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, StringConstraints

from .vocabulary import (
    AgeBand,
    AgreementKind,
    CancellationReason,
    CaseId,
    ChildOutcome,
    ConcernCategory,
    ConsentingParty,
    ConsentState,
    CoordinatorPreferences,
    ErasureReason,
    ExecutionStatus,
    Identifier,
    Pseudonym,
    LanguageCode,
    Ratings,
    ReferrerType,
    Region,
    RoleCounts,
    StatutoryContext,
    Subject,
    Urgency,
    WithdrawalReason,
)

TYPE_PREFIX = "nl.kring."
# The service that produces each event, by the first part of its name (outcome.recorded is
# follow-up's report to funders). Consumers hold a message's broker-validated AMQP user_id
# to `kring-<producer>`, and the broker lets each service publish only its own names.
PRODUCERS = {"referral": "referral", "scheduling": "scheduling", "plans": "plans", "followup": "followup", "outcome": "followup"}


class Channel(StrEnum):
    """Which exchange an event is published on (see shared.messaging.topology)."""

    EVENTS = "events"  # internal, between Kring services
    PARTNER = "partner"  # anonymised, contract-stable, for funders
    REPLIES = "replies"  # answers to bureaus' intake commands, routed by organisation


class Event(BaseModel):
    """Base of every event. Subclasses set `name` (= routing key) and `version`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: ClassVar[str]
    version: ClassVar[int] = 1
    channel: ClassVar[Channel] = Channel.EVENTS

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents `type`, e.g. ``nl.kring.referral.received.v1``."""
        return f"{TYPE_PREFIX}{cls.name}.v{cls.version}"

    @classmethod
    def binding_key(cls) -> str:
        """Routing key pattern a subscriber binds with to receive this event."""
        return cls.name if cls.version == 1 else f"{cls.name}.v{cls.version}"

    @classmethod
    def producer(cls) -> str:
        """The one service that publishes this event, e.g. ``scheduling``."""
        return PRODUCERS[cls.name.split(".", 1)[0]]

    def routing_key(self) -> str:
        return self.binding_key()

    def cloudevents_subject(self) -> str:
        """The envelope's CloudEvents `subject` (not named `subject`: that is a field, whom a
        conference is about, on ReferralReceived and OutcomeRecorded)."""
        raise NotImplementedError


class CaseEvent(Event):
    """An event about one case; the case id is the CloudEvents subject."""

    case_id: CaseId

    def cloudevents_subject(self) -> str:
        return self.case_id


# --- referral ---------------------------------------------------------------------


# A bottom-line requirement as the referring professional wrote it. Text about the family:
# it travels between Kring's own services only (the events exchange), never to funders,
# and logs redact it (shared.privacy.CONFIDENTIAL_FIELDS).
RequirementText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class ReferralReceived(CaseEvent):
    """A referral was accepted as a case. Only what downstream services need; the bottom-line
    requirements' texts are for plans, which checks the family's plan against them."""

    name: ClassVar[str] = "referral.received"

    received_at: AwareDatetime
    referrer_type: ReferrerType
    referrer_organisation_id: Identifier | None = None
    funder_id: Identifier
    region: Region
    language: LanguageCode
    interpreter_needed: bool = False
    coordinator_preferences: CoordinatorPreferences = CoordinatorPreferences()
    concern_categories: list[ConcernCategory] = Field(min_length=1)
    child_age_bands: list[AgeBand] = []
    subject: Subject = Subject.CHILD
    statutory_context: StatutoryContext
    urgency: Urgency = Urgency.NORMAL
    consent: ConsentState
    bottom_line_requirements_set: bool = False
    bottom_line_requirements: list[RequirementText] = Field(
        default=[], max_length=20, description="the texts, set up front by the responsible professional (internal only)"
    )
    responsible_professional_id: Identifier | None = Field(
        default=None, description="the professional with statutory responsibility, as the referrer named them (an id, no name)"
    )


class RejectedField(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    field: str
    problem: str


class IntakeReply(Event):
    """An answer to a bureau's SubmitReferral command, on the replies exchange with routing
    key `<name>.<source organisation>`: a bureau binds `referral.*.<its organisation id>`.
    Its subject and AMQP correlation id are `<organisation>:<external reference>`."""

    channel: ClassVar[Channel] = Channel.REPLIES

    source_organisation_id: Identifier
    external_reference: str = Field(min_length=1, max_length=100)

    @classmethod
    def binding_key(cls) -> str:
        return f"{cls.name}.*"

    def routing_key(self) -> str:
        return f"{self.name}.{self.source_organisation_id}"

    def cloudevents_subject(self) -> str:
        return f"{self.source_organisation_id}:{self.external_reference}"


class ReferralAccepted(IntakeReply):
    """The command was accepted: the case id to use from now on. A resubmission of the same
    (source organisation, external reference) answers the existing case id again."""

    name: ClassVar[str] = "referral.accepted"

    case_id: CaseId
    accepted_at: AwareDatetime
    resubmission: bool = False


class ReferralRejected(IntakeReply):
    """The command could not be accepted. Names every invalid field, never its value."""

    name: ClassVar[str] = "referral.rejected"

    rejected_at: AwareDatetime
    errors: list[RejectedField] = Field(min_length=1)


class ConsentRecorded(CaseEvent):
    name: ClassVar[str] = "referral.consent-recorded"

    consent: ConsentState
    given_by: list[ConsentingParty] = []
    recorded_at: AwareDatetime


class ReferralWithdrawn(CaseEvent):
    name: ClassVar[str] = "referral.withdrawn"

    withdrawn_at: AwareDatetime
    reason: WithdrawalReason


class PersonalDataErased(CaseEvent):
    """The case's personal data is erased: every service erases its own part of it (texts,
    preferences, anything that says something about the family), keeping only codes and
    counts (statistics, funder figures). Referral decides: after the retention period
    following the case's end, or at once on a request by operations. Idempotent."""

    name: ClassVar[str] = "referral.personal-data-erased"

    erased_at: AwareDatetime
    reason: ErasureReason
    announced: bool = Field(
        default=True,
        description="false: the case never reached the other services (a self-referral erased before intake); "
        "true: a service that does not know the case yet waits for its ReferralReceived",
    )


# --- scheduling -------------------------------------------------------------------

# Two counters that must not be confused:
# - `conference_number`: which conference of the case. 1 is the first conference; a
#   three-month check that asks for a new conference (FollowUpCompleted.new_conference_requested)
#   opens conference 2 on the same case: a follow-up conference, with its own coordinator
#   assignment, date, plan, check and OutcomeRecorded.
# - `meeting_number`: which meeting of that one conference. A family that needs more time
#   (SecondMeetingNeeded) meets again in the SAME conference: meeting 2, same plan to finish.
# Every conference starts at meeting 1.
ConferenceNumber = Annotated[
    PositiveInt, Field(description="which conference of the case: 1 the first, 2 or more a follow-up conference (not a second meeting)")
]


class CoordinatorAssigned(CaseEvent):
    name: ClassVar[str] = "scheduling.coordinator-assigned"

    conference_number: ConferenceNumber = 1
    coordinator_id: Identifier
    assigned_at: AwareDatetime
    region: Region
    manual: bool = False
    previous_coordinator_id: Identifier | None = None


class ConferenceScheduled(CaseEvent):
    name: ClassVar[str] = "scheduling.conference-scheduled"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    conference_date: date
    region: Region
    funder_id: Identifier
    coordinator_id: Identifier
    days_since_referral: NonNegativeInt
    invited_by_role: RoleCounts
    interpreter_arranged: bool = False


class ConferenceRescheduled(CaseEvent):
    name: ClassVar[str] = "scheduling.conference-rescheduled"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    previous_date: date
    conference_date: date
    days_since_referral: NonNegativeInt


class ConferenceHeld(CaseEvent):
    name: ClassVar[str] = "scheduling.conference-held"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    held_on: date
    region: Region
    funder_id: Identifier
    days_since_referral: NonNegativeInt
    attended_by_role: RoleCounts
    all_parents_with_responsibility_attended: bool


class ConferenceCancelled(CaseEvent):
    name: ClassVar[str] = "scheduling.conference-cancelled"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    cancelled_at: AwareDatetime
    reason: CancellationReason


class FirstContactMade(CaseEvent):
    """The coordinator reached the family for the first time after being assigned (a
    service standard: time from assignment to first contact). When, and how many days after
    the assignment; never how or with whom."""

    name: ClassVar[str] = "scheduling.first-contact-made"

    conference_number: ConferenceNumber = 1
    coordinator_id: Identifier
    contacted_at: AwareDatetime
    days_since_assignment: NonNegativeInt


# --- scheduling's own process: finding a case a coordinator -------------------------
# Each step changes one aggregate and announces the next, so a crash between steps never
# leaves a place held for nothing: the announcement waits in the outbox. Only scheduling
# consumes these.


class CoordinatorWanted(CaseEvent):
    """The case needs a coordinator: a place in a caseload is to be reserved for it."""

    name: ClassVar[str] = "scheduling.coordinator-wanted"


class PlaceReserved(CaseEvent):
    """A place in the coordinator's caseload is held for the case: the case is assigned next
    (or, if it no longer wants this coordinator, the place is given back)."""

    name: ClassVar[str] = "scheduling.place-reserved"

    coordinator_id: Identifier
    manual: bool = Field(default=False, description="operations moved the case to this coordinator")


class PlaceReleaseRequested(CaseEvent):
    """The case no longer needs its place in this coordinator's caseload."""

    name: ClassVar[str] = "scheduling.place-release-requested"

    coordinator_id: Identifier


class PlaceFreed(Event):
    """The coordinator has room (a place came free, or they registered): the longest
    waiting case they can take is offered the place."""

    name: ClassVar[str] = "scheduling.place-freed"

    coordinator_id: Identifier

    def cloudevents_subject(self) -> str:
        return self.coordinator_id


# --- plans ------------------------------------------------------------------------


class AgreementCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    network_support: NonNegativeInt = 0
    professional_help: NonNegativeInt = 0


class PlanPresented(CaseEvent):
    name: ClassVar[str] = "plans.plan-presented"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    presented_at: AwareDatetime
    agreements: AgreementCounts
    requested_service_categories: list[str] = []
    bottom_line_requirements: NonNegativeInt = 0
    requirements_all_met: bool
    review_required: bool


class PlanAccepted(CaseEvent):
    name: ClassVar[str] = "plans.plan-accepted"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    accepted_at: AwareDatetime
    agreements: AgreementCounts
    reviewed_by_professional: bool
    accepted_with_justification: bool = False


class PlanRevisionRequested(CaseEvent):
    name: ClassVar[str] = "plans.plan-revision-requested"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    requested_at: AwareDatetime
    unmet_requirement_ids: list[Identifier] = Field(min_length=1)


class SecondMeetingNeeded(CaseEvent):
    name: ClassVar[str] = "plans.second-meeting-needed"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1  # the meeting that did not finish the plan
    recorded_at: AwareDatetime
    reason_category: str = Field(max_length=60)


class NoPlanReached(CaseEvent):
    name: ClassVar[str] = "plans.no-plan-reached"

    conference_number: ConferenceNumber = 1
    meeting_number: PositiveInt = 1
    recorded_at: AwareDatetime
    reason_category: str = Field(max_length=60)


# --- follow-up --------------------------------------------------------------------


class FollowUpDue(CaseEvent):
    name: ClassVar[str] = "followup.due"

    conference_number: ConferenceNumber = 1
    due_at: AwareDatetime
    plan_accepted_at: AwareDatetime


class AgreementProgress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    agreement_id: Identifier
    kind: AgreementKind
    status: ExecutionStatus


class FollowUpCompleted(CaseEvent):
    name: ClassVar[str] = "followup.completed"

    conference_number: ConferenceNumber = 1
    completed_at: AwareDatetime
    execution_status: ExecutionStatus
    agreements: list[AgreementProgress] = []
    ratings: Ratings = Ratings()
    child_outcomes: list[ChildOutcome] = []
    new_conference_requested: bool = False


class PartnerEvent(Event):
    """An event for funders, about one case under the funder's own pseudonym of it (never the
    case id: shared.pseudonym). The pseudonym is the CloudEvents subject and correlation id;
    a partner event names no cause (its causing event is internal)."""

    channel: ClassVar[Channel] = Channel.PARTNER

    pseudonym: Pseudonym = Field(
        description="this funder's own pseudonym of the case, the same for every event of it: the funder relates its own "
        "updates of a case, and cannot link them to another funder's or to the case id"
    )

    def cloudevents_subject(self) -> str:
        return self.pseudonym


class OutcomeRecorded(PartnerEvent):
    """What a funder learns about one case, under its own pseudonym of the case. Published on
    the partner exchange only. Version 2: version 1 carried the shared case id (retired, see
    shared.contract.compat.RETIRED and docs/funders.md)."""

    name: ClassVar[str] = "outcome.recorded"
    version: ClassVar[int] = 2

    # Each field with why the funder needs it (docs/funders.md has the same table).
    funder_id: Identifier = Field(description="who pays for the case: routes the event to that funder's queue only")
    region: Region = Field(
        description="province and CBS municipality code: a funder (a municipality, a province) accounts per area"
    )
    period: str = Field(
        pattern=r"^[0-9]{4}-Q[1-4]$", description="the quarter the case was referred in: reports and budgets are per quarter"
    )
    concern_categories: list[ConcernCategory] = Field(
        description="coded concerns only (no description): what the conferences were for, for policy per concern"
    )
    meeting_count: NonNegativeInt = Field(description="1 or 2 conferences: the cost of the case and the share of plans in one meeting")
    execution_status: ExecutionStatus = Field(description="how far the plan was carried out at the three-month check")
    ratings: Ratings = Field(default=Ratings(), description="average ratings (1-10) per group, no single person's score")
    child_outcomes: list[ChildOutcome] = Field(
        default=[], description="coded outcomes (placement prevented, ...): the effect a funder pays for"
    )
    conference_number: ConferenceNumber = Field(
        default=1, description="1 for the first conference, 2+ for a follow-up conference: reports count them apart"
    )
    subject: Subject = Field(
        default=Subject.CHILD, description="whom the conference was about (child, adult, household): a code, never who"
    )

    @classmethod
    def binding_key(cls) -> str:
        return cls.funder_binding_key()

    @classmethod
    def funder_binding_key(cls, funder_id: str = "*", province: str = "*") -> str:
        """``outcome.recorded.<funder>.<province>.<municipality>``; bind ``…F1.NH.#``."""
        return f"{cls.name}.{funder_id}.{province}.#"

    def routing_key(self) -> str:
        municipality = self.region.municipality or "none"
        return f"{self.name}.{self.funder_id}.{self.region.province}.{municipality}"


CATALOGUE: tuple[type[Event], ...] = (
    ReferralReceived,
    ReferralAccepted,
    ReferralRejected,
    ConsentRecorded,
    ReferralWithdrawn,
    PersonalDataErased,
    CoordinatorAssigned,
    ConferenceScheduled,
    ConferenceRescheduled,
    ConferenceHeld,
    ConferenceCancelled,
    FirstContactMade,
    CoordinatorWanted,
    PlaceReserved,
    PlaceReleaseRequested,
    PlaceFreed,
    PlanPresented,
    PlanAccepted,
    PlanRevisionRequested,
    SecondMeetingNeeded,
    NoPlanReached,
    FollowUpDue,
    FollowUpCompleted,
    OutcomeRecorded,
)

# Events only their producer consumes (steps of its own processes): nothing for other
# services, bureaus or funders to bind.
OWN_STEPS: tuple[type[Event], ...] = (CoordinatorWanted, PlaceReserved, PlaceReleaseRequested, PlaceFreed)

BY_TYPE: dict[str, type[Event]] = {event.type_name(): event for event in CATALOGUE}


def event_type(type_name: str) -> type[Event]:
    """The catalogue entry for a CloudEvents type, or KeyError for unknown/unsupported."""
    return BY_TYPE[type_name]


__all__ = [cls.__name__ for cls in CATALOGUE] + [
    "CATALOGUE",
    "OWN_STEPS",
    "PRODUCERS",
    "BY_TYPE",
    "AgreementCounts",
    "AgreementProgress",
    "CaseEvent",
    "Channel",
    "Event",
    "IntakeReply",
    "PartnerEvent",
    "RejectedField",
    "event_type",
]
