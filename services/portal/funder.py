"""The funder's page: the outcomes of the own funder's cases by quarter (followup decides the
slice from the funder's token), each figure beside its reference figure, as a chart and a table,
and a CSV download. Aggregates only: a funder never sees a case."""

import csv
import io
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.auth import Role

from .signin import signed_in
from .web import call, render

router = APIRouter(prefix="/financier")
SHARES = (
    "share_non_professional_referrers", "share_within_60_days", "share_plan_one_meeting", "share_plan_two_meetings",
    "share_no_plan", "share_fully_carried_out", "share_in_progress", "share_not_carried_out",
)  # fmt: skip
COUNTS = ("referrals", "plans", "followups", "followup_conferences_requested", "followup_conferences", "followup_conference_plans")
AVERAGES = ("average_participants", "rating_children", "rating_family", "rating_professionals")


def quarters(today: datetime, count: int = 8) -> list[str]:
    year, quarter = today.year, (today.month - 1) // 3 + 1
    found = []
    for _ in range(count):
        found.append(f"{year}-Q{quarter}")
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return found


async def report(request: Request, period: str | None) -> dict[str, Any]:
    person = signed_in(request, Role.FUNDER)
    params = {"period": period} if period in quarters(datetime.now(UTC)) else {}
    return dict(await call(request, person, "followup", "GET", "/reports", params=params))


@router.get("")
async def report_page(request: Request, periode: str | None = None) -> Response:
    figures = await report(request, periode)
    return render(request, "funder/report.html", report=figures, shares=SHARES, counts=COUNTS, averages=AVERAGES, quarters=quarters(datetime.now(UTC)))


@router.get("/rapport.csv")
async def report_csv(request: Request, periode: str | None = None) -> Response:
    figures = await report(request, periode)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "value", "reference"])
    for name in (*COUNTS, *SHARES, *AVERAGES):
        writer.writerow([name, "" if figures.get(name) is None else figures[name], figures.get("reference", {}).get(name, "")])
    for outcome, number in sorted(figures.get("outcomes", {}).items()):
        writer.writerow([f"outcome:{outcome}", number, ""])
    name = f"kring-{figures.get('funder_id') or 'report'}-{figures.get('period') or 'all'}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={"content-disposition": f'attachment; filename="{name}"'})
