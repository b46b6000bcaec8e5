"""The product's own types. Vendor JSON stops at the integrations; everything after sees these."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Literal, Mapping

# "bot" is helpdesk-bot itself; "system" is the helpdesk's own automation (Intercom's Operator,
# workflows), which neither answers the customer nor means a human has taken over.
Author = Literal["customer", "agent", "bot", "system"]
# held_back: drafted to be sent, but an agent answered or took the ticket meanwhile; nothing was said.
Action = Literal["auto_send", "escalate", "held_back"]

# The tags the bot puts on tickets; the helpdesks' triggers read them (ticket: answered or handed over).
ANSWERED_TAG = "ai_answered"
ESCALATED_TAG = "ai_escalated"
SHADOW_TAG = "ai_shadow"
SOURCE_CHANGED_TAG = "ai_source_changed"  # an article the bot's answer cited changed since


def locale_language(locale: str | None) -> str | None:
    """A help center locale's language: "es-419" → "es", "pt-BR" → "pt"."""
    if not locale:
        return None
    code = locale.strip().lower().replace("_", "-").split("-")[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


_LOCALE_SUFFIX = re.compile(r":[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


def translation_id(article_id: str, locale: str | None) -> str:
    """The index's id of an article's translation: Zendesk's translations share the article's id,
    so ours adds the locale ("360001000123:es"); the default language's keeps the plain id."""
    return f"{article_id}:{locale.lower()}" if locale else article_id


def original_id(article_id: str) -> str:
    """The article a translation translates: "360001000123:es" → "360001000123"."""
    return _LOCALE_SUFFIX.sub("", article_id)


def translation_language(article_id: str) -> str | None:
    """The language of a translation's id ("360001000123:es-mx" → "es"); None for an original."""
    suffix = _LOCALE_SUFFIX.search(article_id)
    return locale_language(suffix.group(0)[1:]) if suffix else None


@dataclass(frozen=True)
class Message:
    author: Author
    text: str
    public: bool = True
    id: str = ""  # the helpdesk's comment or conversation-part id


@dataclass(frozen=True)
class Ticket:
    helpdesk: str
    id: str
    subject: str
    messages: tuple[Message, ...]
    tags: frozenset[str] = frozenset()
    requester_name: str = ""
    status: str = "new"
    brand_id: str | None = None
    channel: str | None = None
    human_assignee: str | None = None  # a human agent the ticket is assigned to (never the bot)
    locale: str | None = None  # the requester's, lower case ("en-us"): which help center locale answers
    language: str | None = None  # ISO 639-1 ("es"): what the customer writes and is answered in (language.py)

    @property
    def customer_messages(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.author == "customer" and m.public)

    @property
    def latest_customer_message(self) -> str:
        customer = self.customer_messages
        return customer[-1].text if customer else ""

    @property
    def pending_customer_messages(self) -> tuple[Message, ...]:
        """The customer's public messages since the bot last wrote publicly: what is to be answered."""
        waiting: list[Message] = []
        for message in self.messages:
            if message.author == "bot" and message.public:
                waiting = []
            elif message.author == "customer" and message.public:
                waiting.append(message)
        return tuple(waiting)

    @property
    def is_follow_up(self) -> bool:
        """Whether the bot has already answered publicly before the message now being answered."""
        return any(m.author == "bot" and m.public for m in self.messages) and bool(self.pending_customer_messages)

    @property
    def question(self) -> str:
        """What the customer is asking now: the subject and their latest message, or, after a bot
        answer, only what they wrote since (the drafter and the confidence score read this)."""
        if self.is_follow_up:
            return "\n".join(m.text for m in self.pending_customer_messages)
        latest = self.latest_customer_message
        if self.subject and self.subject.strip().lower() not in latest.lower():
            return f"{self.subject}\n{latest}".strip()
        return latest

    @property
    def search_query(self) -> str:
        """What to search the knowledge for: the subject and the customer's recent messages.

        Earlier turns carry the context a follow-up leaves out ("and on Android?").
        """
        said = [m.text for m in self.messages if m.author == "customer" and m.public][-3:]
        return "\n".join(part for part in (self.subject, *said) if part.strip())


@dataclass(frozen=True)
class TicketEvent:
    """A webhook delivery, normalised: which ticket, what happened, and its delivery id."""

    helpdesk: str
    delivery_id: str  # the helpdesk's event or invocation id: our dedupe key
    ticket_id: str
    kind: str = "ticket.created"  # or "ticket.updated": the customer wrote again


ARTICLE = "article"  # a help center (or file) article: customers may read it
PAST_TICKET = "past ticket"  # another customer's solved ticket: agents only
# Where an article came from: the helpdesk's help center, or the file or folder it was indexed
# from (its absolute path). A run removes only articles of its own source.
HELP_CENTER = "help center"


@dataclass(frozen=True)
class Chunk:
    id: str  # stable across runs: derived from the article id and the chunk's position
    article_id: str
    title: str
    text: str
    url: str = ""  # for a past ticket, its agent-interface link
    heading: str = ""  # heading path inside the article, "Billing › Refunds"
    kind: str = ARTICLE
    locale: str | None = None  # None: for every locale
    brand: str | None = None  # None: for every brand

    @property
    def language(self) -> str | None:
        """ISO 639-1 of its text, from its locale; None: the help center's default language."""
        return locale_language(self.locale)

    @property
    def opens_article(self) -> bool:
        """Whether this is the article's first chunk, its opening lines (knowledge.py numbers them)."""
        return self.id.endswith("#0")

    @property
    def public_url(self) -> str:
        """The link a customer may be shown: none for a past ticket, which only agents can open."""
        return "" if self.kind == PAST_TICKET else self.url


@dataclass(frozen=True)
class Resolution:
    """A solved ticket as knowledge: the customer's question and the agent's final public answer."""

    ticket_id: str
    subject: str
    question: str
    answer: str
    link: str  # the ticket in the agents' interface
    brand_id: str | None = None


@dataclass(frozen=True)
class Source:
    """A chunk retrieved for a ticket, with the scores that ranked it."""

    chunk: Chunk
    score: float  # rank score, higher is better: the fused score, blended with MaxSim when re-ranked
    dense: float  # cosine similarity of the embeddings, on MiniLM's scale (embedding.on_common_scale)
    keyword: float  # share of the question's key terms found in the chunk, 0..1
    language: str | None = None  # the chunk's text's (ISO 639-1); None: not known, read as any
    maxsim: float | None = None  # word-by-word match of question and chunk, 0..1 (retrieval.py); None if not computed


@dataclass(frozen=True)
class Draft:
    text: str  # plain text with [n] citation markers; rendered per helpdesk
    cited: tuple[str, ...]  # chunk ids, in order of first citation
    declined: bool
    drafter: str
    decline_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    language: str | None = None  # what it is written in (the ticket's); None: not known


def in_language(sources: list[Source], language: str | None) -> list[Source]:
    """The sources written in `language`: what a draft in it is quoted from and checked against.
    Sources of no known language, and any language when `language` is None, all count."""
    return [s for s in sources if language is None or s.language in (None, language)]


@dataclass(frozen=True)
class Component:
    name: str
    value: float  # 0..1
    weight: float
    detail: str


@dataclass(frozen=True)
class Confidence:
    score: int  # 0-100: the calibrated probability of a correct answer when a calibration is loaded
    components: tuple[Component, ...]
    caps: tuple[str, ...] = ()  # why the score was held down, if it was
    raw: int | None = None  # the weighted score before calibration
    # What a learned combination reads: every component's value by name, and the retrieval scores.
    inputs: Mapping[str, float] = field(default_factory=dict)
    combination: str = "weights"  # "weights" (the components' hand weights) or "learned"

    def as_dict(self) -> dict:
        return {c.name: round(c.value, 3) for c in self.components}


@dataclass(frozen=True)
class Decision:
    action: Action
    threshold: int
    rule: str  # which policy rule set the threshold, in words
    reasons: tuple[str, ...]
    status_after_reply: str = "pending"
    escalation_group_id: int | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Why, as a code the dashboard counts: "" when sent; else kill_switch, declined,
    # always_human, risk, repeated_answer, below_threshold, guardrail, outside_rollout or shadow;
    # or, for a handover the conversation asked for, human_requested, not_helped or
    # needs_a_person; taken_over when held back.
    code: str = ""
    # The confidence cleared the threshold and nothing but rollout or shadow mode held the reply back.
    would_send: bool = False
    policy_version: str = ""  # fingerprint of the policy that decided


@dataclass(frozen=True)
class Outcome:
    """Everything the pipeline concluded about one ticket event, as recorded in the ledger."""

    ticket: Ticket
    sources: tuple[Source, ...]
    draft: Draft
    confidence: Confidence
    decision: Decision

    def summary(self) -> dict:
        return {
            "draft": self.draft.text,
            "sources": [
                {"id": s.chunk.id, "title": s.chunk.title, "url": s.chunk.url, "score": round(s.score, 4)}
                for s in self.sources
            ],
            "confidence": self.confidence.score,
            "components": {c.name: asdict(c) for c in self.confidence.components},
            "decision": self.decision.action,
            "reasons": list(self.decision.reasons),
            "rule": self.decision.rule,
            "threshold": self.decision.threshold,
            "would_send": self.decision.would_send,
        }


@dataclass(frozen=True)
class TimedMessage:
    author: Author
    text: str
    public: bool
    created_at: float  # epoch seconds


@dataclass(frozen=True)
class TicketHistory:
    """What happened on a ticket after the bot acted, as the helpdesk reports it."""

    status: str
    tags: frozenset[str]
    messages: tuple[TimedMessage, ...]
    satisfaction: str | None = None  # good | bad | offered; None when the helpdesk has none
    satisfaction_comment: str = ""


# --- Knowledge as the helpdesks publish it -----------------------------------------------------

# Part of every article's hash: when the way articles are cut into chunks changes, the next
# index run chunks and embeds every article again instead of keeping chunks cut the old way.
CHUNKING = "lists and tables whole, articles unredacted, keywords per language"


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    body_html: str
    url: str = ""
    breadcrumb: str = ""  # where it sits in the help center: "Billing › Invoices"
    kind: str = ARTICLE  # or PAST_TICKET
    locale: str | None = None  # None: answers tickets in any locale
    brand: str | None = None  # None: answers tickets of any brand

    @property
    def content_hash(self) -> str:
        text = f"{self.title}\0{self.url}\0{self.breadcrumb}\0{self.body_html}\0{CHUNKING}"
        if (self.kind, self.locale, self.brand) != (ARTICLE, None, None):  # older indexes keep their hashes
            text += f"\0{self.kind}\0{self.locale or ''}\0{self.brand or ''}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HelpCenterChanges:
    """What the incremental article export says changed, and which articles exist now."""

    changed: list[Article]  # published articles updated since the cursor
    published: set[str]  # the id of every published article, changed or not
    end_time: int  # the next run's start_time


@dataclass(frozen=True)
class PastTickets:
    resolutions: list[Resolution]  # the exported tickets that make good knowledge
    exported: set[str]  # the id of every ticket the export returned, good or not
