"""The referral service on the real servers: bureaus over AMQP, referrers and families over
HTTP, consent and withdrawal, and who may see what."""

import json
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from services.referral.app import create_app
from shared.auth import Role
from shared.contract.envelope import Envelope
from shared.contract.events import CoordinatorAssigned
from shared.contract.vocabulary import Region
from shared.messaging.publisher import REASON_HEADER
from tests.support.harness import Harness
from tests.support.referrals import PERSONAL_VALUES, family_token, form_token, referral_request, self_referral, submit_referral
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
BUREAU = "bjz-utrecht"


async def started(kring: Harness, **overrides: Any) -> FastAPI:
    app = kring.app(create_app, "referral", **overrides)
    await kring.start(app.state.kring)
    return app


async def send(kring: Harness, body: Any, *, content_type: str = "application/json", bureau: str = BUREAU) -> str:
    """A bureau's command, published as that bureau's broker user."""
    message_id = str(uuid.uuid4())
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    await kring.send_command("referral.submit", raw, bureau=bureau, content_type=content_type, message_id=message_id)
    return message_id


async def accept_intake(kring: Harness, app: FastAPI, case_id: str) -> None:
    """An intake worker (ops) spoke to the family of a self-referral and takes it on."""
    async with kring.http(app, kring.token(Role.OPS, subject="intake-1")) as http:
        response = await http.post(f"/cases/{case_id}/intake")
    assert response.status_code == 200 and response.json()["intake_accepted"] is True, response.text


def data(message: Any) -> dict[str, Any]:
    return json.loads(message.body)


def assert_no_personal_data(messages: list[Any]) -> None:
    for message in messages:
        raw = message.body.decode() + json.dumps({k: str(v) for k, v in (message.headers or {}).items()})
        for value in PERSONAL_VALUES:
            assert value not in raw, f"personal data in {message.routing_key}"


async def test_a_bureau_command_becomes_a_case_and_the_bus_carries_no_personal_data(kring: Harness) -> None:
    app = await started(kring)
    events = await kring.probe(kring.topology.events.name, "referral.#")
    replies = await kring.probe(kring.topology.replies.name, f"referral.*.{BUREAU}")

    command = submit_referral(BUREAU)
    await send(kring, command)

    [reply] = await kring.drain(replies.name, settle=1.0) or [None]
    assert reply is not None and reply.routing_key == f"referral.accepted.{BUREAU}"
    accepted = data(reply)
    assert accepted["external_reference"] == command["external_reference"] and not accepted["resubmission"]
    [received] = await kring.drain(events.name)
    assert received.routing_key == "referral.received"
    event = data(received)
    assert event["case_id"] == accepted["case_id"]
    assert event["consent"] == "given"
    assert event["child_age_bands"] == ["4-11", "4-11", "12-15"]
    assert event["referrer_organisation_id"] == BUREAU and event["bottom_line_requirements_set"] is True
    assert_no_personal_data([reply, received])


async def test_a_resubmission_answers_the_same_case_and_opens_no_second_one(kring: Harness) -> None:
    app = await started(kring)
    events = await kring.probe(kring.topology.events.name, "referral.received")
    replies = await kring.probe(kring.topology.replies.name, f"referral.accepted.{BUREAU}")

    command = submit_referral(BUREAU, reference="BJZ/2026/0042")
    await send(kring, command)
    await eventually(lambda: kring.depth(replies.name), what="first answer")
    await send(kring, command)
    await eventually(lambda: kring.depth(replies.name), what="second answer")  # first was not taken yet
    answers = [data(m) for m in await kring.drain(replies.name, settle=1.0)]
    assert len(answers) == 2
    assert answers[0]["case_id"] == answers[1]["case_id"]
    assert [a["resubmission"] for a in answers] == [False, True]
    assert len(await kring.drain(events.name)) == 1


async def test_an_invalid_command_is_rejected_naming_every_bad_field(kring: Harness) -> None:
    app = await started(kring)
    replies = await kring.probe(kring.topology.replies.name, f"referral.rejected.{BUREAU}")
    command = submit_referral(BUREAU, children=[{"age": -1}], language="Dutch", concern_categories=[])
    del command["contact"]
    command["region"]["province"] = "XX"
    await send(kring, command)

    [reply] = await kring.drain(replies.name, settle=1.5)
    rejection = data(reply)
    assert rejection["external_reference"] == command["external_reference"]
    assert {e["field"] for e in rejection["errors"]} == {
        "contact", "children.0.age", "language", "concern_categories", "region.province",
    }  # fmt: skip
    assert "Dutch" not in reply.body.decode() and "XX" not in reply.body.decode()


async def test_a_command_nobody_can_be_answered_for_goes_to_the_dlq_and_intake_goes_on(kring: Harness) -> None:
    app = await started(kring)
    replies = await kring.probe(kring.topology.replies.name, "referral.#")
    queue = kring.topology.queue_name("referral", "referral.submit")
    broken = await send(kring, b'{"source_organisation_id": "bjz-', content_type="application/json")
    anonymous = await send(kring, {"children": []})
    await send(kring, submit_referral(BUREAU))

    dead = await kring.drain(kring.topology.dead_letter_queue(queue).name, settle=1.5)
    assert {m.message_id for m in dead} == {broken, anonymous}
    assert all(m.headers[REASON_HEADER].startswith("invalid message") for m in dead)
    assert [m.routing_key for m in await kring.drain(replies.name)] == [f"referral.accepted.{BUREAU}"]


async def test_a_family_refers_itself_and_reads_its_case_with_its_own_token(kring: Harness) -> None:
    app = await started(kring)
    events = await kring.probe(kring.topology.events.name, "referral.received")
    ops = {"authorization": f"Bearer {kring.token(Role.OPS, subject='intake-1')}"}
    async with kring.http(app) as http:
        response = await http.post("/self-referrals", json=self_referral())
        assert response.status_code == 201, response.text
        created = response.json()
        assert "family_access_token" not in created, "no access for whoever sent the form"
        # the intake worker phones the contact person and hands over a one-time code
        family = {"authorization": f"Bearer {await family_token(http, created['case_id'], ops)}"}
        case = (await http.get(f"/cases/{created['case_id']}", headers=family)).json()
        other = (await http.post("/self-referrals", json=self_referral())).json()
        assert (await http.get(f"/cases/{other['case_id']}", headers=family)).status_code == 403
    assert case["consent"]["state"] == "pending" and case["referrer_type"] == "self"
    assert case["statutory_context"] == "none" and case["intake_accepted"] is False
    await accept_intake(kring, app, created["case_id"])
    received = next(m for m in await kring.drain(events.name) if data(m)["case_id"] == created["case_id"])
    assert data(received)["funder_id"] == "GM0344", "a family need not know who pays: its municipality"
    assert data(received)["consent"] == "pending"
    assert_no_personal_data([received])


async def test_a_professional_cannot_use_the_self_referral_route(kring: Harness) -> None:
    app = await started(kring)
    async with kring.http(app) as http:
        response = await http.post("/self-referrals", json=self_referral(referrer={"type": "gp"}))
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["referrer.type"]


async def test_the_html_form_shows_problems_and_accepts_a_complete_request(kring: Harness) -> None:
    app = await started(kring)
    async with kring.http(app) as http:
        form = await http.get("/self-referral")
        assert form.status_code == 200 and '<label for="contact_name">' in form.text
        token = form_token(form.text)
        incomplete = await http.post("/self-referral", data={"csrf_token": token, "referrer_type": "self", "children": "4, tien"})
        assert incomplete.status_code == 422
        assert 'aria-invalid="true"' in incomplete.text and "Please check these answers" in incomplete.text
        complete = await http.post(
            "/self-referral",
            data={
                "csrf_token": form_token(incomplete.text), "referrer_type": "family_member", "contact_name": "Oma Jansen", "contact_relation": "grandmother",
                "contact_phone": "06 12345678", "province": "UT", "language": "nl", "children": "4, 9",
                "concern_categories": ["parenting", "housing"], "description": "Ik maak me zorgen.",
                "consent": "parent_with_responsibility",
            },
        )  # fmt: skip
    assert complete.status_code == 201, complete.text
    assert "Thank you" in complete.text and "case-" in complete.text


async def test_consent_then_withdrawal_is_recorded_and_announced(kring: Harness) -> None:
    app = await started(kring)
    events = await kring.probe(kring.topology.events.name, "referral.#")
    async with kring.http(app) as http:
        created = (await http.post("/self-referrals", json=self_referral())).json()
        await accept_intake(kring, app, created["case_id"])
        ops = {"authorization": f"Bearer {kring.token(Role.OPS, subject='intake-1')}"}
        family = {"authorization": f"Bearer {await family_token(http, created['case_id'], ops)}"}
        path = f"/cases/{created['case_id']}"
        too_young = await http.post(f"{path}/consent", json={"given_by": ["parent_with_responsibility"]}, headers=family)
        assert too_young.status_code == 200
        again = await http.post(f"{path}/consent", json={"given_by": ["parent_with_responsibility"]}, headers=family)
        assert again.status_code == 200
        withdrawn = await http.post(f"{path}/withdrawal", json={"reason": "consent_withdrawn"}, headers=family)
        assert withdrawn.status_code == 200 and withdrawn.json()["active"] is False
        twice = await http.post(f"{path}/withdrawal", json={"reason": "consent_withdrawn"}, headers=family)
        assert twice.status_code == 401, "the family's token ended with the withdrawal"
        after = await http.post(f"{path}/consent", json={"given_by": ["parent_with_responsibility"]}, headers=family)
        assert after.status_code == 401
        again = await http.post(f"{path}/withdrawal", json={"reason": "consent_withdrawn"}, headers=ops)
        assert again.status_code == 409, "withdrawn once"
    history = [c["state"] for c in withdrawn.json()["consent_history"]]
    assert history == ["pending", "given", "withdrawn"]
    seen = [(m.routing_key, data(m).get("consent")) for m in await kring.drain(events.name, settle=1.0)]
    assert seen == [
        ("referral.received", "pending"),
        ("referral.consent-recorded", "given"),
        ("referral.consent-recorded", "withdrawn"),
        ("referral.withdrawn", None),
    ]


async def test_a_young_person_of_sixteen_must_consent_themselves(kring: Harness) -> None:
    app = await started(kring)
    token = kring.token(Role.BUREAU, organisation_id=BUREAU)
    async with kring.http(app, token) as http:
        response = await http.post("/referrals", json=referral_request(children=[{"age": 16}]))
    assert response.status_code == 422
    assert "young person" in response.json()["fields"][0]["problem"]


async def test_who_may_see_and_do_what(kring: Harness) -> None:
    app = await started(kring)
    bureau = kring.token(Role.BUREAU, organisation_id=BUREAU)
    async with kring.http(app, bureau) as http:
        body = referral_request(external_reference="BJZ/2026/7")
        created = await http.post("/referrals", json=body)
        assert created.status_code == 201, created.text
        case_id = created.json()["case_id"]
        case = await http.get(f"/cases/{case_id}")
        assert case.status_code == 200
        assert case.json()["bottom_line_requirements"] == ["De kinderen gaan elke dag naar school."]
        assert "contact" not in case.json()
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 403

    async def status(method: str, path: str, token: str | None, **kwargs: Any) -> int:
        async with kring.http(app, token) as http:
            return (await http.request(method, path, **kwargs)).status_code

    other_bureau = kring.token(Role.BUREAU, organisation_id="bjz-gelderland")
    funder = kring.token(Role.FUNDER, organisation_id="prov-utrecht")
    coordinator = kring.token(Role.COORDINATOR, subject="coord-7")
    assert await status("GET", f"/cases/{case_id}", None) == 401
    assert await status("GET", f"/cases/{case_id}", "forged.token.value") == 401
    assert await status("GET", f"/cases/{case_id}", funder) == 403
    assert await status("GET", f"/cases/{case_id}", other_bureau) == 403
    assert await status("GET", f"/cases/{case_id}", coordinator) == 403
    assert await status("GET", f"/cases/{case_id}/contact", coordinator) == 403
    assert await status("POST", "/referrals", other_bureau, json=body) == 403, "only for one's own organisation"
    assert await status("POST", "/referrals", funder, json=body) == 403
    assert await status("GET", "/cases/case-doesnotexist00", bureau) == 404

    assigned = CoordinatorAssigned(
        case_id=case_id, coordinator_id="coord-7", assigned_at=case.json()["received_at"], region=Region(province="UT")
    )
    await kring.publish(Envelope.wrap(assigned, source="kring/scheduling"))

    async def coordinator_reads_contact() -> bool:
        return await status("GET", f"/cases/{case_id}/contact", coordinator) == 200

    await eventually(coordinator_reads_contact, what="the assigned coordinator to read the contact person")
    async with kring.http(app, coordinator) as http:
        contact = (await http.get(f"/cases/{case_id}/contact")).json()
    assert contact["contact"]["name"] == body["contact"]["name"]
    assert await status("GET", f"/cases/{case_id}/contact", kring.token(Role.COORDINATOR, subject="coord-8")) == 403




async def test_a_changed_resubmission_is_rejected_naming_the_changed_fields_and_the_case_stays(kring: Harness) -> None:
    app = await started(kring)
    events = await kring.probe(kring.topology.events.name, "referral.received")
    replies = await kring.probe(kring.topology.replies.name, f"referral.*.{BUREAU}")
    command = submit_referral(BUREAU, reference=f"BJZ/2026/{uuid.uuid4().hex[:6]}")
    await send(kring, command)
    await eventually(lambda: kring.depth(replies.name), what="first answer")
    changed = {**command, "urgency": "urgent", "contact": {**command["contact"], "phone": "+31 6 99999999"}}
    await send(kring, changed)
    answers = await kring.drain(replies.name, settle=1.5)
    assert [m.routing_key for m in answers] == [f"referral.accepted.{BUREAU}", f"referral.rejected.{BUREAU}"]
    rejection = data(answers[1])
    assert [e["field"] for e in rejection["errors"]] == ["contact.phone", "urgency"]
    assert "99999999" not in answers[1].body.decode() and rejection["external_reference"] == command["external_reference"]
    [received] = [data(m) for m in await kring.drain(events.name, settle=0.5)]
    async with kring.http(app, kring.token(Role.OPS, subject="ops-1")) as http:
        case = (await http.get(f"/cases/{received['case_id']}")).json()
    assert case["urgency"] == "normal", "nothing of the changed content applied"

    body = {**referral_request(), "external_reference": f"HTTP/{uuid.uuid4().hex[:6]}"}
    async with kring.http(app, kring.token(Role.BUREAU, subject="bjz-user", organisation_id=BUREAU)) as http:
        assert (await http.post("/referrals", json=body)).status_code == 201
        assert (await http.post("/referrals", json=body)).json()["resubmission"] is True
        conflict = await http.post("/referrals", json={**body, "language": "ar"})
    assert conflict.status_code == 409 and conflict.json()["detail"].startswith("language: differs")


async def test_an_adult_subject_is_referred_without_children_and_travels_as_such(kring: Harness) -> None:
    app = await started(kring)
    events = await kring.probe(kring.topology.events.name, "referral.received")
    command = submit_referral(
        BUREAU, subject="adult", children=[], statutory_context="none", bottom_line_requirements=[],
        responsible_professional_id=None, concern_categories=["addiction"],
    )  # fmt: skip
    await send(kring, command)
    [received] = [data(m) for m in await kring.drain(events.name, settle=1.5)]
    assert (received["subject"], received["child_age_bands"], received["bottom_line_requirements"]) == ("adult", [], [])
    public = self_referral(subject="household", children=[], concern_categories=["income_debt"])
    async with kring.http(app) as http:
        created = await http.post("/self-referrals", json=public)
    assert created.status_code == 201, created.text
    await accept_intake(kring, app, created.json()["case_id"])
    [household] = [data(m) for m in await kring.drain(events.name, settle=1.5)]
    assert (household["subject"], household["child_age_bands"]) == ("household", [])
