"""Property-based fuzzing of the webhook endpoints: whatever arrives, the answer is never a 5xx
and a refusal is always a 4xx whose JSON `error` names the problem.

Every endpoint is described once in WEBHOOK_ENDPOINTS (path, how a genuine sender signs, a
minimal valid body); each property runs against each endpoint. A new helpdesk's webhook gets
the whole suite by adding one entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import create_app
from integrations.intercom import webhook as intercom_webhook
from integrations.zendesk import webhook as zendesk_webhook

SECRET = "fuzz-signing-secret"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def now_stamp(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WebhookEndpoint:
    name: str
    path: str
    sign: Callable[[bytes], dict]  # headers a genuine sender adds to this body
    forge: Callable[[bytes], list[dict]]  # signatures that must be refused: other secret, stale, ...
    valid_body: Callable[[int], bytes]  # a body the endpoint accepts, for a ticket id
    signature_headers: tuple[str, ...]
    delivery_id_header: str | None = None  # an unsigned header naming the delivery, if the sender sends one


def _zendesk_sign(body: bytes, timestamp: str | None = None, secret: str = SECRET) -> dict:
    timestamp = timestamp or now_stamp()
    return {zendesk_webhook.SIGNATURE_HEADER: zendesk_webhook.signature(secret, timestamp, body),
            zendesk_webhook.TIMESTAMP_HEADER: timestamp, "Content-Type": "application/json"}


def _zendesk_forgeries(body: bytes) -> list[dict]:
    genuine = _zendesk_sign(body)
    return [
        _zendesk_sign(body, secret="someone-elses-secret"),
        _zendesk_sign(body, timestamp=now_stamp(timedelta(minutes=-6))),  # stale
        _zendesk_sign(body, timestamp=now_stamp(timedelta(minutes=6))),  # from the future
        {**genuine, zendesk_webhook.TIMESTAMP_HEADER: now_stamp(timedelta(seconds=-1))},  # signed over another time
        {**genuine, zendesk_webhook.SIGNATURE_HEADER: genuine[zendesk_webhook.SIGNATURE_HEADER][::-1]},
        {"Content-Type": "application/json"},  # unsigned
    ]


def _intercom_sign(body: bytes, secret: str = SECRET) -> dict:
    return {intercom_webhook.SIGNATURE_HEADER: intercom_webhook.signature(secret, body),
            "Content-Type": "application/json"}


def _intercom_forgeries(body: bytes) -> list[dict]:
    genuine = _intercom_sign(body)[intercom_webhook.SIGNATURE_HEADER]
    return [
        _intercom_sign(body, secret="someone-elses-secret"),
        _intercom_sign(body + b" "),  # signed over another body
        {intercom_webhook.SIGNATURE_HEADER: genuine.replace("sha1=", "sha256="), "Content-Type": "application/json"},
        {intercom_webhook.SIGNATURE_HEADER: genuine[:-1], "Content-Type": "application/json"},
        {"Content-Type": "application/json"},  # unsigned
    ]


def _intercom_body(conversation_id: int) -> bytes:
    return json.dumps({
        "type": "notification_event", "id": f"notif_{conversation_id}", "topic": "conversation.user.created",
        "app_id": "fuzzapp", "data": {"type": "notification_event_data", "item": {
            "type": "conversation", "id": str(conversation_id),
            "source": {"body": "<p>Where are my invoices?</p>", "author": {"type": "user", "id": "u1"}}}},
        "delivery_attempts": 1, "first_sent_at": 1700000000, "created_at": 1700000000,
    }).encode()


WEBHOOK_ENDPOINTS = [
    WebhookEndpoint(
        name="zendesk",
        path="/webhooks/zendesk",
        sign=_zendesk_sign,
        forge=_zendesk_forgeries,
        valid_body=lambda ticket_id: json.dumps({"ticket_id": str(ticket_id)}).encode(),
        signature_headers=(zendesk_webhook.SIGNATURE_HEADER, zendesk_webhook.TIMESTAMP_HEADER),
        delivery_id_header=zendesk_webhook.INVOCATION_HEADER,
    ),
    WebhookEndpoint(
        name="intercom",
        path="/webhooks/intercom",
        sign=_intercom_sign,
        forge=_intercom_forgeries,
        valid_body=_intercom_body,
        signature_headers=(intercom_webhook.SIGNATURE_HEADER,),
    ),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory, redis_url):
    data_dir = tmp_path_factory.mktemp("fuzz")
    env = {"HELPDESK_DATA_DIR": str(data_dir), "REDIS_URL": redis_url, "ZENDESK_WEBHOOK_SECRET": SECRET,
           "INTERCOM_CLIENT_SECRET": SECRET,
           "HELPDESK_WEBHOOK_RATE_LIMIT": "1000000/60", "HELPDESK_ACCOUNT_RATE_LIMIT": "1000000/60"}
    queued: list[int] = []
    app = create_app(Settings.from_env(env), enqueue=queued.append)
    app.config["queued"] = queued
    return app.test_client()


@pytest.fixture(params=WEBHOOK_ENDPOINTS, ids=lambda e: e.name)
def endpoint(request) -> WebhookEndpoint:
    return request.param


def assert_handled(response) -> None:
    """Never a 5xx; a refusal is a 4xx with a JSON error that says what is wrong."""
    assert response.status_code < 500, response.get_data()[:300]
    if response.status_code >= 400:
        error = response.get_json(silent=True)
        assert isinstance(error, dict) and isinstance(error.get("error"), str) and len(error["error"]) >= 8, \
            response.get_data()[:300]


# --- strategies -----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=25)
ticket_ids = (st.integers() | st.text(max_size=25) | st.floats() | st.booleans() | st.none()
              | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
# Bodies shaped like ours, with a wrong or odd value in the place that matters.
zendesk_shaped = st.one_of(
    st.builds(lambda v: {"ticket_id": v}, ticket_ids),
    st.builds(lambda v: {"ticket": {"id": v}}, ticket_ids),
    st.builds(lambda t, d, s: {"type": t, "detail": d, "subject": s},
              st.sampled_from(["zen:event-type:ticket.created", "zen:event-type:ticket.deleted"]) | st.text(max_size=30),
              st.none() | st.builds(lambda v: {"id": v}, ticket_ids) | json_values,
              st.none() | st.text(max_size=30) | st.integers()),
)
encodings = st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1", "utf-8-sig"])
# Header values as a client can send them: Werkzeug decodes header bytes as latin-1.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


# --- properties ------------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=2048), headers=st.dictionaries(
    st.sampled_from(["Content-Type", "Content-Encoding", "X-Zendesk-Webhook-Signature",
                     "X-Zendesk-Webhook-Signature-Timestamp", "X-Zendesk-Webhook-Invocation-Id",
                     "X-Zendesk-Account-Id", "Transfer-Encoding", "X-Hub-Signature"]), header_text, max_size=5))
@example(body=b'{"ticket_id": "1"}', headers={"X-Zendesk-Webhook-Signature": "s\xefgnature",
                                              "X-Zendesk-Webhook-Signature-Timestamp": "2024-04-17T17:18:10Z"})
def test_unsigned_or_badly_signed_requests_are_refused_cleanly(client, endpoint, body, headers):
    response = client.post(endpoint.path, data=body, headers=headers)
    assert_handled(response)
    assert response.status_code in (400, 401, 413, 415, 429)


@FUZZ
@given(payload=json_values | zendesk_shaped, encoding=encodings, invocation=st.none() | header_text)
def test_any_signed_json_is_accepted_or_refused_by_name(client, endpoint, payload, encoding, invocation):
    try:
        body = json.dumps(payload, ensure_ascii=False).encode(encoding)
    except UnicodeEncodeError:
        body = json.dumps(payload).encode(encoding)
    headers = endpoint.sign(body)
    if invocation is not None and endpoint.delivery_id_header:
        headers[endpoint.delivery_id_header] = invocation
    response = client.post(endpoint.path, data=body, headers=headers)
    assert_handled(response)


@FUZZ
@given(body=st.binary(max_size=4096))
def test_any_signed_bytes_are_accepted_or_refused_by_name(client, endpoint, body):
    assert_handled(client.post(endpoint.path, data=body, headers=endpoint.sign(body)))


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any parser's recursion limit
    b'{"ticket_id": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
    b'{"ticket_id": "1", "pad": "' + b"x" * (1024 * 1024) + b'"}',  # over the size limit
    b"\xff\xfe\x00\x00garbage",
    b"",
    b'{"ticket_id": "35436\xc2\xb2"}',  # a non-ASCII digit
    "{\"ticket_id\": \"\u0663\u0665\u0664\"}".encode(),  # Arabic-Indic digits
    b'{"ticket_id": "1' + b"0" * 30 + b'"}',
    b'{"ticket_id": 1e400}',
    b'{"ticket_id": NaN}',
    b'{"ticket_id": "1", "ticket_id": {"id": 2}}',
], ids=["deep-array", "deep-object", "too-large", "bad-bytes", "empty", "superscript-digit", "arabic-digits",
        "long-id", "huge-number", "nan", "duplicate-keys"])
def test_hostile_bodies_are_refused_by_name(client, endpoint, body):
    response = client.post(endpoint.path, data=body, headers=endpoint.sign(body))
    assert_handled(response)
    assert response.status_code >= 400


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused_by_name(client, endpoint, method):
    response = client.open(endpoint.path, method=method)
    assert response.status_code == 405
    assert_handled(response)


def test_forged_and_stale_signatures_are_refused(client, endpoint):
    body = endpoint.valid_body(777001)
    queued_before = list(client.application.config["queued"])
    for headers in endpoint.forge(body):
        response = client.post(endpoint.path, data=body, headers=headers)
        assert response.status_code == 401, (headers, response.get_json())
        assert_handled(response)
    assert client.application.config["queued"] == queued_before


def test_a_replayed_delivery_is_not_processed_again(client, endpoint):
    """The same signed delivery again is a duplicate: nothing is recorded or queued a second time.

    A replay under a forged new delivery id (the id header is not signed) within the replay
    window is recorded, but cannot make the bot speak twice: replies and notes are claimed per
    customer message (tests/test_end_to_end.py: a second invocation for the same ticket).
    """
    body = endpoint.valid_body(777002)
    headers = endpoint.sign(body)
    first = client.post(endpoint.path, data=body, headers=headers)
    assert 200 <= first.status_code < 300
    queued = list(client.application.config["queued"])
    again = client.post(endpoint.path, data=body, headers=headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate", again.get_json()
    assert client.application.config["queued"] == queued
