"""Signed webhook in → Redis → Celery worker process → reply or note visible in the sandbox."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from integrations.sandbox import ESCALATION_GROUP_ID, sign_zendesk_webhook
from integrations.zendesk.webhook import TEST_SIGNING_SECRET


def signed_post(stack, body: bytes, secret: str | None = None, timestamp: str | None = None, headers=None):
    timestamp = timestamp or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = sign_zendesk_webhook(secret or stack.settings.webhook_secret(), timestamp, body)
    return requests.post(
        stack.webhook_url,
        data=body,
        headers={"Content-Type": "application/json", "X-Zendesk-Webhook-Signature": signature,
                 "X-Zendesk-Webhook-Signature-Timestamp": timestamp, **(headers or {})},
        timeout=10,
    )


def test_answerable_ticket_gets_one_public_reply_with_sources(stack):
    ticket_id = stack.sandbox.create_ticket(
        "Locked out after getting a new phone",
        "Hi, I switched phones and my authenticator app no longer gives me codes. How can I sign in?",
        "dana.whitfield@example.com", "Dana Whitfield", tags=["account"],  # a requester of this test's own
    )
    event = stack.processed(ticket_id)
    assert event["status"] == "done"
    # The requester is read once, for the greeting; the look before replying skips it.
    requester = f"/api/v2/users/{stack.sandbox.ticket(ticket_id)['requester_id']}.json"
    assert sum(r.method == "GET" and r.path == requester for r in stack.sandbox.state.requests) == 1

    [reply] = stack.bot_comments(ticket_id)
    assert reply["public"] is True
    assert "recovery code" in reply["plain_body"].lower()
    assert "Hi Dana," in reply["html_body"]
    assert re.search(r'href="http[^"]+/hc/en-us/articles/\d+', reply["html_body"])
    ticket = stack.sandbox.ticket(ticket_id)
    assert "ai_answered" in ticket["tags"] and ticket["status"] == "pending"

    [decision] = stack.ledger.decisions_for(str(ticket_id))
    assert decision["action"] == "auto_send" and decision["confidence"] >= 70
    assert set(json.loads(decision["components"])) >= {"retrieval_strength", "question_coverage", "draft_support", "drafter_answered"}


def test_unanswerable_ticket_gets_an_internal_note_and_goes_to_humans(stack):
    ticket_id = stack.sandbox.create_ticket(
        "On-premise install",
        "Can we run Orbitask on our own servers in our data center, air-gapped, with an Oracle database?",
        "it@example.com", "Sam", tags=["sales"],
    )
    stack.processed(ticket_id)

    [note] = stack.bot_comments(ticket_id)
    assert note["public"] is False
    for component in ("retrieval_strength", "question_coverage", "draft_support", "drafter_answered"):
        assert component in note["html_body"]
    ticket = stack.sandbox.ticket(ticket_id)
    assert "ai_escalated" in ticket["tags"]
    assert ticket["group_id"] == ESCALATION_GROUP_ID
    [decision] = stack.ledger.decisions_for(str(ticket_id))
    assert decision["action"] == "escalate" and json.loads(decision["reasons"])


def test_always_human_tag_escalates_an_answerable_ticket(stack):
    ticket_id = stack.sandbox.create_ticket(
        "Locked out after getting a new phone",
        "I switched phones and my authenticator app no longer gives me codes. How can I sign in?",
        "vip@example.com", "Vera", tags=["vip"],
    )
    stack.processed(ticket_id)
    [note] = stack.bot_comments(ticket_id)
    assert note["public"] is False and "always handled by a human" in note["plain_body"]


def test_redelivered_webhook_and_rerun_task_never_reply_twice(stack):
    ticket_id = stack.sandbox.create_ticket(
        "Download invoices", "Where can I download our invoices as PDF?", "ap@example.com", "Alex", tags=["billing"],
    )
    first = stack.processed(ticket_id)

    stack.sandbox.fire_webhook(ticket_id)  # a second invocation for the same ticket creation
    stack.enqueue(first["id"])  # and the same task delivered to a worker again
    time.sleep(2)
    assert len(stack.bot_comments(ticket_id)) == 1

    body = json.dumps({"ticket_id": str(ticket_id)}).encode()
    headers = {"X-Zendesk-Webhook-Invocation-Id": f"inv-dup-{ticket_id}"}
    assert signed_post(stack, body, headers=headers).status_code == 202
    again = signed_post(stack, body, headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    time.sleep(1)
    assert len(stack.bot_comments(ticket_id)) == 1


def test_event_style_webhook_is_processed(stack):
    ticket_id = stack.sandbox.create_ticket(
        "GitHub PRs", "Can Orbitask show GitHub pull requests on tasks?", "dev@example.com", "Kim", tags=[],
    )
    stack.processed(ticket_id)
    body = json.dumps({
        "type": "zen:event-type:ticket.created", "account_id": 1, "id": f"01HEVENT{ticket_id}",
        "zendesk_event_version": "2022-11-06", "subject": f"zen:ticket:{ticket_id}",
        "detail": {"id": str(ticket_id), "subject": "GitHub PRs"}, "event": {},
    }).encode()
    response = signed_post(stack, body)
    assert response.status_code == 202
    assert len(stack.bot_comments(ticket_id)) == 1  # same ticket creation: still one answer


def test_rate_limited_helpdesk_is_retried_and_answered_once(stack):
    stack.sandbox.state.inject_fault("PUT", r"/api/v2/tickets/\d+\.json", 429, times=2, retry_after=1)
    ticket_id = stack.sandbox.create_ticket(
        "VAT on invoices", "How do I add our VAT number to the invoices?", "fin@example.com", "Noor", tags=["billing"],
    )
    event = stack.processed(ticket_id, timeout=60)
    assert event["status"] == "done"
    assert len(stack.bot_comments(ticket_id)) == 1
    throttled = [r for r in stack.sandbox.state.requests if r.method == "PUT" and r.status == 429]
    assert len(throttled) >= 2


def test_missing_ticket_ends_in_a_dead_letter(stack):
    response = signed_post(stack, b'{"ticket_id": "987654"}')
    assert response.status_code == 202
    event = stack.processed(987654)
    assert event["status"] == "dead"
    [letter] = [d for d in stack.ledger.dead_letters() if d["ticket_id"] == "987654"]
    assert "not found" in letter["error"].lower()


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("no signature", 401, "missing"),
        ("forged", 401, "does not match"),
        ("stale", 401, "old"),
        ("future", 401, "ahead"),
        ("not json", 400, "not valid JSON"),
        ("no ticket id", 400, "no ticket id"),
        ("too large", 413, "larger than"),
    ],
)
def test_bad_webhooks_are_refused_with_a_clear_error(stack, case, status, message):
    now = datetime.now(timezone.utc)
    stamp = lambda delta: (now + delta).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    if case == "no signature":
        response = requests.post(stack.webhook_url, data=b'{"ticket_id": "1"}', timeout=10)
    elif case == "forged":
        response = signed_post(stack, b'{"ticket_id": "1"}', secret="not-the-secret")
    elif case == "stale":
        response = signed_post(stack, b'{"ticket_id": "1"}', timestamp=stamp(timedelta(minutes=-6)))
    elif case == "future":
        response = signed_post(stack, b'{"ticket_id": "1"}', timestamp=stamp(timedelta(minutes=6)))
    elif case == "not json":
        response = signed_post(stack, b"{ticket_id: 1")
    elif case == "no ticket id":
        response = signed_post(stack, b'{"subject": "hello"}')
    else:
        response = signed_post(stack, b'{"ticket_id": "1", "pad": "' + b"x" * (1024 * 1024) + b'"}')
    assert response.status_code == status
    assert message.lower() in response.json()["error"].lower()


def test_zendesk_test_delivery_answers_200_and_queues_nothing(stack):
    response = signed_post(stack, b'{"ticket_id": "424242"}', secret=TEST_SIGNING_SECRET)
    assert response.status_code == 200
    assert "test" in response.json()["status"]
    assert stack._events(424242) == []
