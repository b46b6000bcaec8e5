"""The product's own types. Vendor JSON stops at the integrations; everything after sees these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Author = Literal["customer", "agent", "bot"]
Action = Literal["auto_send", "escalate"]


@dataclass(frozen=True)
class Message:
    author: Author
    text: str
    public: bool = True


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

    @property
    def latest_customer_message(self) -> str:
        for message in reversed(self.messages):
            if message.author == "customer" and message.public:
                return message.text
        return ""

    @property
    def question(self) -> str:
        """What the customer is asking: the subject and their latest message."""
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
    kind: str = "ticket.created"


@dataclass(frozen=True)
class Chunk:
    id: str  # stable across runs: derived from the article id and the chunk's position
    article_id: str
    title: str
    text: str
    url: str = ""
    heading: str = ""  # heading path inside the article, "Billing › Refunds"


@dataclass(frozen=True)
class Source:
    """A chunk retrieved for a ticket, with the scores that ranked it."""

    chunk: Chunk
    score: float  # fused rank score (RRF), higher is better
    dense: float  # cosine similarity of the embeddings, -1..1
    keyword: float  # share of the question's key terms found in the chunk, 0..1


@dataclass(frozen=True)
class Draft:
    text: str  # plain text with [n] citation markers; rendered per helpdesk
    cited: tuple[str, ...]  # chunk ids, in order of first citation
    declined: bool
    drafter: str
    decline_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


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
    # always_human, below_threshold, outside_rollout or shadow.
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
