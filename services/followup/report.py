"""The funder report from the command line.

    python -m services.followup.report [--funder ID] [--province UT] [--period 2026-Q4] [--html report.html]

Reads what each case counts for the report from the follow-up service's database
(MONGODB_URL), the service standards' targets from KRING_STANDARD_* (shared/standards.py);
prints the figures beside the reference figures, and writes the HTML page if
asked.
"""

import argparse
import asyncio
import sys
from pathlib import Path

from shared.mongo import create_client
from shared.settings import KringSettings
from shared.store import MongoStore

from . import report_html
from .app import SERVICE
from .domain import FollowUp, Report
from .tracking import report_of


async def load(settings: KringSettings, funder: str | None, province: str | None, period: str | None) -> Report:
    client = create_client(settings)
    database = client[settings.database_name]
    try:
        return await report_of(MongoStore(database["followups"], FollowUp, source=f"kring/{SERVICE}"), funder, province, period)
    finally:
        await client.close()


def text(result: Report) -> str:
    lines = [f"Funder report: {' · '.join(filter(None, (result.funder_id, result.province, result.period))) or 'all'}"]
    lines.append(f"  referrals {result.referrals}   conferences with a result {result.plans}   follow-ups {result.followups}")
    lines.append(f"  {'figure':40} {'here':>8} {'reference':>10}")
    for key, value in result.model_dump().items():
        if key in result.reference:
            shown = "-" if value is None else (f"{value:.0%}" if key.startswith("share") else f"{value:.1f}")
            reference = result.reference[key]
            lines.append(f"  {key:40} {shown:>8} {(f'{reference:.0%}' if key.startswith('share') else f'{reference:.1f}'):>10}")
    lines.append(
        f"  follow-up conferences: asked for {result.followup_conferences_requested}   held {result.followup_conferences}"
        f"   plans {result.followup_conference_plans}   without plan {result.followup_conferences_without_plan}"
    )
    lines.append(f"  {'service standard':40} {'target':>8} {'reached':>8} {'missed':>8} {'share':>8}")
    for figure in result.service_standards:
        target = "-" if figure.target_days is None else f"{figure.target_days}d"
        share = "-" if figure.share_reached is None else f"{figure.share_reached:.0%}"
        lines.append(f"  {figure.standard.value:40} {target:>8} {figure.reached:>8} {figure.missed:>8} {share:>8}")
    lines.append(f"  referrals by subject: {result.subjects or 'none yet'}")
    lines.append(f"  outcomes: {result.outcomes or 'none yet'}")
    lines.append(f"  top questions: {', '.join(f'{k} ({v})' for k, v in result.top_concerns) or 'none yet'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--funder")
    parser.add_argument("--province")
    parser.add_argument("--period")
    parser.add_argument("--html", type=Path, help="also write the HTML report here")
    args = parser.parse_args(argv)
    result = asyncio.run(load(KringSettings(service_name=SERVICE), args.funder, args.province, args.period))
    print(text(result))
    if args.html:
        args.html.write_text(report_html.render(result))
        print(f"HTML report: {args.html.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
