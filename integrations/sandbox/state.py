"""In-memory state of the sandbox account, and the hooks tests use (faults, request log).

Records are stored in Zendesk's field order without `url` (the API adds it for the
host the client called). Every public method takes the lock and returns copies, so
the threaded server and test code can share one state.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from collections import namedtuple
from dataclasses import dataclass

from .constants import (
    BILLING_GROUP_ID, BOT_AGENT_EMAIL, BOT_AGENT_ID, BOT_AGENT_NAME, BRAND_ID, CUSTOM_STATUS_IDS,
    ESCALATION_GROUP_ID, FIRST_GENERATED_ID, HUMAN_AGENT_EMAIL, HUMAN_AGENT_ID, HUMAN_AGENT_NAME,
    TICKET_FORM_ID, TICKET_PRIORITIES, TICKET_STATUSES, TICKET_TYPES,
)
from .errors import ApiError, not_found, record_invalid
from .formats import comment_html, html_to_text, iso, text_to_html, utc_now
from .helpcenter import HelpCenter, HelpCenterSource
from .admin import AdminState
from .webhooks import WebhookAttempt, WebhookDispatcher

RequestRecord = namedtuple("RequestRecord", "method path status")

# Zendesk remembers an Idempotency-Key on ticket creation for two hours.
IDEMPOTENCY_TTL_SECONDS = 2 * 60 * 60

# The comment fields repeated in an audit's Comment event (ticket_audits_list_page1.json).
AUDIT_COMMENT_FIELDS = ("id", "type", "author_id", "body", "html_body", "plain_body", "public",
                        "attachments", "audit_id")

# Fields a ticket update may change, in the order their Change events are written.
UPDATABLE_FIELDS = ("subject", "type", "priority", "status", "group_id", "assignee_id", "external_id",
                    "brand_id")


@dataclass
class Fault:
    method: str  # upper case, or "*" for any
    pattern: re.Pattern
    status: int | None  # None: only delay, then answer normally
    remaining: int
    retry_after: int | None
    delay: float

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and bool(self.pattern.search(path))


@dataclass
class _IdempotentCreate:
    fingerprint: str
    result: dict
    expires_at: float


class SandboxState:
    def __init__(self, help_center: HelpCenterSource = None):
        self.lock = threading.RLock()
        self._new_id = itertools.count(FIRST_GENERATED_ID).__next__
        self._new_ticket_id = itertools.count(1).__next__
        now = iso(utc_now())
        self.users = {u["id"]: u for u in _seed_users(now)}
        self.groups = {g["id"]: g for g in _seed_groups(now)}
        self.tickets: dict[int, dict] = {}
        self.comments: dict[int, list[dict]] = {}
        self.audits: dict[int, list[dict]] = {}
        self.help_center = HelpCenter(help_center)
        self.webhooks = WebhookDispatcher()
        self.admin = AdminState()  # webhooks and triggers created through the API (admin.py)
        self.requests: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._idempotent_creates: dict[str, _IdempotentCreate] = {}

    @property
    def webhook_attempts(self) -> list[WebhookAttempt]:
        return self.webhooks.attempts

    # Test hooks

    def inject_fault(self, method: str, path_regex: str, status: int | None, times: int = 1,
                     retry_after: int | None = None, delay: float = 0.0) -> None:
        """The next `times` requests matching method and path (re.search) answer `status`
        (after sleeping `delay` seconds); with status None they only sleep, then answer normally."""
        with self.lock:
            self._faults.append(Fault(method.upper(), re.compile(path_regex), status, times, retry_after, delay))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def log_request(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append(RequestRecord(method, path, status))

    # Users and groups

    def user(self, user_id: int) -> dict:
        with self.lock:
            return copy.deepcopy(self._user(user_id))

    def login(self, email: str) -> dict:
        """The user some credentials authenticate as. Tokens are not checked: a known
        user's email logs in as that user, any other as the bot agent."""
        with self.lock:
            return copy.deepcopy(self._user_by_email(email) or self.users[BOT_AGENT_ID])

    def group(self, group_id: int) -> dict:
        with self.lock:
            if group_id not in self.groups:
                raise not_found()
            return copy.deepcopy(self.groups[group_id])

    def list_groups(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(list(self.groups.values()))

    # Tickets: reads

    def ticket(self, ticket_id: int) -> dict:
        with self.lock:
            return copy.deepcopy(self._ticket(ticket_id))

    def ticket_comments(self, ticket_id: int) -> list[dict]:
        with self.lock:
            self._ticket(ticket_id)
            return copy.deepcopy(self.comments[ticket_id])

    def ticket_audits(self, ticket_id: int) -> list[dict]:
        with self.lock:
            self._ticket(ticket_id)
            return copy.deepcopy(self.audits[ticket_id])

    # Tickets: writes

    def create_ticket(self, body: dict, actor: dict, idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Create from a `{"ticket": {...}}` body; returns ({"ticket", "audit"}, replayed).

        With an Idempotency-Key, the same key and body within the TTL answer the first
        result again instead of creating a ticket; the same key with another body is an error.
        """
        fingerprint = json.dumps(body, sort_keys=True)
        with self.lock:
            if idempotency_key:
                cached = self._idempotent_creates.get(idempotency_key)
                if cached and cached.expires_at > time.monotonic():
                    if cached.fingerprint != fingerprint:
                        # Error name as Zendesk documents it; the description is ours.
                        raise ApiError(400, "IdempotentRequestError",
                                       "Idempotency-Key was already used with different request parameters")
                    return copy.deepcopy(cached.result), True
            result = self._create_ticket(body["ticket"], actor)
            if idempotency_key:
                self._idempotent_creates[idempotency_key] = _IdempotentCreate(
                    fingerprint, copy.deepcopy(result), time.monotonic() + IDEMPOTENCY_TTL_SECONDS)
            return result, False

    def update_ticket(self, ticket_id: int, fields: dict, actor: dict) -> dict:
        """Apply a `ticket` update body; returns {"ticket", "audit"}."""
        with self.lock:
            ticket = self._writable_ticket(ticket_id)
            values = self._validated_fields(fields)
            tags = _updated_tags(ticket["tags"], fields)
            comment = None
            if fields.get("comment") is not None:
                comment = self._new_comment(fields["comment"], default_author_id=actor["id"])
            now = iso(utc_now())
            audit = self._new_audit(ticket_id, actor, now, channel="api")
            if comment:
                self._attach_comment(ticket_id, audit, comment)
            author = self.users[comment["author_id"]] if comment else actor
            if "status" not in values:
                implied = _implied_status(ticket["status"], author, comment)
                if implied:
                    values["status"] = implied
            for field in UPDATABLE_FIELDS:
                if field in values:
                    self._change(ticket, audit, field, values[field])
            ticket["raw_subject"] = ticket["subject"]
            self._change(ticket, audit, "custom_status_id", CUSTOM_STATUS_IDS[ticket["status"]])
            if tags is not None:
                self._change(ticket, audit, "tags", tags)
            if "custom_fields" in values:
                self._change_custom_fields(ticket, audit, values["custom_fields"])
            ticket["updated_at"] = now
            self.audits[ticket_id].append(audit)
            if comment and comment["public"] and author["role"] == "end-user":
                self.webhooks.comment_added(copy.deepcopy(ticket), copy.deepcopy(comment), copy.deepcopy(author))
            self.admin.ticket_saved(copy.deepcopy(ticket), "Change", author, comment, self.users, self.webhooks.netloc)
            return {"ticket": copy.deepcopy(ticket), "audit": copy.deepcopy(audit)}

    def change_tags(self, ticket_id: int, operation: str, tags, actor: dict) -> list[str]:
        """The tags endpoint: operation "set" replaces, "add" merges, "remove" deletes."""
        with self.lock:
            ticket = self._writable_ticket(ticket_id)
            requested = _tag_list(tags)
            current = ticket["tags"]
            new_tags = {
                "set": requested,
                "add": sorted(set(current) | set(requested)),
                "remove": [t for t in current if t not in requested],
            }[operation]
            if new_tags != current:
                now = iso(utc_now())
                audit = self._new_audit(ticket_id, actor, now, channel="api")
                self._change(ticket, audit, "tags", new_tags)
                ticket["updated_at"] = now
                self.audits[ticket_id].append(audit)
            return list(ticket["tags"])

    def rate_ticket(self, ticket_id: int, score: str, comment: str, actor: dict) -> dict:
        """The requester's satisfaction rating (POST /tickets/{id}/satisfaction_rating.json)."""
        with self.lock:
            ticket = self._ticket(ticket_id)
            if actor["id"] != ticket["requester_id"]:
                raise ApiError(403, "Forbidden", "Only the requester can rate a ticket")
            if score not in ("good", "bad"):
                raise record_invalid("score", "Score: must be good or bad")
            rating = {"id": self._new_id(), "score": score, "comment": comment or None}
            ticket["satisfaction_rating"] = rating
            ticket["updated_at"] = iso(utc_now())
            return copy.deepcopy(rating)

    def fire_webhook(self, ticket_id: int, style: str | None = None, event: str = "ticket.created") -> str:
        """Deliver a webhook for an existing ticket again (a new invocation); returns its id.
        For "ticket.updated" the latest public comment (else the latest) is the one reported."""
        with self.lock:
            ticket = copy.deepcopy(self._ticket(ticket_id))
            comment = author = None
            if event == "ticket.updated":
                comments = self.comments[ticket_id]
                comment = copy.deepcopy(([c for c in comments if c["public"]] or comments)[-1])
                author = copy.deepcopy(self.users[comment["author_id"]])
        return self.webhooks.dispatch(ticket, event, style, comment, author)

    # Internals (callers hold the lock)

    def _user(self, user_id: int) -> dict:
        if user_id not in self.users:
            raise not_found()
        return self.users[user_id]

    def _user_by_email(self, email: str) -> dict | None:
        email = email.strip().lower()
        return next((u for u in self.users.values() if u["email"] == email), None)

    def _ticket(self, ticket_id: int) -> dict:
        if ticket_id not in self.tickets:
            raise not_found()
        return self.tickets[ticket_id]

    def _writable_ticket(self, ticket_id: int) -> dict:
        ticket = self._ticket(ticket_id)
        if ticket["status"] == "closed":
            raise record_invalid("status", "Status: closed prevents ticket update", code="ClosedTicket")
        return ticket

    def _create_ticket(self, fields: dict, actor: dict) -> dict:
        values = self._validated_fields(fields)
        values["tags"] = _tag_list(fields.get("tags", []))
        requester = self._requester(fields, actor)
        # zenpy's own tests create tickets with "description" instead of a comment.
        first_comment = fields.get("comment") or ({"body": fields["description"]} if fields.get("description") else None)
        if not first_comment:
            raise record_invalid("description", "Description: cannot be blank", code="BlankValue")
        # The first comment is the requester's unless the body says otherwise: in
        # ticket_show.json + ticket_audits_list_page1.json an admin submitted the
        # ticket and the description's author is the requester.
        comment = self._new_comment(first_comment, default_author_id=requester["id"])
        channel = (fields.get("via") or {}).get("channel", "api")  # sandbox-only: tests simulate web/email tickets
        now = iso(utc_now())
        ticket = _new_ticket(self._new_ticket_id(), now, channel, requester["id"], actor["id"], values)
        audit = self._new_audit(ticket["id"], actor, now, channel)
        self.comments[ticket["id"]] = []
        self._attach_comment(ticket["id"], audit, comment)
        ticket["description"] = comment["body"]
        ticket["is_public"] = comment["public"]
        audit["events"] += [self._create_event(ticket, field) for field in _create_event_fields(ticket)]
        self.tickets[ticket["id"]] = ticket
        self.audits[ticket["id"]] = [audit]
        self.webhooks.ticket_created(copy.deepcopy(ticket))
        self.admin.ticket_saved(copy.deepcopy(ticket), "Create", self.users[comment["author_id"]], comment, self.users,
                                self.webhooks.netloc)
        return {"ticket": copy.deepcopy(ticket), "audit": copy.deepcopy(audit)}

    def _requester(self, fields: dict, actor: dict) -> dict:
        if "requester_id" in fields:
            user_id = _optional_id(fields["requester_id"], "requester_id")
            if user_id not in self.users:
                raise record_invalid("requester_id", "Requester: is invalid")
            return self.users[user_id]
        spec = fields.get("requester")
        if spec is None:
            return actor
        email = (spec.get("email") or "").strip().lower() if isinstance(spec, dict) else ""
        if "@" not in email:
            raise record_invalid("requester", "Requester: email is invalid")
        return self._user_by_email(email) or self._create_end_user(spec.get("name") or email.split("@")[0], email)

    def _create_end_user(self, name: str, email: str) -> dict:
        user = _user_record(self._new_id(), name, email, "end-user", iso(utc_now()))
        self.users[user["id"]] = user
        return user

    def _validated_fields(self, fields: dict) -> dict:
        values = {}
        for name, allowed in (("status", TICKET_STATUSES), ("priority", TICKET_PRIORITIES), ("type", TICKET_TYPES)):
            if name in fields:
                if fields[name] not in allowed:
                    raise record_invalid(name, f"{name.capitalize()}: {fields[name]!r} is not valid")
                values[name] = fields[name]
        if "group_id" in fields:
            values["group_id"] = _optional_id(fields["group_id"], "group_id")
            if values["group_id"] is not None and values["group_id"] not in self.groups:
                raise record_invalid("group_id", "Group: is invalid")
        if "assignee_id" in fields:
            values["assignee_id"] = _optional_id(fields["assignee_id"], "assignee_id")
            assignee = self.users.get(values["assignee_id"])
            if values["assignee_id"] is not None and (assignee is None or assignee["role"] == "end-user"):
                raise record_invalid("assignee_id", "Assignee: is not an agent")
        if "brand_id" in fields:
            values["brand_id"] = _optional_id(fields["brand_id"], "brand_id") or BRAND_ID
        for name in ("subject", "external_id"):
            if name in fields:
                values[name] = fields[name]
        if "custom_fields" in fields:
            values["custom_fields"] = _custom_fields(fields["custom_fields"])
        return values

    def _new_audit(self, ticket_id: int, actor: dict, now: str, channel: str) -> dict:
        return {"id": self._new_id(), "ticket_id": ticket_id, "created_at": now, "author_id": actor["id"],
                "metadata": {"system": {}, "custom": {}}, "events": [], "via": _via(channel)}

    def _new_comment(self, spec, default_author_id: int) -> dict:
        """A validated comment, not yet attached to a ticket."""
        if not isinstance(spec, dict):
            raise record_invalid("comment", "Comment: is invalid")
        author_id = _optional_id(spec.get("author_id", default_author_id), "author_id")
        if author_id not in self.users:
            raise record_invalid("author_id", "Comment author: is invalid")
        text, markup = _comment_content(spec)
        return {
            "id": self._new_id(),
            "type": "Comment",
            "author_id": author_id,
            "body": text,
            "html_body": markup,
            "plain_body": text,
            # End users cannot write internal notes: Zendesk makes their comments public.
            "public": bool(spec.get("public", True)) or self.users[author_id]["role"] == "end-user",
            "attachments": [],
        }

    def _attach_comment(self, ticket_id: int, audit: dict, comment: dict) -> None:
        comment.update(audit_id=audit["id"], via=copy.deepcopy(audit["via"]), created_at=audit["created_at"],
                       metadata={"system": {}, "custom": {}})
        audit["events"].append({k: copy.deepcopy(comment[k]) for k in AUDIT_COMMENT_FIELDS})
        self.comments[ticket_id].append(comment)

    def _change(self, ticket: dict, audit: dict, field: str, value) -> None:
        previous = ticket[field]
        if previous == value:
            return
        ticket[field] = value
        audit["events"].append({"id": self._new_id(), "type": "Change", "value": _event_value(value),
                                "field_name": field, "previous_value": _event_value(previous)})

    def _change_custom_fields(self, ticket: dict, audit: dict, updates: list[dict]) -> None:
        merged = {f["id"]: f["value"] for f in ticket["custom_fields"]}
        for update in updates:
            previous = merged.get(update["id"])
            if previous != update["value"]:
                merged[update["id"]] = update["value"]
                audit["events"].append({"id": self._new_id(), "type": "Change", "value": update["value"],
                                        "field_name": str(update["id"]), "previous_value": previous})
        ticket["custom_fields"] = [{"id": k, "value": v} for k, v in merged.items()]
        ticket["fields"] = copy.deepcopy(ticket["custom_fields"])

    def _create_event(self, ticket: dict, field: str) -> dict:
        return {"id": self._new_id(), "type": "Create", "value": _event_value(ticket[field]), "field_name": field}


# Pure helpers

def _user_record(user_id: int, name: str, email: str, role: str, now: str,
                 default_group_id: int | None = None) -> dict:
    """A user in the field order of users_me.json."""
    agent = role != "end-user"
    return {
        "id": user_id, "name": name, "email": email.lower(), "created_at": now, "updated_at": now,
        "time_zone": "UTC", "iana_time_zone": "Etc/UTC", "phone": None, "shared_phone_number": None,
        "photo": None, "locale_id": 1, "locale": "en-US", "organization_id": None, "role": role,
        "verified": True, "external_id": None, "tags": [], "alias": None, "active": True,
        "shared": False, "shared_agent": False, "last_login_at": now if agent else None,
        "two_factor_auth_enabled": None, "signature": None, "details": None, "notes": None,
        "role_type": 0 if agent else None, "custom_role_id": None, "moderator": agent,
        "ticket_restriction": None if agent else "requested", "only_private_comments": False,
        "restricted_agent": not agent, "suspended": False, "default_group_id": default_group_id,
        "report_csv": agent, "user_fields": {},
    }


def _seed_users(now: str) -> list[dict]:
    return [
        _user_record(BOT_AGENT_ID, BOT_AGENT_NAME, BOT_AGENT_EMAIL, "agent", now, ESCALATION_GROUP_ID),
        _user_record(HUMAN_AGENT_ID, HUMAN_AGENT_NAME, HUMAN_AGENT_EMAIL, "agent", now, ESCALATION_GROUP_ID),
    ]


def _seed_groups(now: str) -> list[dict]:
    def group(group_id, name, description, default):
        return {"id": group_id, "is_public": True, "name": name, "description": description,
                "default": default, "deleted": False, "created_at": now, "updated_at": now}

    return [
        group(ESCALATION_GROUP_ID, "Support", "Human agents; the bot escalates here", True),
        group(BILLING_GROUP_ID, "Billing", "Invoices, refunds and plans", False),
    ]


def _via(channel: str) -> dict:
    return {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}}


def _new_ticket(ticket_id: int, now: str, channel: str, requester_id: int, submitter_id: int,
                values: dict) -> dict:
    """A ticket in the field order of ticket_show.json."""
    status = values.get("status", "new")
    custom_fields = values.get("custom_fields", [])
    return {
        "id": ticket_id, "external_id": values.get("external_id"), "via": _via(channel),
        "created_at": now, "updated_at": now, "type": values.get("type"),
        "subject": values.get("subject"), "raw_subject": values.get("subject"), "description": "",
        "priority": values.get("priority"), "status": status, "recipient": None,
        "requester_id": requester_id, "submitter_id": submitter_id,
        "assignee_id": values.get("assignee_id"), "organization_id": None,
        "group_id": values.get("group_id"), "collaborator_ids": [], "follower_ids": [],
        "email_cc_ids": [], "forum_topic_id": None, "problem_id": None, "has_incidents": False,
        "is_public": True, "due_at": None, "tags": values["tags"], "custom_fields": custom_fields,
        "satisfaction_rating": None, "sharing_agreement_ids": [],
        "custom_status_id": CUSTOM_STATUS_IDS[status], "fields": copy.deepcopy(custom_fields),
        "followup_ids": [], "ticket_form_id": TICKET_FORM_ID, "brand_id": values.get("brand_id", BRAND_ID),
        "allow_channelback": False, "allow_attachments": True, "from_messaging_channel": False,
    }


def _create_event_fields(ticket: dict) -> list[str]:
    # As in ticket_create_response_with_audit.json; optional fields only when set.
    optional = [f for f in ("tags", "group_id", "assignee_id") if ticket[f]]
    return ["subject", "requester_id", "priority", "type", "status", *optional,
            "brand_id", "ticket_form_id", "custom_status_id"]


def _event_value(value):
    # Audit events carry ids as strings ("value": "6130907993114").
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else copy.deepcopy(value)


def _optional_id(value, field: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise record_invalid(field, f"{field}: is not a valid id")


def _comment_content(spec: dict) -> tuple[str, str]:
    """(plain text, stored html) from a comment given as html_body or body."""
    if spec.get("html_body"):
        return html_to_text(spec["html_body"]), comment_html(spec["html_body"])
    body = (spec.get("body") or "").strip()
    if not body:
        raise record_invalid("comment", "Comment: body cannot be blank", code="BlankValue")
    return body, comment_html(text_to_html(body))


def _tag_list(tags) -> list[str]:
    """Zendesk tags are lowercase single words; a string is split on whitespace."""
    if isinstance(tags, str):
        tags = tags.split()
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise record_invalid("tags", "Tags: must be a list of strings")
    return sorted({word.lower() for tag in tags for word in tag.split()})


def _updated_tags(current: list[str], fields: dict) -> list[str] | None:
    """`tags` replaces all; `additional_tags` and `remove_tags` edit. None when untouched."""
    if not any(k in fields for k in ("tags", "additional_tags", "remove_tags")):
        return None
    tags = set(_tag_list(fields["tags"])) if "tags" in fields else set(current)
    tags |= set(_tag_list(fields.get("additional_tags", [])))
    tags -= set(_tag_list(fields.get("remove_tags", [])))
    return sorted(tags)


def _custom_fields(value) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(f, dict) and "id" in f for f in value):
        raise record_invalid("custom_fields", "Custom fields: must be a list of {id, value}")
    return [{"id": _optional_id(f["id"], "custom_fields"), "value": f.get("value")} for f in value]


def _implied_status(status: str, author: dict, comment: dict | None) -> str | None:
    """The status Zendesk moves a ticket to when an update doesn't set one."""
    if author["role"] == "end-user":
        # A requester's reply reopens a ticket that was waiting on them or solved.
        reopens = comment is not None and comment["public"] and status in ("pending", "solved")
        return "open" if reopens else None
    # A New ticket becomes Open once an agent works on it.
    return "open" if status == "new" else None
