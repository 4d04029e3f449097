"""Benchmark 3, growth: does a hop slow down as cases pile up?

    python -m bench.growth [--sizes 10000,100000,1000000] [--messages 1000] [--plot docs/performance-growth.png]

For each size, in a fresh namespace: store that many cases first (referral snapshots
whose events were published long ago, and their bureau references, as a long-running
referral service holds them), then run the Kring hop of bench.hop with `--messages` new referrals. Prints
throughput, answer latency and the memory of this process (which hosts the referral
service) per size, and the ratios largest/smallest (goal: <= 1.2). With --plot, draws
throughput and p99 latency against stored cases into a PNG.
"""

import argparse
import asyncio
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.hop import Run, commands, kring_hop
from bench.report import print_result
from bench.servers import server_urls
from services.referral.app import create_app
from tests.support.harness import Harness

BATCH = 250


def stored_case(number: int, at: datetime) -> tuple[dict, dict]:
    """A referral snapshot as the service writes it (its events long published), its bureau reference."""
    case_id = f"case-{uuid.uuid4().hex[:20]}"
    document_id = f"{case_id}:0000000001"
    event = {"envelope": {"id": str(uuid.uuid4()), "type": "referral.received", "data": {"case_id": case_id, "region": "NH"}}}
    snapshot = {
        "_id": document_id, "key": case_id, "version": 1, "committed_at": at, "applied": [str(uuid.uuid4())],
        "state": {"case_id": case_id, "region": "NH", "language": "nl", "consent": "given", "contact": {"name": "x" * 40}},
        "outbox": {event["envelope"]["id"]: {**event, "order": 0}}, "outbox_count": 1,
    }  # fmt: skip
    return snapshot, {"_id": f"bjz-old:{number}", "case_id": case_id, "claimed_at": at}


async def prefill(harness: Harness, size: int) -> None:
    """Store `size` old, published cases; shows progress."""
    service = harness.app(create_app, "referral").state.kring
    referrals = service.db["referrals"]
    collections = (referrals, referrals.database["bureau_references"])
    at = datetime.now(UTC) - timedelta(days=30)
    started = last = time.monotonic()
    for start in range(0, size, BATCH):
        rows = [stored_case(n, at) for n in range(start, min(size, start + BATCH))]
        for index, collection in enumerate(collections):
            await collection.insert_many([row[index] for row in rows], ordered=False)
        if time.monotonic() - last > 10:
            print(f"  stored {start + len(rows):,}/{size:,} cases ({time.monotonic() - started:.0f}s)", flush=True)
            last = time.monotonic()


def memory_mib() -> float:
    """Peak resident memory of this process (it hosts the referral service)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(sizes: list[int], messages: int, prefetch: int) -> dict[int, tuple[Run, float]]:
    rabbitmq_url, mongodb_url = server_urls()
    results = {}
    for size in sizes:
        harness = Harness(rabbitmq_url, mongodb_url)
        await harness.open()
        try:
            print(f"{size:,} cases stored …", flush=True)
            await prefill(harness, size)
            run = await kring_hop(harness, commands(messages), prefetch)
            results[size] = (run, memory_mib())
            print(f"{size:,} stored: {run.rate:,.1f} msg/s, p99 {run.latencies_ms()['p99']:,.0f} ms", flush=True)
        finally:
            await harness.close()
    return results


def plot(results: dict[int, tuple[Run, float]], path: str) -> None:
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
    throughput_axis.set_title("Kring referral hop vs stored cases (FerretDB v1 / SQLite, 2 cores)")
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
    sizes = sorted(int(size) for size in args.sizes.split(","))
    results = asyncio.run(measure(sizes, args.messages, args.prefetch))
    small, large = results[sizes[0]][0], results[sizes[-1]][0]
    print_result(
        f"growth, {args.messages} new referrals after {', '.join(f'{s:,}' for s in sizes)} stored cases",
        [
            (f"{size:,} stored", f"{run.figure()}   peak memory {mib:5,.0f} MiB")
            for size, (run, mib) in results.items()
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
