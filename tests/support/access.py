"""Who may call what, written from the domain (DOMAIN.md: who does what), not read from
the code. Used by the access matrix and by the generated-request (schemathesis) run."""

from shared.auth import Role

B, R, C, P, F, O, FAM = Role.BUREAU, Role.REFERRER, Role.COORDINATOR, Role.PROFESSIONAL, Role.FUNDER, Role.OPS, Role.FAMILY
PUBLIC = None  # no token needed: a family referring itself
ON_THE_CASE = {B, R, FAM, C, O}

POLICY: dict[tuple[str, str, str], set[Role] | None] = {
    ("referral", "POST", "/referrals"): {B, R},
    ("referral", "POST", "/self-referrals"): PUBLIC,
    ("referral", "GET", "/self-referral"): PUBLIC,
    ("referral", "POST", "/self-referral"): PUBLIC,
    ("referral", "GET", "/cases/{case_id}"): ON_THE_CASE,
    ("referral", "GET", "/cases/{case_id}/contact"): {C, O},  # ops: before a self-referral's intake only
    ("referral", "POST", "/cases/{case_id}/intake"): {O},
    ("referral", "POST", "/cases/{case_id}/consent"): ON_THE_CASE,
    ("referral", "POST", "/cases/{case_id}/withdrawal"): ON_THE_CASE,
    ("referral", "POST", "/cases/{case_id}/family-access"): {C, O},  # a one-time code, for the case's coordinator
    ("referral", "POST", "/family-access"): PUBLIC,  # the family exchanges its one-time code
    ("referral", "POST", "/cases/{case_id}/erasure"): {O},  # erasure on request (AVG art. 17), by operations
    ("scheduling", "PUT", "/coordinators/{coordinator_id}"): {O},
    ("scheduling", "GET", "/coordinators"): {O},
    ("scheduling", "GET", "/cases"): {C, O},
    ("scheduling", "GET", "/cases/waiting"): {C, O},  # a coordinator: the provinces they work in
    ("scheduling", "GET", "/cases/at-risk"): {O},
    ("scheduling", "GET", "/cases/deadlines"): {C, O},
    ("scheduling", "GET", "/sixty-days"): {O, F},
    ("scheduling", "GET", "/cases/{case_id}"): {C, O},
    ("scheduling", "PUT", "/cases/{case_id}/preparation"): {C},
    ("scheduling", "PUT", "/cases/{case_id}/conference"): {C},
    ("scheduling", "POST", "/cases/{case_id}/held"): {C},
    ("scheduling", "POST", "/cases/{case_id}/first-contact"): {C},
    ("scheduling", "POST", "/cases/{case_id}/cancellation"): {C, O},
    ("scheduling", "POST", "/cases/{case_id}/reassignment"): {O},
    ("plans", "GET", "/cases"): {C, P},
    ("plans", "GET", "/cases/{case_id}/plan"): {C, P, FAM},
    ("plans", "PUT", "/cases/{case_id}/plan"): {C},
    ("plans", "POST", "/cases/{case_id}/requirements"): {P},
    ("plans", "PUT", "/cases/{case_id}/professional"): {O},  # rebinds the responsible professional, with a reason
    ("plans", "POST", "/cases/{case_id}/plan/presentation"): {C},
    ("plans", "POST", "/cases/{case_id}/plan/review"): {P},
    ("plans", "POST", "/cases/{case_id}/second-meeting"): {C},
    ("plans", "POST", "/cases/{case_id}/no-plan"): {C},
    ("followup", "GET", "/cases/{case_id}"): {C, O},
    ("followup", "PUT", "/cases/{case_id}/due"): {C},
    ("followup", "POST", "/cases/{case_id}/check"): {C},
    ("followup", "GET", "/checks/late"): {O},
    ("followup", "PUT", "/intervals/{funder_id}"): {O},
    ("followup", "GET", "/reports"): {O, F},
    ("followup", "GET", "/reports.html"): {O, F},
    ("followup", "POST", "/partner/replay"): {O},
}
# The audit log of every service: operations query it; a family is told who read its case
# where it takes family tokens (referral, plans).
for _service in ("referral", "scheduling", "plans", "followup"):
    POLICY[(_service, "GET", "/audit")] = {O}
    POLICY[(_service, "GET", "/cases/{case_id}/access-log")] = {FAM, O} if _service in ("referral", "plans") else {O}
# Nobody outside the case ever reaches a case: the funder sees aggregates only.
assert all(F not in roles for (_, _, path), roles in POLICY.items() if roles and "{case_id}" in path)


def claims(role: Role) -> dict[str, str]:
    """Token claims a caller of this role carries (a family its case, a bureau its organisation)."""
    if role is Role.FAMILY:
        return {"case_id": "case-matrix"}
    return {"organisation_id": "funder-matrix" if role is F else "bjz-matrix"} if role in (B, R, F) else {}
