"""Benchmark 2, the lifecycle: cases from referral to OutcomeRecorded through all four
services, with simulated people.

    python -m bench.lifecycle [--cases 10000] [--seed 7] [--staff 16]

Starts the four services as OS processes (fresh namespace, follow-up due after ~9 s), then
the seeded demo drives every case: bureaus and families refer, coordinators prepare and hold
conferences, families present plans, professionals review, follow-up checks come due. Every
event on the bus is timed as it arrives. Prints cases/s and p50/p95/p99 of each hop, the
time from one event of a case to the next, marked as made by a service on its own, by the
follow-up timer, or waiting for a (simulated) person, and the ratio of service to person
hops at p50.
"""

import argparse
import asyncio
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.report import percentiles, print_result
from bench.servers import server_urls
from services.asyncapi import SERVICES
from tests.support.system import System, load_demo

# Events a service emits by itself in reaction to the event before (no person involved);
# the follow-up comes due by the service's timer; every other hop waits for a person.
SERVICE_HOPS = {
    ("referral.received", "scheduling.coordinator-assigned"),
    ("referral.consent-recorded", "scheduling.coordinator-assigned"),
    ("plans.plan-presented", "plans.plan-accepted"),
    ("plans.plan-presented", "plans.plan-revision-requested"),
    ("followup.completed", "outcome.recorded"),
}
TIMER_HOPS = {("plans.plan-accepted", "followup.due")}


def hops(made: list) -> dict[tuple[str, str], list[float]]:  # type: ignore[type-arg]
    """Milliseconds from each event of a case to the next, by (event, next event)."""
    by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    for scenario in made:
        for (at, kind), (next_at, next_kind) in zip(scenario.events, scenario.events[1:]):
            by_pair[(kind, next_kind)].append((next_at - at) * 1000)
    return by_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--staff", type=int, default=16, help="coordinators, each preparing a few cases at a time")
    args = parser.parse_args()
    rabbitmq_url, mongodb_url = server_urls()
    demo = load_demo()
    with tempfile.TemporaryDirectory(prefix="kring-lifecycle-") as logs:
        system = System(rabbitmq_url, mongodb_url, Path(logs))
        try:
            for service in SERVICES:
                system.start(service)
            started = time.monotonic()
            made = asyncio.run(
                demo.run(args.cases, args.seed, system.urls, rabbitmq_url, timeout=max(240, args.cases * 2), prefix=system.prefix, staff=args.staff)
            )
            elapsed = time.monotonic() - started
        finally:
            system.stop()
            system.remove_everything()
    finished = [s for s in made if not s.outcome.startswith("failed")]
    by_pair = hops(made)
    rows = [("cases", f"{len(finished):,} of {len(made):,} finished their scenario in {elapsed:,.1f} s = {len(finished) / elapsed:,.2f} cases/s")]
    for (kind, next_kind), samples in sorted(by_pair.items(), key=lambda item: -len(item[1])):
        if len(samples) < max(3, len(made) // 20):
            continue  # rare paths: too few samples for percentiles
        cut = percentiles(samples)
        who = "service" if (kind, next_kind) in SERVICE_HOPS else "timer" if (kind, next_kind) in TIMER_HOPS else "person"
        rows.append((f"{kind} -> {next_kind}", f"{who:7s} n={len(samples):6,}  p50 {cut['p50']:8,.0f}  p95 {cut['p95']:8,.0f}  p99 {cut['p99']:8,.0f} ms"))
    service = [v for pair, samples in by_pair.items() if pair in SERVICE_HOPS for v in samples]
    person = [v for pair, samples in by_pair.items() if pair not in SERVICE_HOPS | TIMER_HOPS for v in samples]
    ratios = []
    if service and person:
        ratios.append(("p50 service hop / person hop", percentiles(service)["p50"] / percentiles(person)["p50"], "(< 1: people, not services, set the pace)"))
    print_result(f"lifecycle, {args.cases:,} cases, seed {args.seed}, {args.staff} coordinators, four services as processes", rows, ratios)


if __name__ == "__main__":
    main()
