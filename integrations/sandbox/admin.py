"""Admin objects of the sandbox account: webhooks, their signing secrets, and triggers that fire them.

Shapes follow Zendesk's Webhooks API (webhook_create.json: ULID ids, `created_by` as a string,
no .json suffix, cursor pages, PATCH/PUT answer 204) and Triggers API (trigger_create.json:
`conditions: {all, any}`, integer ids, offset pages; zenpy's own tests post `all`/`any` at the
top level, which Zendesk also accepts).

Triggers run after every ticket create or update, in position order, as Zendesk runs them.
Conditions the sandbox does not model never match, so an unknown condition cannot fire a
webhook by accident. A trigger's `notification_webhook` action renders its JSON body
({{ticket.id}} and a few other placeholders) and delivers it, signed with that webhook's own
signing secret, from a background thread.
"""

from __future__ import annotations

import base64
import copy
import itertools
import os
import re
import threading

from flask import Blueprint, Flask, current_app, g, jsonify, request

from .constants import FIRST_GENERATED_ID
from .errors import ApiError, not_found, record_invalid
from .formats import iso, new_ulid, utc_now
from .pagination import cursor_page, paginate
from .webhooks import WebhookDispatcher, post_signed

admin_api = Blueprint("zendesk_admin_api", __name__, url_prefix="/api/v2")

WEBHOOK_FIELDS = ("name", "description", "status", "subscriptions", "endpoint", "http_method", "request_format")
WEBHOOK_REQUIRED = ("name", "endpoint", "http_method", "request_format", "status")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REQUEST_FORMATS = ("json", "xml", "form_encoded")
DEFAULT_TRIGGER_CATEGORY_ID = "36000000000701"
STATUS_ORDER = ("new", "open", "pending", "hold", "solved", "closed")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")


class AdminState:
    """Webhooks, signing secrets and triggers of the sandbox account. Thread-safe."""

    def __init__(self):
        self.lock = threading.RLock()
        self.webhooks: dict[str, dict] = {}
        self.secrets: dict[str, str] = {}
        self.triggers: dict[int, dict] = {}
        self._new_trigger_id = itertools.count(FIRST_GENERATED_ID + 500_000).__next__
        self._senders: dict[str, _TriggerWebhook] = {}

    # Webhooks

    def create_webhook(self, fields: dict, actor: dict) -> dict:
        with self.lock:
            values = _webhook_values(fields, partial=False)
            webhook = {"id": new_ulid(), **{k: values.get(k) for k in ("name", "description", "status", "subscriptions")},
                       # Zendesk stamps creation with nanoseconds here (webhook_create.json), unlike the Support API.
                       "created_at": utc_now().strftime("%Y-%m-%dT%H:%M:%S.000000000Z"), "created_by": str(actor["id"]),
                       **{k: values.get(k) for k in ("endpoint", "http_method", "request_format")}}
            if webhook["description"] is None:
                webhook.pop("description")
            if webhook["subscriptions"] is None:
                webhook["subscriptions"] = []
            if fields.get("authentication"):
                webhook["authentication"] = _public_authentication(fields["authentication"])
            self.webhooks[webhook["id"]] = webhook
            self.secrets[webhook["id"]] = base64.b64encode(os.urandom(30)).decode()
            return copy.deepcopy(webhook)

    def webhook(self, webhook_id: str) -> dict:
        with self.lock:
            if webhook_id not in self.webhooks:
                raise not_found()
            return copy.deepcopy(self.webhooks[webhook_id])

    def list_webhooks(self, name_contains: str | None = None) -> list[dict]:
        with self.lock:
            found = [w for w in self.webhooks.values() if not name_contains or name_contains.lower() in w["name"].lower()]
            return copy.deepcopy(sorted(found, key=lambda w: w["name"]))

    def update_webhook(self, webhook_id: str, fields: dict, actor: dict, partial: bool) -> None:
        with self.lock:
            webhook = self.webhooks.get(webhook_id)
            if webhook is None:
                raise not_found()
            values = _webhook_values(fields, partial=partial)
            if not partial:  # PUT replaces the writable fields
                for key in WEBHOOK_FIELDS:
                    webhook.pop(key, None)
            webhook.update({k: v for k, v in values.items() if v is not None})
            if "authentication" in fields:
                webhook["authentication"] = _public_authentication(fields["authentication"])
            webhook["updated_at"] = utc_now().strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
            webhook["updated_by"] = str(actor["id"])

    def delete_webhook(self, webhook_id: str) -> None:
        with self.lock:
            if self.webhooks.pop(webhook_id, None) is None:
                raise not_found()
            self.secrets.pop(webhook_id, None)

    def signing_secret(self, webhook_id: str) -> dict:
        with self.lock:
            if webhook_id not in self.secrets:
                raise not_found()
            return {"algorithm": "SHA256", "secret": self.secrets[webhook_id]}

    # Triggers

    def create_trigger(self, fields: dict) -> dict:
        with self.lock:
            values = self._trigger_values(fields, partial=False)
            now = iso(utc_now())
            trigger = {"id": self._new_trigger_id(), "title": values["title"], "active": values.get("active", True),
                       "updated_at": now, "created_at": now, "default": False, "actions": values["actions"],
                       "conditions": values["conditions"], "description": values.get("description"),
                       "position": values.get("position") or len(self.triggers) + 1, "raw_title": values["title"],
                       "category_id": str(values.get("category_id") or DEFAULT_TRIGGER_CATEGORY_ID)}
            self.triggers[trigger["id"]] = trigger
            return copy.deepcopy(trigger)

    def trigger(self, trigger_id: int) -> dict:
        with self.lock:
            if trigger_id not in self.triggers:
                raise not_found()
            return copy.deepcopy(self.triggers[trigger_id])

    def list_triggers(self, active: bool | None = None) -> list[dict]:
        with self.lock:
            found = [t for t in self.triggers.values() if active is None or t["active"] == active]
            return copy.deepcopy(sorted(found, key=lambda t: (t["position"], t["id"])))

    def update_trigger(self, trigger_id: int, fields: dict) -> dict:
        with self.lock:
            trigger = self.triggers.get(trigger_id)
            if trigger is None:
                raise not_found()
            values = self._trigger_values(fields, partial=True)
            for key in ("title", "active", "actions", "conditions", "description", "position"):
                if key in values:
                    trigger[key] = values[key]
            if "category_id" in values:
                trigger["category_id"] = str(values["category_id"])
            trigger["raw_title"] = trigger["title"]
            trigger["updated_at"] = iso(utc_now())
            return copy.deepcopy(trigger)

    def delete_trigger(self, trigger_id: int) -> None:
        with self.lock:
            if self.triggers.pop(trigger_id, None) is None:
                raise not_found()

    def _trigger_values(self, fields: dict, partial: bool) -> dict:
        values = {k: fields[k] for k in ("title", "active", "description", "position", "category_id") if k in fields}
        if not partial or "title" in fields:
            if not isinstance(fields.get("title"), str) or not fields["title"].strip():
                raise record_invalid("title", "Title: cannot be blank", code="BlankValue")
        if "conditions" in fields or "all" in fields or "any" in fields or not partial:
            conditions = fields.get("conditions") or {"all": fields.get("all", []), "any": fields.get("any", [])}
            values["conditions"] = {part: _conditions(conditions.get(part) or [], part) for part in ("all", "any")}
            if not values["conditions"]["all"] and not values["conditions"]["any"]:
                raise record_invalid("conditions", "Conditions: a trigger needs at least one condition")
        if "actions" in fields or not partial:
            actions = fields.get("actions")
            if not isinstance(actions, list) or not actions:
                raise record_invalid("actions", "Actions: a trigger needs at least one action")
            for action in actions:
                if not isinstance(action, dict) or "field" not in action:
                    raise record_invalid("actions", "Actions: each action needs a field and a value")
                if action["field"] == "notification_webhook":
                    value = action.get("value")
                    if not (isinstance(value, list) and len(value) == 2 and str(value[0]) in self.webhooks):
                        raise record_invalid("actions", "Actions: notification_webhook needs [an existing webhook "
                                                        "id, a body]")
            values["actions"] = copy.deepcopy(actions)
        return values

    # Running triggers

    def ticket_saved(self, ticket: dict, update_type: str, current_user: dict, comment: dict | None,
                     users: dict[int, dict], netloc: str) -> list[str]:
        """Run the active triggers after a ticket was created or updated; returns the invocation ids.

        `current_user` is who made the update: the comment's author when there is one (the sandbox's
        customers write through the API as the bot, with their own author_id), else the API caller.
        """
        invocations = []
        with self.lock:
            for trigger in self.list_triggers(active=True):
                if not _matches(trigger["conditions"], ticket, update_type, current_user, comment):
                    continue
                for action in trigger["actions"]:
                    if action["field"] != "notification_webhook":
                        continue
                    webhook_id, template = str(action["value"][0]), action["value"][1]
                    webhook = self.webhooks.get(webhook_id)
                    if webhook is None or webhook.get("status") != "active":
                        continue
                    body = _render(template, ticket, users, netloc).encode("utf-8")
                    sender = self._senders.setdefault(webhook_id, _TriggerWebhook(webhook_id))
                    sender.configure(webhook["endpoint"], self.secrets[webhook_id])
                    invocations.append(sender.send(ticket["id"], f"trigger:{trigger['id']}", body))
        return invocations

    def wait_idle(self, timeout: float = 5.0) -> bool:
        with self.lock:
            senders = list(self._senders.values())
        return all(s.wait_idle(timeout) for s in senders)

    @property
    def attempts(self) -> list:
        with self.lock:
            return [a for s in self._senders.values() for a in s.attempts]


class _TriggerWebhook(WebhookDispatcher):
    """Delivery with a trigger's own rendered body, under the webhook's own id and secret."""

    def __init__(self, webhook_id: str):
        super().__init__()
        self.webhook_id = webhook_id

    def send(self, ticket_id: int, event: str, body: bytes) -> str:
        invocation_id = new_ulid()
        with self._lock:
            self._in_flight += 1
        threading.Thread(target=self._deliver, name=f"webhook-{invocation_id}", daemon=True,
                         args=(invocation_id, ticket_id, event, body)).start()
        return invocation_id

    def _post(self, invocation_id: str, body: bytes) -> tuple[int | None, str | None]:
        return post_signed(self.url, self.secret, self.webhook_id, invocation_id, body, self.timeout)


# --- conditions ------------------------------------------------------------------------------------


def _conditions(items, part: str) -> list[dict]:
    if not isinstance(items, list) or not all(isinstance(c, dict) and c.get("field") for c in items):
        raise record_invalid("conditions", f"Conditions: {part} must be a list of {{field, operator, value}}")
    return [{"field": c["field"], "operator": c.get("operator", "is"), "value": c.get("value")} for c in items]


def _matches(conditions: dict, ticket: dict, update_type: str, current_user: dict, comment: dict | None) -> bool:
    def holds(c: dict) -> bool:
        return _condition_holds(c, ticket, update_type, current_user, comment)

    return all(holds(c) for c in conditions["all"]) and (not conditions["any"] or any(holds(c) for c in conditions["any"]))


def _condition_holds(c: dict, ticket: dict, update_type: str, current_user: dict, comment: dict | None) -> bool:
    field, operator, value = c["field"], c["operator"], "" if c["value"] is None else str(c["value"])
    if field == "update_type":
        actual = update_type
    elif field == "current_tags":
        wanted = set(value.lower().split())
        present = bool(wanted & set(ticket["tags"]))
        return {"includes": present, "not_includes": not present}.get(operator, False)
    elif field == "comment_is_public":
        if value == "not_relevant":
            return True
        actual = "true" if comment is not None and comment["public"] else "false"
        value = value.lower()
    elif field == "role":
        actual = current_user["role"].replace("-", "_")  # the API spells end-user; conditions end_user
    elif field in ("assignee_id", "group_id", "requester_id", "brand_id"):
        actual = "" if ticket[field] is None else str(ticket[field])
    elif field == "status":
        if operator in ("less_than", "greater_than"):
            here, there = STATUS_ORDER.index(ticket["status"]), STATUS_ORDER.index(value)
            return here < there if operator == "less_than" else here > there
        actual = ticket["status"]
    else:
        return False  # a condition the sandbox does not model never matches
    return {"is": actual == value, "is_not": actual != value}.get(operator, False)


def _render(template: str, ticket: dict, users: dict[int, dict], netloc: str) -> str:
    """Zendesk placeholders in a webhook body; values are inserted as they are, unescaped, as Zendesk does."""
    requester = users.get(ticket["requester_id"], {})
    values = {
        "ticket.id": str(ticket["id"]),
        "ticket.title": ticket["subject"] or "",
        "ticket.status": ticket["status"],
        "ticket.tags": " ".join(ticket["tags"]),
        "ticket.url": f"{netloc}/agent/tickets/{ticket['id']}",
        "ticket.requester.email": requester.get("email", ""),
        "ticket.requester.name": requester.get("name", ""),
    }
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def _webhook_values(fields: dict, partial: bool) -> dict:
    values = {k: fields[k] for k in WEBHOOK_FIELDS if k in fields}
    missing = [] if partial else [k for k in WEBHOOK_REQUIRED if not fields.get(k)]
    if missing:
        raise _invalid(f"missing {', '.join(missing)}")
    if "http_method" in values and values["http_method"] not in HTTP_METHODS:
        raise _invalid(f"http_method must be one of {', '.join(HTTP_METHODS)}")
    if "request_format" in values and values["request_format"] not in REQUEST_FORMATS:
        raise _invalid(f"request_format must be one of {', '.join(REQUEST_FORMATS)}")
    if "status" in values and values["status"] not in ("active", "inactive"):
        raise _invalid("status must be active or inactive")
    if "endpoint" in values and not re.match(r"^https?://", str(values["endpoint"])):
        raise _invalid("endpoint must be an http(s) URL")
    return values


def _public_authentication(auth: dict) -> dict:
    """What Zendesk echoes back: the type and position, never passwords or tokens."""
    data = {k: v for k, v in (auth.get("data") or {}).items() if k == "username"}
    return {"type": auth.get("type"), "data": data, "add_position": auth.get("add_position", "header")}


class _WebhooksApiError(ApiError):
    """The Webhooks API answers errors in the newer {"errors": [{code, title, detail}]} shape."""

    def body(self) -> dict:
        return {"errors": [{"code": self.error, "title": "Invalid input", "detail": self.description}]}


def _invalid(detail: str) -> ApiError:
    return _WebhooksApiError(400, "InvalidInput", detail)


# --- routes -------------------------------------------------------------------------------------------


def _admin() -> AdminState:
    return current_app.extensions["sandbox_state"].admin


def _require_admin_role():
    # Webhooks and triggers are admin-only in Zendesk; the sandbox's agents may manage them,
    # end users may not.
    if g.user["role"] == "end-user":
        raise ApiError(403, "Forbidden", "You do not have access to this page")


def _body(key: str) -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise _invalid(f"the request body must be JSON with a '{key}' object")
    return data[key]


@admin_api.get("/webhooks")
def list_webhooks():
    _require_admin_role()
    found = _admin().list_webhooks(request.args.get("filter[name_contains]"))
    return cursor_page(found, "webhooks", request.args, request.base_url)


@admin_api.post("/webhooks")
def create_webhook():
    _require_admin_role()
    return {"webhook": _admin().create_webhook(_body("webhook"), g.user)}, 201


@admin_api.get("/webhooks/<webhook_id>")
def show_webhook(webhook_id: str):
    _require_admin_role()
    return {"webhook": _admin().webhook(webhook_id)}


@admin_api.route("/webhooks/<webhook_id>", methods=["PUT", "PATCH"])
def update_webhook(webhook_id: str):
    _require_admin_role()
    _admin().update_webhook(webhook_id, _body("webhook"), g.user, partial=request.method == "PATCH")
    return "", 204


@admin_api.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str):
    _require_admin_role()
    _admin().delete_webhook(webhook_id)
    return "", 204


@admin_api.get("/webhooks/<webhook_id>/signing_secret")
def webhook_signing_secret(webhook_id: str):
    _require_admin_role()
    return {"signing_secret": _admin().signing_secret(webhook_id)}


@admin_api.get("/triggers.json")
@admin_api.get("/triggers")
@admin_api.get("/triggers/active.json")
def list_triggers():
    _require_admin_role()
    active = True if request.path.endswith("/active.json") else {"true": True, "false": False}.get(
        request.args.get("active", ""))
    triggers = [_trigger_json(t) for t in _admin().list_triggers(active)]
    return paginate(triggers, "triggers", request.args, request.base_url)


@admin_api.post("/triggers.json")
@admin_api.post("/triggers")
def create_trigger():
    _require_admin_role()
    response = jsonify({"trigger": _trigger_json(_admin().create_trigger(_body("trigger")))})
    response.status_code = 201
    return response


@admin_api.get("/triggers/<int:trigger_id>.json")
@admin_api.get("/triggers/<int:trigger_id>")
def show_trigger(trigger_id: int):
    _require_admin_role()
    return {"trigger": _trigger_json(_admin().trigger(trigger_id))}


@admin_api.put("/triggers/<int:trigger_id>.json")
@admin_api.put("/triggers/<int:trigger_id>")
def update_trigger(trigger_id: int):
    _require_admin_role()
    return {"trigger": _trigger_json(_admin().update_trigger(trigger_id, _body("trigger")))}


@admin_api.delete("/triggers/<int:trigger_id>.json")
@admin_api.delete("/triggers/<int:trigger_id>")
def delete_trigger(trigger_id: int):
    _require_admin_role()
    _admin().delete_trigger(trigger_id)
    return "", 204


def _trigger_json(trigger: dict) -> dict:
    return {"url": f"{request.host_url.rstrip('/')}/api/v2/triggers/{trigger['id']}.json", **trigger}


def register(app: Flask) -> None:
    """Mount the admin endpoints, and the suffix-less paths Zendesk also answers for users/me and groups."""
    from .zendesk import list_groups, users_me

    app.register_blueprint(admin_api)
    app.add_url_rule("/api/v2/users/me", "users_me_plain", users_me)
    app.add_url_rule("/api/v2/groups", "list_groups_plain", list_groups)
