"""Intercom behind the `Helpdesk` interface: a thin client on `requests`.

The bot needs about ten endpoints, so it talks REST itself instead of through the generated
SDK, which does not pin `Intercom-Version` (integrations.md, "Intercom / REST"). Every
request carries the pinned version, so a workspace upgrading its default version cannot
change the shapes read here.

A ticket is an Intercom conversation; its id is the conversation id. The bot writes as one
admin (a teammate seat of its own: `INTERCOM_ADMIN_ID`, else the token's own admin).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from functools import cached_property

import requests

from helpdesk_bot.domain import ANSWERED_TAG, Article, Message, Ticket, TicketHistory, TimedMessage, translation_id
from helpdesk_bot.errors import ConfigError, HelpdeskBotError, PermanentError, Throttled, TransientError
from helpdesk_bot.text import html_to_text

API_VERSION = "2.14"
REGIONS = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8766"
TIMEOUT_SECONDS = 15
ARTICLES_PER_PAGE = 50
SEARCH_PER_PAGE = 150  # the Search API's largest page
# Zendesk's "pending" (waiting on the customer) is a snooze here: a customer reply wakes the
# conversation at once, and after a day it comes back to the inbox for a teammate to close.
SNOOZE_SECONDS = 24 * 60 * 60
# Intercom counts requests in 10-second windows: without a reset header, wait one window.
DEFAULT_THROTTLE_SECONDS = 10.0

CUSTOMER_AUTHOR_TYPES = {"user", "lead", "contact"}
# Parts only teammates see. An assignment's body is written as a note in the inbox.
INTERNAL_PART_TYPES = {"note", "assignment", "away_mode_assignment", "assign_and_reopen", "assign_and_unsnooze"}

log = logging.getLogger(__name__)


class IntercomHelpdesk:
    name = "intercom"

    def __init__(self, access_token: str, admin_id: str | None = None, region: str = "us",
                 base_url: str | None = None, session: requests.Session | None = None,
                 timeout: float = TIMEOUT_SECONDS, locales: tuple[str, ...] = ()):
        if region not in REGIONS:
            raise ConfigError(f"INTERCOM_REGION must be one of {', '.join(REGIONS)}, got {region!r}")
        self.base_url = (base_url or REGIONS[region]).rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json",
            "Intercom-Version": API_VERSION,
        })
        self._admin_id = str(admin_id) if admin_id else None
        self._tag_ids: dict[str, str] = {}
        self.locales = locales  # of the help center articles read (HELPDESK_KNOWLEDGE_LOCALES); none: all

    @classmethod
    def from_settings(cls, settings) -> IntercomHelpdesk:
        if not settings.intercom_access_token:
            return cls("sandbox", base_url=settings.intercom_sandbox_url or DEFAULT_SANDBOX_URL,
                       locales=settings.knowledge_locales)
        return cls(settings.intercom_access_token, settings.intercom_admin_id, settings.intercom_region,
                   locales=settings.knowledge_locales)

    @cached_property
    def admin_id(self) -> str:
        return self._admin_id or str(self._request("GET", "/me")["id"])

    # --- the Helpdesk interface ---------------------------------------------------------

    def fetch_ticket(self, ticket_id: str, requester: bool = True) -> Ticket:
        conversation = self.conversation(ticket_id)  # the contact's name comes with it
        ticket = self._ticket(conversation)
        contacts = (conversation.get("contacts") or {}).get("contacts") or []
        if requester and contacts:  # the language is on the contact only: one more call
            contact = self._request("GET", f"/contacts/{contacts[0]['id']}")
            # Intercom's contact language: the one set for them, else their browser's ("pt-BR").
            language = contact.get("language_override") or contact.get("browser_language")
            if language:
                ticket = replace(ticket, locale=str(language).lower())
        return ticket

    def post_reply(self, ticket_id: str, html: str, status: str, tags: tuple[str, ...]) -> dict:
        # Tags first: adding one twice is harmless, so a retry after a failure here is safe.
        self.tag(ticket_id, tags)
        part = self.reply(ticket_id, html, "comment")
        result = {"part_id": part.get("id")}
        # The reply is out; what follows must not fail the action, or a retry would look for
        # the reply, find it and stop, or (after a 429) post it again. Leaving the
        # conversation open is the safe side: a teammate sees it.
        if status == "solved":
            result.update(self._after_posting("close", lambda: self.close(ticket_id)))
        elif status in ("pending", "hold"):
            until = int(time.time()) + SNOOZE_SECONDS
            result.update(self._after_posting("snooze", lambda: self.snooze(ticket_id, until)))
        return result

    def post_note(self, ticket_id: str, html: str, group_id: int | None, tags: tuple[str, ...]) -> dict:
        # Tag and assign before the note: both can be repeated, the note cannot.
        self.tag(ticket_id, tags)
        if group_id:
            self.assign(ticket_id, team_id=str(group_id))
        part = self.reply(ticket_id, html, "note")
        return {"part_id": part.get("id")}

    def has_bot_comment(self, ticket_id: str, html: str) -> bool:
        wanted = _normalise(html_to_text(html))
        conversation = self.conversation(ticket_id)
        return any(
            _is_admin(part.get("author"), self.admin_id) and _normalise(html_to_text(part.get("body") or "")) == wanted
            for part in _parts(conversation)
        )

    def ticket_history(self, ticket_id: str) -> TicketHistory:
        """State, tags, timed messages and the customer's rating, for the outcomes job.

        Intercom rates 1 to 5 (`conversation_rating.rating`): 4 and 5 count as good, the rest as
        bad, as a CSAT survey counts satisfied customers.
        """
        conversation = self.conversation(ticket_id)
        ticket = self._ticket(conversation)
        times = {str(p.get("id")): p.get("created_at") for p in _parts(conversation)}
        times[str((conversation.get("source") or {}).get("id") or "source")] = conversation.get("created_at")
        rating = conversation.get("conversation_rating") or {}
        score = rating.get("rating")
        return TicketHistory(
            status=ticket.status,
            tags=ticket.tags,
            messages=tuple(TimedMessage(author=m.author, text=m.text, public=m.public,
                                        created_at=float(times.get(m.id) or 0)) for m in ticket.messages),
            satisfaction=None if not isinstance(score, int) else "good" if score >= 4 else "bad",
            satisfaction_comment=rating.get("remark") or "",
        )

    def articles(self) -> list[Article]:
        """Published Help Center articles in every locale read, every page (newest first; no
        incremental endpoint). A translation is its own Article, as Zendesk's are."""
        articles, page, pages = [], 1, 1
        while page <= pages:
            listed = self._request("GET", "/articles", params={"page": page, "per_page": ARTICLES_PER_PAGE})
            articles += [article for listed_article in listed.get("data", [])
                         for article in self._translations(listed_article)]
            pages = int((listed.get("pages") or {}).get("total_pages") or 1)
            page += 1
        return articles

    def _translations(self, article: dict) -> list[Article]:
        """The article's published content in each locale read.

        Intercom keeps an article's translations inside it: the default locale's content at the
        top level, the others in `translated_content` keyed by locale ("de", "pt-BR"), each
        published or a draft of its own. Ids and locales are Zendesk's scheme: the default
        locale's content keeps the plain id and no locale, a translation is "id:locale" with its
        locale (lower case, as Zendesk's); with configured locales every one carries its locale.
        """
        default = str(article.get("default_locale") or "").lower()
        contents = {default: article}
        for key, content in (article.get("translated_content") or {}).items():
            # The default locale's content is the top level's; its `type` is no locale.
            if isinstance(content, dict) and key.lower() not in contents:
                contents[key.lower()] = content
        out = []
        for locale, content in contents.items():
            if content.get("state") != "published" or (self.locales and locale not in self.locales):
                continue
            scope = locale if self.locales or locale != default else None
            out.append(Article(id=translation_id(str(article["id"]), scope), title=content.get("title") or "",
                               body_html=content.get("body") or "", url=content.get("url") or "", locale=scope))
        return out

    def solved_tickets(self, since: int, limit: int) -> list[tuple[Ticket, str]]:
        """Closed conversations a teammate answered, as (the question as asked, the teammate's last
        public reply), for the backtest. Conversations the bot answered are left out.

        Found with the Search API (POST /conversations/search: state closed, updated since), which
        lists conversations without their parts, so each is read in full.
        """
        out: list[tuple[Ticket, str]] = []
        query = {"operator": "AND", "value": [{"field": "state", "operator": "=", "value": "closed"},
                                              {"field": "updated_at", "operator": ">", "value": int(since)}]}
        cursor = None
        while len(out) < limit:
            pagination = {"per_page": SEARCH_PER_PAGE, **({"starting_after": cursor} if cursor else {})}
            found = self._request("POST", "/conversations/search", json={"query": query, "pagination": pagination})
            for listed in found.get("conversations") or []:
                tags = {t.get("name") for t in (listed.get("tags") or {}).get("tags") or []}
                if ANSWERED_TAG in tags:
                    continue
                answered = _answered(self._ticket(self.conversation(str(listed["id"]))))
                if answered:
                    out.append(answered)
                    if len(out) >= limit:
                        break
            cursor = ((found.get("pages") or {}).get("next") or {}).get("starting_after")
            if not cursor:
                break
        return out

    # --- Intercom operations --------------------------------------------------------------

    def conversation(self, conversation_id: str) -> dict:
        return self._request("GET", f"/conversations/{_id(conversation_id)}")

    def reply(self, conversation_id: str, html: str, message_type: str) -> dict:
        """Reply (`comment`, seen by the customer) or add a `note`; returns the new part."""
        conversation = self._request("POST", f"/conversations/{_id(conversation_id)}/reply", json={
            "message_type": message_type, "type": "admin", "admin_id": self.admin_id, "body": html,
        })
        # The answer is the conversation with only the parts this request created.
        parts = _parts(conversation)
        return parts[-1] if parts else {}

    def assign(self, conversation_id: str, team_id: str | None = None, admin_id: str | None = None) -> dict:
        """Assign to a team or to a teammate; the bot's admin is the one acting."""
        if bool(team_id) == bool(admin_id):
            raise ValueError("assign to exactly one of a team or an admin")
        return self._request("POST", f"/conversations/{_id(conversation_id)}/parts", json={
            "message_type": "assignment", "type": "team" if team_id else "admin",
            "admin_id": self.admin_id, "assignee_id": str(team_id or admin_id),
        })

    def close(self, conversation_id: str) -> dict:
        return self._request("POST", f"/conversations/{_id(conversation_id)}/parts", json={
            "message_type": "close", "type": "admin", "admin_id": self.admin_id,
        })

    def snooze(self, conversation_id: str, until: int) -> dict:
        return self._request("POST", f"/conversations/{_id(conversation_id)}/parts", json={
            "message_type": "snoozed", "admin_id": self.admin_id, "snoozed_until": int(until),
        })

    def open(self, conversation_id: str) -> dict:
        return self._request("POST", f"/conversations/{_id(conversation_id)}/parts", json={
            "message_type": "open", "admin_id": self.admin_id,
        })

    def tag(self, conversation_id: str, names: tuple[str, ...] | list[str]) -> None:
        """Add tags by name, creating the workspace tags that don't exist yet."""
        for name in names:
            self._request("POST", f"/conversations/{_id(conversation_id)}/tags",
                          json={"id": self.tag_id(name), "admin_id": self.admin_id})

    def tag_id(self, name: str) -> str:
        if name not in self._tag_ids:
            # POST /tags with a name creates the tag, or answers the existing one of that name.
            self._tag_ids[name] = str(self._request("POST", "/tags", json={"name": name})["id"])
        return self._tag_ids[name]

    # --- mapping and transport ------------------------------------------------------------

    def _ticket(self, conversation: dict) -> Ticket:
        source = conversation.get("source") or {}
        messages = []
        if source.get("body"):
            messages.append(Message(author=self._author(source.get("author")), text=html_to_text(source["body"]).strip(),
                                    public=True, id=str(source.get("id") or "source")))
        for part in _parts(conversation):
            if not part.get("body"):  # assignments, state changes, attribute updates
                continue
            messages.append(Message(author=self._author(part.get("author")), text=html_to_text(part["body"]).strip(),
                                    public=part.get("part_type") not in INTERNAL_PART_TYPES, id=str(part.get("id"))))
        authors = [source.get("author") or {}] + [p.get("author") or {} for p in _parts(conversation)]
        requester = next((a.get("name") or "" for a in authors if a.get("type") in CUSTOMER_AUTHOR_TYPES), "")
        assignee = conversation.get("admin_assignee_id")  # an integer in the API, unlike other admin ids
        tags = (conversation.get("tags") or {}).get("tags") or []
        return Ticket(
            helpdesk=self.name,
            id=str(conversation["id"]),
            subject=html_to_text(source.get("subject") or "").strip() or (conversation.get("title") or ""),
            messages=tuple(messages),
            tags=frozenset(t["name"].lower() for t in tags if t.get("name")),
            requester_name=requester,
            status=conversation.get("state") or "open",
            channel=source.get("type"),
            human_assignee=str(assignee) if assignee and str(assignee) != self.admin_id else None,
        )

    def _author(self, author: dict | None) -> str:
        kind = (author or {}).get("type")
        if kind in CUSTOMER_AUTHOR_TYPES:
            return "customer"
        if kind == "admin":
            return "bot" if str(author.get("id")) == self.admin_id else "agent"
        return "system"  # Intercom's own bots (Operator, Fin) and workflow messages sent as a team

    def _after_posting(self, what: str, call) -> dict:
        try:
            call()
        except HelpdeskBotError as exc:
            log.warning("Intercom: reply posted but %s failed: %s", what, exc)
            return {f"{what}_error": str(exc)[:300]}
        return {}

    def _request(self, method: str, path: str, json: dict | None = None, params: dict | None = None) -> dict:
        """One API call, its failures translated into the product's transient/permanent errors."""
        try:
            response = self.session.request(method, self.base_url + path, json=json, params=params, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"Intercom unreachable: {exc}") from exc
        status = response.status_code
        if status == 429:
            raise Throttled(f"Intercom rate limit on {method} {path}", retry_after=_throttle_wait(response))
        if status >= 500 or status in (408, 409):
            raise TransientError(f"Intercom error {status} on {method} {path}: {_errors(response)}")
        if status == 404:
            raise PermanentError(f"Intercom record not found: {method} {path}: {_errors(response)}")
        if status >= 400:
            raise PermanentError(f"Intercom refused {method} {path} ({status}): {_errors(response)}")
        try:
            return response.json()
        except ValueError:
            raise TransientError(f"Intercom answered {method} {path} with a body that is not JSON") from None


def _answered(ticket: Ticket) -> tuple[Ticket, str] | None:
    """(the conversation up to the first teammate reply, the last teammate reply); None when the
    bot replied publicly, or no teammate did, or the customer asked nothing first."""
    if any(m.author == "bot" and m.public for m in ticket.messages):
        return None
    answers = [i for i, m in enumerate(ticket.messages) if m.author == "agent" and m.public]
    if not answers:
        return None
    asked = replace(ticket, messages=ticket.messages[:answers[0]])
    return (asked, ticket.messages[answers[-1]].text) if asked.latest_customer_message else None


def _throttle_wait(response: requests.Response) -> float:
    """Seconds until the window resets: `X-RateLimit-Reset` is an epoch time, not a duration."""
    try:
        return max(1.0, float(response.headers["X-RateLimit-Reset"]) - time.time())
    except (KeyError, ValueError):
        return DEFAULT_THROTTLE_SECONDS


def _errors(response: requests.Response) -> str:
    # {"type": "error.list", "request_id": ..., "errors": [{"code": ..., "message": ...}]}
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or response.text[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


def _parts(conversation: dict) -> list[dict]:
    return (conversation.get("conversation_parts") or {}).get("conversation_parts") or []


def _is_admin(author: dict | None, admin_id: str) -> bool:
    return bool(author) and author.get("type") == "admin" and str(author.get("id")) == admin_id


def _id(value: str) -> str:
    # Ids go into URL paths: refuse anything that could change the path.
    text = str(value)
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", text):
        raise PermanentError(f"not an Intercom id: {text[:40]!r}")
    return text


def _normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))
