"""Shared vocabulary of the contract: identifiers, codes and closed lists.

Everything here travels on the bus, so nothing here may identify a person: ids are
pseudonymous, children appear only as age bands, people only as counts by role.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, StringConstraints

# Safe inside an AMQP routing key (no dots, no wildcards) and inside a URL path.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
CaseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{7,63}$")]
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]  # ISO 639-1/-3
MunicipalityCode = Annotated[str, StringConstraints(pattern=r"^GM[0-9]{4}$")]  # CBS code
# A funder's own pseudonym of a case (shared.pseudonym): HMAC-SHA256 of case id and funder id.
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Province(StrEnum):
    DRENTHE = "DR"
    FLEVOLAND = "FL"
    FRIESLAND = "FR"
    GELDERLAND = "GE"
    GRONINGEN = "GR"
    LIMBURG = "LI"
    NOORD_BRABANT = "NB"
    NOORD_HOLLAND = "NH"
    OVERIJSSEL = "OV"
    UTRECHT = "UT"
    ZEELAND = "ZE"
    ZUID_HOLLAND = "ZH"


class Region(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    province: Province
    municipality: MunicipalityCode | None = None


class ReferrerType(StrEnum):
    YOUTH_CARE_BUREAU = "youth_care_bureau"
    MUNICIPALITY = "municipality"
    SCHOOL = "school"
    GP = "gp"
    OTHER_PROFESSIONAL = "other_professional"
    FAMILY_MEMBER = "family_member"
    SELF = "self"


class StatutoryContext(StrEnum):
    NONE = "none"
    VOLUNTARY_HELP = "voluntary_help"
    SUPERVISION_ORDER = "supervision_order"
    OUT_OF_HOME_PLACEMENT = "out_of_home_placement"


class ConcernCategory(StrEnum):
    HOUSING = "housing"
    INCOME_DEBT = "income_debt"
    PARENTING = "parenting"
    ADDICTION = "addiction"
    HEALTH_DISABILITY = "health_disability"
    DIVORCE = "divorce"
    NUISANCE = "nuisance"
    SAFETY = "safety"
    OTHER = "other"


class AgeBand(StrEnum):
    UNBORN = "unborn"
    AGE_0_3 = "0-3"
    AGE_4_11 = "4-11"
    AGE_12_15 = "12-15"
    AGE_16_17 = "16-17"
    ADULT = "18+"


class Subject(StrEnum):
    """Whom the conference is about."""

    CHILD = "child"
    ADULT = "adult"
    HOUSEHOLD = "household"


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"


class ConsentState(StrEnum):
    PENDING = "pending"
    GIVEN = "given"
    WITHDRAWN = "withdrawn"


class ConsentingParty(StrEnum):
    PARENT_WITH_RESPONSIBILITY = "parent_with_responsibility"
    YOUNG_PERSON = "young_person"
    LEGAL_GUARDIAN = "legal_guardian"


class WithdrawalReason(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"
    FAMILY_DECLINED = "family_declined"
    REFERRER_WITHDREW = "referrer_withdrew"
    OTHER = "other"
    PERSONAL_DATA_ERASED = "personal_data_erased"  # ops erased the case on request, mid-case


class ErasureReason(StrEnum):
    """Why a case's personal data was erased (PersonalDataErased)."""

    RETENTION = "retention"  # the retention period after the case ended has passed
    REQUEST = "request"  # operations erased it on request (the request's own code stays in referral)


class ErasureRequestReason(StrEnum):
    """The ground of an erasure on request, kept with the case (a code, never a value)."""

    DATA_SUBJECT_REQUEST = "data_subject_request"  # AVG art. 17: the family asked
    CONSENT_WITHDRAWN = "consent_withdrawn"  # AVG art. 17(1)(b)
    UNLAWFUL_PROCESSING = "unlawful_processing"  # AVG art. 17(1)(d), e.g. a referral made in error
    LEGAL_OBLIGATION = "legal_obligation"  # AVG art. 17(1)(e), e.g. a court order
    DUPLICATE = "duplicate"  # the same family referred twice; the other case goes on


class CancellationReason(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"
    FAMILY_DECLINED = "family_declined"
    NO_SHOW = "no_show"
    OTHER = "other"


class AgreementKind(StrEnum):
    NETWORK_SUPPORT = "network_support"
    PROFESSIONAL_HELP = "professional_help"


class ExecutionStatus(StrEnum):
    FULLY_CARRIED_OUT = "fully_carried_out"
    IN_PROGRESS_FULLY = "in_progress_fully"
    IN_PROGRESS_PARTLY = "in_progress_partly"
    NOT_CARRIED_OUT = "not_carried_out"


class ChildOutcome(StrEnum):
    PLACEMENT_PREVENTED = "placement_prevented"
    PLACEMENT_REVERSED = "placement_reversed"
    SUPERVISION_ORDER_PREVENTED = "supervision_order_prevented"
    NONE = "none"
    UNKNOWN = "unknown"


class Gender(StrEnum):
    """A coordinator's gender as they state it, and the one a family may ask for."""

    FEMALE = "female"
    MALE = "male"
    NON_BINARY = "non_binary"


class CulturalBackground(StrEnum):
    """The cultural background a family may ask its coordinator to share (and a coordinator
    may state): broad communities only, a closed list so that nothing a family wrote travels.
    Anything else is `other` (the family can say more to the coordinator in person)."""

    DUTCH = "dutch"
    MOROCCAN = "moroccan"
    TURKISH = "turkish"
    SURINAMESE = "surinamese"
    CARIBBEAN_DUTCH = "caribbean_dutch"  # Aruba, Curaçao, Sint Maarten, Caribbean Netherlands
    MOLUCCAN = "moluccan"
    INDONESIAN = "indonesian"
    CAPE_VERDEAN = "cape_verdean"
    POLISH = "polish"
    EASTERN_EUROPEAN = "eastern_european"
    SYRIAN = "syrian"
    ERITREAN = "eritrean"
    SOMALI = "somali"
    AFGHAN = "afghan"
    CHINESE = "chinese"
    GHANAIAN = "ghanaian"
    ROMA_SINTI = "roma_sinti"
    OTHER = "other"


class CoordinatorPreferences(BaseModel):
    """What a family asked for in its coordinator; every part is optional and coded."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    language: LanguageCode | None = None
    gender: Gender | None = None
    culture: CulturalBackground | None = None


class RoleCounts(BaseModel):
    """People by their role in the conference: counts only, never who."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    parents: NonNegativeInt = 0
    children: NonNegativeInt = 0
    grandparents: NonNegativeInt = 0
    other_relatives: NonNegativeInt = 0
    friends: NonNegativeInt = 0
    neighbours: NonNegativeInt = 0
    teachers: NonNegativeInt = 0
    professionals: NonNegativeInt = 0
    experts: NonNegativeInt = 0
    others: NonNegativeInt = 0

    @property
    def total(self) -> int:
        return sum(self.model_dump().values())


Rating = Annotated[float, Field(ge=1, le=10)]


class Ratings(BaseModel):
    """Average plan ratings (1-10) by group; a group that gave none is absent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    children: Rating | None = None
    family: Rating | None = None
    professionals: Rating | None = None
