"""Zendesk-style webhook delivery: payloads, signing, background delivery with retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import requests

from .constants import ACCOUNT_ID, SUBDOMAIN, WEBHOOK_ID
from .formats import ISO_FORMAT, iso, new_ulid, utc_now

WEBHOOK_STYLES = ("trigger", "event")

# Event-subscription type for each sandbox event name.
EVENT_TYPES = {
    "ticket.created": "zen:event-type:ticket.created",
    "ticket.updated": "zen:event-type:ticket.comment_added",
}


def sign_zendesk_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(secret, timestamp + raw body))."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def trigger_payload(ticket: dict, event: str, netloc: str) -> dict:
    """The body an admin writes in a trigger action; Zendesk placeholders render every value as a string."""
    return {
        "ticket_id": str(ticket["id"]),
        # {{ticket.url}} renders without a scheme: "<subdomain>.zendesk.com/agent/tickets/<id>".
        "ticket_url": f"{netloc}/agent/tickets/{ticket['id']}",
        "tags": " ".join(ticket["tags"]),
        "event": event,
    }


def event_payload(ticket: dict, event: str, comment: dict | None = None, author: dict | None = None) -> dict:
    """The fixed envelope of a webhook subscribed to Zendesk events (ids are strings there)."""
    return {
        "type": EVENT_TYPES[event],
        "account_id": ACCOUNT_ID,
        "id": new_ulid(),
        "time": iso(utc_now()),
        "zendesk_event_version": "2022-11-06",
        "subject": f"zen:ticket:{ticket['id']}",
        "detail": _event_detail(ticket, actor_id=author["id"] if author else ticket["submitter_id"]),
        "event": _comment_event(comment, author) if comment else {},
    }


def _event_detail(ticket: dict, actor_id: int) -> dict:
    def string_id(value):
        return None if value is None else str(value)

    channel = ticket["via"]["channel"]
    return {
        "actor_id": str(actor_id),
        "assignee_id": string_id(ticket["assignee_id"]),
        "brand_id": string_id(ticket["brand_id"]),
        "created_at": ticket["created_at"],
        "custom_status": string_id(ticket["custom_status_id"]),
        "description": ticket["description"],
        "external_id": ticket["external_id"],
        "form_id": string_id(ticket["ticket_form_id"]),
        "group_id": string_id(ticket["group_id"]),
        "id": str(ticket["id"]),
        "is_public": ticket["is_public"],
        "organization_id": string_id(ticket["organization_id"]),
        # Zendesk's event examples spell enums in capitals ("OPEN", "LOW"), unlike the REST API.
        "priority": ticket["priority"].upper() if ticket["priority"] else None,
        "requester_id": str(ticket["requester_id"]),
        "status": ticket["status"].upper(),
        "subject": ticket["subject"],
        "submitter_id": str(ticket["submitter_id"]),
        "tags": list(ticket["tags"]),
        "type": ticket["type"].upper() if ticket["type"] else None,
        "updated_at": ticket["updated_at"],
        # Events name the API channel "web_service"; the REST API calls it "api".
        "via": {"channel": "web_service" if channel == "api" else channel},
    }


def _comment_event(comment: dict, author: dict) -> dict:
    return {"comment": {
        "id": str(comment["id"]),
        "body": comment["body"],
        "is_public": comment["public"],
        "author": {"id": str(author["id"]), "is_staff": author["role"] != "end-user", "name": author["name"]},
    }}


def encode_body(payload: dict) -> bytes:
    # Pretty-printed like Zendesk's deliveries (webhook_invocation_attempts.json), so a receiver
    # that re-serialises the JSON instead of verifying the raw bytes fails here too.
    return (json.dumps(payload, indent=3) + "\n").encode("utf-8")


@dataclass(frozen=True)
class WebhookAttempt:
    invocation_id: str
    ticket_id: int
    event: str
    attempt: int  # 1 for the first delivery, 2.. for retries
    status_code: int | None  # None when the connection failed
    error: str | None
    time: datetime


class WebhookDispatcher:
    """Delivers webhooks for one sandbox account from background threads, as Zendesk does."""

    # A failed delivery (connection error or 5xx) is retried this many times, after these pauses.
    retry_delays: tuple[float, ...] = (0.1, 0.3, 0.9)
    timeout = 10.0  # Zendesk gives up on an endpoint after about 10 s

    def __init__(self):
        self.url: str | None = None
        self.secret: str | None = None
        self.style = "trigger"
        self.on_update = False
        # Host shown in {{ticket.url}}; SandboxHelpdesk.start points it at the running server.
        self.netloc = f"{SUBDOMAIN}.zendesk.com"
        self.attempts: list[WebhookAttempt] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    def configure(self, url: str | None, secret: str | None, style: str = "trigger",
                  on_update: bool | None = None) -> None:
        if style not in WEBHOOK_STYLES:
            raise ValueError(f"webhook style must be one of {WEBHOOK_STYLES}, not {style!r}")
        self.url, self.secret, self.style = url, secret, style
        if on_update is not None:
            self.on_update = on_update

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.secret)

    def ticket_created(self, ticket: dict) -> str | None:
        return self.dispatch(ticket, "ticket.created") if self.enabled else None

    def comment_added(self, ticket: dict, comment: dict, author: dict) -> str | None:
        if not (self.enabled and self.on_update):
            return None
        return self.dispatch(ticket, "ticket.updated", comment=comment, author=author)

    def dispatch(self, ticket: dict, event: str, style: str | None = None,
                 comment: dict | None = None, author: dict | None = None) -> str:
        """Start one invocation in the background; returns its invocation id."""
        if not self.enabled:
            raise RuntimeError("no webhook configured: pass webhook_url and webhook_secret")
        style = style or self.style
        payload = (event_payload(ticket, event, comment, author) if style == "event"
                   else trigger_payload(ticket, event, self.netloc))
        invocation_id = new_ulid()
        with self._lock:
            self._in_flight += 1
        thread = threading.Thread(target=self._deliver, name=f"webhook-{invocation_id}", daemon=True,
                                  args=(invocation_id, ticket["id"], event, encode_body(payload)))
        thread.start()
        return invocation_id

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every invocation finished (delivered or out of retries); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _deliver(self, invocation_id: str, ticket_id: int, event: str, body: bytes) -> None:
        try:
            for attempt, pause in enumerate((0.0, *self.retry_delays), start=1):
                time.sleep(pause)
                status, error = self._post(invocation_id, body)
                with self._lock:
                    self.attempts.append(WebhookAttempt(invocation_id, ticket_id, event, attempt,
                                                        status, error, utc_now()))
                if status is not None and status < 500:
                    return
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _post(self, invocation_id: str, body: bytes) -> tuple[int | None, str | None]:
        return post_signed(self.url, self.secret, WEBHOOK_ID, invocation_id, body, self.timeout)


def post_signed(url: str, secret: str, webhook_id: str, invocation_id: str, body: bytes,
                timeout: float) -> tuple[int | None, str | None]:
    """One delivery as Zendesk makes it: its headers, signed; (status, None) or (None, the error)."""
    timestamp = utc_now().strftime(ISO_FORMAT)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Zendesk Webhook",
        "X-Zendesk-Account-Id": str(ACCOUNT_ID),
        "X-Zendesk-Webhook-Id": webhook_id,
        "X-Zendesk-Webhook-Invocation-Id": invocation_id,
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "X-Zendesk-Webhook-Signature": sign_zendesk_webhook(secret, timestamp, body),
    }
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return response.status_code, None
