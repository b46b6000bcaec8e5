"""A local stand-in for Intercom: the REST API subset helpdesk-bot uses, in Intercom's 2.x
shapes (shared/data/intercom: bodies from Intercom's OpenAPI description), and signed webhook
notifications, so the real client code runs against it in tests and the demo.

    SandboxIntercom(help_center=...).start()   # then point IntercomHelpdesk at .url

Run on its own: `python -m integrations.sandbox.intercom --port 8766`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from html import escape

import requests
from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .formats import epoch, slugify
from .helpcenter import DEFAULT_LOCALE, HelpCenterSource, is_translation, load_source
from .serving import ServedInThread

APP_ID = "sbx4ic0m"
WORKSPACE_ID = APP_ID
BOT_ADMIN_ID = "8100001"
BOT_ADMIN_NAME = "Helpdesk Bot"
BOT_ADMIN_EMAIL = "bot@orbitask.example"
HUMAN_ADMIN_ID = "8100002"
HUMAN_ADMIN_NAME = "Riley Morgan"
HUMAN_ADMIN_EMAIL = "riley@orbitask.example"
SUPPORT_TEAM_ID = "8200001"  # the team handed-over conversations go to
BILLING_TEAM_ID = "8200002"

# Conversation ids are numeric strings; the sandbox's are far from the sandbox Zendesk's
# ticket ids so tests sharing one ledger never confuse the two.
FIRST_CONVERSATION_ID = 215000000001
FIRST_PART_ID = 30000000001
# Versions a request may pin with Intercom-Version (header absent: the app's default).
API_VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", *(f"2.{n}" for n in range(17)), "Unstable"}
RATE_LIMIT = 10000  # per app per minute, counted in 10 s windows
# Intercom's Help Center locales are languages ("de", "es") except these (ArticleTranslatedContent).
INTERCOM_REGIONAL_LOCALES = {"pt-br": "pt-BR", "zh-cn": "zh-CN", "zh-tw": "zh-TW"}

ADMIN_TOPICS = {
    "comment": "conversation.admin.replied", "note": "conversation.admin.noted",
    "assignment": "conversation.admin.assigned", "close": "conversation.admin.closed",
    "snoozed": "conversation.admin.snoozed", "open": "conversation.admin.opened",
}


class ApiError(Exception):
    """An error answer: {"type": "error.list", "request_id": …, "errors": [{"code", "message"}]}."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        response = jsonify({"type": "error.list", "request_id": uuid.uuid4().hex[:20],
                            "errors": [{"code": self.code, "message": self.message}]})
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def not_found(what: str = "Resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} Not Found")


def invalid(message: str) -> ApiError:
    return ApiError(400, "parameter_invalid", message)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    remaining: int
    reset_after: int | None  # 429s: seconds until X-RateLimit-Reset

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and bool(self.pattern.search(path))


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    version: str | None  # the Intercom-Version header it carried
    body: dict | None


@dataclass(frozen=True)
class Delivery:
    notification_id: str
    topic: str
    attempt: int
    status_code: int | None
    error: str | None


def sign_intercom_notification(secret: str, body: bytes) -> str:
    """X-Hub-Signature: "sha1=" + hex HMAC-SHA1 of the raw body, keyed with the client secret."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


# --- State ---------------------------------------------------------------------------------


class IntercomState:
    """One workspace in memory. Public methods take the lock and return copies."""

    def __init__(self, help_center: HelpCenterSource = None):
        self.lock = threading.RLock()
        self._conversation_ids = itertools.count(FIRST_CONVERSATION_ID)
        self._part_ids = itertools.count(FIRST_PART_ID)
        self._tag_ids = itertools.count(9100001)
        now = int(time.time())
        self.admins = {a["id"]: a for a in (
            _admin(BOT_ADMIN_ID, BOT_ADMIN_NAME, BOT_ADMIN_EMAIL, [SUPPORT_TEAM_ID]),
            _admin(HUMAN_ADMIN_ID, HUMAN_ADMIN_NAME, HUMAN_ADMIN_EMAIL, [SUPPORT_TEAM_ID, BILLING_TEAM_ID]),
        )}
        self.teams = {SUPPORT_TEAM_ID: {"type": "team", "id": SUPPORT_TEAM_ID, "name": "Support",
                                        "admin_ids": [int(BOT_ADMIN_ID), int(HUMAN_ADMIN_ID)]},
                      BILLING_TEAM_ID: {"type": "team", "id": BILLING_TEAM_ID, "name": "Billing",
                                        "admin_ids": [int(HUMAN_ADMIN_ID)]}}
        self.contacts: dict[str, dict] = {}
        self.conversations: dict[str, dict] = {}
        self.tags: dict[str, dict] = {}
        self.articles = {a["id"]: a for a in _articles(load_source(help_center), now)}
        self.requests: list[RequestRecord] = []
        self.notifier = Notifier()
        self._faults: list[Fault] = []

    # Test hooks

    def inject_fault(self, method: str, path_regex: str, status: int, times: int = 1,
                     reset_after: int | None = None) -> None:
        """The next `times` requests matching method and path (re.search) answer `status`."""
        with self.lock:
            self._faults.append(Fault(method.upper(), re.compile(path_regex), status, times, reset_after))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def log_request(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    # Contacts

    def create_contact(self, fields: dict) -> dict:
        with self.lock:
            email = (fields.get("email") or "").strip().lower()
            role = fields.get("role", "user")
            if role not in ("user", "lead"):
                raise invalid("role must be user or lead")
            if not email and not fields.get("external_id"):
                raise invalid("email or external_id is required")
            existing = next((c for c in self.contacts.values() if email and c["email"] == email), None)
            if existing:
                # Intercom names the existing contact in the message; clients parse it from there.
                raise ApiError(409, "conflict", f"A contact matching those details already exists with id={existing['id']}")
            contact = {"type": "contact", "id": secrets.token_hex(12), "workspace_id": WORKSPACE_ID,
                       "external_id": fields.get("external_id"), "role": role, "email": email,
                       "name": fields.get("name") or email.split("@")[0], "created_at": int(time.time()),
                       "language_override": fields.get("language_override"),
                       "browser_language": fields.get("browser_language")}
            self.contacts[contact["id"]] = contact
            return copy.deepcopy(contact)

    def contact(self, contact_id: str) -> dict:
        with self.lock:
            if contact_id not in self.contacts:
                raise not_found("User")
            return copy.deepcopy(self.contacts[contact_id])

    # Conversations: reads

    def conversation(self, conversation_id: str) -> dict:
        with self.lock:
            return render_conversation(self._conversation(conversation_id))

    def search_conversations(self, fields: dict) -> dict:
        """POST /conversations/search: a query of field/operator/value filters, nested under AND/OR,
        cursor-paginated (`pagination.per_page` up to 150, `pagination.starting_after`). As in
        Intercom, the conversations found come without their parts: read each one for those."""
        query = fields.get("query")
        if not isinstance(query, dict):
            raise invalid("query is required")
        pagination = fields.get("pagination") or {}
        per_page = pagination.get("per_page", 20)
        if not isinstance(per_page, int) or not 1 <= per_page <= 150:
            raise invalid("per_page must be between 1 and 150")
        with self.lock:
            found = sorted((c for c in self.conversations.values() if _matches(query, c)),
                           key=lambda c: (c["created_at"], int(c["id"])))
            start = 0
            if pagination.get("starting_after"):
                start = _search_cursor(pagination["starting_after"], len(found))
            page = found[start:start + per_page]
            pages = {"type": "pages", "page": start // per_page + 1, "per_page": per_page,
                     "total_pages": max(1, -(-len(found) // per_page))}
            if start + per_page < len(found):
                pages["next"] = {"page": pages["page"] + 1,
                                 "starting_after": base64.urlsafe_b64encode(str(start + per_page).encode()).decode()}
            listed = []
            for conversation in page:
                shown = render_conversation(conversation)
                del shown["conversation_parts"]
                listed.append(shown)
            return {"type": "conversation.list", "pages": pages, "total_count": len(found), "conversations": listed}

    # Conversations: writes

    def start_conversation(self, fields: dict) -> dict:
        """POST /conversations: a contact starts a conversation; answers the message, not the conversation."""
        with self.lock:
            sender = fields.get("from")
            if not isinstance(sender, dict) or sender.get("type") not in ("user", "lead", "contact"):
                raise invalid("from must be {type: user|lead|contact, id}")
            contact = self._contact(str(sender.get("id")))
            body = fields.get("body")
            if not isinstance(body, str) or not body.strip():
                raise invalid("body is required")
            now = int(time.time())
            conversation_id = str(next(self._conversation_ids))
            source_id = str(next(self._part_ids))
            conversation = {
                "id": conversation_id, "created_at": now, "updated_at": now, "waiting_since": now,
                "snoozed_until": None,
                "source": {"type": "email" if fields.get("subject") else "conversation", "id": source_id,
                           "delivered_as": "customer_initiated",
                           # Sandbox-only field: email conversations carry a subject in source.subject.
                           "subject": fields.get("subject") or "", "body": _html(body),
                           "author": _contact_author(contact), "attachments": [], "url": None, "redacted": False},
                "contacts": [contact["id"]], "admin_assignee_id": None, "team_assignee_id": None,
                "state": "open", "read": False, "tags": [], "parts": [],
            }
            self.conversations[conversation_id] = conversation
            self._notify("conversation.user.created", conversation, new_parts=[])
            return {"type": "user_message", "id": source_id, "created_at": now, "body": _html(body),
                    "message_type": "inapp", "conversation_id": conversation_id}

    def reply(self, conversation_id: str, fields: dict) -> dict:
        """POST /conversations/{id}/reply, by an admin (comment or note) or by the contact."""
        with self.lock:
            conversation = self._conversation(conversation_id)
            body = fields.get("body")
            if not isinstance(body, str) or not body.strip():
                raise invalid("body is required")
            message_type = fields.get("message_type")
            if fields.get("type") == "admin":
                if message_type not in ("comment", "note"):
                    raise invalid("message_type must be comment or note")
                author = _admin_author(self._admin(fields.get("admin_id")))
                part = self._add_part(conversation, message_type, author, body)
                conversation["waiting_since"] = None if message_type == "comment" else conversation["waiting_since"]
                self._notify(ADMIN_TOPICS[message_type], conversation, [part])
            elif fields.get("type") == "user":
                if message_type != "comment":
                    raise invalid("a contact's reply has message_type comment")
                contact = self._contact_by_reference(fields)
                if contact["id"] not in conversation["contacts"]:
                    raise invalid("the contact is not part of this conversation")
                # A contact replying to a closed or snoozed conversation reopens it: the part's
                # type is then "open" (reply_conversation_response.json).
                reopening = conversation["state"] != "open"
                part = self._add_part(conversation, "open" if reopening else "comment", _contact_author(contact), body)
                conversation.update(state="open", snoozed_until=None, waiting_since=part["created_at"])
                self._notify("conversation.user.replied", conversation, [part])
            else:
                raise invalid("type must be admin or user")
            return render_conversation(conversation, parts=[part])

    def manage(self, conversation_id: str, fields: dict) -> dict:
        """POST /conversations/{id}/parts: assignment, close, snoozed, open."""
        with self.lock:
            conversation = self._conversation(conversation_id)
            message_type = fields.get("message_type")
            author = _admin_author(self._admin(fields.get("admin_id")))
            body = fields.get("body")
            if message_type == "assignment":
                kind, assignee = fields.get("type"), str(fields.get("assignee_id", ""))
                if kind == "team":
                    if assignee != "0" and assignee not in self.teams:
                        raise not_found("Team")
                    conversation["team_assignee_id"] = None if assignee == "0" else int(assignee)
                elif kind == "admin":
                    if assignee != "0":
                        self._admin(assignee)
                    conversation["admin_assignee_id"] = None if assignee == "0" else int(assignee)
                else:
                    raise invalid("type must be admin or team")
                part = self._add_part(conversation, "assignment", author, body,
                                      assigned_to={"type": kind, "id": assignee})
            elif message_type == "close":
                part = self._add_part(conversation, "close", author, body)
                conversation.update(state="closed", snoozed_until=None)
            elif message_type == "snoozed":
                until = fields.get("snoozed_until")
                if not isinstance(until, int) or isinstance(until, bool) or until <= time.time():
                    raise invalid("snoozed_until must be a unix timestamp in the future")
                part = self._add_part(conversation, "snoozed", author, None)
                conversation.update(state="snoozed", snoozed_until=until)
            elif message_type == "open":
                part = self._add_part(conversation, "open", author, None)
                conversation.update(state="open", snoozed_until=None)
            else:
                raise invalid("message_type must be assignment, close, snoozed or open")
            self._notify(ADMIN_TOPICS[message_type], conversation, [part])
            return render_conversation(conversation)

    def rate(self, conversation_id: str, rating: int, remark: str = "") -> None:
        """The customer rates the conversation 1-5, as in the Messenger (no REST endpoint does this)."""
        with self.lock:
            conversation = self._conversation(conversation_id)
            contact = conversation["contacts"][0]
            conversation["rating"] = {"rating": rating, "remark": remark or None, "created_at": int(time.time()),
                                      "contact": {"type": "contact", "id": contact, "external_id": None},
                                      "teammate": None}

    # Tags

    def list_tags(self) -> list[dict]:
        with self.lock:
            return [_tag(t) for t in self.tags.values()]

    def create_tag(self, fields: dict) -> dict:
        """POST /tags with a name: create it, or answer the existing tag of that name."""
        with self.lock:
            name = fields.get("name")
            if not isinstance(name, str) or not name.strip():
                raise invalid("name is required")
            existing = next((t for t in self.tags.values() if t["name"] == name), None)
            if existing is None:
                existing = {"id": str(next(self._tag_ids)), "name": name}
                self.tags[existing["id"]] = existing
            return _tag(existing)

    def tag_conversation(self, conversation_id: str, fields: dict) -> dict:
        with self.lock:
            conversation = self._conversation(conversation_id)
            tag_id = str(fields.get("id", ""))
            if tag_id not in self.tags:
                raise not_found("Tag")
            admin = self._admin(fields.get("admin_id"))
            applied = next((t for t in conversation["tags"] if t["id"] == tag_id), None)
            if applied is None:
                applied = {"id": tag_id, "name": self.tags[tag_id]["name"], "applied_at": int(time.time()),
                           "applied_by": {"type": "admin", "id": admin["id"]}}
                conversation["tags"].append(applied)
            return {"type": "tag", **applied}

    def untag_conversation(self, conversation_id: str, tag_id: str, fields: dict) -> dict:
        with self.lock:
            conversation = self._conversation(conversation_id)
            self._admin(fields.get("admin_id"))
            if tag_id not in self.tags:
                raise not_found("Tag")
            conversation["tags"] = [t for t in conversation["tags"] if t["id"] != tag_id]
            return _tag(self.tags[tag_id])

    # Articles

    def list_articles(self, page: int, per_page: int) -> dict:
        with self.lock:
            ordered = sorted(self.articles.values(), key=lambda a: (-a["updated_at"], a["id"]))
            start = (page - 1) * per_page
            total_pages = max(1, -(-len(ordered) // per_page))
            return {"type": "list", "pages": {"type": "pages", "page": page, "per_page": per_page,
                                              "total_pages": total_pages},
                    "total_count": len(ordered), "data": copy.deepcopy(ordered[start:start + per_page])}

    def article(self, article_id: str) -> dict:
        with self.lock:
            if article_id not in self.articles:
                raise not_found("Article")
            return copy.deepcopy(self.articles[article_id])

    # Notifications

    def redeliver(self, conversation_id: str, topic: str) -> str:
        """Send a notification about the conversation as it is now (e.g. a follow-up again)."""
        with self.lock:
            conversation = self._conversation(conversation_id)
            parts = [p for p in conversation["parts"] if p["part_type"] in ("comment", "open")][-1:]
            return self._notify(topic, conversation, parts, force=True)

    # Internals (callers hold the lock)

    def _conversation(self, conversation_id: str) -> dict:
        if conversation_id not in self.conversations:
            raise not_found()
        return self.conversations[conversation_id]

    def _contact(self, contact_id: str) -> dict:
        if contact_id not in self.contacts:
            raise not_found("User")
        return self.contacts[contact_id]

    def _contact_by_reference(self, fields: dict) -> dict:
        if fields.get("intercom_user_id"):
            return self._contact(str(fields["intercom_user_id"]))
        email = (fields.get("email") or "").lower()
        found = next((c for c in self.contacts.values() if email and c["email"] == email), None)
        if found is None:
            raise not_found("User")
        return found

    def _admin(self, admin_id) -> dict:
        if admin_id is None or str(admin_id) not in self.admins:
            raise not_found("Admin")
        return self.admins[str(admin_id)]

    def _add_part(self, conversation: dict, part_type: str, author: dict, body: str | None,
                  assigned_to: dict | None = None) -> dict:
        now = int(time.time())
        part = {"type": "conversation_part", "id": str(next(self._part_ids)), "part_type": part_type,
                "body": _html(body) if body else None, "created_at": now, "updated_at": now, "notified_at": now,
                "assigned_to": assigned_to, "author": author, "attachments": [], "external_id": None,
                "redacted": False, "metadata": {}, "email_message_metadata": None, "app_package_code": None}
        conversation["parts"].append(part)
        conversation["updated_at"] = now
        return part

    def _notify(self, topic: str, conversation: dict, new_parts: list[dict], force: bool = False) -> str | None:
        if not (self.notifier.enabled and (force or topic in self.notifier.topics)):
            return None
        item = render_conversation(conversation, parts=new_parts)
        return self.notifier.send(topic, item, conversation["id"])


SEARCH_FIELDS = {"id", "created_at", "updated_at", "state", "open", "read", "admin_assignee_id", "team_assignee_id",
                 "source.type"}


def _matches(query: dict, conversation: dict) -> bool:
    """One filter ({field, operator, value}) or a group ({operator: AND|OR, value: [filters]})."""
    operator, value = query.get("operator"), query.get("value")
    if operator in ("AND", "OR"):
        if not isinstance(value, list) or not value:
            raise invalid(f"{operator} needs a list of filters")
        results = (_matches(q, conversation) for q in value)
        return all(results) if operator == "AND" else any(results)
    field = query.get("field")
    if field not in SEARCH_FIELDS:
        raise invalid(f"{field!r} is not a searchable field")
    actual = conversation["source"]["type"] if field == "source.type" else (
        conversation["state"] == "open" if field == "open" else conversation.get(field))
    if field in ("created_at", "updated_at"):
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise invalid(f"{field} takes a unix timestamp") from None
    elif actual is not None and not isinstance(actual, bool):
        actual = str(actual)
        value = str(value)
    if operator == "=":
        return actual == value
    if operator == "!=":
        return actual != value
    if operator in (">", "<") and field in ("created_at", "updated_at"):
        return actual > value if operator == ">" else actual < value
    raise invalid(f"operator {operator!r} does not apply to {field}")


def _search_cursor(cursor, total: int) -> int:
    try:
        start = int(base64.urlsafe_b64decode(str(cursor).encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise invalid("starting_after is not a cursor this search returned") from None
    if not 0 <= start <= total:
        raise invalid("starting_after is not a cursor this search returned")
    return start


def render_conversation(conversation: dict, parts: list[dict] | None = None) -> dict:
    """A conversation in the field order of conversation_find_response.json; `parts` narrows
    conversation_parts to the ones a request created, as Intercom's reply answers do."""
    shown = conversation["parts"] if parts is None else parts
    return copy.deepcopy({
        "type": "conversation", "id": conversation["id"], "created_at": conversation["created_at"],
        "updated_at": conversation["updated_at"], "waiting_since": conversation["waiting_since"],
        "snoozed_until": conversation["snoozed_until"], "source": conversation["source"],
        "contacts": {"type": "contact.list",
                     "contacts": [{"type": "contact", "id": c, "external_id": None} for c in conversation["contacts"]]},
        "first_contact_reply": None, "admin_assignee_id": conversation["admin_assignee_id"],
        "team_assignee_id": conversation["team_assignee_id"], "open": conversation["state"] == "open",
        "state": conversation["state"], "read": conversation["read"],
        "tags": {"type": "tag.list", "tags": [
            {"type": "tag", **t} for t in conversation["tags"]]},
        "priority": "not_priority", "sla_applied": None, "statistics": None,
        "conversation_rating": conversation.get("rating"),
        "teammates": None, "title": None, "custom_attributes": {}, "topics": {}, "ticket": None,
        "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
        "ai_agent": None, "ai_agent_participated": False,
        "conversation_parts": {"type": "conversation_part.list", "conversation_parts": shown,
                               "total_count": len(shown)},
    })


def _tag(tag: dict) -> dict:
    return {"type": "tag", "id": tag["id"], "name": tag["name"]}


def _admin(admin_id: str, name: str, email: str, team_ids: list[str]) -> dict:
    return {"type": "admin", "id": admin_id, "name": name, "email": email, "email_verified": True,
            "job_title": None, "away_mode_enabled": False, "away_mode_reassign": False,
            "has_inbox_seat": True, "team_ids": [int(t) for t in team_ids],
            "avatar": {"type": "avatar", "image_url": None}}


def _admin_author(admin: dict) -> dict:
    return {"type": "admin", "id": admin["id"], "name": admin["name"], "email": admin["email"]}


def _contact_author(contact: dict) -> dict:
    return {"type": contact["role"], "id": contact["id"], "name": contact["name"], "email": contact["email"]}


def _html(text: str) -> str:
    """Bodies are HTML; plain text sent by a client is wrapped in a paragraph, as the Messenger does."""
    return text if re.match(r"\s*<", text) else "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p.strip())


def _articles(source: dict, now: int) -> list[dict]:
    """Help-center articles (Zendesk-shaped sample data) in the shape of articles_list_response.json.

    Intercom keeps an article's translations inside it: the sample's translations (Zendesk-shaped:
    the same id in another locale) go into their article's `translated_content`, keyed by
    Intercom's locale code, each published or a draft of its own.
    """
    articles = {}
    for raw in (raw for raw in source.get("articles", []) if not is_translation(raw)):
        article_id = str(raw["id"])
        content = _article_content(raw, now)
        articles[article_id] = {
            "id": article_id, "type": "article", "workspace_id": WORKSPACE_ID,
            "parent_id": raw.get("section_id"), "parent_type": "collection",
            "parent_ids": [raw["section_id"]] if raw.get("section_id") else [],
            **{field: content[field] for field in ("title", "description", "body", "author_id", "state",
                                                   "created_at", "updated_at", "url")},
            "default_locale": _intercom_locale(raw.get("locale", DEFAULT_LOCALE)),
            "translated_content": {"type": "article_translated_content"},
        }
    for raw in source.get("articles", []):
        article = articles.get(str(raw["id"]))
        if article is not None and is_translation(raw):
            article["translated_content"][_intercom_locale(raw["locale"])] = _article_content(raw, now)
    return list(articles.values())


def _article_content(raw: dict, now: int) -> dict:
    """An `article_content`: one locale's text of an article."""
    updated = epoch(raw["updated_at"]) if raw.get("updated_at") else now
    return {"type": "article_content", "title": raw.get("title") or "", "description": "",
            "body": raw.get("body", ""), "author_id": int(HUMAN_ADMIN_ID),
            "state": "draft" if raw.get("draft") else "published",
            "created_at": epoch(raw["created_at"]) if raw.get("created_at") else updated, "updated_at": updated,
            "url": None}


def _intercom_locale(locale: str) -> str:
    """Intercom's code for a Zendesk help center locale: the language ("en-us" → "en", "de"), except
    the three locales Intercom tells apart by region ("pt-br" → "pt-BR", "zh-cn", "zh-tw")."""
    locale = locale.lower()
    return INTERCOM_REGIONAL_LOCALES.get(locale, locale.split("-")[0])


# --- Webhook notifications -------------------------------------------------------------------


class Notifier:
    """Delivers signed notifications from background threads, retrying failed ones."""

    retry_delays: tuple[float, ...] = (0.1, 0.3, 0.9)
    timeout = 10.0
    default_topics = frozenset({"conversation.user.created", "conversation.user.replied",
                                *ADMIN_TOPICS.values()})

    def __init__(self):
        self.url: str | None = None
        self.secret: str | None = None
        self.topics = self.default_topics
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.secret)

    def configure(self, url: str | None, secret: str | None, topics=None) -> None:
        self.url, self.secret = url, secret
        self.topics = frozenset(topics) if topics is not None else self.default_topics

    def send(self, topic: str, item: dict, conversation_id: str) -> str:
        now = int(time.time())
        notification_id = f"notif_{uuid.uuid4()}"
        payload = {"type": "notification_event", "app_id": APP_ID,
                   "data": {"type": "notification_event_data", "item": item},
                   "links": {}, "id": notification_id, "topic": topic, "delivery_status": "pending",
                   "delivery_attempts": 1, "delivered_at": 0, "first_sent_at": now, "created_at": now,
                   "self": None}
        with self._lock:
            self._in_flight += 1
        threading.Thread(target=self._deliver, args=(payload,), daemon=True, name=f"notify-{notification_id}").start()
        return notification_id

    def wait_idle(self, timeout: float = 5.0) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _deliver(self, payload: dict) -> None:
        try:
            for attempt, pause in enumerate((0.0, *self.retry_delays), start=1):
                time.sleep(pause)
                payload["delivery_attempts"] = attempt
                status, error = self._post(payload)
                with self._lock:
                    self.deliveries.append(Delivery(payload["id"], payload["topic"], attempt, status, error))
                if status is not None and status < 500 and status != 429:
                    return
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _post(self, payload: dict) -> tuple[int | None, str | None]:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Intercom-Webhooks-Sandbox",
                   "X-Hub-Signature": sign_intercom_notification(self.secret, body)}
        try:
            response = requests.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None


# --- The API ---------------------------------------------------------------------------------


def create_app(state: IntercomState | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["intercom_state"] = state or IntercomState()
    app.json.sort_keys = False  # keep Intercom's field order
    app.before_request(_before)
    app.after_request(_after)
    app.register_error_handler(ApiError, lambda e: e.response())
    app.register_error_handler(HTTPException, _http_error)

    @app.get("/me")
    def me():
        admin = dict(_state().admins[BOT_ADMIN_ID])
        admin["app"] = {"type": "app", "id_code": APP_ID, "name": "Orbitask (sandbox)", "created_at": 1717021328,
                        "secure": False, "identity_verification": False, "timezone": "UTC", "region": "US"}
        return admin

    @app.get("/admins")
    def admins():
        return {"type": "admin.list", "admins": list(_state().admins.values())}

    @app.get("/teams")
    def teams():
        return {"type": "team.list", "teams": list(_state().teams.values())}

    @app.post("/contacts")
    def create_contact():
        return _state().create_contact(_json())

    @app.get("/contacts/<contact_id>")
    def show_contact(contact_id: str):
        return _state().contact(contact_id)

    @app.post("/conversations")
    def create_conversation():
        return _state().start_conversation(_json())

    @app.post("/conversations/search")
    def search_conversations():
        return _state().search_conversations(_json())

    @app.get("/conversations/<conversation_id>")
    def show_conversation(conversation_id: str):
        return _state().conversation(conversation_id)

    @app.post("/conversations/<conversation_id>/reply")
    def reply(conversation_id: str):
        return _state().reply(conversation_id, _json())

    @app.post("/conversations/<conversation_id>/parts")
    def manage(conversation_id: str):
        return _state().manage(conversation_id, _json())

    @app.post("/conversations/<conversation_id>/tags")
    def tag(conversation_id: str):
        return _state().tag_conversation(conversation_id, _json())

    @app.delete("/conversations/<conversation_id>/tags/<tag_id>")
    def untag(conversation_id: str, tag_id: str):
        return _state().untag_conversation(conversation_id, tag_id, _json())

    @app.get("/tags")
    def list_tags():
        return {"type": "list", "data": _state().list_tags()}

    @app.post("/tags")
    def create_tag():
        return _state().create_tag(_json())

    @app.get("/articles")
    def list_articles():
        try:
            page = max(1, int(request.args.get("page", 1)))
            per_page = min(max(1, int(request.args.get("per_page", 50))), 150)
        except ValueError:
            raise invalid("page and per_page must be integers") from None
        listed = _state().list_articles(page, per_page)
        for article in listed["data"]:
            _add_urls(article)
        return listed

    @app.get("/articles/<article_id>")
    def show_article(article_id: str):
        return _add_urls(_state().article(article_id))

    @app.get("/help/<locale>/articles/<article_ref>")
    def article_page(locale: str, article_ref: str):
        """The public page an article's url points at, so links in bot answers open in the demo."""
        article = _state().article(article_ref.split("-", 1)[0])
        content = article if locale == article["default_locale"] else article["translated_content"].get(locale)
        if not isinstance(content, dict) or content["state"] != "published":
            raise not_found("Article")
        title = escape(content["title"])
        return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body><h1>{title}</h1>{content['body']}</body></html>"

    return app


def _state() -> IntercomState:
    return current_app.extensions["intercom_state"]


def _json() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object")
    return data


def _add_urls(article: dict) -> dict:
    """The public page of the article in each of its locales, at this sandbox's address."""
    for locale, content in [(article["default_locale"], article), *article["translated_content"].items()]:
        if isinstance(content, dict):
            content["url"] = (f"{request.host_url.rstrip('/')}/help/{locale}/articles/"
                              f"{article['id']}-{slugify(content['title']).lower()}")
    return article


def _before():
    if request.path.startswith("/help/"):
        return None
    g.version = request.headers.get("Intercom-Version")
    fault = _state().take_fault(request.method, request.path)
    if fault is not None:
        if fault.status == 429:
            reset = int(time.time()) + (fault.reset_after if fault.reset_after is not None else 10)
            raise ApiError(429, "rate_limit_exceeded", f"Exceeded rate limit of {RATE_LIMIT} in 10_seconds",
                           headers={"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0",
                                    "X-RateLimit-Reset": str(reset)})
        raise ApiError(fault.status, "server_error" if fault.status >= 500 else "client_error",
                       "Sandbox fault injected by a test")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Access Token Invalid")
    if g.version is not None and g.version not in API_VERSIONS:
        raise ApiError(400, "intercom_version_invalid", f"The requested version could not be found: {g.version}")
    return None


def _after(response: Response) -> Response:
    if not request.path.startswith("/help/"):
        body = request.get_json(silent=True) if request.data else None
        _state().log_request(RequestRecord(request.method, request.path, response.status_code,
                                           getattr(g, "version", None), body if isinstance(body, dict) else None))
        response.headers.setdefault("X-RateLimit-Limit", str(RATE_LIMIT))
        response.headers.setdefault("X-RateLimit-Remaining", str(RATE_LIMIT - 1))
        response.headers.setdefault("X-RateLimit-Reset", str(int(time.time()) + 10))
    return response


def _http_error(error: HTTPException) -> Response:
    if error.code == 404:
        return not_found().response()
    return ApiError(error.code or 500, "client_error" if (error.code or 500) < 500 else "server_error",
                    error.description or error.name).response()


# --- The server and the customer's side ----------------------------------------------------


class SandboxIntercom(ServedInThread):
    def __init__(self, help_center: HelpCenterSource = None, webhook_url: str | None = None,
                 webhook_secret: str | None = None):
        self.state = IntercomState(help_center)
        self.state.notifier.configure(webhook_url, webhook_secret)
        self.app = create_app(self.state)
        # The helpers below act through the HTTP API like any client.
        self._session = requests.Session()
        self._session.headers.update({"Authorization": "Bearer sandbox", "Intercom-Version": "2.14"})

    thread_name = "sandbox-intercom"

    # Webhooks

    def configure_webhook(self, url: str, secret: str, topics=None) -> None:
        self.state.notifier.configure(url, secret, topics)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        return self.state.notifier.wait_idle(timeout)

    def redeliver(self, conversation_id: str, topic: str = "conversation.user.replied") -> str:
        return self.state.redeliver(str(conversation_id), topic)

    # The customer's side

    def contact(self, email: str, name: str | None = None) -> str:
        response = self._session.post(f"{self.url}/contacts", json={"role": "user", "email": email, "name": name},
                                      timeout=10)
        if response.status_code == 409:  # "... already exists with id=<id>"
            return response.json()["errors"][0]["message"].rsplit("id=", 1)[1]
        response.raise_for_status()
        return response.json()["id"]

    def start_conversation(self, email: str, body: str, name: str | None = None, subject: str | None = None) -> str:
        contact_id = self.contact(email, name)
        message = self._call("POST", "/conversations", {"from": {"type": "user", "id": contact_id}, "body": body,
                                                        **({"subject": subject} if subject else {})})
        return message["conversation_id"]

    def customer_reply(self, conversation_id: str, body: str) -> dict:
        contact_id = self.conversation(conversation_id)["contacts"]["contacts"][0]["id"]
        return self._call("POST", f"/conversations/{conversation_id}/reply",
                          {"message_type": "comment", "type": "user", "intercom_user_id": contact_id, "body": body})

    # A teammate's side

    def agent_reply(self, conversation_id: str, body: str, admin_id: str = HUMAN_ADMIN_ID,
                    message_type: str = "comment") -> dict:
        return self._call("POST", f"/conversations/{conversation_id}/reply",
                          {"message_type": message_type, "type": "admin", "admin_id": admin_id, "body": body})

    def tag(self, conversation_id: str, names, admin_id: str = HUMAN_ADMIN_ID) -> None:
        """Tag a conversation by names, creating the tags, as a teammate does in the inbox."""
        for name in names:
            tag_id = self._call("POST", "/tags", {"name": name})["id"]
            self._call("POST", f"/conversations/{conversation_id}/tags", {"id": tag_id, "admin_id": admin_id})

    def close(self, conversation_id: str, admin_id: str = HUMAN_ADMIN_ID) -> dict:
        return self._call("POST", f"/conversations/{conversation_id}/parts",
                          {"message_type": "close", "type": "admin", "admin_id": admin_id})

    def assign_to_admin(self, conversation_id: str, admin_id: str = HUMAN_ADMIN_ID) -> dict:
        return self._call("POST", f"/conversations/{conversation_id}/parts",
                          {"message_type": "assignment", "type": "admin", "admin_id": admin_id, "assignee_id": admin_id})

    # Reading

    def conversation(self, conversation_id: str) -> dict:
        return self._call("GET", f"/conversations/{conversation_id}")

    def parts(self, conversation_id: str) -> list[dict]:
        return self.conversation(conversation_id)["conversation_parts"]["conversation_parts"]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        if not self.url:
            raise RuntimeError("the sandbox is not started")
        response = self._session.request(method, f"{self.url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m integrations.sandbox.intercom",
                                     description="Run the sandbox Intercom until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--help-center", metavar="FILE", help="JSON with articles (Zendesk Help Center shape)")
    parser.add_argument("--webhook-url", help="where to deliver notifications")
    parser.add_argument("--webhook-secret", help="client secret that signs X-Hub-Signature")
    args = parser.parse_args(argv)
    if bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")
    sandbox = SandboxIntercom(args.help_center, args.webhook_url, args.webhook_secret)
    sandbox.start(args.host, args.port)
    print(f"Sandbox Intercom at {sandbox.url} (bot admin {BOT_ADMIN_ID}, support team {SUPPORT_TEAM_ID})")
    print(f"  export INTERCOM_SANDBOX_URL={sandbox.url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
