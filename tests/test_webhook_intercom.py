"""Intercom webhooks: the X-Hub-Signature check and the normalisation of notifications."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from helpdesk_bot.errors import BadInput
from integrations.intercom.webhook import SIGNATURE_HEADER, check_signature, parse_event, signature
from integrations.sandbox.intercom import sign_intercom_notification

FIXTURES = Path(__file__).parent / "fixtures" / "intercom"
SECRET = "the-apps-client-secret"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def refused(headers: dict, body: bytes) -> BadInput:
    with pytest.raises(BadInput) as caught:
        check_signature(SECRET, headers, body)
    return caught.value


# --- signature -----------------------------------------------------------------------------


def test_signature_is_hmac_sha1_hex_of_the_raw_body():
    body = fixture("conversation_user_created.json")
    expected = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert signature(SECRET, body) == expected == sign_intercom_notification(SECRET, body)


def test_a_signed_notification_is_accepted():
    body = fixture("conversation_user_replied.json")
    check_signature(SECRET, {SIGNATURE_HEADER: signature(SECRET, body)}, body)
    check_signature(SECRET, {SIGNATURE_HEADER: signature(SECRET, body).upper().replace("SHA1=", "sha1=")}, body)


@pytest.mark.parametrize("headers, problem", [
    ({}, "missing"),
    ({SIGNATURE_HEADER: ""}, "missing"),
    ({SIGNATURE_HEADER: "sha1=0000000000000000000000000000000000000000"}, "does not match"),
    ({SIGNATURE_HEADER: "sha256=" + "0" * 64}, "does not match"),
    ({SIGNATURE_HEADER: "sïgnature"}, "does not match"),  # Werkzeug hands over latin-1 headers: no crash
])
def test_missing_or_forged_signature_is_refused_with_401(headers, problem):
    error = refused(headers, fixture("conversation_user_created.json"))
    assert error.status == 401 and problem in str(error)


def test_a_signature_of_another_body_or_secret_is_refused():
    body = fixture("conversation_user_created.json")
    assert refused({SIGNATURE_HEADER: signature("another-secret", body)}, body).status == 401
    assert refused({SIGNATURE_HEADER: signature(SECRET, body + b" ")}, body).status == 401


# --- notifications -------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind", [
    ("conversation_user_created.json", "ticket.created"),
    ("conversation_user_replied.json", "ticket.updated"),
])
def test_customer_topics_name_the_conversation(name, kind):
    event = parse_event(fixture(name))
    assert (event.helpdesk, event.ticket_id, event.kind) == ("intercom", "215467891234567", kind)
    assert event.delivery_id == json.loads(fixture(name))["id"]


@pytest.mark.parametrize("name", ["conversation_admin_assigned.json", "ping.json"])
def test_other_topics_are_acknowledged_with_none(name):
    assert parse_event(fixture(name)) is None


def test_a_notification_without_an_id_is_deduped_on_its_body():
    payload = json.loads(fixture("conversation_user_replied.json"))
    del payload["id"]
    body = json.dumps(payload).encode()
    assert parse_event(body).delivery_id == "sha1:" + hashlib.sha1(body).hexdigest() == parse_event(body).delivery_id


def test_a_numeric_conversation_id_is_accepted():
    payload = json.loads(fixture("conversation_user_created.json"))
    payload["data"]["item"]["id"] = 123456789
    assert parse_event(json.dumps(payload).encode()).ticket_id == "123456789"


@pytest.mark.parametrize("body, problem", [
    (b"topic=conversation.user.created", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"", "not valid JSON"),
    (b'[{"topic": "conversation.user.created"}]', "JSON object"),
    (b'{"type": "notification_event", "data": {}}', "no topic"),
    (b'{"topic": 42}', "no topic"),
    (b'{"topic": "conversation.user.created"}', "no conversation id"),
    (b'{"topic": "conversation.user.created", "data": {"item": {}}}', "no conversation id"),
    (b'{"topic": "conversation.user.created", "data": {"item": {"id": ""}}}', "no conversation id"),
    (b'{"topic": "conversation.user.created", "data": {"item": ["503"]}}', "no conversation id"),
    (b'{"topic": "conversation.user.replied", "data": {"item": {"id": true}}}', "got bool"),
    (b'{"topic": "conversation.user.replied", "data": {"item": {"id": {"id": 1}}}}', "got dict"),
    (b'{"topic": "conversation.user.replied", "data": {"item": {"id": "503/../1"}}}', "must be digits"),
    (b'{"topic": "conversation.user.replied", "data": {"item": {"id": "\\u0665\\u0660\\u0663"}}}', "must be digits"),
    (b'{"topic": "conversation.user.replied", "data": {"item": {"id": -503}}}', "must be digits"),
])
def test_a_bad_notification_is_refused_with_400_naming_the_problem(body, problem):
    with pytest.raises(BadInput) as caught:
        parse_event(body)
    assert caught.value.status == 400 and problem in str(caught.value)
