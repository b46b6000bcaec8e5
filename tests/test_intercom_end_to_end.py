"""Intercom end to end: a signed notification from the sandbox Intercom → web app → Redis →
Celery worker process → reply or note in the sandbox; and the endpoint's error contract."""

from __future__ import annotations

import json
import re

import pytest
import requests

from integrations.intercom.webhook import signature
from integrations.sandbox.intercom import BOT_ADMIN_ID, SUPPORT_TEAM_ID


def post(stack, body: bytes, secret: str | None = None, headers: dict | None = None) -> requests.Response:
    signed = {"X-Hub-Signature": signature(secret or stack.settings.intercom_webhook_secret(), body)}
    return requests.post(stack.intercom_webhook_url, data=body,
                         headers={"Content-Type": "application/json", **signed, **(headers or {})}, timeout=10)


def notification(conversation_id: str, topic: str = "conversation.user.created", notification_id: str = "") -> bytes:
    return json.dumps({"type": "notification_event", "id": notification_id or f"notif_{conversation_id}_{topic}",
                       "topic": topic, "app_id": "sbx4ic0m",
                       "data": {"type": "notification_event_data", "item": {"type": "conversation", "id": conversation_id}},
                       "delivery_attempts": 1, "first_sent_at": 1734537600, "created_at": 1734537600}).encode()


def bot_parts(stack, conversation_id: str) -> list[dict]:
    return [p for p in stack.intercom.parts(conversation_id) if p["author"]["id"] == BOT_ADMIN_ID and p["body"]]


def test_an_answerable_conversation_gets_one_reply_with_sources_and_is_snoozed(stack):
    conversation_id = stack.intercom.start_conversation(
        "dana@example.com", "Hi, I switched phones and my authenticator app no longer gives me codes. How can I sign in?",
        "Dana Whitfield")
    stack.settled("intercom", conversation_id, 1)

    [reply] = bot_parts(stack, conversation_id)
    assert reply["part_type"] == "comment"
    assert "recovery code" in reply["body"].lower() and "Hi Dana," in reply["body"]
    assert re.search(r'href="http[^"]+/hc/en-us/articles/\d+', reply["body"])
    conversation = stack.intercom.conversation(conversation_id)
    assert {t["name"] for t in conversation["tags"]["tags"]} == {"ai_answered"}
    assert conversation["state"] == "snoozed"  # the policy's reply_status "pending"
    [decision] = stack.ledger.decisions_for(conversation_id, "intercom")
    assert decision["action"] == "auto_send"


def test_an_unanswerable_conversation_gets_a_note_and_goes_to_the_support_team(stack):
    conversation_id = stack.intercom.start_conversation(
        "it@example.com", "Can we run Orbitask on our own servers, air-gapped, with an Oracle database?", "Sam")
    stack.settled("intercom", conversation_id, 1)

    [note] = bot_parts(stack, conversation_id)
    assert note["part_type"] == "note" and "retrieval_strength" in note["body"]
    conversation = stack.intercom.conversation(conversation_id)
    assert conversation["team_assignee_id"] == int(SUPPORT_TEAM_ID)
    assert conversation["admin_assignee_id"] is None
    assert "ai_escalated" in {t["name"] for t in conversation["tags"]["tags"]}
    # The endpoint acknowledged the bot's own assignment and note notifications without queueing them.
    topics = {d.topic: d.status_code for d in stack.intercom.state.notifier.deliveries}
    assert topics["conversation.admin.assigned"] == topics["conversation.admin.noted"] == 200


def test_intercom_validates_the_endpoint_with_head(stack):
    response = requests.head(stack.intercom_webhook_url, timeout=10)
    assert response.status_code == 200


def test_a_notification_delivered_twice_is_recorded_once(stack):
    conversation_id = stack.intercom.start_conversation("ap@example.com", "Where can I download our invoices as PDF?", "Alex")
    stack.settled("intercom", conversation_id, 1)
    body = notification(conversation_id, "conversation.user.replied", f"notif_dup_{conversation_id}")
    first, again = post(stack, body), post(stack, body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    stack.settled("intercom", conversation_id, 2)
    assert len(bot_parts(stack, conversation_id)) == 1


@pytest.mark.parametrize("topic", ["conversation.admin.replied", "conversation.admin.closed", "contact.created", "ping"])
def test_other_topics_are_acknowledged_and_queue_nothing(stack, topic):
    response = post(stack, notification("919191", topic))
    assert response.status_code == 200 and response.json()["status"].startswith("ignored")
    assert stack._events(919191, "intercom") == []


@pytest.mark.parametrize(("case", "status", "message"), [
    ("no signature", 401, "missing"),
    ("forged", 401, "does not match"),
    ("not json", 400, "not valid JSON"),
    ("no conversation id", 400, "no conversation id"),
    ("too large", 413, "larger than"),
])
def test_bad_notifications_are_refused_with_a_clear_error(stack, case, status, message):
    if case == "no signature":
        response = requests.post(stack.intercom_webhook_url, data=notification("1"), timeout=10)
    elif case == "forged":
        response = post(stack, notification("1"), secret="not-the-client-secret")
    elif case == "not json":
        response = post(stack, b"{topic: conversation.user.created")
    elif case == "no conversation id":
        response = post(stack, b'{"type": "notification_event", "topic": "conversation.user.created", "data": {"item": {}}}')
    else:
        response = post(stack, b'{"topic": "ping", "pad": "' + b"x" * (1024 * 1024) + b'"}')
    assert response.status_code == status
    assert message.lower() in response.json()["error"].lower()


def test_a_rate_limited_reply_is_retried_and_posted_once(stack):
    stack.intercom.state.inject_fault("POST", r"^/conversations/\d+/reply$", 429, times=1, reset_after=1)
    conversation_id = stack.intercom.start_conversation(
        "noor@example.com", "How do I add our VAT number to the invoices?", "Noor")
    stack.settled("intercom", conversation_id, 1, timeout=60)
    assert len(bot_parts(stack, conversation_id)) == 1
    throttled = [r for r in stack.intercom.state.requests if r.status == 429 and r.path.endswith("/reply")]
    assert len(throttled) == 1


def test_a_conversation_that_does_not_exist_ends_in_a_dead_letter(stack):
    response = post(stack, notification("777000777"))
    assert response.status_code == 202
    [event] = stack.settled("intercom", "777000777", 1)
    assert event["status"] == "dead"
    [letter] = [d for d in stack.ledger.dead_letters() if d["ticket_id"] == "777000777"]
    assert letter["helpdesk"] == "intercom" and "not found" in letter["error"].lower()
    assert not letter["human_notified"]  # there is no conversation to put a note on
