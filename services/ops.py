"""kring-ops: what operations needs to see and repair, from the command line.

    kring-ops queues                          depth, consumers and DLQ depth of every queue
    kring-ops outbox                          events waiting in each service's outbox
    kring-ops dlq list                        dead-letter queues that hold messages
    kring-ops dlq show QUEUE [--limit N] [--body]
                                              why each message was dead-lettered
    kring-ops dlq redrive QUEUE [--limit N] [--message-id ID]
                                              put messages back on QUEUE, to be consumed again
    kring-ops replay --funder ID              publish a funder's outcome history into its own
                                              queue (PREFIX.partner.ID), no other
    kring-ops audit --case ID [--subject S]   every service's audit entries of a case (or of a
                                              subject): who, what, when, allowed or refused, why
    kring-ops erase --case ID --reason CODE [--reference REF]
                                              erase a case's personal data now, in every service
                                              (CODE: data_subject_request, consent_withdrawn,
                                              unlawful_processing, legal_obligation, duplicate);
                                              a running case is closed; audited as kring-ops erase

QUEUE is a subscriber queue (e.g. kring.scheduling.referral.received); its DLQ is
QUEUE.dlq. Servers and namespace come from RABBITMQ_URL, MONGODB_URL, KRING_AMQP_PREFIX;
RABBITMQ_URL is kring-ops's (administrator, impersonator): a redrive publishes each letter
again under its original sender's user_id, so consumers still know who sent it.
Message bodies may hold personal data (a bureau's command): `--body` shows them, on purpose.
"""

import argparse
import asyncio
import getpass
import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel

from services.asyncapi import SERVICES
from shared.messaging.parties import service_user
from shared.messaging.publisher import (
    DEAD_LETTERED_AT_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    PublishFailed,
)
from shared.audit import AuditEntry, Outcome
from shared.contract.vocabulary import ErasureReason, ErasureRequestReason
from shared.errors import KringError
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.store import utc_now


@dataclass(frozen=True)
class QueueState:
    name: str
    messages: int
    consumers: int
    dead_letters: int


def wired_services(settings: KringSettings) -> Iterator[KringService]:
    """Each service as its wiring point builds it (nothing connects)."""
    for name in SERVICES:
        module = importlib.import_module(f"services.{name}.app")
        own = settings.model_copy(update={"service_name": name, "mongodb_database": None})
        yield module.create_app(own).state.kring


def subscriber_queues(settings: KringSettings) -> list[str]:
    return sorted(sub.queue.name for service in wired_services(settings) for sub in service.broker.subscribers)


async def depth(channel: AbstractChannel, queue: str) -> tuple[int, int]:
    """(messages, consumers); (-1, 0) if the queue does not exist yet."""
    underlay = await channel.get_underlay_channel()
    try:
        declared = await underlay.queue_declare(queue, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        await channel.reopen()
        return -1, 0
    return declared.message_count, declared.consumer_count


async def queue_states(settings: KringSettings) -> list[QueueState]:
    connection = await aio_pika.connect_robust(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        states = []
        for queue in subscriber_queues(settings):
            messages, consumers = await depth(channel, queue)
            dead, _ = await depth(channel, f"{queue}.dlq")
            states.append(QueueState(queue, messages, consumers, dead))
        return states
    finally:
        await connection.close()


async def outbox_backlog(settings: KringSettings) -> dict[str, int]:
    """Events waiting to be published, per service and store."""
    backlog = {}
    for service in wired_services(settings):
        try:
            for store in service.stores.values():
                backlog[f"{service.name}:{store.name}"] = await store.outbox_size()
        finally:
            await service.mongo.close()
    return backlog


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def dead_letters(settings: KringSettings, queue: str, limit: int) -> list[dict[str, Any]]:
    """A look at up to `limit` dead letters of `queue`, leaving them where they are."""
    connection = await aio_pika.connect_robust(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        dlq = await channel.get_queue(f"{queue}.dlq", ensure=False)
        seen, taken = [], []
        while len(seen) < limit and (message := await dlq.get(no_ack=False, fail=False)) is not None:
            taken.append(message)
            headers = message.headers or {}
            seen.append(
                {
                    "message_id": message.message_id,
                    "type": message.type,
                    "reason": _text(headers.get(REASON_HEADER, "")),
                    "queue": _text(headers.get(QUEUE_HEADER, queue)),
                    "original_routing_key": _text(headers.get(ORIGINAL_ROUTING_KEY_HEADER, message.routing_key or "")),
                    "dead_lettered_at": _text(headers.get(DEAD_LETTERED_AT_HEADER, "")),
                    "bytes": len(message.body),
                    "body": message.body,
                }
            )
        for message in taken:  # give them back, in order
            await message.nack(requeue=True)
        return seen
    finally:
        await connection.close()


async def redrive(settings: KringSettings, queue: str, *, limit: int, message_id: str | None = None) -> int:
    """Move dead letters of `queue` back onto it (confirmed, persistent, mandatory), then drop
    them from the DLQ. Returns how many were moved; raises Unroutable, leaving the letter in
    the DLQ, if `queue` is gone."""
    service = next(wired_services(settings))
    connection = await aio_pika.connect_robust(settings.rabbitmq_url)
    await service.broker.connect()
    moved = 0
    try:
        channel = await connection.channel()
        dlq = await channel.get_queue(f"{queue}.dlq", ensure=False)
        skipped = []
        try:
            while moved < limit and (message := await dlq.get(no_ack=False, fail=False)) is not None:
                if message_id is not None and message.message_id != message_id:
                    skipped.append(message)
                    continue
                try:
                    await service.publisher.redrive(message, queue)
                except PublishFailed:
                    await message.nack(requeue=True)
                    raise
                await message.ack()
                moved += 1
        finally:
            for message in skipped:
                await message.nack(requeue=True)
        return moved
    finally:
        await connection.close()
        await service.broker.stop()
        await service.mongo.close()


async def replay_partner(settings: KringSettings, funder_id: str) -> int:
    """A late funder's history of OutcomeRecorded, into its own queue only (original event ids)."""
    from services.followup import partner
    from shared.pseudonym import pseudonyms

    followup = next(service for service in wired_services(settings) if service.name == "followup")
    followup.publisher.user_id = service_user("followup")  # kring-ops impersonates the producer
    await followup.broker.connect()
    try:
        return await partner.replay(followup.stores[partner.PARTNER_LOG], followup.publisher, funder_id, pseudonyms(followup.settings))
    finally:
        await followup.broker.stop()
        await followup.mongo.close()


async def audit_entries(settings: KringSettings, *, case_id: str | None = None, subject: str | None = None) -> list[AuditEntry]:
    """Every service's audit entries of `case_id` (or `subject`), oldest first."""
    entries: list[AuditEntry] = []
    for service in wired_services(settings):
        try:
            entries += await service.audit.entries(case_id=case_id, subject=subject, limit=100_000)
        finally:
            await service.mongo.close()
    return sorted(entries, key=lambda entry: entry.at)


async def erase_case(
    settings: KringSettings, case_id: str, reason: ErasureRequestReason, *, reference: str | None = None, operator: str | None = None
) -> Any:
    """Erase the case's personal data on request, as POST /cases/{id}/erasure does: one write
    of the referral aggregate, whose PersonalDataErased event the running referral service's
    relay publishes (within KRING_RELAY_SWEEP_SECONDS); every service erases its part. The
    command is audited in referral's log under the operator's login name."""
    from services.referral import domain
    from services.referral.storage import REFERRALS

    referral = next(service for service in wired_services(settings) if service.name == "referral")
    operator = operator or f"os-{getpass.getuser()}"
    now = utc_now()
    try:
        try:
            mutation = await referral.stores[REFERRALS].mutate(
                case_id,
                lambda r: domain.erase(r, now=now, reason=ErasureReason.REQUEST, role="ops", request_reason=reason, reference=reference),
            )
        except KringError as error:
            await referral.audit.record_operation("kring-ops erase", subject=operator, case_id=case_id, outcome=Outcome.REFUSED, reason=type(error).__name__)
            raise
        await referral.audit.record_operation("kring-ops erase", subject=operator, case_id=case_id)
        return mutation.state
    finally:
        await referral.mongo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kring-ops", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("queues", help="depth, consumers and DLQ depth of every queue")
    commands.add_parser("outbox", help="events waiting in each service's outbox")
    dlq = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(dest="action", required=True)
    dlq.add_parser("list", help="DLQs holding messages")
    show = dlq.add_parser("show", help="why each message was dead-lettered")
    show.add_argument("queue")
    show.add_argument("--limit", type=int, default=20)
    show.add_argument("--body", action="store_true", help="print bodies too (may be personal data)")
    again = dlq.add_parser("redrive", help="put messages back on their queue")
    again.add_argument("queue")
    again.add_argument("--limit", type=int, default=1000)
    again.add_argument("--message-id")
    replay = commands.add_parser("replay", help="publish a funder's outcome history into its queue")
    replay.add_argument("--funder", required=True)
    audit = commands.add_parser("audit", help="who accessed a case: every service's audit entries")
    audit.add_argument("--case", dest="case_id")
    audit.add_argument("--subject")
    erase = commands.add_parser("erase", help="erase a case's personal data now, in every service")
    erase.add_argument("--case", dest="case_id", required=True)
    erase.add_argument("--reason", required=True, choices=[reason.value for reason in ErasureRequestReason])
    erase.add_argument("--reference", help="the request's number, e.g. in the privacy desk's system (no personal data)")
    args = parser.parse_args(argv)
    settings = KringSettings(service_name="ops")

    if args.command == "queues":
        states = asyncio.run(queue_states(settings))
        print(f"{'queue':60} {'messages':>9} {'consumers':>9} {'dead':>6}")
        for state in states:
            print(f"{state.name:60} {state.messages:>9} {state.consumers:>9} {state.dead_letters:>6}")
    elif args.command == "outbox":
        for where, pending in asyncio.run(outbox_backlog(settings)).items():
            print(f"{where:50} {pending:>8} pending")
    elif args.command == "replay":
        count = asyncio.run(replay_partner(settings, args.funder))
        print(f"{count} outcome(s) of {args.funder} published into its partner queue")
    elif args.command == "audit":
        if not (args.case_id or args.subject):
            parser.error("audit needs --case or --subject")
        for entry in asyncio.run(audit_entries(settings, case_id=args.case_id, subject=args.subject)):
            why = f" {entry.reason}" + (f" ({entry.detail})" if entry.detail else "") if entry.reason else ""
            print(f"{entry.at.isoformat()} {entry.service:10} {entry.role or '-':12} {entry.subject or '-':24} "
                  f"{entry.organisation_id or '-':16} {entry.operation:44} {entry.case_id or '-'} {entry.outcome}{why}")  # fmt: skip
    elif args.command == "erase":
        try:
            state = asyncio.run(erase_case(settings, args.case_id, ErasureRequestReason(args.reason), reference=args.reference))
        except KringError as error:
            print(f"not erased: {error}", file=sys.stderr)
            return 1
        print(f"{args.case_id}: personal data erased at {state.erasure.erased_at.isoformat()} ({state.erasure.request_reason}); "
              "every service erases its part as PersonalDataErased reaches it")  # fmt: skip
    elif args.action == "list":
        holding = [s for s in asyncio.run(queue_states(settings)) if s.dead_letters > 0]
        for state in holding:
            print(f"{state.name}.dlq {state.dead_letters}")
        if not holding:
            print("no dead letters")
    elif args.action == "show":
        for letter in asyncio.run(dead_letters(settings, args.queue, args.limit)):
            body = letter.pop("body")
            print(" ".join(f"{key}={value}" for key, value in letter.items()))
            if args.body:
                print(f"  body: {body.decode(errors='replace')}")
    elif args.action == "redrive":
        moved = asyncio.run(redrive(settings, args.queue, limit=args.limit, message_id=args.message_id))
        print(f"{moved} message(s) moved back to {args.queue}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
