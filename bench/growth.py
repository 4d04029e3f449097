"""Benchmark 3, growth: does a hop slow down as cases pile up?

    python -m bench.growth [--sizes 10000,100000,1000000] [--messages 1000] [--plot growth.png]

For each size, in a fresh namespace: store that many referral cases first (documents as the
referral service writes them, their events long published, each with a bureau reference),
then run the Kring hop of bench.hop with `--messages` new referrals. Prints throughput,
answer latency, the peak memory of this process (which hosts the referral service) and the
resident memory of the local database server per size, how long one look of the outbox
relay for leftover events takes, and the ratios largest/smallest (goal: <= 1.2). The hop
starts after the service's first sweep (a service sweeps once when it starts). With
--plot, draws throughput and p99 latency against stored cases into a PNG.
"""

import argparse
import asyncio
import os
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.hop import Run, commands, kring_hop
from bench.report import print_result
from bench.servers import server_urls
from services.referral import domain
from services.referral.app import create_app
from services.referral.storage import REFERRALS
from shared.logging import configure_logging
from shared.mongo import ensure_indexes
from shared.store import Write, new_document
from tests.support.harness import Harness
from tests.support.localmongo import LocalMongo
from tests.support.referrals import submit_referral

BATCH = 500


def stored_cases(start: int, stop: int, at: datetime) -> list[dict[str, Any]]:
    """Referral documents as the store writes them, their events published long ago."""
    command = domain.SubmitReferral.model_validate(submit_referral("bjz-old"))
    request = domain.ReferralRequest.model_validate(command.model_dump(include=set(domain.ReferralRequest.model_fields)))
    documents = []
    for number in range(start, stop):
        case_id = f"case-{uuid.uuid4().hex[:20]}"
        referral = domain.received(
            case_id, request, now=at, channel="amqp", recorded_by_role="bureau",
            source_organisation_id="bjz-old", external_reference=f"old-{number}",
        )  # fmt: skip
        write = Write(case_id, 1, referral.model_dump(mode="json"), str(uuid.uuid4()), [], domain.reference_of(referral), at)
        documents.append(new_document(write))
    return documents


async def prefill(harness: Harness, size: int) -> None:
    """Store `size` old, published cases; shows progress."""
    service = harness.app(create_app, "referral").state.kring
    await ensure_indexes(service.db, service.indexes)  # as the service does at its first start
    referrals = service.db[REFERRALS]
    at = datetime.now(UTC) - timedelta(days=30)
    started = last = time.monotonic()
    for start in range(0, size, BATCH):
        await referrals.insert_many(stored_cases(start, min(size, start + BATCH), at), ordered=False)
        if time.monotonic() - last > 10:
            print(f"  stored {start + BATCH:,}/{size:,} cases ({time.monotonic() - started:.0f}s)", flush=True)
            last = time.monotonic()


def memory_mib() -> float:
    """Peak resident memory of this process (it hosts the referral service)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_memory_mib(mongodb_url: str) -> float | None:
    """Resident memory of the local database server, if it is one of this machine's."""
    server = LocalMongo.find(mongodb_url)
    if server is None:
        return None
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


async def sweep_seconds(harness: Harness) -> float:
    """How long the relay's look for leftover events takes at this size (an index lookup on
    MongoDB, a scan of the collection on the local mongo-java-server)."""
    store = harness.services[-1].stores[REFERRALS]
    started = time.monotonic()
    await store.outbox_due(store.clock())
    return time.monotonic() - started


async def measure(sizes: list[int], messages: int, prefetch: int) -> dict[int, tuple[Run, float, float | None, float]]:
    rabbitmq_url, mongodb_url = server_urls()
    results = {}
    for size in sizes:
        harness = Harness(rabbitmq_url, mongodb_url)
        await harness.open()
        try:
            print(f"{size:,} cases stored …", flush=True)
            await prefill(harness, size)
            run = await kring_hop(harness, commands(messages), prefetch)
            results[size] = (run, memory_mib(), server_memory_mib(mongodb_url), await sweep_seconds(harness))
            print(f"{size:,} stored: {run.rate:,.1f} msg/s, p99 {run.latencies_ms()['p99']:,.0f} ms", flush=True)
        finally:
            await harness.close()
    return results


def plot(results: dict[int, tuple[Run, float, float | None, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    figure, throughput_axis = plt.subplots(figsize=(7, 4))
    throughput_axis.plot(sizes, [results[s][0].rate for s in sizes], "o-", color="tab:blue", label="throughput")
    throughput_axis.set_xscale("log")
    throughput_axis.set_xlabel("cases already stored")
    throughput_axis.set_ylabel("hop throughput (msg/s)", color="tab:blue")
    throughput_axis.set_ylim(bottom=0)
    latency_axis = throughput_axis.twinx()
    latency_axis.plot(sizes, [results[s][0].latencies_ms()["p99"] for s in sizes], "s--", color="tab:red", label="p99")
    latency_axis.set_ylabel("p99 answer latency (ms)", color="tab:red")
    latency_axis.set_ylim(bottom=0)
    throughput_axis.set_title("Kring referral hop vs stored cases (mongo-java-server / H2, 2 cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated numbers of stored cases")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--prefetch", type=int, default=32)
    parser.add_argument("--plot", help="write a PNG of throughput and p99 against stored cases")
    args = parser.parse_args()
    # The service in this process logs as a deployed one does (the cost counts), but not
    # onto the terminal, where its lines would bury the figures.
    configure_logging("referral", "INFO", stream=open(os.devnull, "w"))  # noqa: SIM115
    sizes = sorted(int(size) for size in args.sizes.split(","))
    results = asyncio.run(measure(sizes, args.messages, args.prefetch))
    small, large = results[sizes[0]][0], results[sizes[-1]][0]

    def _mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:5,.0f} MiB"

    print_result(
        f"growth, {args.messages} new referrals after {', '.join(f'{s:,}' for s in sizes)} stored cases",
        [
            (f"{size:,} stored", f"{run.figure()}   service peak {mib:5,.0f} MiB   database {_mib(server)}   sweep {sweep:6.2f} s")
            for size, (run, mib, server, sweep) in results.items()
        ],
        [
            ("throughput small/large", small.rate / large.rate, "(goal <= 1.2)"),
            ("p99 large/small", large.latencies_ms()["p99"] / small.latencies_ms()["p99"], "(goal <= 1.2)"),
        ],
    )
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
