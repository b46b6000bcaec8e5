"""Zendesk Support through zenpy, behind the `Helpdesk` interface."""

from __future__ import annotations

import functools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cached_property
from urllib.parse import urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment
from zenpy.lib.api_objects import Ticket as ZenpyTicket
from zenpy.lib.endpoint import PrimaryEndpoint
from zenpy.lib.exception import APIException, RecordNotFoundException, ZenpyException

from helpdesk_bot.domain import (ANSWERED_TAG, Article, HelpCenterChanges, Message, PastTickets, Resolution, Ticket,
                                 TicketHistory, TimedMessage, translation_id)
from helpdesk_bot.errors import PermanentError, Throttled, TransientError
from helpdesk_bot.text import html_to_text

TIMEOUT_SECONDS = 15


def _raise_on_throttle(response: requests.Response, *args, **kwargs) -> None:
    """Surface 429s to the task queue instead of letting zenpy sleep inside the worker.

    zenpy 2.0.57 sleeps for `Retry-After` inside the call on a 429; a worker must not block
    for minutes, so the task is retried later with the wait Zendesk asked for.
    """
    if response.status_code == 429:
        try:
            wait = float(response.headers.get("Retry-After", "60"))
        except ValueError:
            wait = 60.0
        raise Throttled(f"Zendesk rate limit on {response.request.method} {response.request.path_url}", retry_after=wait)


@functools.cache
def _fetch_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="zendesk-fetch")


class _Session(requests.Session):
    """A requests session that reads the proxy and CA settings from the environment once per host.

    requests reads them again for every request (`merge_environment_settings`, which scans
    the whole environment twice): about a millisecond of CPU a call, 4 calls a ticket.
    With an `api_origin` (the sandbox helpdesk), zenpy's https://<subdomain>.zendesk.com
    requests go there instead: how the sandbox stands in for Zendesk with the real library.
    """

    def __init__(self, api_origin: str | None = None):
        super().__init__()
        self._environment_settings: dict = {}
        self._api_origin = api_origin

    def request(self, method, url, *args, **kwargs):
        if not self._api_origin:
            return super().request(method, url, *args, **kwargs)
        parts = urlsplit(url)
        response = super().request(method, f"{self._api_origin}{parts.path}" + (f"?{parts.query}" if parts.query else ""),
                                   *args, **kwargs)
        # zenpy picks its response handler by its own base URL in the request's (zenpy/lib/response.py).
        response.url = response.request.url = url
        return response

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or not self.trust_env or not isinstance(cert, (str, tuple, type(None))):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = (*urlsplit(url)[:2], stream, verify, cert)
        settings = self._environment_settings.get(key)
        if settings is None:
            settings = self._environment_settings[key] = super().merge_environment_settings(
                url, proxies, stream, verify, cert)
        return {**settings, "proxies": dict(settings["proxies"])}


class ZendeskHelpdesk:
    name = "zendesk"

    def __init__(self, subdomain: str, email: str | None = None, token: str | None = None,
                 oauth_token: str | None = None, bot_agent_id: int | None = None, include_restricted: bool = False,
                 timeout: float = TIMEOUT_SECONDS, agent_url: str | None = None, locales: tuple[str, ...] = (),
                 brand_id: str | None = None, api_origin: str | None = None):
        self.agent_url = agent_url or f"https://{subdomain}.zendesk.com"  # where agents open a ticket
        self._api_origin = api_origin
        credentials = {"oauth_token": oauth_token} if oauth_token else {"email": email, "token": token}
        self._zenpy_options = dict(subdomain=subdomain, timeout=timeout, disable_cache=True, **credentials)
        self._per_thread = threading.local()
        self._bot_agent_id = bot_agent_id
        self.include_restricted = include_restricted
        self.locales, self.brand_id = locales, brand_id  # of the help center articles

    @property
    def client(self) -> Zenpy:
        """This thread's zenpy client: zenpy keeps the object being written on the client
        (`_dirty_object` in zenpy/lib/api.py) and a concurrent call clears it mid-update, so
        the threads of a worker must not share one."""
        client = getattr(self._per_thread, "client", None)
        if client is None:
            session = _Session(self._api_origin)
            session.hooks["response"].append(_raise_on_throttle)
            client = self._per_thread.client = Zenpy(session=session, **self._zenpy_options)
        return client

    @classmethod
    def from_settings(cls, settings) -> ZendeskHelpdesk:
        if settings.helpdesk == "sandbox":
            url = (settings.sandbox_url or "http://127.0.0.1:8765").rstrip("/")
            return cls("sandbox", email="bot@orbitask.example", token="sandbox",
                       include_restricted=settings.include_restricted_articles, timeout=settings.helpdesk_timeout,
                       agent_url=url, locales=settings.knowledge_locales,
                       brand_id=settings.knowledge_brand_id, api_origin=url)
        return cls(settings.zendesk_subdomain, settings.zendesk_email, settings.zendesk_api_token,
                   settings.zendesk_oauth_token, settings.zendesk_bot_agent_id, settings.include_restricted_articles,
                   timeout=settings.helpdesk_timeout, locales=settings.knowledge_locales,
                   brand_id=settings.knowledge_brand_id)

    @cached_property
    def bot_agent_id(self) -> int:
        return self._bot_agent_id or self._call(lambda: self.client.users.me().id)

    def fetch_ticket(self, ticket_id: str, requester: bool = True) -> Ticket:
        # The comments do not depend on the ticket: ask for them at the same time (from another
        # thread, so with that thread's own zenpy client), while the ticket and its requester load.
        comments_call = _fetch_pool().submit(
            self._call, lambda: list(self.client.tickets.comments(ticket=int(ticket_id))))
        raw = self._call(lambda: self.client.tickets(id=int(ticket_id)))
        person = self._call(lambda: self.client.users(id=raw.requester_id)) if requester and raw.requester_id else None
        comments = comments_call.result()
        messages = []
        for comment in comments:
            if comment.author_id == raw.requester_id:
                author = "customer"
            elif comment.author_id == self.bot_agent_id:
                author = "bot"
            else:
                author = "agent"
            text = comment.plain_body or html_to_text(comment.html_body or "") or comment.body or ""
            messages.append(Message(author=author, text=text.strip(), public=bool(comment.public), id=str(comment.id)))
        via = getattr(raw, "via", None)
        # Zendesk may assign a ticket to the agent who solves it, the bot included: not a takeover.
        assignee = raw.assignee_id if raw.assignee_id and raw.assignee_id != self.bot_agent_id else None
        return Ticket(
            helpdesk=self.name,
            id=str(raw.id),
            subject=raw.subject or "",
            messages=tuple(messages),
            tags=frozenset(t.lower() for t in (raw.tags or [])),
            requester_name=getattr(person, "name", "") or "",
            status=raw.status or "new",
            brand_id=str(raw.brand_id) if raw.brand_id else None,
            channel=getattr(via, "channel", None),
            human_assignee=str(assignee) if assignee else None,
            locale=(getattr(person, "locale", None) or "").lower() or None,
        )

    def post_reply(self, ticket_id: str, html: str, status: str, tags: tuple[str, ...]) -> dict:
        return self._update(ticket_id, html, public=True, tags=tags, status=status)

    def post_note(self, ticket_id: str, html: str, group_id: int | None, tags: tuple[str, ...]) -> dict:
        return self._update(ticket_id, html, public=False, tags=tags, status="open", group_id=group_id)

    def has_bot_comment(self, ticket_id: str, html: str) -> bool:
        wanted = _normalise(html_to_text(html))
        comments = self._call(lambda: list(self.client.tickets.comments(ticket=int(ticket_id))))
        return any(
            c.author_id == self.bot_agent_id and _normalise(c.plain_body or html_to_text(c.html_body or "")) == wanted
            for c in comments
        )

    def ticket_history(self, ticket_id: str) -> TicketHistory:
        raw = self._call(lambda: self.client.tickets(id=int(ticket_id)))
        comments = self._call(lambda: list(self.client.tickets.comments(ticket=int(ticket_id))))
        messages = []
        for comment in comments:
            author = ("customer" if comment.author_id == raw.requester_id
                      else "bot" if comment.author_id == self.bot_agent_id else "agent")
            text = comment.plain_body or html_to_text(comment.html_body or "") or comment.body or ""
            messages.append(TimedMessage(author=author, text=text.strip(), public=bool(comment.public),
                                         created_at=_epoch(comment.created_at)))
        # satisfaction_rating: {"score": "unoffered" | "offered" | "good" | "bad", "comment": ...} (Tickets API)
        rating = getattr(raw, "satisfaction_rating", None) or {}
        if not isinstance(rating, dict):
            rating = getattr(rating, "to_dict", lambda: {})()
        score = rating.get("score")
        return TicketHistory(
            status=raw.status or "new",
            tags=frozenset(t.lower() for t in (raw.tags or [])),
            messages=tuple(messages),
            satisfaction=score if score in ("good", "bad", "offered") else None,
            satisfaction_comment=rating.get("comment") or "",
        )

    def articles(self) -> list[Article]:
        """Published, public Help Center articles with their category › section breadcrumb."""
        return self._articles(self._listing())

    def article_changes(self, start_time: int) -> HelpCenterChanges:
        """The articles changed since `start_time` (incremental export), and every published id.

        The export returns an article on any change, metadata included, so the index compares
        content hashes; it never returns deleted or archived articles, hence the id listing.
        """
        hc = self.client.help_center
        export = self._call(lambda: hc.articles.incremental(start_time=start_time))  # reads the first page
        changed = self._call(lambda: list(export))
        # zenpy keeps the last page's top-level fields on the generator (update_attrs in
        # zenpy/lib/generator.py): end_time is the next start_time.
        end_time = int(getattr(export, "end_time", None) or start_time)
        listing = self._listing()
        if self._reading_locales:  # the export holds one translation of each article: read the locales' own
            changed_ids = {a.id for a in changed}
            changed = [a for a in listing if a.id in changed_ids]
        published = {self._article_id(a) for a in listing if self._published(a)}
        return HelpCenterChanges(changed=self._articles(changed) if changed else [], published=published,
                                 end_time=end_time)

    @property
    def _reading_locales(self) -> tuple[str, ...]:
        """The locales whose articles are read: the configured ones, else every locale the help
        center publishes in when it has more than one (none: its plain listing, as one locale)."""
        if self.locales:
            return self.locales
        published, default = self._help_center_locales
        return (default, *[locale for locale in published if locale != default]) if len(published) > 1 else ()

    @cached_property
    def _help_center_locales(self) -> tuple[tuple[str, ...], str]:
        """(every locale the help center publishes in, its default) from the Help Center Locales API."""
        hc = self.client.help_center
        url = f"https://{self._zenpy_options['subdomain']}.zendesk.com/api/v2/help_center/locales.json"
        body = self._call(lambda: hc.articles._get(url, raw_response=True)).json()
        default = (body.get("default_locale") or "").lower()
        return tuple(locale.lower() for locale in body.get("locales") or ()), default

    def _listing(self) -> list:
        """Every article (agents see drafts too), in each locale read."""
        hc = self.client.help_center
        if not self._reading_locales:
            return self._call(lambda: list(hc.articles()))
        # zenpy 2.0.57 lists articles of one locale only through its generic query
        # (GET /api/v2/help_center/{locale}/articles.json); same pages and objects as hc.articles().
        return [article for locale in self._reading_locales for article in self._call(
            lambda: list(hc.articles._query_zendesk(PrimaryEndpoint(f"help_center/{locale}/articles"), "article")))]

    def _article_locale(self, article) -> str | None:
        """The locale an article is indexed with: with configured locales its own; with every locale
        read, a translation's (the default locale's articles stay unscoped, in the default language)."""
        locale = (article.locale or "").lower() or None
        if self.locales:
            return locale
        if self._reading_locales and locale != self._help_center_locales[1]:
            return locale
        return None

    def _article_id(self, article) -> str:
        """Zendesk's translations of an article share its id: the locale is part of ours ("123:es");
        with every locale read, the default locale's keep the plain id."""
        if self.locales:
            return f"{article.id}:{(article.locale or '').lower()}"
        return translation_id(str(article.id), self._article_locale(article))

    def _published(self, article) -> bool:
        """The API lists drafts to agents too, and articles restricted to a user segment (signed-in
        users, agents only): both are left out unless `include_restricted` is set, because a
        reply must never quote what the customer may not read."""
        return not article.draft and (self.include_restricted or article.user_segment_id is None)

    def _articles(self, listed) -> list[Article]:
        hc = self.client.help_center
        categories = {c.id: c.name for c in self._call(lambda: list(hc.categories()))}
        sections = {s.id: f"{categories.get(s.category_id, '')} › {s.name}".strip(" ›")
                    for s in self._call(lambda: list(hc.sections()))}
        return [
            Article(id=self._article_id(a), title=a.title or "", body_html=a.body or "", url=a.html_url or "",
                    breadcrumb=sections.get(a.section_id, ""),
                    locale=self._article_locale(a), brand=self.brand_id)
            for a in listed if self._published(a)
        ]

    def solved_tickets(self, since: int, limit: int) -> list[tuple[Ticket, str]]:
        """Past solved tickets as (the customer's question, the agent's final public answer), for the backtest."""
        out: list[tuple[Ticket, str]] = []
        for _, asked, answer in self._answered_tickets(self._call(lambda: list(self.client.tickets.incremental(start_time=since)))):
            out.append((asked, answer))
            if len(out) >= limit:
                break
        return out

    def past_resolutions(self, start_time: int) -> PastTickets:
        """Tickets solved or closed since `start_time` that make good knowledge, and every ticket
        the export returned: one that was indexed and no longer qualifies (reopened) leaves the index.

        Reopened tickets are skipped: the answer did not settle the question.
        """
        exported = self._call(lambda: list(self.client.tickets.incremental(start_time=start_time)))
        resolutions = [
            Resolution(ticket_id=asked.id, subject=asked.subject, question="\n\n".join(m.text for m in asked.customer_messages),
                       answer=answer, link=f"{self.agent_url}/agent/tickets/{asked.id}", brand_id=asked.brand_id)
            for raw, asked, answer in self._answered_tickets(exported)
            if not self._reopened(raw.id)
        ]
        return PastTickets(resolutions=resolutions, exported={str(t.id) for t in exported})

    def _answered_tickets(self, exported):
        """(raw, the question as asked, the final public agent answer) of solved tickets a human answered.

        From the cursor-based incremental export (Incremental Exports API); tickets the bot
        answered, and tickets without a public agent answer, are left out.
        """
        for raw in exported:
            if raw.status not in ("solved", "closed") or ANSWERED_TAG in (raw.tags or []):
                continue
            ticket = self.fetch_ticket(str(raw.id))
            if any(m.author == "bot" and m.public for m in ticket.messages):
                continue
            answers = [i for i, m in enumerate(ticket.messages) if m.author == "agent" and m.public]
            if not answers:
                continue
            asked = Ticket(**{**ticket.__dict__, "messages": ticket.messages[:answers[0]]})
            if asked.latest_customer_message:
                yield raw, asked, ticket.messages[answers[-1]].text

    def _reopened(self, ticket_id: int) -> bool:
        """Whether the ticket ever went from solved back to open (a status Change event in its audits)."""
        audits = self._call(lambda: list(self.client.tickets.audits(ticket=int(ticket_id))))
        return any(
            event.get("type") == "Change" and event.get("field_name") == "status"
            and event.get("previous_value") == "solved" and event.get("value") != "closed"
            for audit in audits for event in (audit.events or [])
        )

    def _update(self, ticket_id: str, html: str, public: bool, tags: tuple[str, ...], **fields) -> dict:
        ticket = ZenpyTicket(id=int(ticket_id))
        ticket.comment = Comment(html_body=html, public=public, author_id=self.bot_agent_id)
        # `tags` in an update replaces them all; `additional_tags` adds (Tickets API, "Updating tag lists").
        ticket.additional_tags = list(tags)
        for name, value in fields.items():
            if value is not None:
                setattr(ticket, name, value)
        audit = self._call(lambda: self.client.tickets.update(ticket))
        return {"audit_id": getattr(audit.audit, "id", None)}

    def _call(self, fn):
        """Run a zenpy call, translating failures into the product's transient/permanent errors."""
        try:
            return fn()
        except TransientError:
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"Zendesk unreachable: {exc}") from exc
        except RecordNotFoundException as exc:
            raise PermanentError(f"Zendesk record not found: {exc}") from exc
        except APIException as exc:
            status = getattr(getattr(exc, "response", None), "status_code", 0)
            if status >= 500 or status in (408, 409):
                raise TransientError(f"Zendesk error {status}: {str(exc)[:300]}") from exc
            raise PermanentError(f"Zendesk refused the request ({status}): {str(exc)[:300]}") from exc
        except requests.HTTPError as exc:  # zenpy's fallback for a non-JSON error body
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500:
                raise TransientError(f"Zendesk error {status}") from exc
            raise PermanentError(f"Zendesk refused the request ({status})") from exc
        except ZenpyException as exc:
            raise PermanentError(f"zenpy: {exc}") from exc


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if not value:
        return 0.0
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _normalise(text: str) -> str:
    """Letters and digits only: Zendesk's plain_body and our HTML-to-text differ in spacing and
    bullets, and plain_body runs table cells together ("componentvalueweight")."""
    return "".join(re.findall(r"\w+", text.lower()))
