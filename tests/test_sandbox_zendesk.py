"""The sandbox Zendesk, driven by the real zenpy client and raw HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket, User
from zenpy.lib.api_objects.help_centre_objects import Article
from zenpy.lib.exception import APIException, RecordNotFoundException

from integrations.sandbox import (
    ACCOUNT_ID, BOT_AGENT_EMAIL, BOT_AGENT_ID, ESCALATION_GROUP_ID, HUMAN_AGENT_ID, SandboxHelpdesk,
    sign_zendesk_webhook,
)
from integrations.sandbox.__main__ import parse_args

from harness import Receiver

SECTION_ID = 360000000101
DRAFT_ID = 360000009999
TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="


def help_center_fixture() -> dict:
    """35 published articles (more than one 30-article page) and a draft, one per day in 2024."""
    articles = [{
        "id": 360000001000 + i,
        "title": f"How to fix problem {i}",
        "body": f"<p>Step one for problem {i}.</p>",
        "section_id": SECTION_ID,
        "position": i,
        "created_at": f"2024-01-{i % 28 + 1:02d}T10:00:00Z",
        "updated_at": f"2024-02-{i % 28 + 1:02d}T10:00:00Z",
    } for i in range(35)]
    articles.append({"id": DRAFT_ID, "title": "Unreleased feature", "body": "<p>Soon.</p>",
                     "section_id": SECTION_ID, "draft": True, "position": 99,
                     "updated_at": "2024-03-01T00:00:00Z"})
    return {
        "categories": [{"id": 360000000001, "name": "General"}],
        "sections": [{"id": SECTION_ID, "category_id": 360000000001, "name": "Troubleshooting"},
                     {"id": 360000000102, "category_id": 360000000001, "name": "Billing", "position": 1}],
        "articles": articles,
    }


@pytest.fixture
def sandbox(monkeypatch):
    helpdesk = SandboxHelpdesk(help_center=help_center_fixture()).start()
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", helpdesk.netloc)
    yield helpdesk
    helpdesk.stop()


@pytest.fixture
def zc(sandbox):
    return Zenpy(subdomain="sandbox", email=BOT_AGENT_EMAIL, token="x", disable_cache=True)


@pytest.fixture
def http(sandbox):
    """A raw client authenticated the way zenpy does (Basic email/token:TOKEN)."""
    session = requests.Session()
    session.auth = (f"{BOT_AGENT_EMAIL}/token", "x")
    yield session
    session.close()


@pytest.fixture
def receiver():
    endpoint = Receiver("/webhooks/zendesk")
    yield endpoint
    endpoint.close()


def verify(delivery: dict, secret: str) -> bool:
    """What the product's webhook endpoint must do: HMAC over timestamp + raw body."""
    timestamp = delivery["headers"]["X-Zendesk-Webhook-Signature-Timestamp"]
    expected = base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + delivery["body"],
                                         hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, delivery["headers"]["X-Zendesk-Webhook-Signature"])


# Signing

def test_signature_matches_zendesk_test_vector():
    signature = sign_zendesk_webhook(TEST_SECRET, "2024-04-17T17:18:10Z", b'{"ticket_id":"35436"}')
    assert signature == "urEESqPZkV0Ax/YXkK/ewKcAQh7HKECkdn33WHgibug="


# Auth and errors

def test_requests_without_authorization_get_401(sandbox, http):
    response = requests.get(f"{sandbox.url}/api/v2/users/me.json", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "Couldn't authenticate you"}
    bearer = requests.get(f"{sandbox.url}/api/v2/users/me.json", timeout=5,
                          headers={"Authorization": "Bearer some-oauth-token"})
    assert bearer.json()["user"]["id"] == BOT_AGENT_ID


def test_unknown_ids_answer_record_not_found(zc, http, sandbox):
    with pytest.raises(RecordNotFoundException):
        zc.tickets(id=999)
    response = http.get(f"{sandbox.url}/api/v2/help_center/articles/1.json")
    assert response.status_code == 404
    assert response.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_invalid_update_answers_422(zc, sandbox):
    ticket_id = sandbox.create_ticket("Hello", "Question", "ann@example.com")
    with pytest.raises(APIException) as raised:
        zc.tickets.update(Ticket(id=ticket_id, status="waiting"))
    assert raised.value.response.status_code == 422
    assert raised.value.response.json()["error"] == "RecordInvalid"


# Users

def test_users_me_is_the_bot_agent(zc, sandbox):
    me = zc.users.me()
    assert (me.id, me.name, me.email, me.role) == (BOT_AGENT_ID, "Helpdesk Bot", BOT_AGENT_EMAIL, "agent")
    users = list(zc.users(ids=[BOT_AGENT_ID, HUMAN_AGENT_ID]))
    assert {u.id for u in users} == {BOT_AGENT_ID, HUMAN_AGENT_ID}
    assert [g.name for g in zc.groups()] == ["Support", "Billing"]


# Tickets

def test_create_ticket_with_zenpy_creates_the_requester(zc):
    created = zc.tickets.create(Ticket(subject="Can't log in", comment=Comment(body="I get error 42."),
                                       requester=User(name="Ann Lee", email="ann@example.com"),
                                       tags=["Web", "login"], priority="high"))
    ticket = zc.tickets(id=created.ticket.id)
    assert (ticket.status, ticket.subject, ticket.description) == ("new", "Can't log in", "I get error 42.")
    assert ticket.tags == ["login", "web"]  # Zendesk lowercases tags
    assert (ticket.priority, ticket.via.channel, ticket.submitter_id) == ("high", "api", BOT_AGENT_ID)
    requester = zc.users(id=ticket.requester_id)
    assert (requester.role, requester.email, requester.name) == ("end-user", "ann@example.com", "Ann Lee")
    events = created.audit.events
    assert events[0]["type"] == "Comment" and events[0]["author_id"] == ticket.requester_id
    created_fields = {e["field_name"]: e["value"] for e in events if e["type"] == "Create"}
    assert created_fields["status"] == "new" and created_fields["requester_id"] == str(ticket.requester_id)


def test_internal_note_status_group_and_public_reply(zc, sandbox):
    ticket_id = sandbox.create_ticket("Refund", "Please refund order 7.", "bob@example.com", "Bob")

    ticket = zc.tickets(id=ticket_id)
    ticket.comment = Comment(html_body="<p>Needs a <b>human</b>:</p><ul><li>refund</li></ul>", public=False)
    ticket.status = "open"
    ticket.group_id = ESCALATION_GROUP_ID
    audit = zc.tickets.update(ticket).audit
    changes = {e["field_name"]: (e["previous_value"], e["value"]) for e in audit.events if e["type"] == "Change"}
    assert changes["status"] == ("new", "open")
    assert changes["group_id"] == (None, str(ESCALATION_GROUP_ID))
    assert audit.author_id == BOT_AGENT_ID and audit.via.channel == "api"

    reply = zc.tickets(id=ticket_id)
    reply.comment = Comment(body="Your refund is on its way.\n\nThanks!")
    reply.status = "pending"
    zc.tickets.update(reply)

    first, note, answer = list(zc.tickets.comments(ticket=ticket_id))
    assert (first.body, first.public, first.via.channel) == ("Please refund order 7.", True, "web")
    assert (note.public, note.author_id, note.body) == (False, BOT_AGENT_ID, "Needs a human:\n\nrefund")
    assert note.html_body == ('<div class="zd-comment" dir="auto"><p>Needs a <b>human</b>:</p>'
                              "<ul><li>refund</li></ul></div>")
    assert (answer.public, answer.plain_body) == (True, "Your refund is on its way.\n\nThanks!")
    assert answer.html_body == ('<div class="zd-comment" dir="auto"><p dir="auto">Your refund is on its way.</p>'
                                '\n\n<p dir="auto">Thanks!</p></div>')
    shown = sandbox.ticket(ticket_id)
    assert (shown["status"], shown["group_id"]) == ("pending", ESCALATION_GROUP_ID)


def test_customer_reply_reopens_a_pending_ticket(zc, sandbox):
    ticket_id = sandbox.create_ticket("Hi", "Where is my order?", "cy@example.com")
    zc.tickets.update(Ticket(id=ticket_id, status="pending", comment=Comment(body="It ships today.")))
    sandbox.add_customer_reply(ticket_id, "It did not arrive.")
    assert sandbox.ticket(ticket_id)["status"] == "open"
    last = sandbox.comments(ticket_id)[-1]
    assert (last["author_id"], last["public"]) == (sandbox.ticket(ticket_id)["requester_id"], True)


def test_comments_page_beyond_one_cursor_page(zc, sandbox, http):
    ticket_id = sandbox.create_ticket("Chatty", "Comment 0", "dee@example.com")
    for n in range(1, 120):
        http.put(f"{sandbox.url}/api/v2/tickets/{ticket_id}.json",
                 json={"ticket": {"comment": {"body": f"Comment {n}", "public": False}}}).raise_for_status()

    assert [c.body for c in zc.tickets.comments(ticket=ticket_id)] == [f"Comment {n}" for n in range(120)]
    comment_calls = [r for r in sandbox.state.requests if r.path.endswith("/comments.json")]
    assert len(comment_calls) == 2  # zenpy asked for page[size]=100, then followed links.next

    first = http.get(f"{sandbox.url}/api/v2/tickets/{ticket_id}/comments.json",
                     params={"page[size]": 100}).json()
    assert first["meta"]["has_more"] is True
    assert first["links"]["next"].startswith(f"{sandbox.url}/api/v2/tickets/{ticket_id}/comments.json?")
    offset = http.get(f"{sandbox.url}/api/v2/tickets/{ticket_id}/comments.json",
                      params={"page": 2, "per_page": 50}).json()
    assert (offset["count"], len(offset["comments"]), offset["comments"][0]["body"]) == (120, 50, "Comment 50")
    assert offset["next_page"].endswith("page=3&per_page=50")
    assert offset["previous_page"].endswith("page=1&per_page=50")


def test_tags_endpoint_and_update_tag_fields(zc, sandbox, http):
    ticket_id = sandbox.create_ticket("Tags", "Body", "eve@example.com", tags=["vip"])
    zc.tickets.add_tags(ticket_id, ["bot_answered"])
    assert sandbox.ticket(ticket_id)["tags"] == ["bot_answered", "vip"]

    url = f"{sandbox.url}/api/v2/tickets/{ticket_id}"
    assert http.delete(f"{url}/tags.json", json={"tags": ["vip"]}).json() == {"tags": ["bot_answered"]}
    http.put(f"{url}.json", json={"ticket": {"additional_tags": ["a"], "remove_tags": ["bot_answered"]}})
    assert http.get(f"{url}/tags.json").json() == {"tags": ["a"]}
    http.put(f"{url}.json", json={"ticket": {"tags": ["replaced"]}})
    assert sandbox.ticket(ticket_id)["tags"] == ["replaced"]
    tag_events = [e["type"] for a in zc.tickets.audits(ticket=ticket_id) for e in a.events
                  if e.get("field_name") == "tags"]
    assert tag_events == ["Create", "Change", "Change", "Change", "Change"]


def test_idempotency_key_returns_the_same_ticket(sandbox, http):
    body = {"ticket": {"subject": "Order", "comment": {"body": "Where is it?"},
                       "requester": {"name": "Fay", "email": "fay@example.com"}}}
    url = f"{sandbox.url}/api/v2/tickets.json"
    first = http.post(url, json=body, headers={"Idempotency-Key": "k-1"})
    again = http.post(url, json=body, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["ticket"]["id"] == again.json()["ticket"]["id"]
    assert (first.headers["x-idempotency-lookup"], again.headers["x-idempotency-lookup"]) == ("miss", "hit")

    changed = http.post(url, json={"ticket": {**body["ticket"], "subject": "Other"}},
                        headers={"Idempotency-Key": "k-1"})
    assert changed.status_code == 400 and changed.json()["error"] == "IdempotentRequestError"
    assert http.post(url, json=body).json()["ticket"]["id"] == first.json()["ticket"]["id"] + 1


def test_closed_tickets_cannot_be_updated(zc, sandbox):
    ticket_id = sandbox.create_ticket("Old", "Body", "gil@example.com")
    zc.tickets.update(Ticket(id=ticket_id, status="closed"))
    with pytest.raises(APIException) as raised:
        zc.tickets.update(Ticket(id=ticket_id, comment=Comment(body="again")))
    assert raised.value.response.status_code == 422


# Faults

def test_rate_limit_fault_carries_retry_after(sandbox, http):
    sandbox.state.inject_fault("GET", r"/tickets/\d+\.json$", 429, retry_after=7)
    ticket_id = sandbox.create_ticket("Hi", "Body", "hal@example.com")
    url = f"{sandbox.url}/api/v2/tickets/{ticket_id}.json"

    limited = http.get(url)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert limited.json()["error"] == "APIRateLimitExceeded"
    assert http.get(url).status_code == 200
    assert [r.status for r in sandbox.state.requests if r.path.endswith(f"/tickets/{ticket_id}.json")] == [
        429, 200]


def test_zenpy_waits_out_retry_after_and_service_faults_surface(zc, sandbox):
    ticket_id = sandbox.create_ticket("Hi", "Body", "ivy@example.com")
    sandbox.state.inject_fault("GET", rf"/tickets/{ticket_id}\.json$", 429, retry_after=1)
    started = time.monotonic()
    assert zc.tickets(id=ticket_id).id == ticket_id  # zenpy sleeps Retry-After, then retries
    assert time.monotonic() - started >= 1

    sandbox.state.inject_fault("*", r"/users/me\.json$", 503)
    with pytest.raises(APIException) as raised:
        zc.users.me()
    assert raised.value.response.status_code == 503

    sandbox.state.inject_fault("GET", r"/users/me\.json$", None, delay=0.5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{sandbox.url}/api/v2/users/me.json", auth=(f"{BOT_AGENT_EMAIL}/token", "x"), timeout=0.1)


# Help Center

def test_help_center_articles_page_through_all_articles(zc, sandbox):
    every = list(zc.help_center.articles())  # zenpy default: cursor pages of 100
    assert len(every) == 36 and DRAFT_ID in {a.id for a in every}  # drafts are listed, like for agents
    assert every[0].html_url == f"{sandbox.url}/hc/en-us/articles/360000001000-How-to-fix-problem-0"

    offset = list(zc.help_center.articles(cursor_pagination=False))  # page/per_page, 30 a page
    cursor = list(zc.help_center.articles(cursor_pagination=10))
    assert [a.id for a in offset] == [a.id for a in cursor] == [a.id for a in every]
    article_calls = [r.path for r in sandbox.state.requests if r.path == "/api/v2/help_center/articles.json"]
    assert len(article_calls) == 1 + 2 + 4


def test_help_center_offset_page_shape(sandbox, http):
    page = http.get(f"{sandbox.url}/api/v2/help_center/en-us/articles.json",
                    params={"per_page": 30, "sort_by": "updated_at", "sort_order": "desc"}).json()
    assert {k: page[k] for k in ("page", "per_page", "page_count", "count", "sort_by", "sort_order")} == {
        "page": 1, "per_page": 30, "page_count": 2, "count": 36, "sort_by": "updated_at", "sort_order": "desc"}
    assert page["previous_page"] is None
    assert page["next_page"].startswith(f"{sandbox.url}/api/v2/help_center/en-us/articles.json?")
    assert page["articles"][0]["id"] == DRAFT_ID  # the most recently updated
    sections = http.get(f"{sandbox.url}/api/v2/help_center/sections.json").json()["sections"]
    assert [s["name"] for s in sections] == ["Troubleshooting", "Billing"]
    in_section = http.get(f"{sandbox.url}/api/v2/help_center/sections/{SECTION_ID}/articles.json").json()
    assert in_section["count"] == 36


def test_incremental_export_and_admin_writes(zc, sandbox, http):
    start = int(time.time())
    assert list(zc.help_center.articles.incremental(start_time=start)) == []

    first = 360000001000
    http.put(f"{sandbox.url}/api/v2/help_center/articles/{first}.json",
             json={"article": {"body": "<p>New fix.</p>"}}).raise_for_status()
    created = zc.help_center.articles.create(section=SECTION_ID,
                                             article=Article(title="Brand new", body="<p>Hi</p>", locale="en-us"))
    changed = list(zc.help_center.articles.incremental(start_time=start))
    assert [a.id for a in changed] == [first, created.id]
    assert changed[0].edited_at == changed[0].updated_at and changed[0].body == "<p>New fix.</p>"

    raw = http.get(f"{sandbox.url}/api/v2/help_center/incremental/articles.json",
                   params={"start_time": start}).json()
    assert (raw["count"], raw["next_page"]) == (2, None) and raw["end_time"] >= start

    assert http.delete(f"{sandbox.url}/api/v2/help_center/articles/{first}.json").status_code == 204
    assert http.get(f"{sandbox.url}/api/v2/help_center/articles/{first}.json").status_code == 404
    assert first not in {a.id for a in zc.help_center.articles()}
    assert [a.id for a in zc.help_center.articles.incremental(start_time=start)] == [created.id]


def test_help_center_loads_from_a_file(tmp_path):
    path = tmp_path / "help_center.json"
    path.write_text(json.dumps(help_center_fixture()))
    with SandboxHelpdesk(help_center=path) as helpdesk:
        page = requests.get(f"{helpdesk.url}/hc/en-us/articles/360000001003-How-to-fix-problem-3", timeout=5)
        assert page.status_code == 200 and "Step one for problem 3." in page.text


# Webhooks

def test_ticket_created_webhook_is_signed_and_retried(sandbox, receiver):
    receiver.statuses = [500]  # the first attempt fails, the retry succeeds
    sandbox.configure_webhook(receiver.url, TEST_SECRET)
    ticket_id = sandbox.create_ticket("Locked out", "Help", "jo@example.com", tags=["vip", "web"])
    assert sandbox.wait_for_webhooks()

    failed, delivered = receiver.deliveries
    assert all(verify(d, TEST_SECRET) for d in receiver.deliveries)
    assert not verify(delivered, "another secret")
    headers = delivered["headers"]
    assert headers["X-Zendesk-Webhook-Invocation-Id"] == failed["headers"]["X-Zendesk-Webhook-Invocation-Id"]
    assert headers["X-Zendesk-Account-Id"] == str(ACCOUNT_ID)
    assert json.loads(delivered["body"]) == {"ticket_id": str(ticket_id),
                                             "ticket_url": f"{sandbox.netloc}/agent/tickets/{ticket_id}",
                                             "tags": "vip web", "event": "ticket.created"}
    assert [(a.ticket_id, a.attempt, a.status_code) for a in sandbox.state.webhook_attempts] == [
        (ticket_id, 1, 500), (ticket_id, 2, 200)]

    again = sandbox.fire_webhook(ticket_id)
    assert sandbox.wait_for_webhooks()
    assert receiver.deliveries[-1]["headers"]["X-Zendesk-Webhook-Invocation-Id"] == again
    assert again != headers["X-Zendesk-Webhook-Invocation-Id"]


def test_event_style_webhook_and_customer_reply_webhook(sandbox, receiver):
    sandbox.configure_webhook(receiver.url, "s3cret", style="event", on_update=True)
    ticket_id = sandbox.create_ticket("Billing", "Charged twice", "kim@example.com")
    sandbox.add_customer_reply(ticket_id, "Any news?")
    assert sandbox.wait_for_webhooks()

    replied, created = sorted((json.loads(d["body"]) for d in receiver.deliveries), key=lambda b: b["type"])
    assert created["type"] == "zen:event-type:ticket.created"
    assert (created["subject"], created["account_id"]) == (f"zen:ticket:{ticket_id}", ACCOUNT_ID)
    detail = created["detail"]
    assert (detail["id"], detail["description"], detail["group_id"], detail["via"]) == (
        str(ticket_id), "Charged twice", None, {"channel": "web"})
    assert replied["type"] == "zen:event-type:ticket.comment_added"
    assert replied["event"]["comment"]["body"] == "Any news?"
    assert replied["event"]["comment"]["author"]["is_staff"] is False
    assert len({created["id"], replied["id"]}) == 2


def test_no_webhook_for_agent_comments_or_when_unconfigured(sandbox, receiver, zc):
    ticket_id = sandbox.create_ticket("Quiet", "Body", "lu@example.com")  # no webhook configured yet
    sandbox.configure_webhook(receiver.url, "s", on_update=True)
    zc.tickets.update(Ticket(id=ticket_id, comment=Comment(body="Agent reply")))
    assert sandbox.wait_for_webhooks()
    assert receiver.deliveries == [] and sandbox.state.webhook_attempts == []


# CLI

def test_cli_requires_url_and_secret_together(capsys):
    assert parse_args(["--port", "9000", "--webhook-style", "event"]).port == 9000
    with pytest.raises(SystemExit):
        parse_args(["--webhook-url", "http://localhost/x"])
