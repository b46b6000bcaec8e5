"""Intercom webhooks: signature check and notification normalisation into a `TicketEvent`.

A notification is `{"type": "notification_event", "id": "notif_…", "topic": …,
"data": {"item": <conversation>}, …}`. Only the conversation id is taken from it: the worker
fetches the conversation itself, so a notification delivered late or twice is harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.errors import BadInput

SIGNATURE_HEADER = "X-Hub-Signature"

# The topics the bot acts on; every other topic (admin actions, "ping") is acknowledged.
HANDLED_TOPICS = {
    "conversation.user.created": "ticket.created",
    "conversation.user.replied": "ticket.updated",
}


def signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature: "sha1=" + hex HMAC-SHA1 of the raw body, keyed with the app's client secret."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def signature_header(headers) -> str:
    """The signature, or BadInput(401): a check that needs no body, made before reading it."""
    given = headers.get(SIGNATURE_HEADER, "")
    if not given:
        raise BadInput(f"missing {SIGNATURE_HEADER} header", status=401)
    return given


def check_signature(secret: str, headers, body: bytes) -> None:
    """Raise BadInput(401) unless the delivery is signed with `secret`."""
    given = signature_header(headers)
    # Compared as bytes: a header holding non-ASCII characters is refused, not a crash.
    if not hmac.compare_digest(signature(secret, body).encode(), given.strip().lower().encode("utf-8", "replace")):
        raise BadInput("signature does not match: check INTERCOM_CLIENT_SECRET", status=401)


def parse_event(body: bytes) -> TicketEvent | None:
    """Normalise a verified notification; None for a topic the bot does not act on."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # json.loads recurses once per level of nesting
        raise BadInput("body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise BadInput("body must be a JSON object")
    topic = payload.get("topic")
    if not isinstance(topic, str) or not topic:
        raise BadInput("no topic in the notification")
    kind = HANDLED_TOPICS.get(topic)
    if kind is None:
        return None
    data = payload.get("data")
    item = data.get("item") if isinstance(data, dict) else None
    conversation_id = _conversation_id(item.get("id") if isinstance(item, dict) else None)
    # Intercom retries a notification with the same id; without one, the body stands in.
    delivery_id = payload.get("id") if isinstance(payload.get("id"), str) and payload["id"] else None
    delivery_id = delivery_id or "sha1:" + hashlib.sha1(body).hexdigest()
    return TicketEvent(helpdesk="intercom", delivery_id=delivery_id[:200], ticket_id=conversation_id, kind=kind)


def _conversation_id(value) -> str:
    if value is None or value == "":
        raise BadInput("no conversation id in the notification (expected `data.item.id`)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(f"conversation id must be a string of digits, got {type(value).__name__}")
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,32}", text):
        raise BadInput(f"conversation id must be digits, got {text[:40]!r}")
    return text
