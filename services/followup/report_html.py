"""The funder report as a readable HTML page: tables and simple bar charts (inline SVG,
no scripts), every figure next to the published reference figure."""

from html import escape

from .domain import Report

SHARES = (
    ("share_within_60_days", "Held within 60 days of referral"),
    ("share_non_professional_referrers", "Referred by family or citizens"),
    ("share_plan_one_meeting", "Plan made in one meeting"),
    ("share_plan_two_meetings", "Plan needed a second meeting"),
    ("share_no_plan", "No plan reached"),
    ("share_fully_carried_out", "Plan fully carried out at follow-up"),
    ("share_in_progress", "Plan (partly) in progress at follow-up"),
    ("share_not_carried_out", "Plan not carried out"),
)
STANDARDS = {
    "first_contact": "First contact with the family after assignment",
    "conference": "First conference held after referral",
    "followup_check": "Three-month check recorded after it came due",
}
SUBJECTS = {"child": "a child", "adult": "an adult", "household": "a whole household"}
RATINGS = (("rating_children", "Children"), ("rating_family", "Family members"), ("rating_professionals", "Professionals"))


def _bars(rows: list[tuple[str, float | None, float]], maximum: float, unit: str) -> str:
    height, width, label_width = 26, 300, 290
    parts = [f'<svg role="img" aria-label="chart" width="{label_width + width + 90}" height="{len(rows) * height * 2 + 10}">']
    for n, (label, value, reference) in enumerate(rows):
        y = n * height * 2 + 5
        parts.append(f'<text x="0" y="{y + 15}" font-size="13">{escape(label)}</text>')
        for offset, (amount, colour, name) in enumerate(((value, "#1f6fb2", "here"), (reference, "#b0b0b0", "reference"))):
            if amount is None:
                parts.append(f'<text x="{label_width}" y="{y + 15 + offset * height}" font-size="12">{name}: no data</text>')
                continue
            bar = max(1, int(width * amount / maximum))
            shown = f"{amount:.0%}" if unit == "%" else f"{amount:.1f}"
            parts.append(f'<rect x="{label_width}" y="{y + offset * height}" width="{bar}" height="{height - 6}" fill="{colour}"/>')
            parts.append(f'<text x="{label_width + bar + 5}" y="{y + 15 + offset * height}" font-size="12">{name} {shown}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(report: Report) -> str:
    scope = " · ".join(filter(None, (report.funder_id, report.province, report.period))) or "all funders"
    shares = [(label, getattr(report, key), report.reference[key]) for key, label in SHARES]
    ratings = [(label, getattr(report, key), report.reference[key]) for key, label in RATINGS]
    outcomes = "".join(f"<tr><td>{escape(k.replace('_', ' '))}</td><td>{v}</td></tr>" for k, v in report.outcomes.items())
    concerns = "".join(f"<li>{escape(k.replace('_', ' '))} ({v})</li>" for k, v in report.top_concerns)
    standards = "".join(
        f"<tr><td>{escape(STANDARDS[f.standard.value])}</td><td>{'per funder' if f.target_days is None else f.target_days}</td>"
        f"<td>{f.reached}</td><td>{f.missed}</td><td>{'no data' if f.share_reached is None else f'{f.share_reached:.0%}'}</td></tr>"
        for f in report.service_standards
    )
    subjects = "".join(f"<tr><td>{escape(SUBJECTS.get(k, k))}</td><td>{v}</td></tr>" for k, v in report.subjects.items())
    participants = "no data" if report.average_participants is None else f"{report.average_participants:.1f}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kring funder report — {escape(scope)}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}}</style></head>
<body><h1>Family group conferences: {escape(scope)}</h1>
<p>{report.referrals} referrals · {report.plans} conferences with a result · {report.followups} follow-ups.
Blue: these cases; grey: the published reference figures. No personal data.</p>
<h2>Shares</h2>{_bars(shares, 1.0, "%")}
<h2>Average plan ratings (1–10)</h2>{_bars(ratings, 10.0, "")}
<h2>Participants</h2><p>On average {participants} people took part (reference: {report.reference["average_participants"]}).</p>
<h2>Outcomes for children</h2><table><tr><th>outcome</th><th>children</th></tr>{outcomes or '<tr><td colspan="2">none recorded yet</td></tr>'}</table>
<h2>Service standards</h2><table><tr><th>standard</th><th>target (days)</th><th>reached</th><th>missed</th><th>share reached</th></tr>{standards}</table>
<h2>Follow-up conferences</h2><p>{report.followup_conferences_requested} three-month checks asked for a new conference;
{report.followup_conferences} follow-up conferences held, {report.followup_conference_plans} with an accepted plan,
{report.followup_conferences_without_plan} without a plan. They are not counted among the first conferences above.</p>
<h2>Whom the conferences are about</h2><table><tr><th>subject</th><th>referrals</th></tr>{subjects or '<tr><td colspan="2">none yet</td></tr>'}</table>
<h2>Most frequent questions</h2><ol>{concerns or "<li>none yet</li>"}</ol>
</body></html>
"""
