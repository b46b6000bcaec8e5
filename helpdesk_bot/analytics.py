"""What the bot did and what it saved, computed from the ledger.

Definitions (the dashboard's and docs/dashboard.md's):
- a ticket counts once, by the bot's first answer on it;
- deflected: auto-sent and not reopened (a reply not yet known to be reopened counts as
  deflected until the 72-hour window says otherwise);
- deflection rate = deflected / all tickets; auto-send rate = auto-sent / all tickets;
- held back: a reply drafted to be sent, kept back because an agent answered or took the
  ticket meanwhile: a ticket, with its cost, but neither auto-sent nor escalated, and never judged;
- a verdict on a reply the bot sent or would have sent (auto-sent, shadow mode, outside
  the rollout): the agent's latest feedback if any; else, for an auto-sent reply, bad when
  the customer reopened the ticket, good once 72 hours passed without a reopen;
- precision = good verdicts / all verdicts;
- latency: webhook received → reply or note posted (the sum of the pipeline's stages when
  the action time is unknown), so not for a reply held back; p50 and p95 with linear interpolation;
- cost: LLM tokens at the configured prices.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from helpdesk_bot.domain import original_id, translation_language
from helpdesk_bot.ledger import Ledger

ESCALATION_REASONS = {
    "declined": "no answer in the knowledge base",
    "below_threshold": "confidence below threshold",
    "always_human": "always-human tag",
    "kill_switch": "kill switch",
    "outside_rollout": "outside the rollout share",
    "shadow": "shadow mode",
    "repeated_answer": "would repeat an earlier answer",
    "human_requested": "the customer asked for a person",
    "not_helped": "the customer said the answer did not help",
    "risk": "risk signal (refund, dispute, legal, takeover, cancellation, tone)",
    "needs_a_person": "asked for what only a person can do",
}
# An escalation is for lack of knowledge when the drafter declined, or when retrieval or the
# question's coverage was this weak (components are 0..1).
WEAK_KNOWLEDGE = 0.5
# ...unless the ticket needed a person whatever the knowledge: a charge disputed, legal action,
# a security report, a rant (the risk component is the lowest risk cap / 100; an angry tone caps
# at 50). No article answers those, so they are not knowledge gaps.
NEEDS_A_PERSON_RISK = 0.5


@dataclass
class TicketRecord:
    event_id: int
    helpdesk: str
    ticket_id: str
    created_at: float
    tags: tuple[str, ...]
    brand_id: str | None
    channel: str | None
    action: str
    code: str
    would_send: bool
    confidence: int
    components: dict[str, float]
    question: str = ""
    draft: str = ""
    reasons: tuple[str, ...] = ()
    sources: tuple[dict, ...] = ()
    latency_ms: float | None = None
    cost_usd: float = 0.0
    reopened: bool | None = None
    final: bool = False
    feedback: str | None = None  # the latest agent verdict: good | bad
    feedback_reason: str = ""
    draft_similarity: float | None = None
    agent_reply: str | None = None
    csat: str | None = None
    language: str | None = None  # the ticket's (ISO 639-1); None before languages were recorded

    @property
    def deflected(self) -> bool:
        return self.action == "auto_send" and not self.reopened

    @property
    def verdict(self) -> str | None:
        if not self.would_send:
            return None
        if self.feedback:
            return self.feedback
        if self.action == "auto_send":
            if self.reopened:
                return "bad"
            if self.final:
                return "good"
        return None

    @property
    def knowledge_gap(self) -> bool:
        """Escalated because the knowledge base lacked the answer."""
        if self.action != "escalate" or self.components.get("risk", 1.0) <= NEEDS_A_PERSON_RISK:
            return False
        if self.code == "declined":
            return True
        weakest = min(self.components.get("retrieval_strength", 1.0), self.components.get("question_coverage", 1.0))
        return self.code == "below_threshold" and weakest < WEAK_KNOWLEDGE

    @property
    def week(self) -> str:
        return period_of(self.created_at, "week")


def load_tickets(ledger: Ledger, since: float = 0.0, until: float | None = None, helpdesk: str | None = None,
                 brand: str | None = None, tag: str | None = None) -> list[TicketRecord]:
    """One record per ticket (its first answer), with what became of it."""
    until = until or time.time() + 1
    rows = ledger.answered_tickets(since, until, helpdesk=helpdesk, brand=brand)
    verdicts = ledger.latest_verdicts()
    records = []
    for r in rows:
        tags = tuple(json.loads(r["tags"]))
        if tag and tag not in tags:
            continue
        stages = json.loads(r["latency_ms"] or "{}")
        if r["done_at"] and r["received_at"]:
            latency = (r["done_at"] - r["received_at"]) * 1000
        else:
            latency = sum(stages.values()) if stages else None
        rating, reason = verdicts.get((r["helpdesk"], r["ticket_id"]), (None, ""))
        records.append(TicketRecord(
            event_id=r["event_id"], helpdesk=r["helpdesk"], ticket_id=r["ticket_id"], created_at=r["created_at"],
            tags=tags, brand_id=r["brand_id"], channel=r["channel"], action=r["action"], code=r["code"] or "",
            would_send=bool(r["would_send"]), confidence=r["confidence"],
            components=json.loads(r["components"] or "{}"), question=r["question"], draft=r["draft"],
            reasons=tuple(json.loads(r["reasons"] or "[]")), sources=tuple(json.loads(r["sources"] or "[]")),
            latency_ms=latency, cost_usd=r["cost_usd"] or 0.0, reopened=r["reopened"], final=bool(r["final"]),
            feedback=rating, feedback_reason=reason or "", draft_similarity=r["draft_similarity"],
            agent_reply=r["agent_reply"], csat=r["csat"], language=r.get("language"),
        ))
    return records


# --- metrics over a set of tickets ----------------------------------------------------------


@dataclass
class Summary:
    tickets: int = 0
    auto_sent: int = 0
    deflected: int = 0
    reopened: int = 0
    escalated: int = 0
    held_back: int = 0
    escalation_reasons: dict[str, int] = field(default_factory=dict)
    knowledge_gaps: int = 0
    knowledge_gap_reasons: dict[str, int] = field(default_factory=dict)  # the gaps by escalation reason
    judged: int = 0
    judged_good: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    cost_usd: float = 0.0
    csat_good: int = 0
    csat_bad: int = 0

    @property
    def deflection_rate(self) -> float | None:
        return self.deflected / self.tickets if self.tickets else None

    @property
    def auto_send_rate(self) -> float | None:
        return self.auto_sent / self.tickets if self.tickets else None

    @property
    def precision(self) -> float | None:
        return self.judged_good / self.judged if self.judged else None

    @property
    def cost_per_ticket(self) -> float | None:
        return self.cost_usd / self.tickets if self.tickets else None

    @property
    def csat_score(self) -> float | None:
        rated = self.csat_good + self.csat_bad
        return self.csat_good / rated if rated else None


def summarize(records: list[TicketRecord]) -> Summary:
    s = Summary(tickets=len(records))
    reasons: Counter = Counter()
    gap_reasons: Counter = Counter()
    for r in records:
        if r.action == "auto_send":
            s.auto_sent += 1
            s.reopened += bool(r.reopened)
        elif r.action == "held_back":
            s.held_back += 1
        else:
            s.escalated += 1
            reasons[r.code or "below_threshold"] += 1
            s.knowledge_gaps += r.knowledge_gap
            gap_reasons[r.code or "below_threshold"] += r.knowledge_gap
        s.deflected += r.deflected
        verdict = r.verdict
        if verdict:
            s.judged += 1
            s.judged_good += verdict == "good"
        s.cost_usd += r.cost_usd
        s.csat_good += r.csat == "good"
        s.csat_bad += r.csat == "bad"
    s.escalation_reasons = dict(reasons.most_common())
    s.knowledge_gap_reasons = {code: n for code, n in gap_reasons.most_common() if n}
    latencies = [r.latency_ms for r in records if r.latency_ms is not None and r.action != "held_back"]
    s.latency_p50_ms = percentile(latencies, 50)
    s.latency_p95_ms = percentile(latencies, 95)
    return s


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def period_of(timestamp: float, period: str) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return moment.strftime("%Y-%m")
    raise ValueError(f"period must be day, week or month, got {period!r}")


def by_period(records: list[TicketRecord], period: str) -> list[tuple[str, Summary]]:
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[period_of(r.created_at, period)].append(r)
    return [(key, summarize(groups[key])) for key in sorted(groups)]


def by_tag(records: list[TicketRecord]) -> list[tuple[str, Summary]]:
    """A ticket counts under each of its tags; tickets without tags under "(no tag)"."""
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        for tag in r.tags or ("(no tag)",):
            groups[tag].append(r)
    return sorted(((tag, summarize(rs)) for tag, rs in groups.items()), key=lambda item: (-item[1].tickets, item[0]))


def by_language(records: list[TicketRecord]) -> list[tuple[str, Summary]]:
    """Per language the customers wrote in; tickets of before languages were recorded under "unknown"."""
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[r.language or "unknown"].append(r)
    return sorted(((language, summarize(rs)) for language, rs in groups.items()), key=lambda item: (-item[1].tickets, item[0]))


@dataclass(frozen=True)
class MissingTranslation:
    """An article in the default language with no translation into a language customers write in."""

    language: str
    article_id: str
    title: str
    url: str
    tickets: int  # tickets in that language that retrieved the article in the default language


def missing_translations(records: list[TicketRecord], articles: list[dict],
                         default_language: str) -> dict[str, list[MissingTranslation]]:
    """For each language customers wrote in (other than the default), the indexed articles with no
    translation into it: those its tickets had to fall back on first, then the rest by title."""
    languages = sorted({r.language for r in records if r.language and r.language != default_language})
    live = [a for a in articles if a.get("removed_at") is None]
    # By the article's own id ("123"): the default language's copy may carry its locale ("123:en-us").
    originals = {original_id(a["article_id"]): a for a in live
                 if translation_language(a["article_id"]) in (None, default_language)}
    translated = {(original_id(a["article_id"]), translation_language(a["article_id"])) for a in live}
    found: dict[str, list[MissingTranslation]] = {}
    for language in languages:
        fell_back: Counter = Counter()
        for r in records:
            if r.language == language:
                fell_back.update({original_id(source["id"].split("#")[0]) for source in r.sources} & set(originals))
        missing = [MissingTranslation(language, article_id, a["title"], a.get("url") or "", fell_back[article_id])
                   for article_id, a in originals.items() if (article_id, language) not in translated]
        found[language] = sorted(missing, key=lambda m: (-m.tickets, m.title.casefold()))
    return found


def by_helpdesk_brand(records: list[TicketRecord]) -> list[tuple[str, Summary]]:
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[f"{r.helpdesk} · brand {r.brand_id or '—'}"].append(r)
    return sorted(((key, summarize(rs)) for key, rs in groups.items()), key=lambda item: (-item[1].tickets, item[0]))


def confidence_vs_outcome(records: list[TicketRecord], width: int = 10) -> list[dict]:
    """Per confidence band: how many replies were judged good, bad, or not yet; and escalations.

    A reply held back is neither: it was not sent, and no human was asked to take the ticket.
    """
    bands = []
    for low in range(0, 100, width):
        high = low + width - 1 if low + width < 100 else 100
        inside = [r for r in records if low <= r.confidence <= high]
        bands.append({
            "band": f"{low}-{high}",
            "good": sum(r.verdict == "good" for r in inside),
            "bad": sum(r.verdict == "bad" for r in inside),
            "unjudged": sum(r.would_send and r.verdict is None for r in inside),
            "escalated": sum(r.action == "escalate" and not r.would_send for r in inside),
        })
    return bands
