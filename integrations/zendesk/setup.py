"""`helpdesk-bot zendesk setup`: the webhook, the two triggers and the checks, idempotently.

What it makes in the Zendesk account, each found again by its name on the next run:

- the webhook "helpdesk-bot" → `<product>/webhooks/zendesk` (JSON, POST, trigger-connected),
  and its signing secret, which the web app needs as ZENDESK_WEBHOOK_SECRET;
- the trigger "helpdesk-bot: new ticket": update_type is Create and the tags contain none of
  ai_answered / ai_escalated, so the bot's own updates (which add those tags) never fire it;
- the trigger "helpdesk-bot: customer follow-up": a public comment by the customer on a ticket
  no human is assigned to (assignee is empty or the bot).

It also checks that the bot's agent and the policy's escalation group exist. A second run finds
everything as wanted and changes nothing. Webhooks API: /api/v2/webhooks (no .json, cursor
pages, PATCH answers 204); triggers API: /api/v2/triggers.json (conditions {all, any}).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import requests

from helpdesk_bot.domain import ANSWERED_TAG, ESCALATED_TAG

WEBHOOK_NAME = "helpdesk-bot"
NEW_TICKET_TRIGGER = "helpdesk-bot: new ticket"
FOLLOW_UP_TRIGGER = "helpdesk-bot: customer follow-up"
TIMEOUT_SECONDS = 15
MAX_THROTTLED_WAITS = 3


class SetupError(Exception):
    """Zendesk refused a request or could not be reached; the message says which and why."""


@dataclass
class Step:
    what: str  # "webhook", "trigger", "bot agent", "escalation group", "signing secret"
    name: str
    action: str  # create | update | unchanged | ok | problem
    detail: str = ""
    changes: list[str] = field(default_factory=list)


@dataclass
class SetupReport:
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    webhook_id: str | None = None
    signing_secret: str | None = None

    @property
    def changed(self) -> bool:
        return any(s.action in ("create", "update") for s in self.steps)

    @property
    def problems(self) -> list[Step]:
        return [s for s in self.steps if s.action == "problem"]

    def as_dict(self, reveal_secret: bool = False) -> dict:
        data = {"dry_run": self.dry_run, "changed": self.changed, "webhook_id": self.webhook_id,
                "steps": [asdict(s) for s in self.steps], "problems": len(self.problems)}
        if reveal_secret:
            data["signing_secret"] = self.signing_secret
        return data


class ZendeskAdmin:
    """The few admin endpoints setup needs, on a requests session with the account's credentials."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None, oauth_token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if oauth_token:
            self.session.headers["Authorization"] = f"Bearer {oauth_token}"
        else:
            self.session.auth = auth

    @classmethod
    def from_settings(cls, settings) -> ZendeskAdmin:
        if settings.helpdesk == "sandbox":
            return cls(settings.sandbox_url or "http://127.0.0.1:8765", auth=("bot@orbitask.example/token", "sandbox"))
        return cls(f"https://{settings.zendesk_subdomain}.zendesk.com",
                   auth=(f"{settings.zendesk_email}/token", settings.zendesk_api_token or ""),
                   oauth_token=settings.zendesk_oauth_token)

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        url = path if path.startswith("http") else f"{self.base_url}/api/v2/{path}"
        for _ in range(MAX_THROTTLED_WAITS + 1):
            try:
                response = self.session.request(method, url, json=body, timeout=TIMEOUT_SECONDS)
            except requests.RequestException as exc:
                raise SetupError(f"Zendesk could not be reached ({method} {urlsplit(url).path}): {exc}") from None
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After", "10") or 10), 60))  # a one-off command may wait
        if response.status_code >= 400:
            raise SetupError(f"Zendesk answered {response.status_code} to {method} {urlsplit(url).path}: "
                             f"{response.text[:300]}")
        return response.json() if response.content else {}

    def list(self, path: str, key: str) -> list[dict]:
        """Every record of a list endpoint, following cursor (links.next) or offset (next_page) pages."""
        records, url = [], path
        while url:
            page = self.call("GET", url)
            records += page.get(key, [])
            url = (page.get("links") or {}).get("next") if (page.get("meta") or {}).get("has_more") else page.get("next_page")
        return records


def run_setup(admin: ZendeskAdmin, product_url: str, bot_agent_id: int | None, escalation_group_id: int | None,
              dry_run: bool = False) -> SetupReport:
    """Bring the account to the wanted webhook and triggers; with dry_run, only say what would change."""
    report = SetupReport(dry_run=dry_run)
    _check_bot_agent(admin, bot_agent_id, report)
    _check_escalation_group(admin, escalation_group_id, report)

    endpoint = f"{product_url.rstrip('/')}/webhooks/zendesk"
    webhook_id = _ensure_webhook(admin, endpoint, report)
    report.webhook_id = webhook_id
    if webhook_id:
        secret = admin.call("GET", f"webhooks/{webhook_id}/signing_secret")["signing_secret"]["secret"]
        report.signing_secret = secret
    bot_id = report_bot_id(report) or bot_agent_id
    for title, wanted in wanted_triggers(webhook_id or "<new webhook id>", bot_id).items():
        _ensure_trigger(admin, title, wanted, report)
    return report


def wanted_webhook(endpoint: str) -> dict:
    return {
        "name": WEBHOOK_NAME,
        "description": "helpdesk-bot: tickets to answer (created by `helpdesk-bot zendesk setup`)",
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }


def wanted_triggers(webhook_id: str, bot_agent_id: int | None) -> dict[str, dict]:
    """The two triggers by title. Bodies carry ids only: the worker fetches the ticket itself."""
    def notify(event: str) -> list[dict]:
        body = json.dumps({"ticket_id": "{{ticket.id}}", "event": event})
        return [{"field": "notification_webhook", "value": [webhook_id, body]}]

    not_assigned = [{"field": "assignee_id", "operator": "is", "value": ""}]  # "Assignee is -"
    if bot_agent_id:
        not_assigned.append({"field": "assignee_id", "operator": "is", "value": str(bot_agent_id)})
    return {
        NEW_TICKET_TRIGGER: {
            "title": NEW_TICKET_TRIGGER,
            "active": True,
            "description": "Sends new tickets to helpdesk-bot. The tag condition keeps the bot's own updates "
                           "from firing it.",
            "conditions": {
                "all": [
                    {"field": "update_type", "operator": "is", "value": "Create"},
                    {"field": "current_tags", "operator": "not_includes", "value": f"{ANSWERED_TAG} {ESCALATED_TAG}"},
                ],
                "any": [],
            },
            "actions": notify("ticket.created"),
        },
        FOLLOW_UP_TRIGGER: {
            "title": FOLLOW_UP_TRIGGER,
            "active": True,
            "description": "Sends the customer's follow-ups to helpdesk-bot while no human is assigned.",
            "conditions": {
                "all": [
                    {"field": "update_type", "operator": "is", "value": "Change"},
                    {"field": "comment_is_public", "operator": "is", "value": "true"},
                    {"field": "role", "operator": "is", "value": "end_user"},  # the update is the customer's
                ],
                "any": not_assigned,
            },
            "actions": notify("ticket.updated"),
        },
    }


# --- the steps -----------------------------------------------------------------------------------


def _check_bot_agent(admin: ZendeskAdmin, bot_agent_id: int | None, report: SetupReport) -> None:
    try:
        user = admin.call("GET", f"users/{bot_agent_id}.json" if bot_agent_id else "users/me.json")["user"]
    except SetupError as exc:
        report.steps.append(Step("bot agent", str(bot_agent_id or "me"), "problem", str(exc)))
        return
    if user.get("role") not in ("agent", "admin") or not user.get("active", True) or user.get("suspended"):
        report.steps.append(Step("bot agent", str(user["id"]), "problem",
                                 f"{user.get('name')} is {user.get('role')}, active={user.get('active')}, "
                                 f"suspended={user.get('suspended')}: the bot needs an active agent"))
        return
    report.steps.append(Step("bot agent", str(user["id"]), "ok", f"{user.get('name')} ({user.get('role')})"))


def report_bot_id(report: SetupReport) -> int | None:
    step = next((s for s in report.steps if s.what == "bot agent" and s.action == "ok"), None)
    return int(step.name) if step else None


def _check_escalation_group(admin: ZendeskAdmin, group_id: int | None, report: SetupReport) -> None:
    groups = [g for g in admin.list("groups.json", "groups") if not g.get("deleted")]
    names = ", ".join(f"{g['name']} ({g['id']})" for g in groups)
    if group_id is None:  # the built-in default: a handed-over ticket stays in its group
        report.steps.append(Step("escalation group", "-", "ok",
                                 f"none in the policy: handed-over tickets keep their group; to route them, "
                                 f"set escalation_group_id to one of: {names}"))
        return
    group = next((g for g in groups if g["id"] == group_id), None)
    if group is None:
        report.steps.append(Step("escalation group", str(group_id), "problem",
                                 f"no group {group_id} in the account; groups: {names}"))
        return
    report.steps.append(Step("escalation group", str(group_id), "ok", group["name"]))


def _ensure_webhook(admin: ZendeskAdmin, endpoint: str, report: SetupReport) -> str | None:
    wanted = wanted_webhook(endpoint)
    existing = [w for w in admin.list(f"webhooks?filter[name_contains]={WEBHOOK_NAME}", "webhooks")
                if w.get("name") == WEBHOOK_NAME]
    if not existing:
        report.steps.append(Step("webhook", WEBHOOK_NAME, "create", endpoint))
        if report.dry_run:
            return None
        return admin.call("POST", "webhooks", {"webhook": wanted})["webhook"]["id"]
    webhook = existing[0]
    changes = [f"{k}: {webhook.get(k)!r} → {v!r}" for k, v in wanted.items() if webhook.get(k) != v]
    if not changes:
        report.steps.append(Step("webhook", WEBHOOK_NAME, "unchanged", f"{webhook['id']} → {endpoint}"))
        return webhook["id"]
    report.steps.append(Step("webhook", WEBHOOK_NAME, "update", webhook["id"], changes))
    if not report.dry_run:
        admin.call("PATCH", f"webhooks/{webhook['id']}",
                   {"webhook": {k: v for k, v in wanted.items() if webhook.get(k) != v}})
    return webhook["id"]


def _ensure_trigger(admin: ZendeskAdmin, title: str, wanted: dict, report: SetupReport) -> None:
    existing = [t for t in admin.list("triggers.json", "triggers") if t.get("title") == title]
    if not existing:
        report.steps.append(Step("trigger", title, "create"))
        if not report.dry_run:
            admin.call("POST", "triggers.json", {"trigger": wanted})
        return
    trigger = existing[0]
    changes = _trigger_changes(trigger, wanted)
    if not changes:
        report.steps.append(Step("trigger", title, "unchanged", str(trigger["id"])))
        return
    report.steps.append(Step("trigger", title, "update", str(trigger["id"]), changes))
    if not report.dry_run:
        admin.call("PUT", f"triggers/{trigger['id']}.json", {"trigger": wanted})


def _trigger_changes(actual: dict, wanted: dict) -> list[str]:
    changes = []
    if actual.get("active") is not True:
        changes.append("active: false → true")
    for part in ("all", "any"):
        have = _condition_set((actual.get("conditions") or {}).get(part))
        want = _condition_set(wanted["conditions"][part])
        if have != want:
            changes.append(f"conditions.{part}: {sorted(have)} → {sorted(want)}")
    if _actions(actual.get("actions")) != _actions(wanted["actions"]):
        changes.append("actions: the webhook or its body differ")
    return changes


def _condition_set(conditions) -> set[tuple[str, str, str]]:
    # Zendesk echoes values as it stores them (ids as strings, booleans as "true").
    return {(c.get("field"), c.get("operator", "is"), str(c.get("value")).lower()) for c in conditions or []}


def _actions(actions) -> list:
    normalised = []
    for action in actions or []:
        value = action.get("value")
        if action.get("field") == "notification_webhook" and isinstance(value, list) and len(value) == 2:
            try:
                value = [str(value[0]), json.loads(value[1])]
            except (TypeError, ValueError):
                pass
        normalised.append((action.get("field"), json.dumps(value, sort_keys=True)))
    return sorted(normalised)


def check_product_url(url: str) -> str | None:
    """Why Zendesk could not deliver to this address, or None. Plain http only for this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) address"
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1"):
        return "Zendesk delivers webhooks over https: give the product's https address"
    return None


def format_report(report: SetupReport, account: str, configured_secret: str | None) -> list[str]:
    """The report as the command prints it; the signing secret is shown only when it must be set."""
    lines = [f"Zendesk setup for {account}" + (" (dry run: nothing is changed)" if report.dry_run else "")]
    for step in report.steps:
        lines.append(f"  {step.action:<10} {step.what} {step.name}" + (f": {step.detail}" if step.detail else ""))
        lines += [f"{'':<14}{change}" for change in step.changes]
    if report.signing_secret is None:
        lines.append("Signing secret: the webhook does not exist yet; run without --dry-run to create it.")
    elif configured_secret == report.signing_secret:
        lines.append("Signing secret: ZENDESK_WEBHOOK_SECRET matches the webhook's.")
    elif report.dry_run:
        lines.append("Signing secret: ZENDESK_WEBHOOK_SECRET is not the webhook's; run without --dry-run to see it.")
    else:
        lines.append(f"Signing secret: set ZENDESK_WEBHOOK_SECRET={report.signing_secret} for the web app.")
    changes = sum(s.action in ("create", "update") for s in report.steps)
    verb = "would be made" if report.dry_run else "made"
    lines.append(f"{changes} change{'s' if changes != 1 else ''} {verb}." if changes else "Nothing to change.")
    if report.problems:
        lines.append(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''} to fix (see above).")
    return lines
