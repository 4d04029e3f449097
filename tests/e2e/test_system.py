"""End to end: the four services as separate OS processes on the real servers, 50 cases
from referral to OutcomeRecorded (with withdrawals, revisions, second meetings and cases
without a plan), every expected event exactly once per case."""

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.asyncapi import SERVICES
from services.ops import outbox_backlog, queue_states
from shared.settings import KringSettings
from tests.support.cluster import RabbitCluster
from tests.support.faults import restart_rabbitmq, unavailable
from tests.support.localmongo import LocalMongo
from tests.support.scan import values_found_in
from tests.support.system import System, load_demo
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
CASES = int(os.environ.get("KRING_E2E_CASES", "50"))
FAULT_CASES = int(os.environ.get("KRING_FAULT_CASES", "30"))
FAULT_STAFF = int(os.environ.get("KRING_FAULT_STAFF", "4"))  # coordinators: how many cases are prepared at once
# How long one step of a case may wait (three times that for a coordinator or the follow-up);
# every fault is over within seconds, so a case still waiting after this is stuck.
STEP_TIMEOUT = 60


def check_every_case(made: list, cases: int) -> None:  # type: ignore[type-arg]
    failed = [(s.number, s.case_id, s.outcome) for s in made if s.outcome.startswith("failed")]
    assert failed == []
    kinds: Counter[str] = Counter()
    for s in made:
        seen = Counter(kind for _, kind in s.events)
        optional = {kind: seen.pop(kind) for kind in s.optional if kind in seen}
        assert seen == Counter(s.expected), f"case {s.number} ({s.outcome}): {sorted(seen.elements())}"
        assert set(optional.values()) <= {1} and len(optional) in (0, len(s.optional)), f"case {s.number}: {optional}"
        kinds.update(["withdrawn"] * s.withdraws + ["revision"] * s.revision + ["second meeting"] * s.second_meeting + ["no plan"] * s.no_plan)
    assert all(kinds[k] >= 1 for k in ("withdrawn", "revision", "second meeting", "no plan")), kinds
    assert sum(s.outcome == "outcome recorded" for s in made) >= cases * 0.6


def assert_no_case_id(made: list, partner_messages: list[bytes]) -> set[str]:  # type: ignore[type-arg]
    """Issue 23: funders get their own pseudonym of a case, never the case id every service
    shares: not in a partner message's body, CloudEvents headers, correlation id or message id."""
    case_ids = {s.case_id for s in made if s.case_id}
    outcomes = sum(s.outcome == "outcome recorded" for s in made)
    assert case_ids and len(partner_messages) >= outcomes > 0, (len(case_ids), len(partner_messages), outcomes)
    linked = values_found_in(case_ids, [m.decode() for m in partner_messages])
    assert linked == set(), f"case ids in partner messages: {len(linked)} of {len(case_ids)}"
    return case_ids


async def drained(settings: KringSettings) -> bool:
    """Every outbox and every queue of the namespace empty."""
    import asyncio

    await asyncio.sleep(0.5)
    backlog = await outbox_backlog(settings)
    return bool(backlog) and set(backlog.values()) == {0} and all(s.messages == 0 for s in await queue_states(settings))


def test_cases_travel_from_referral_to_outcome_through_four_processes(system: System, rabbitmq_url: str) -> None:
    import asyncio

    demo = load_demo()
    partner_messages: list[bytes] = []
    made = asyncio.run(
        demo.run(CASES, 2026, system.urls, rabbitmq_url, timeout=240, quiet=True, prefix=system.prefix, partner_messages=partner_messages)
    )
    check_every_case(made, CASES)
    # what operations saw meanwhile: every process counted the messages it handled, none dead-lettered
    import httpx

    for service, url in system.metrics_urls.items():
        lines = httpx.get(url, timeout=10).text.splitlines()
        acked = [float(line.split()[-1]) for line in lines if line.startswith("faststream_received_processed_messages_total") and 'status="acked"' in line]
        assert sum(acked) >= CASES // 2, (service, acked)
        assert [line for line in lines if line.startswith("kring_dlq_messages")] and all(
            line.endswith(" 0.0") for line in lines if line.startswith("kring_dlq_messages")
        ), service
    assert_no_case_id(made, partner_messages)


def test_nothing_is_lost_or_doubled_when_every_service_is_killed_mid_run(system: System, rabbitmq_url: str) -> None:
    """The quick fault run: each service is killed with SIGKILL while cases flow, and
    restarted; every case still ends where it should, every event applied once in effect."""
    import asyncio

    demo = load_demo()
    stats: dict[str, int] = {}
    kills = []
    partner_messages: list[bytes] = []

    async def chaos() -> None:
        for service in ("scheduling", "plans", "referral", "followup"):
            await asyncio.sleep(3)
            system.kill(service)
            kills.append(service)
            await asyncio.sleep(1)
            await asyncio.to_thread(system.start, service)

    async def run() -> list:  # type: ignore[type-arg]
        faults = asyncio.create_task(chaos())
        made = await demo.run(
            30, 99, system.urls, rabbitmq_url, timeout=STEP_TIMEOUT, quiet=True, prefix=system.prefix, stats=stats,
            partner_messages=partner_messages,
        )  # fmt: skip
        await faults
        return made

    made = asyncio.run(run())
    assert kills == ["scheduling", "plans", "referral", "followup"]
    check_every_case(made, 30)
    case_ids = assert_no_case_id(made, partner_messages)
    print(f"\nfault run: 30 cases, {len(kills)} kill -9 + restart, lost 0, duplicated effects 0, "
          f"requests refused while a service was down {stats['refused']}, events republished after a kill "
          f"{stats['republished']}, requests that had taken effect before a kill {stats['retried_after_crash']}; "
          f"{len(case_ids)} case ids searched in {len(partner_messages)} partner messages: 0 found")
    assert stats["refused"] > 0, "the kills hit live traffic"


@pytest.mark.timeout(max(600, FAULT_CASES * 8))  # a backstop: a stuck case fails first, by name, after STEP_TIMEOUT
def test_nothing_is_lost_or_doubled_across_broker_and_database_restarts_with_two_replicas(
    system: System, rabbitmq_url: str, mongodb_url: str
) -> None:
    """The quick fault run, part two: a second replica of every service, then while cases
    flow the RabbitMQ node is restarted, the local MongoDB-protocol server is stopped (every
    other time with SIGKILL) and started, and a replica
    of each service is killed with SIGKILL and restarted, in cycles (one per 30 cases, stopping when the cases are
    done; KRING_FAULT_CASES, default 30). Afterwards every case is where it should be,
    every event applied once in effect, no outbox entry and no dead letter left, and no
    personal value in any log line or partner message."""
    import asyncio

    if reason := unavailable(mongodb_url):
        pytest.skip(reason)
    system.environment["KRING_LOG_LEVEL"] = "DEBUG"  # the second replicas log everything: scanned below
    for service in SERVICES:
        system.start(service, replica=1)
    demo = load_demo()
    stats: dict[str, int] = {}
    faults: list[str] = []
    partner_messages: list[bytes] = []

    async def chaos(done: asyncio.Event) -> float:
        cycles = max(1, FAULT_CASES // 30)
        while not faults or (not done.is_set() and len(faults) < 6 * cycles):
            await asyncio.sleep(4)
            down = await asyncio.to_thread(restart_rabbitmq)
            faults.append(f"RabbitMQ restarted ({down:.0f} s down)")
            await asyncio.sleep(4)
            database = LocalMongo.find(mongodb_url)
            assert database is not None
            stopped = time.monotonic()
            if sum(fault.startswith("database") for fault in faults) % 2:  # every other time without warning
                await asyncio.to_thread(database.kill)
                how = "database killed ("
            else:
                exiting, killed = await asyncio.to_thread(database.stop)
                how = f"database stopped ({exiting:.0f} s to exit{' and killed' if killed else ''}, "
            await asyncio.sleep(3)
            await asyncio.to_thread(database.start)
            faults.append(f"{how}{time.monotonic() - stopped:.0f} s down)")
            for service in SERVICES:
                await asyncio.sleep(1)
                replica = f"{service}-1"
                system.kill(replica)
                await asyncio.to_thread(system.start, service, 1)
                faults.append(f"{replica} killed")
        return time.monotonic()

    async def run() -> tuple[list, float, float]:  # type: ignore[type-arg]
        done = asyncio.Event()
        faulting = asyncio.create_task(chaos(done))
        made = await demo.run(
            FAULT_CASES, 4242, system.urls, rabbitmq_url, timeout=STEP_TIMEOUT, quiet=FAULT_CASES < 100,
            prefix=system.prefix, stats=stats, staff=FAULT_STAFF, partner_messages=partner_messages,
        )  # fmt: skip
        done.set()
        return made, await faulting

    settings = system.ops_settings()
    made, last_fault = asyncio.run(run())
    asyncio.run(eventually(lambda: drained(settings), timeout=120, what="every outbox and queue empty after the last fault"))
    drain_seconds = time.monotonic() - last_fault
    assert len(faults) >= 6, faults
    check_every_case(made, FAULT_CASES)
    states = asyncio.run(queue_states(settings))
    assert {state.name: state.dead_letters for state in states if state.dead_letters > 0} == {}
    personal = {value for s in made for value in personal_values(demo.request_body(s))}
    logs = [log.read_text(errors="replace") for log in system.logs.glob("*.log")]
    log_lines = sum(text.count("\n") for text in logs)
    assert len(partner_messages) >= 18 and log_lines > 1000, (len(partner_messages), log_lines)
    leaks = values_found_in(personal, [*logs, *(m.decode() for m in partner_messages)])
    assert leaks == set(), f"personal data in logs or partner messages: {len(leaks)} of the values"
    case_ids = assert_no_case_id(made, partner_messages)
    kinds = Counter(fault.split(" (")[0].replace("-1 killed", " killed") for fault in faults)
    outages = [fault for fault in faults if "down)" in fault]
    print(f"\nfault run: {FAULT_CASES} cases, two replicas per service; "
          f"{dict(kinds)}; outages: {outages}; lost 0, duplicated effects 0, "
          f"outbox left 0, dead letters 0; drained {drain_seconds:.1f} s after the last fault; "
          f"requests refused while down {stats['refused']}, answered 429 and sent again {stats['throttled']}, events republished {stats['republished']}; "
          f"{len(personal)} personal values searched in {log_lines} log lines and {len(partner_messages)} partner messages: 0 found; "
          f"{len(case_ids)} case ids searched in the partner messages: 0 found")


def personal_values(request: dict) -> list[str]:  # type: ignore[type-arg]
    """What a referral says about the family that must stay in the referral service."""
    contact = request["contact"]
    return [contact["name"], contact["phone"], request["description"]]


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    if reason := RabbitCluster.unavailable():
        pytest.skip(reason)
    running = RabbitCluster(tmp_path_factory.mktemp("rabbitmq-cluster"))
    try:
        running.start()
        yield running
    finally:
        running.remove()


@pytest.mark.timeout(max(600, FAULT_CASES * 8))
def test_nothing_is_lost_when_a_rabbitmq_cluster_node_stops_mid_run(cluster: RabbitCluster, mongodb_url: str, tmp_path: Path) -> None:
    """Three RabbitMQ nodes on loopback ports; Kring's quorum queues have their leaders spread
    over them. Every service runs one replica on node 1 and one on node 2. While cases flow
    node 3 is stopped, so the queues it led elect new leaders, and later started again.
    Afterwards every case is where it should be, every event applied once in effect, and no
    outbox entry, queued message or dead letter is left."""
    import asyncio

    system = System(cluster.url(1), mongodb_url, tmp_path)
    try:
        for service in SERVICES:
            system.start(service)
            system.start(service, replica=1, rabbitmq_url=cluster.url(2))
        ours = {queue: node for queue, node in cluster.leaders().items() if queue.startswith(f"{system.prefix}.")}
        led_by_node3 = sorted(queue for queue, node in ours.items() if node == cluster.nodes[2])
        assert led_by_node3, f"no queue led by the node to be stopped: {ours}"
        demo = load_demo()
        stats: dict[str, int] = {}
        outage: dict[str, object] = {}

        async def stop_node3_for_a_while(done: asyncio.Event) -> None:
            await asyncio.sleep(6)
            stopped = time.monotonic()
            await asyncio.to_thread(cluster.stop_node, 3)
            await asyncio.sleep(2)
            outage["leaders while down"] = await asyncio.to_thread(cluster.leaders)
            try:
                await asyncio.wait_for(done.wait(), timeout=15)
            except TimeoutError:
                pass
            await asyncio.to_thread(cluster.start_node, 3)
            outage["seconds"] = time.monotonic() - stopped

        async def run() -> list:  # type: ignore[type-arg]
            done = asyncio.Event()
            fault = asyncio.create_task(stop_node3_for_a_while(done))
            made = await demo.run(
                FAULT_CASES, 4242, system.urls, cluster.url(1), timeout=STEP_TIMEOUT, quiet=FAULT_CASES < 100,
                prefix=system.prefix, stats=stats, staff=FAULT_STAFF,
            )  # fmt: skip
            done.set()
            await fault
            return made

        made = asyncio.run(run())
        settings = system.ops_settings()
        asyncio.run(eventually(lambda: drained(settings), timeout=120, what="every outbox and queue empty after node 3 returned"))
        while_down = outage["leaders while down"]
        assert isinstance(while_down, dict)
        assert {queue: while_down.get(queue) for queue in led_by_node3 if while_down.get(queue) not in cluster.nodes[:2]} == {}
        check_every_case(made, FAULT_CASES)
        assert {state.name: state.dead_letters for state in asyncio.run(queue_states(settings)) if state.dead_letters > 0} == {}
        assert cluster.running_nodes() == set(cluster.nodes)
        print(f"\ncluster fault run: {FAULT_CASES} cases on 3 RabbitMQ nodes, replicas on nodes 1 and 2; node 3 down "
              f"{outage['seconds']:.0f} s, {len(led_by_node3)} of {len(ours)} queue leaders moved off it; lost 0, "
              f"duplicated effects 0, outbox left 0, dead letters 0; events republished {stats['republished']}")
    finally:
        system.stop()
        system.remove_everything()
