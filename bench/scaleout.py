"""Benchmark 5, scale-out: one vs two replicas of the referral service (the hop's service).

    python -m bench.scaleout [--messages 2000]

Each replica is its own OS process (`python -m services.referral`), all on the same broker
queue and database; the same burst of bureau referrals goes to one replica, then (fresh
namespace) to two. Prints msg/s of both and the ratio two/one. On a 2-core machine that
also runs RabbitMQ and the database server this is about correctness and contention, not
speed: the replicas compete for the same cores.
"""

import argparse
import asyncio
import tempfile
from pathlib import Path

import aio_pika

from bench.hop import BUREAU, Run, collect, commands, publish_all
from bench.report import print_result
from bench.servers import server_urls
from shared.messaging.parties import bureau_user, development_url
from tests.support.system import System


async def drive(system: System, messages: int) -> Run:
    connection = await aio_pika.connect_robust(system.rabbitmq_url)
    connections = [connection]
    try:
        channel = await connection.channel(publisher_confirms=True)
        answers = await channel.declare_queue(exclusive=True)
        await answers.bind(f"{system.prefix}.replies", routing_key="referral.#")
        bureau = await aio_pika.connect_robust(development_url(system.rabbitmq_url, bureau_user(BUREAU)))
        connections.append(bureau)
        intake = await (await bureau.channel(publisher_confirms=True)).get_exchange(f"{system.prefix}.intake", ensure=False)
        run = Run()
        collecting = asyncio.create_task(collect(answers, run, messages, timeout=3600))
        await publish_all(intake, "referral.submit", commands(messages), run, user_id=bureau_user(BUREAU))
        await collecting
        return run
    finally:
        for opened in reversed(connections):
            await opened.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    rabbitmq_url, mongodb_url = server_urls()
    results: dict[int, Run] = {}
    for replicas in (1, 2):
        with tempfile.TemporaryDirectory(prefix="kring-scaleout-") as logs:
            system = System(rabbitmq_url, mongodb_url, Path(logs))
            system.environment["KRING_PREFETCH"] = "32"
            try:
                for replica in range(replicas):
                    system.start("referral", replica)
                print(f"{replicas} replica(s): {args.messages} messages …", flush=True)
                results[replicas] = asyncio.run(drive(system, args.messages))
                print(f"{replicas} replica(s): {results[replicas].rate:,.1f} msg/s", flush=True)
            finally:
                system.stop()
                system.remove_everything()
    print_result(
        f"scale-out, referral service, {args.messages} messages, 2 cores shared with RabbitMQ and the database server",
        [(f"{replicas} replica(s)", run.figure()) for replicas, run in results.items()],
        [("two replicas/one", results[2].rate / results[1].rate, "")],
    )


if __name__ == "__main__":
    main()
