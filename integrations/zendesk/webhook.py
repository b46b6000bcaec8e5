"""Zendesk webhooks: signature check and payload normalisation into a `TicketEvent`.

Zendesk sends two kinds of body (see docs: "Webhooks"): a trigger-connected webhook posts the
JSON an admin wrote in the trigger, every placeholder value a string; an event-subscribed
webhook posts a fixed envelope of type `zen:event-type:...`. Only the ids are trusted: the
worker fetches the ticket itself, because free-text placeholders break JSON escaping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.errors import BadInput

# Deliveries from the webhook builder's "Test webhook" button are signed with this fixed
# secret instead of the webhook's own (Zendesk docs, "Verifying webhook authenticity").
TEST_SIGNING_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
REPLAY_WINDOW_SECONDS = 300

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_HEADER = "X-Zendesk-Webhook-Invocation-Id"
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", re.ASCII)  # as Zendesk sends it: 2026-11-30T05:54:12Z

# Event-style types the bot acts on; other zen:event-types are acknowledged.
HANDLED_EVENT_TYPES = {
    "zen:event-type:ticket.created": "ticket.created",
    "zen:event-type:ticket.comment_added": "ticket.updated",
}
# What a trigger body may name in its "event" field (docs/helpdesks.md: the two triggers).
TRIGGER_EVENTS = ("ticket.created", "ticket.updated")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.digest(secret.encode(), timestamp.encode() + body, "sha256")).decode()


def signature_headers(headers) -> tuple[str, str, datetime]:
    """(signature, timestamp, its time), or BadInput(401): a check that needs no body, so a
    delivery without them is refused before its body is read."""
    given = headers.get(SIGNATURE_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not given or not timestamp:
        raise BadInput(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header", status=401)
    if not _TIMESTAMP.fullmatch(timestamp):  # fromisoformat alone would take other forms too
        raise BadInput(f"{TIMESTAMP_HEADER} is not an ISO-8601 UTC time: {timestamp[:40]!r}", status=401)
    try:
        sent_at = datetime.fromisoformat(timestamp)  # several times faster than strptime
    except ValueError:
        raise BadInput(f"{TIMESTAMP_HEADER} is not an ISO-8601 UTC time: {timestamp[:40]!r}", status=401) from None
    return given, timestamp, sent_at


def check_signature(secret: str, headers, body: bytes, now: datetime | None = None) -> bool:
    """Verify the delivery; return True for a genuine delivery, False for Zendesk's test delivery.

    Raises BadInput(401) for a missing, forged or stale signature.
    """
    given, timestamp, sent_at = signature_headers(headers)
    # Both the real and the test secret are checked before looking at the clock, so a
    # forged request learns nothing from the error message.
    given_bytes = given.encode("utf-8", "replace")  # compare_digest refuses non-ASCII str
    genuine = hmac.compare_digest(signature(secret, timestamp, body).encode(), given_bytes)
    test = not genuine and hmac.compare_digest(signature(TEST_SIGNING_SECRET, timestamp, body).encode(), given_bytes)
    if not (genuine or test):
        raise BadInput("signature does not match: check ZENDESK_WEBHOOK_SECRET", status=401)
    age = ((now or datetime.now(timezone.utc)) - sent_at).total_seconds()
    if abs(age) > REPLAY_WINDOW_SECONDS:
        raise BadInput(f"signature timestamp is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}; "
                       f"the limit is {REPLAY_WINDOW_SECONDS} s", status=401)
    return genuine


def parse_event(headers, body: bytes) -> TicketEvent | None:
    """Normalise a verified delivery; None for an event type the bot does not act on."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadInput("body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise BadInput("body must be a JSON object")

    if isinstance(payload.get("type"), str) and payload["type"].startswith("zen:event-type:"):
        kind = HANDLED_EVENT_TYPES.get(payload["type"])
        if kind is None or not _from_the_customer(payload.get("event")):
            return None
        detail = payload.get("detail")
        ticket_id = detail.get("id") if isinstance(detail, dict) else None
        if ticket_id is None and isinstance(payload.get("subject"), str):
            ticket_id = payload["subject"].removeprefix("zen:ticket:")  # "zen:ticket:35436"
        delivery_id = payload.get("id")
    else:
        ticket_id = payload.get("ticket_id")
        if ticket_id is None and isinstance(payload.get("ticket"), dict):
            ticket_id = payload["ticket"].get("id")
        kind = payload.get("event") or "ticket.created"
        if kind not in TRIGGER_EVENTS:
            return None
        delivery_id = None

    ticket_id = _ticket_id(ticket_id)
    # Dedupe on the event id, else the invocation id (the same across Zendesk's retries of one
    # invocation), else the body itself: a trigger firing twice sends identical bodies.
    delivery_id = str(delivery_id or headers.get(INVOCATION_HEADER) or "sha256:" + hashlib.sha256(body).hexdigest())
    return TicketEvent(helpdesk="zendesk", delivery_id=delivery_id[:200], ticket_id=ticket_id, kind=kind)


def _from_the_customer(event) -> bool:
    """A comment_added event matters only for a public comment by the requester's side.

    The bot's own comments and agents' notes fire the same event; the worker would ignore
    them too, but there is no need to queue them. Events without a comment pass.
    """
    comment = event.get("comment") if isinstance(event, dict) else None
    if not isinstance(comment, dict):
        return True
    author = comment.get("author") if isinstance(comment.get("author"), dict) else {}
    return comment.get("is_public") is not False and author.get("is_staff") is not True


def _ticket_id(value) -> str:
    if value is None or value == "":
        raise BadInput("no ticket id in the body (expected `ticket_id`, or `detail.id` in an event)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(f"ticket id must be a number or a string of digits, got {type(value).__name__}")
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise BadInput(f"ticket id must be digits, got {text[:40]!r}")
    return text
