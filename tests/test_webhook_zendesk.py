"""Zendesk webhooks: the signature check and the normalisation of both payload kinds."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpdesk_bot.errors import BadInput
from integrations.zendesk.webhook import (
    INVOCATION_HEADER,
    SIGNATURE_HEADER,
    TEST_SIGNING_SECRET,
    TIMESTAMP_HEADER,
    check_signature,
    parse_event,
    signature,
)

FIXTURES = Path(__file__).parent / "fixtures" / "zendesk"

SECRET = "our-own-webhook-signing-secret"
SENT_AT = "2024-04-17T17:18:10Z"
SENT = datetime(2024, 4, 17, 17, 18, 10, tzinfo=timezone.utc)
BODY = b'{"ticket_id":"35436"}'


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signed_headers(body: bytes = BODY, secret: str = SECRET, timestamp: str = SENT_AT) -> dict:
    return {SIGNATURE_HEADER: signature(secret, timestamp, body), TIMESTAMP_HEADER: timestamp}


def refused(secret: str, headers: dict, body: bytes = BODY, now: datetime = SENT) -> BadInput:
    with pytest.raises(BadInput) as caught:
        check_signature(secret, headers, body, now=now)
    return caught.value


# --- signature -----------------------------------------------------------------------------


def test_signature_matches_the_vector_from_the_zendesk_docs():
    assert signature(TEST_SIGNING_SECRET, SENT_AT, BODY) == "urEESqPZkV0Ax/YXkK/ewKcAQh7HKECkdn33WHgibug="


def test_genuine_delivery_is_accepted_as_genuine():
    assert check_signature(SECRET, signed_headers(), BODY, now=SENT) is True


def test_test_delivery_signed_with_the_test_secret_is_accepted_but_not_genuine():
    headers = signed_headers(secret=TEST_SIGNING_SECRET)
    assert check_signature(SECRET, headers, BODY, now=SENT) is False


def test_signature_from_another_secret_is_refused():
    error = refused(SECRET, signed_headers(secret="someone-elses-secret"))
    assert error.status == 401
    assert "signature does not match" in str(error)


def test_body_changed_after_signing_is_refused():
    error = refused(SECRET, signed_headers(), body=b'{"ticket_id":"35437"}')
    assert error.status == 401


def test_signature_over_another_timestamp_is_refused():
    headers = {**signed_headers(), TIMESTAMP_HEADER: "2024-04-17T17:18:11Z"}
    assert refused(SECRET, headers, now=SENT).status == 401


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_missing_header_is_refused(missing):
    headers = signed_headers()
    del headers[missing]
    error = refused(SECRET, headers)
    assert error.status == 401
    assert "missing" in str(error)


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_empty_header_is_refused(missing):
    error = refused(SECRET, {**signed_headers(), missing: ""})
    assert error.status == 401


@pytest.mark.parametrize("timestamp", [
    "2024-04-17 17:18:10",  # no T, no Z
    "1713374290",  # epoch seconds
    "2024-04-17T17:18:10+00:00",
    "yesterday",
])
def test_malformed_timestamp_is_refused(timestamp):
    error = refused(SECRET, signed_headers(timestamp=timestamp))
    assert error.status == 401
    assert TIMESTAMP_HEADER in str(error)


def test_non_ascii_signature_header_is_refused_not_crashed():
    # Werkzeug decodes header bytes as latin-1, so a forged header can hold any of them.
    refused(SECRET, {SIGNATURE_HEADER: "sïgnature", TIMESTAMP_HEADER: SENT_AT})


@pytest.mark.parametrize("seconds, accepted", [
    (0, True),
    (300, True),
    (301, False),
    (3600, False),
])
def test_replay_window_for_old_deliveries(seconds, accepted):
    now = SENT + timedelta(seconds=seconds)
    if accepted:
        assert check_signature(SECRET, signed_headers(), BODY, now=now) is True
    else:
        error = refused(SECRET, signed_headers(), now=now)
        assert error.status == 401
        assert "old" in str(error)


@pytest.mark.parametrize("seconds, accepted", [
    (300, True),
    (301, False),
    (86400, False),
])
def test_replay_window_for_deliveries_from_the_future(seconds, accepted):
    now = SENT - timedelta(seconds=seconds)
    if accepted:
        assert check_signature(SECRET, signed_headers(), BODY, now=now) is True
    else:
        error = refused(SECRET, signed_headers(), now=now)
        assert error.status == 401
        assert "ahead" in str(error)


def test_stale_test_delivery_is_refused_too():
    error = refused(SECRET, signed_headers(secret=TEST_SIGNING_SECRET), now=SENT + timedelta(seconds=301))
    assert error.status == 401


# --- payload normalisation --------------------------------------------------------------------


def test_trigger_body_names_the_ticket():
    event = parse_event({}, fixture("trigger_ticket_created.json"))
    assert event.helpdesk == "zendesk"
    assert event.ticket_id == "35436"
    assert event.kind == "ticket.created"


def test_trigger_body_is_deduped_on_the_invocation_id():
    event = parse_event({INVOCATION_HEADER: "8350205582"}, fixture("trigger_ticket_created.json"))
    assert event.delivery_id == "8350205582"


def test_trigger_body_without_invocation_id_is_deduped_on_its_hash():
    body = fixture("trigger_ticket_created.json")
    event = parse_event({}, body)
    assert event.delivery_id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_trigger_body_with_a_nested_ticket_object():
    event = parse_event({}, b'{"ticket": {"id": 35436, "title": "Invoice"}}')
    assert event.ticket_id == "35436"


def test_event_envelope_names_the_ticket_and_its_event_id():
    event = parse_event({INVOCATION_HEADER: "8350205582"}, fixture("event_ticket_created.json"))
    assert event.ticket_id == "35436"
    assert event.kind == "ticket.created"
    assert event.delivery_id == "01HV7ZQ3GJ2W8XK5N9T4RB6C1D"  # the event id wins over the invocation id


def test_event_envelope_without_detail_falls_back_to_the_subject():
    payload = json.loads(fixture("event_ticket_created.json"))
    del payload["detail"]
    event = parse_event({}, json.dumps(payload).encode())
    assert event.ticket_id == "35436"


def test_event_envelope_without_event_id_uses_the_invocation_id():
    payload = json.loads(fixture("event_ticket_created.json"))
    del payload["id"]
    event = parse_event({INVOCATION_HEADER: "8350205582"}, json.dumps(payload).encode())
    assert event.delivery_id == "8350205582"


def test_other_event_types_are_acknowledged_with_none():
    payload = json.loads(fixture("event_ticket_comment_added.json"))
    payload["type"] = "zen:event-type:ticket.status_changed"
    assert parse_event({}, json.dumps(payload).encode()) is None


def test_customer_comment_event_is_a_ticket_update():
    event = parse_event({}, fixture("event_ticket_comment_added.json"))
    assert (event.ticket_id, event.kind, event.delivery_id) == ("35436", "ticket.updated", "01HV80A1B2C3D4E5F6G7H8J9K0")


@pytest.mark.parametrize("change", [{"is_public": False}, {"author": {"id": "1", "is_staff": True, "name": "Riley"}}])
def test_comment_events_by_agents_or_private_are_acknowledged_with_none(change):
    payload = json.loads(fixture("event_ticket_comment_added.json"))
    payload["event"]["comment"].update(change)
    assert parse_event({}, json.dumps(payload).encode()) is None


@pytest.mark.parametrize("body, kind", [
    (b'{"ticket_id": "35436"}', "ticket.created"),
    (b'{"ticket_id": "35436", "event": "ticket.created"}', "ticket.created"),
    (b'{"ticket_id": "35436", "event": "ticket.updated"}', "ticket.updated"),
    (b'{"ticket_id": "35436", "event": "ticket.solved"}', None),
])
def test_trigger_body_names_its_event(body, kind):
    event = parse_event({INVOCATION_HEADER: "1"}, body)
    assert (event.kind if event else None) == kind


def test_same_body_twice_gives_the_same_delivery_id():
    body = fixture("trigger_ticket_created.json")
    assert parse_event({}, body).delivery_id == parse_event({}, body).delivery_id


def test_overlong_delivery_id_is_cut_to_the_ledger_column():
    event = parse_event({INVOCATION_HEADER: "x" * 500}, BODY)
    assert event.delivery_id == "x" * 200


@pytest.mark.parametrize("body, problem", [
    (b"ticket_id=35436", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"", "not valid JSON"),
    (b'[{"ticket_id": "35436"}]', "JSON object"),
    (b'"35436"', "JSON object"),
    (b"{}", "no ticket id"),
    (b'{"ticket_id": ""}', "no ticket id"),
    (b'{"ticket_id": null}', "no ticket id"),
    (b'{"type": "zen:event-type:ticket.created", "detail": {}}', "no ticket id"),
    (b'{"ticket_id": {"id": "35436"}}', "got dict"),
    (b'{"ticket_id": ["35436"]}', "got list"),
    (b'{"ticket_id": true}', "got bool"),
    (b'{"ticket_id": 35436.5}', "got float"),
    (b'{"ticket_id": -35436}', "must be digits"),
    (b'{"ticket_id": "35436abc"}', "must be digits"),
    (b'{"ticket_id": "{{ticket.id}}"}', "must be digits"),  # a placeholder Zendesk did not fill
    (b'{"ticket_id": "../35436"}', "must be digits"),
    (b'{"ticket_id": "123456789012345678901"}', "must be digits"),  # 21 digits
    (b'{"type": "zen:event-type:ticket.created", "subject": "zen:user:9873843"}', "must be digits"),
])
def test_bad_body_is_refused_with_400_naming_the_problem(body, problem):
    with pytest.raises(BadInput) as caught:
        parse_event({}, body)
    assert caught.value.status == 400
    assert problem in str(caught.value)


@pytest.mark.parametrize("ticket_id", ["35436²", "٣٥٤٣٦"])
def test_non_ascii_digits_are_not_a_ticket_id(ticket_id):
    with pytest.raises(BadInput):
        parse_event({}, json.dumps({"ticket_id": ticket_id}).encode())
