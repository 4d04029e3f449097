"""Reading the portal's forms into the services' request bodies. A number that is not one, or a
date that is not one, is the person's typing error: InvalidInput, shown as such."""

from datetime import date

from shared.errors import InvalidInput

ROLES = ("parents", "children", "grandparents", "other_relatives", "friends", "neighbours", "teachers", "professionals")
WHO = ("parent", "child", "grandparent", "other_relative", "friend", "neighbour", "teacher", "professional_service")
KINDS = ("network_support", "professional_help")
EXECUTION = ("fully_carried_out", "in_progress_fully", "in_progress_partly", "not_carried_out")
CHILD_OUTCOMES = ("placement_prevented", "placement_reversed", "supervision_order_prevented", "none", "unknown")


def count(form: dict[str, str], name: str) -> int:
    text = form.get(name, "").strip() or "0"
    if not text.isdigit() or int(text) > 1000:
        raise InvalidInput(f"{name} is not a number of people", field=name)
    return int(text)


def counts(form: dict[str, str], prefix: str) -> dict[str, int]:
    """People by role from the fields `<prefix>_<role>`."""
    return {role: count(form, f"{prefix}_{role}") for role in ROLES}


def day(form: dict[str, str], name: str) -> str:
    text = form.get(name, "").strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidInput(f"{name} is not a date", field=name) from None


def scores(form: dict[str, str], name: str) -> list[int]:
    """Marks from 1 to 10, separated by spaces or commas ("7, 8")."""
    marks = form.get(name, "").replace(",", " ").split()
    if not all(mark.isdigit() and 1 <= int(mark) <= 10 for mark in marks):
        raise InvalidInput(f"{name} holds a mark that is not 1 to 10", field=name)
    return [int(mark) for mark in marks]


def plan(form: dict[str, str], requirement_ids: list[str], rows: int) -> dict[str, object]:
    """The plan as the coordinator took it down: the central question and every filled-in agreement row."""
    agreements = []
    for row in range(rows):
        what = form.get(f"what_{row}", "").strip()
        if not what:
            continue  # an empty row is room for another agreement, not an agreement
        who, kind = form.get(f"who_{row}", ""), form.get(f"kind_{row}", "")
        if who not in WHO or kind not in KINDS:
            raise InvalidInput("who or what kind of agreement is missing", field=f"who_{row}")
        agreement: dict[str, object] = {
            "agreement_id": form.get(f"id_{row}") or f"a{row + 1}", "what": what, "who": who, "kind": kind,
            "by_when": day(form, f"by_when_{row}"),
            "answers_requirements": [r for r in requirement_ids if form.get(f"answers_{row}_{r}") == "on"],
        }  # fmt: skip
        if category := form.get(f"category_{row}", "").strip():
            agreement["service_category"] = category
        agreements.append(agreement)
    return {"central_question": form.get("central_question", "").strip(), "agreements": agreements}
