"""Drive realistic cases through a running Kring, from referral to outcome.

    python scripts/demo.py [--cases 12] [--seed 7]

Needs the four services running (scripts/run.sh starts them) and RABBITMQ_URL. A seeded
generator makes families in several regions and languages, referred by bureaus (AMQP) and
by families themselves (HTTP); some consent later, some withdraw; statutory cases get
bottom-line requirements (one in the bureau's referral, which names the responsible
professional, one from that professional before the conference), some plans need a
revision or a second meeting, a few end without a plan, and some conferences are about an
adult ("how can aunt Els stay off the drink?") with no children listed. Coordinators,
professionals and families are simulated over HTTP. The run shows progress, then prints
each case's timeline (as the bus carried it) and the funder report, and writes the HTML
report.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.auth import Role, issue_token  # noqa: E402
from shared.contract.events import OWN_STEPS  # noqa: E402
from shared.messaging.parties import bureau_user, development_url  # noqa: E402
from shared.pseudonym import pseudonyms  # noqa: E402
from shared.settings import KringSettings  # noqa: E402

OWN_STEP_KEYS = {event.binding_key() for event in OWN_STEPS}

# The demo runs against development services only: it signs with their generated key.
SETTINGS = KringSettings(service_name="demo", environment="development")
# Funders get a pseudonym of each case, never its id: the demo holds the development key (as
# only follow-up does in production) to place an outcome on its case's timeline.
PSEUDONYMS = pseudonyms(SETTINGS)
REGIONS = [("UT", "GM0344", "prov-utrecht", "bjz-utrecht"), ("NH", "GM0363", "prov-noord-holland", "bjz-noord-holland")]
LANGUAGES = ["nl", "nl", "nl", "ar", "tr", "en"]
COORDINATORS = {
    "coord-anna": {"provinces": ["UT"], "languages": ["nl", "en"], "gender": "female"},
    "coord-youssef": {"provinces": ["UT", "NH"], "languages": ["nl", "ar"], "gender": "male"},
    "coord-elif": {"provinces": ["NH", "UT"], "languages": ["nl", "tr", "en"], "gender": "female"},
    "coord-bram": {"provinces": ["NH"], "languages": ["nl"], "gender": "male"},
}
CASELOAD = 4  # cases a demo coordinator prepares at a time
MAX_POLL_INTERVAL = 4.0  # seconds between looks while waiting for something


def coordinators(count: int) -> dict[str, dict[str, Any]]:
    """The four named coordinators, and for large runs colleagues who cover both provinces."""
    extra = {
        f"coord-{n:03d}": {"provinces": ["UT", "NH"], "languages": ["nl", "en", "ar", "tr"], "gender": ("female", "male")[n % 2]}
        for n in range(max(0, count - len(COORDINATORS)))
    }  # fmt: skip
    return dict(list(COORDINATORS.items())[:count]) | extra


def token(role: Role, subject: str = "demo", **claims: Any) -> str:
    return issue_token(SETTINGS, subject=subject, role=role, **claims)


@dataclass
class Scenario:
    number: int
    via_bureau: bool
    province: str
    municipality: str
    funder: str
    bureau: str
    language: str
    statutory: bool
    consent_upfront: bool
    withdraws: bool
    revision: bool
    second_meeting: bool
    no_plan: bool
    children: list[int]
    adult: bool = False  # the conference is about an adult: no children listed
    case_id: str | None = None
    outcome: str = "running"
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def expected(self) -> list[str]:
        """The events this case must produce, each exactly once (order aside)."""
        consent = [] if self.consent_upfront else ["referral.consent-recorded"]
        if self.withdraws:  # the family's no is recorded as consent withdrawn
            return ["referral.received", *consent, "referral.consent-recorded", "referral.withdrawn"]
        expected = ["referral.received", *consent, "scheduling.coordinator-assigned", "scheduling.conference-scheduled", "scheduling.conference-held"]
        if self.second_meeting:
            expected += ["plans.second-meeting-needed", "scheduling.conference-scheduled", "scheduling.conference-held"]
        if self.no_plan:
            return [*expected, "plans.no-plan-reached"]
        expected += ["plans.plan-presented", "plans.plan-accepted"]
        if self.revision:
            expected += ["plans.plan-revision-requested", "plans.plan-presented"]
        return [*expected, "followup.due", "followup.completed", "outcome.recorded"]


    @property
    def optional(self) -> list[str]:
        """Events that may or may not come, depending on timing: a withdrawal can overtake
        the assignment, or come after it (then the prepared conference is cancelled)."""
        return ["scheduling.coordinator-assigned", "scheduling.conference-cancelled"] if self.withdraws else []


def scenarios(count: int, seed: int) -> list[Scenario]:
    rng = random.Random(seed)
    made = []
    for n in range(count):
        province, municipality, funder, bureau = rng.choice(REGIONS)
        statutory = rng.random() < 0.4
        special = n % 10  # every kind of case appears, also in small runs
        made.append(
            Scenario(
                number=n + 1, via_bureau=n % 3 != 2 or statutory, province=province, municipality=municipality,
                funder=funder, bureau=bureau, language=rng.choice(LANGUAGES), statutory=statutory,
                consent_upfront=rng.random() < 0.7, withdraws=special == 3, revision=statutory and special in (1, 5),
                second_meeting=special == 7, no_plan=special == 9,
                children=[rng.randint(0, 15) for _ in range(rng.randint(1, 3))],
            )
        )  # fmt: skip
        if special == 4 and not statutory:  # aunt Els: the conference is about an adult
            made[-1].adult, made[-1].children = True, []
    return made


def request_body(s: Scenario) -> dict[str, Any]:
    body: dict[str, Any] = {
        "referrer": {"type": "youth_care_bureau", "organisation_id": s.bureau} if s.via_bureau else {"type": "self"},
        "region": {"province": s.province, "municipality": s.municipality},
        "language": s.language,
        "interpreter_needed": s.language not in ("nl", "en"),
        "contact": {"name": f"Ouder van gezin {s.number}", "relation": "mother", "phone": f"+31 6 {10000000 + s.number}"},
        "subject": "adult" if s.adult else "child",
        "children": [{"age": age} for age in s.children],
        "concern_categories": ["addiction"] if s.adult else random.Random(s.number).sample(["housing", "income_debt", "parenting", "addiction", "divorce"], 2),
        "description": "Beschrijving van de situatie van het gezin (alleen in de referral-service).",
        "consent": {"given_by": ["parent_with_responsibility"]} if s.consent_upfront else None,
    }
    if s.via_bureau:  # a family's self-referral says neither: the service derives them
        body["funder_id"] = s.funder
        body["statutory_context"] = "supervision_order" if s.statutory else "none"
    if s.statutory:  # the bureau names the responsible professional and sets a bottom line up front
        body["responsible_professional_id"] = professional_of(s)
        body["bottom_line_requirements"] = ["De kinderen gaan elke dag naar school."]
    return body


def professional_of(s: Scenario) -> str:
    """The professional with statutory responsibility the bureau names (an id, no name)."""
    return f"gezinsvoogd-{s.province.lower()}"


class Driver:
    def __init__(self, urls: dict[str, str], rabbitmq_url: str, timeout: float, prefix: str) -> None:
        self.urls = urls
        self.prefix = prefix
        self.rabbitmq_url = rabbitmq_url
        self.timeout = timeout
        self.http = httpx.AsyncClient(timeout=30)
        self.accepted: dict[str, str] = {}  # external reference -> case id (from the bureau's answers)
        self.seen: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.started = time.monotonic()
        self.stage: dict[int, str] = {}
        self.event_ids: set[str] = set()
        self.last_seen = time.monotonic()
        self.partner_bodies: list[bytes] = []  # what funders received (body, headers, properties), for privacy checks
        self.by_pseudonym: dict[str, str] = {}  # a funder's pseudonym of a case -> the case id
        self.republished = 0  # the same event again (a relay that died before clearing it)
        self.retried_after_crash = 0
        self.refused = 0  # requests that found their service down
        self.throttled = 0  # requests answered 429 and sent again after Retry-After
        self.watch_queue = f"{prefix}.demo.{uuid.uuid4().hex[:8]}"

    async def call(self, service: str, method: str, path: str, bearer: str | None, **kwargs: Any) -> httpx.Response:
        """One request; while the service is down or restarting it is tried again. If an
        attempt may have taken effect (the service died, or answered 503 while its database
        went away mid-write), a 409 on the next attempt means the first one took effect."""
        headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
        deadline = time.monotonic() + self.timeout
        ambiguous = False
        while True:
            try:
                response = await self.http.request(method, self.urls[service] + path, headers=headers, **kwargs)
            except httpx.ConnectError:
                self.refused += 1
            except httpx.TransportError:  # the request may have been handled: say so to the next try
                ambiguous = True
            else:
                if response.status_code == 409 and ambiguous:
                    self.retried_after_crash += 1
                    return httpx.Response(200, json={}, request=response.request)
                if response.status_code == 429:  # refused before it was handled: wait as told
                    self.throttled += 1
                    wait = float(response.headers.get("retry-after", "1"))
                    if time.monotonic() + wait > deadline:
                        return response
                    await asyncio.sleep(wait)
                    continue
                if response.status_code not in (502, 503):
                    return response
                ambiguous = True  # a 503 can follow a write the database applied but never confirmed
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} did not answer {method} {path}")
            await asyncio.sleep(0.5)

    async def submit(self, command: dict[str, Any], bureau: str) -> None:
        """Publish a bureau's command, confirmed, on a connection of its own; while the broker
        is down or restarting it is sent again, as a bureau's system would (the same reference
        answers the same case)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                await asyncio.wait_for(self._publish_command(command, bureau), timeout=30)
                return
            except (TimeoutError, RuntimeError, OSError, aio_pika.exceptions.AMQPError):
                self.refused += 1
            if time.monotonic() > deadline:
                raise TimeoutError("the broker did not take the bureau's command")
            await asyncio.sleep(0.5)

    async def _publish_command(self, command: dict[str, Any], bureau: str) -> None:
        """As the bureau's own broker user: the intake knows the sender from it."""
        user = bureau_user(bureau)
        url = development_url(self.rabbitmq_url, user)
        async with await aio_pika.connect(url) as connection, connection.channel(publisher_confirms=True) as channel:
            intake = await channel.get_exchange(f"{self.prefix}.intake", ensure=False)
            await intake.publish(
                aio_pika.Message(
                    json.dumps(command).encode(), content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(uuid.uuid4()), user_id=user,
                ),
                "referral.submit",
            )  # fmt: skip

    async def until(self, what: str, check: Any, timeout: float | None = None) -> Any:
        """Look again until `check` holds: soon at first, then less often (up to every
        MAX_POLL_INTERVAL seconds), as a person would, not as a load test."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interval = 0.5
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited too long for {what}")
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)

    # --- watching the bus ---------------------------------------------------------------

    def saw_expected(self, s: Scenario) -> bool:
        """Whether every event a finished case should have caused has been seen."""
        seen = Counter(kind for _, kind in self.seen.get(s.case_id or "", []))
        return s.outcome.startswith("failed") or seen >= Counter(s.expected)

    async def watch(self) -> None:
        """Watch every event, partner message and reply from now on; returns once watching.
        The watcher's queue is durable and quorum, so nothing passes unseen while the broker
        restarts; the watcher reconnects by itself rather than trusting a robust channel to
        come back (aio-pika sometimes leaves one closed after a restart)."""
        self.watching = asyncio.Event()
        self.watcher = asyncio.create_task(self._watch_until_stopped())
        await asyncio.wait_for(self.watching.wait(), timeout=60)

    async def _watch_until_stopped(self) -> None:
        while True:
            lost = asyncio.Event()
            connection = channel = None
            try:
                connection = await aio_pika.connect(self.rabbitmq_url)
                connection.close_callbacks.add(lambda *_: lost.set())
                channel = await connection.channel()
                channel.close_callbacks.add(lambda *_: lost.set())
                queue = await channel.declare_queue(self.watch_queue, durable=True, arguments={"x-queue-type": "quorum"})
                for exchange in ("events", "partner", "replies"):
                    await queue.bind(f"{self.prefix}.{exchange}", "#")
                await queue.consume(self._seen)
                self.watching.set()
                await lost.wait()
            except (OSError, RuntimeError, aio_pika.exceptions.AMQPError):
                pass
            finally:
                self.watching.clear()
                # The channel first: closing only the connection leaves the channel's close
                # callback running after the event loop has gone.
                for opened in (channel, connection):
                    if opened is not None:
                        with contextlib.suppress(Exception):
                            await opened.close()
            await asyncio.sleep(0.5)

    async def _seen(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.last_seen = time.monotonic()
        async with message.process():
            if message.message_id in self.event_ids:
                self.republished += 1
                return
            if message.message_id:
                self.event_ids.add(message.message_id)
            if message.exchange == f"{self.prefix}.partner":
                received = {"headers": message.headers, "correlation_id": message.correlation_id, "message_id": message.message_id}
                self.partner_bodies.append(message.body + b"\n" + json.dumps(received, default=repr).encode())
            kind = message.routing_key or ""
            if kind in OWN_STEP_KEYS:
                return  # a step of scheduling's own assignment process, nobody else's business
            body = json.loads(message.body)
            if kind.startswith("referral.accepted."):
                self.accepted[body["external_reference"]] = body["case_id"]
                return
            if kind == "referral.received":
                self.by_pseudonym[PSEUDONYMS.of(body["case_id"], body["funder_id"])] = body["case_id"]
            if kind.startswith("outcome.recorded."):
                kind = "outcome.recorded"
                body = {"case_id": self.by_pseudonym.get(body.get("pseudonym", ""), "unknown pseudonym")}
            if "case_id" in body:
                self.seen[body["case_id"]].append((time.monotonic() - self.started, kind))

    async def stop_watching(self) -> None:
        """Stop, and delete the watcher's queue (once the broker answers: a fault run may be
        restarting it)."""
        self.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.watcher
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                async with await aio_pika.connect(self.rabbitmq_url) as connection, connection.channel() as channel:
                    await channel.queue_delete(self.watch_queue)
                return
            except (OSError, aio_pika.exceptions.AMQPError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    # --- one case -------------------------------------------------------------------------

    async def run_case(self, s: Scenario) -> None:
        try:
            await self._run_case(s)
        except Exception as error:  # the run goes on; the case says what went wrong
            s.outcome = f"failed: {type(error).__name__}: {error}"
        finally:
            self.stage[s.number] = s.outcome

    async def _run_case(self, s: Scenario) -> None:
        self.stage[s.number] = "referred"
        family = None
        if s.via_bureau:
            reference = f"DEMO/{uuid.uuid4().hex[:8]}"
            command = {**request_body(s), "external_reference": reference}  # the sender is its broker user
            await self.submit(command, s.bureau)
            s.case_id = await self.until("the bureau's answer", lambda: asyncio.sleep(0, self.accepted.get(reference)))
            consenting = token(Role.BUREAU, s.bureau, organisation_id=s.bureau)
        else:
            response = await self.call("referral", "POST", "/self-referrals", None, json=request_body(s))
            response.raise_for_status()
            s.case_id = response.json()["case_id"]
            # An intake worker phones the family and takes the self-referral on: only then
            # does it reach scheduling and take a coordinator's place. On the phone they give
            # the family's contact person a one-time code, which the family exchanges for
            # its own access (whoever sent the form gets none).
            intake = token(Role.OPS, "intake-demo")
            (await self.call("referral", "GET", f"/cases/{s.case_id}/contact", intake)).raise_for_status()
            (await self.call("referral", "POST", f"/cases/{s.case_id}/intake", intake)).raise_for_status()
            family = await self.family_access(s.case_id, intake)
            consenting = family
        case_id = s.case_id
        if not s.consent_upfront:
            await asyncio.sleep(1)  # the coordinator's first call: the family agrees
            (await self.call("referral", "POST", f"/cases/{case_id}/consent", consenting, json={"given_by": ["parent_with_responsibility"]})).raise_for_status()
        if s.withdraws:
            (await self.call("referral", "POST", f"/cases/{case_id}/withdrawal", consenting, json={"reason": "consent_withdrawn"})).raise_for_status()
            s.outcome = "withdrawn"
            return

        ops = token(Role.OPS, "ops-demo")
        self.stage[s.number] = "waiting for a coordinator"

        async def coordinator_of() -> str | None:
            response = await self.call("scheduling", "GET", f"/cases/{case_id}", ops)
            return response.json().get("coordinator_id") if response.status_code == 200 else None

        coordinator_id = await self.until("a coordinator", coordinator_of, timeout=self.timeout * 3)
        coordinator = token(Role.COORDINATOR, coordinator_id)
        professional = token(Role.PROFESSIONAL, professional_of(s))
        if s.statutory:  # r1 came with the referral; the responsible professional adds r2
            self.stage[s.number] = "bottom-line requirements"
            body = {"text": "Er is elke avond een volwassene thuis.", "shared_with_family_at": datetime.now(UTC).isoformat()}
            await self.until("the plan record", lambda: self._created(self.call("plans", "POST", f"/cases/{case_id}/requirements", professional, json=body)))
        meetings = 2 if s.second_meeting else 1
        for meeting in range(1, meetings + 1):
            await self.conference(s, coordinator, meeting)
            if meeting < meetings:
                (await self.call("plans", "POST", f"/cases/{case_id}/second-meeting", coordinator, json={"reason_category": "network_incomplete"})).raise_for_status()
        if s.no_plan:
            (await self.call("plans", "POST", f"/cases/{case_id}/no-plan", coordinator, json={"reason_category": "family_disagreed"})).raise_for_status()
            s.outcome = "no plan"
            return
        self.stage[s.number] = "plan"
        answers = [[] if s.revision else ["r1"], ["r2"]] if s.statutory else [[], []]
        question = "Hoe kan tante Els van de drank afblijven?" if s.adult else None
        await self.present(case_id, coordinator, answers, question)
        if s.statutory:
            review = await self.call("plans", "POST", f"/cases/{case_id}/plan/review", professional, json={})
            review.raise_for_status()
            if s.revision:
                await self.present(case_id, coordinator, [["r1"], ["r2"]], question)
                (await self.call("plans", "POST", f"/cases/{case_id}/plan/review", professional, json={})).raise_for_status()
        self.stage[s.number] = "waiting for the follow-up"

        answered: list[httpx.Response] = []

        async def due() -> bool:
            response = await self.call("followup", "GET", f"/cases/{case_id}", coordinator)
            answered[:] = [response]
            return response.status_code == 200 and response.json()["stage"] == "due"

        try:
            await self.until("the follow-up to fall due", due, timeout=self.timeout * 3)
        except TimeoutError as error:  # say what the follow-up service last answered
            last = answered[-1]
            said = {key: last.json().get(key) for key in ("stage", "due_at", "plan_accepted_at")} if last.status_code == 200 else last.text[:200]
            raise TimeoutError(f"{error}; last answer: {last.status_code} {said}") from None
        rng = random.Random(s.number)
        check = {
            "execution_status": rng.choice(["fully_carried_out", "in_progress_fully", "in_progress_partly", "in_progress_partly", "not_carried_out"]),
            "ratings_by_children": [] if s.adult else [rng.randint(6, 10)], "ratings_by_family": [rng.randint(5, 10), rng.randint(6, 10)],
            "ratings_by_professionals": [rng.randint(5, 9)],
            "child_outcomes": [rng.choice(["placement_prevented", "none", "supervision_order_prevented", "unknown"]) for _ in s.children],
        }  # fmt: skip
        (await self.call("followup", "POST", f"/cases/{case_id}/check", coordinator, json=check)).raise_for_status()
        s.outcome = "outcome recorded"

    async def family_access(self, case_id: str, giver: str) -> str:
        """A one-time code from referral, exchanged for the family's token. A code is single
        use: if the exchange's answer was lost (referral killed mid-request), a new code."""
        for _ in range(3):
            code = await self.call("referral", "POST", f"/cases/{case_id}/family-access", giver)
            code.raise_for_status()
            granted = await self.call("referral", "POST", "/family-access", None, json={"code": code.json()["code"]})
            if granted.status_code == 200:
                return str(granted.json()["family_access_token"])
        granted.raise_for_status()
        raise RuntimeError("no family token")

    @staticmethod
    async def _created(request: Any) -> bool:
        response = await request
        return response.status_code == 201

    async def conference(self, s: Scenario, coordinator: str, meeting: int) -> None:
        case_id = s.case_id
        self.stage[s.number] = f"preparing meeting {meeting}"

        async def preparing() -> bool:
            response = await self.call("scheduling", "GET", f"/cases/{case_id}", coordinator)
            return response.status_code == 200 and response.json()["stage"] == "preparing" and response.json()["meeting_number"] == meeting

        await self.until("preparation", preparing)
        network = {"parents": 2, "children": len(s.children), "grandparents": 2, "other_relatives": 3, "friends": 2, "neighbours": 1, "professionals": 2}
        preparation = {"network": network, "invited": network, "accepted": network, "parents_with_responsibility": 2,
                       "interpreter_arranged": s.language not in ("nl", "en"), "location_booked": True, "catering_arranged": True}  # fmt: skip
        (await self.call("scheduling", "PUT", f"/cases/{case_id}/preparation", coordinator, json=preparation)).raise_for_status()
        today = datetime.now(UTC).date().isoformat()
        (await self.call("scheduling", "PUT", f"/cases/{case_id}/conference", coordinator, json={"conference_date": today})).raise_for_status()
        attended = {"attended": {**network, "neighbours": 0}, "all_parents_with_responsibility_attended": s.number % 6 != 0}
        (await self.call("scheduling", "POST", f"/cases/{case_id}/held", coordinator, json=attended)).raise_for_status()

        async def plan_meeting_held() -> bool:
            response = await self.call("plans", "GET", f"/cases/{case_id}/plan", coordinator)
            meetings = response.json().get("meetings", []) if response.status_code == 200 else []
            return any(m["number"] == meeting and m["status"] == "held" for m in meetings)

        await self.until("the plans service to see the conference", plan_meeting_held)

    async def present(self, case_id: str, coordinator: str, answers: list[list[str]], question: str | None = None) -> None:
        agreements = [
            {"agreement_id": "a1", "what": "Oma brengt de kinderen naar school.", "who": "grandparent", "by_when": "2027-03-01",
             "kind": "network_support", "answers_requirements": answers[0]},
            {"agreement_id": "a2", "what": "Oom is er elke avond.", "who": "other_relative", "by_when": "2027-03-01",
             "kind": "network_support", "answers_requirements": answers[1]},
            {"agreement_id": "a3", "what": "Schuldhulp aanvragen.", "who": "professional_service", "service_category": "debt_counselling",
             "by_when": "2027-01-15", "kind": "professional_help"},
        ]  # fmt: skip
        plan = {"central_question": question or "Hoe zorgen we samen dat de kinderen veilig opgroeien?", "agreements": agreements}
        (await self.call("plans", "PUT", f"/cases/{case_id}/plan", coordinator, json=plan)).raise_for_status()
        (await self.call("plans", "POST", f"/cases/{case_id}/plan/presentation", coordinator)).raise_for_status()


async def progress(driver: Driver, total: int, done: asyncio.Event) -> None:
    while not done.is_set():
        counts = Counter(driver.stage.values())
        line = ", ".join(f"{n} {stage}" for stage, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(f"[demo] {time.monotonic() - driver.started:5.0f}s  {total} cases: {line}", flush=True)
        try:
            await asyncio.wait_for(done.wait(), timeout=5)
        except TimeoutError:
            pass


async def run(
    cases: int, seed: int, urls: dict[str, str], rabbitmq_url: str, *, timeout: float = 120, quiet: bool = False,
    prefix: str = SETTINGS.amqp_prefix, stats: dict[str, int] | None = None, partner_messages: list[bytes] | None = None,
    staff: int = len(COORDINATORS),
) -> list[Scenario]:  # fmt: skip
    """Carry `cases` seeded cases through the running services; `staff` coordinators, each
    preparing up to CASELOAD cases at a time."""
    driver = Driver(urls, rabbitmq_url, timeout, prefix)
    await driver.watch()
    ops = token(Role.OPS, "ops-demo")
    for coordinator_id, profile in coordinators(staff).items():
        body = {**profile, "max_cases": CASELOAD, "professional_care_provider": False}
        (await driver.call("scheduling", "PUT", f"/coordinators/{coordinator_id}", ops, json=body)).raise_for_status()
    made = scenarios(cases, seed)
    done = asyncio.Event()
    reporter = None if quiet else asyncio.create_task(progress(driver, cases, done))
    limit = asyncio.Semaphore(staff * CASELOAD)

    async def bounded(s: Scenario) -> None:
        async with limit:
            await driver.run_case(s)

    try:
        await asyncio.gather(*(bounded(s) for s in made))
        # The last events reach the watcher, also after a broker restart (its queue is durable):
        # the events each case should have had, then 3 s of quiet, when a duplicate would show.
        await asyncio.wait_for(driver.watching.wait(), timeout=120)
        with contextlib.suppress(TimeoutError):  # what is still missing then is reported case by case
            await driver.until("every case's events", lambda: asyncio.sleep(0, all(driver.saw_expected(s) for s in made)))
        while time.monotonic() - driver.last_seen < 3:
            await asyncio.sleep(0.2)
    finally:
        done.set()
        if reporter:
            await reporter
        for s in made:
            s.events = sorted(driver.seen.get(s.case_id or "", []))
        if stats is not None:
            stats.update(republished=driver.republished, retried_after_crash=driver.retried_after_crash, refused=driver.refused, throttled=driver.throttled)
        if partner_messages is not None:
            partner_messages.extend(driver.partner_bodies)
        await driver.stop_watching()
        await driver.http.aclose()
    return made


def print_timelines(made: list[Scenario]) -> None:
    print("\n=== Case timelines (as the bus carried them; no personal data) ===")
    for s in made:
        kind = "bureau" if s.via_bureau else "family"
        traits = [t for t, on in (("statutory", s.statutory), ("revision", s.revision), ("2nd meeting", s.second_meeting),
                                  ("withdraws", s.withdraws), ("no plan", s.no_plan), ("adult", s.adult)) if on]  # fmt: skip
        print(f"\ncase {s.number:>3} {s.case_id}  {s.province} {s.language} via {kind} {' '.join(traits)} -> {s.outcome}")
        for at, kind_ in s.events:
            print(f"   {at:6.1f}s  {kind_}")


async def print_report(url: str, html_path: Path) -> None:
    ops = token(Role.OPS, "ops-demo")
    async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {ops}"}) as http:
        figures = (await http.get(url + "/reports")).json()
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text((await http.get(url + "/reports.html")).text)
    print("\n=== Funder report (all funders), next to the reference figures ===")
    for key, value in figures.items():
        if key in figures["reference"]:
            shown = "-" if value is None else (f"{value:.0%}" if key.startswith("share") else f"{value:.1f}")
            reference = figures["reference"][key]
            print(f"  {key:36} {shown:>7}   reference {f'{reference:.0%}' if key.startswith('share') else reference}")
    print(f"  outcomes for children: {figures['outcomes']}")
    print(f"  top questions: {figures['top_concerns']}")
    print(f"\nHTML report: {html_path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base-port", type=int, default=8081)
    parser.add_argument("--staff", type=int, default=len(COORDINATORS), help=f"coordinators, each preparing up to {CASELOAD} cases at a time")
    args = parser.parse_args()
    urls = {name: f"http://127.0.0.1:{args.base_port + n}" for n, name in enumerate(("referral", "scheduling", "plans", "followup"))}
    rabbitmq_url = os.environ.get("RABBITMQ_URL", SETTINGS.rabbitmq_url)
    try:
        made = asyncio.run(run(args.cases, args.seed, urls, rabbitmq_url, staff=args.staff))
    except KeyboardInterrupt:
        print("\n[demo] stopped; what was stored stays consistent (state and events are written together)")
        return 130
    print_timelines(made)
    asyncio.run(print_report(urls["followup"], REPO / ".data" / "report.html"))
    failed = [s for s in made if s.outcome.startswith("failed")]
    print(f"\n[demo] {len(made) - len(failed)} of {len(made)} cases completed their scenario")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
