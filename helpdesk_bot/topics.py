"""Common questions and knowledge gaps: tickets clustered into topics by their embeddings.

The topics job embeds questions not yet embedded (the vectors are kept in the ledger), groups
them by cosine similarity and labels each group with its most central question. A knowledge
gap is a topic where the bot escalated for lack of knowledge; its suggested article is built
from how agents answered those tickets.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from helpdesk_bot.analytics import TicketRecord, load_tickets
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.text import key_terms, sentences, shorten, words_for_stems

SIMILARITY = 0.6  # a question joins a topic whose centre is at least this close (cosine)
LOOKBACK_DAYS = 90
MAX_TICKETS = 5000


@dataclass
class Topic:
    id: int
    label: str
    keywords: list[str]
    tickets: list[TicketRecord] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.tickets)

    @property
    def gap_tickets(self) -> list[TicketRecord]:
        return [t for t in self.tickets if t.knowledge_gap]

    @property
    def deflection_rate(self) -> float | None:
        return sum(t.deflected for t in self.tickets) / self.size if self.tickets else None

    def weekly_counts(self, weeks: list[str]) -> list[int]:
        counts = Counter(t.week for t in self.tickets)
        return [counts.get(w, 0) for w in weeks]

    def trend(self, now: float) -> int:
        """Tickets in the last 7 days minus the 7 days before."""
        recent = sum(now - 7 * 86400 <= t.created_at for t in self.tickets)
        before = sum(now - 14 * 86400 <= t.created_at < now - 7 * 86400 for t in self.tickets)
        return recent - before


# --- the topics job ----------------------------------------------------------------------------


def refresh_topics(ledger: Ledger, embedder, now: float | None = None, similarity: float = SIMILARITY) -> int:
    """Recompute the topics of the last 90 days' tickets; returns how many topics there are."""
    now = now or time.time()
    records = load_tickets(ledger, since=now - LOOKBACK_DAYS * 86400)[-MAX_TICKETS:]
    if not records:
        ledger.replace_topics([], now)
        return 0
    vectors = _vectors(ledger, embedder, records)
    groups = cluster(np.vstack([vectors[r.event_id] for r in records]), similarity)
    found = []
    for members in groups:
        rows = [records[i] for i in members]
        matrix = np.vstack([vectors[r.event_id] for r in rows])
        centre = matrix.mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        closeness = matrix @ centre
        central = rows[int(np.argmax(closeness))]
        found.append((label_of(central.question), rows, closeness))
    keywords = distinctive_terms([[r.question for r in rows] for _, rows, _ in found])
    ledger.replace_topics([(label, words, [(r.event_id, s) for r, s in zip(rows, closeness)])
                           for (label, rows, closeness), words in zip(found, keywords)], now)
    return len(found)


def cluster(vectors: np.ndarray, similarity: float) -> list[list[int]]:
    """Group unit vectors: each joins the closest topic centre within `similarity`, then one
    reassignment pass against the final centres. Deterministic for the same input order."""
    centres: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    for v in vectors:
        if centres:
            scores = np.array(centres) @ v
            best = int(np.argmax(scores))
            if scores[best] >= similarity:
                sums[best] = sums[best] + v
                centres[best] = sums[best] / np.linalg.norm(sums[best])
                continue
        sums.append(v.copy())
        centres.append(v.copy())
    matrix = np.array(centres)
    assignment = np.argmax(vectors @ matrix.T, axis=1)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(assignment):
        groups[int(c)].append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def label_of(question: str) -> str:
    """A readable label: the question's first line (the ticket subject), trimmed."""
    first = next((line.strip() for line in question.splitlines() if line.strip()), "")
    return shorten(first.rstrip("?!.: "), 80) or "(empty question)"


def distinctive_terms(groups: list[list[str]], top: int = 4) -> list[list[str]]:
    """Per group, the words frequent in it and rare in the others (class-based TF-IDF on stems,
    shown as the group's own whole words)."""
    counts = [Counter(term for text in texts for term in key_terms(text)) for texts in groups]
    spread = Counter(term for c in counts for term in c)
    result = []
    for texts, c in zip(groups, counts):
        scored = sorted(c, key=lambda term: (-c[term] * math.log(1 + len(groups) / spread[term]), term))
        words = words_for_stems(texts)
        result.append([words.get(term, term) for term in scored[:top]])
    return result


def _vectors(ledger: Ledger, embedder, records: list[TicketRecord]) -> dict[int, np.ndarray]:
    stored = {event_id: np.frombuffer(vector, dtype=np.float32)
              for event_id, vector in ledger.question_vectors(embedder.name, [r.event_id for r in records]).items()}
    missing = [r for r in records if r.event_id not in stored]
    if missing:
        embedded = embedder.embed([r.question for r in missing]).astype(np.float32)
        ledger.save_question_vectors(embedder.name, {r.event_id: v.tobytes() for r, v in zip(missing, embedded)})
        stored.update({r.event_id: v for r, v in zip(missing, embedded)})
    return stored


# --- reading topics and knowledge gaps -----------------------------------------------------------


def load_topics(ledger: Ledger, records: list[TicketRecord] | None = None) -> list[Topic]:
    """The stored topics with their tickets, largest first."""
    records = load_tickets(ledger) if records is None else records
    by_event = {r.event_id: r for r in records}
    found = [Topic(id=t["id"], label=t["label"], keywords=t["keywords"],
                   tickets=[by_event[e] for e in t["members"] if e in by_event]) for t in ledger.stored_topics()]
    return sorted((t for t in found if t.tickets), key=lambda t: (-t.size, t.label))


@dataclass
class KnowledgeGap:
    topic: Topic
    examples: list[str]
    agent_answers: list[str]
    title: str
    outline: list[str]
    article: dict | None = None  # the indexed article that now covers the topic, if any
    deflection_before: float | None = None
    deflection_after: float | None = None
    tickets_before: int = 0
    tickets_after: int = 0

    @property
    def gap_count(self) -> int:
        return len(self.topic.gap_tickets)


_GREETING = re.compile(r"(?i)^(hi|hello|hey|dear|thanks|thank you|best|regards|cheers|kind regards|sincerely)\b")


def suggest_outline(answers: list[str], examples: list[str], limit: int = 6) -> list[str]:
    """Bullet points for an article, from the sentences agents wrote most consistently."""
    candidates = []
    for answer in answers:
        for sentence in sentences(answer):
            if len(sentence) < 20 or _GREETING.match(sentence) or sentence.endswith(","):
                continue
            candidates.append(sentence)
    if not candidates:
        terms = Counter(t for e in examples for t in key_terms(e))
        words = words_for_stems(examples)
        return [f"Answer the question customers ask: “{examples[0]}”" if examples else "Answer the question",
                "Cover: " + ", ".join(words.get(t, t) for t, _ in terms.most_common(6))]
    support = Counter(t for a in answers for t in set(key_terms(a)))
    ranked = sorted(enumerate(candidates),
                    key=lambda item: (-sum(support[t] for t in set(key_terms(item[1]))) / (1 + len(key_terms(item[1])) ** 0.5),
                                      item[0]))
    outline, seen = [], []
    for _, sentence in ranked:
        terms = set(key_terms(sentence))
        if any(len(terms & other) / max(1, len(terms | other)) > 0.6 for other in seen):
            continue  # the same point in other words
        seen.append(terms)
        outline.append(sentence)
        if len(outline) == limit:
            break
    order = {s: i for i, s in enumerate(candidates)}
    return sorted(outline, key=order.get)  # in the order agents wrote them


def suggest_title(topic: Topic) -> str:
    """The most central gap question of the topic, as an article title."""
    gap = topic.gap_tickets
    label = (label_of(gap[0].question) if gap else topic.label).rstrip("…")
    if re.match(r"(?i)^(how|what|why|when|where|can|do|does|is|are)\b", label):
        return label[0].upper() + label[1:] + "?"
    return label[0].upper() + label[1:] if label else "Untitled"


def knowledge_gaps(ledger: Ledger, topic_list: list[Topic]) -> list[KnowledgeGap]:
    """Topics where the bot escalated for lack of knowledge, most gap tickets first."""
    articles = ledger.indexed_articles()
    gaps = []
    for topic in topic_list:
        gap_tickets = topic.gap_tickets
        if not gap_tickets:
            continue
        answers = [t.agent_reply for t in gap_tickets if t.agent_reply]
        examples = [t.question.replace("\n", " — ") for t in gap_tickets[:5]]
        gap = KnowledgeGap(topic=topic, examples=examples, agent_answers=answers[:5], title=suggest_title(topic),
                           outline=suggest_outline(answers, [t.question for t in gap_tickets]))
        gap.article = _covering_article(topic, articles, first_gap=min(t.created_at for t in gap_tickets))
        if gap.article:
            split = gap.article["first_indexed_at"]
            before = [t for t in topic.tickets if t.created_at < split]
            after = [t for t in topic.tickets if t.created_at >= split]
            gap.tickets_before, gap.tickets_after = len(before), len(after)
            gap.deflection_before = sum(t.deflected for t in before) / len(before) if before else None
            gap.deflection_after = sum(t.deflected for t in after) / len(after) if after else None
        gaps.append(gap)
    return sorted(gaps, key=lambda g: (-g.gap_count, -g.topic.size, g.topic.label))


def _covering_article(topic: Topic, articles: list[dict], first_gap: float) -> dict | None:
    """An article indexed after the topic's first gap that later tickets of the topic cite, or
    whose title carries most of the topic's keywords."""
    for article in articles:
        if article["first_indexed_at"] <= first_gap or article["removed_at"]:
            continue
        cited = any(
            t.created_at >= article["first_indexed_at"] and t.sources
            and str(t.sources[0].get("id", "")).split("#")[0] == article["article_id"]
            for t in topic.tickets)
        title_terms = set(key_terms(article["title"]))
        keywords = {stem for word in topic.keywords[:3] for stem in key_terms(word)}
        if cited or (keywords and len(keywords & title_terms) / len(keywords) >= 0.6):
            return article
    return None


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A cell of an export: text a customer wrote that starts like a formula is kept as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def gaps_csv(gaps: list[KnowledgeGap]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["topic", "tickets", "gap_tickets", "suggested_title", "outline", "example_questions",
                     "agent_answers", "covering_article", "deflection_before", "deflection_after"])
    for gap in gaps:
        writer.writerow(spreadsheet_safe(cell) for cell in [
            gap.topic.label, gap.topic.size, gap.gap_count, gap.title, "\n".join(f"• {line}" for line in gap.outline),
            "\n".join(gap.examples), "\n---\n".join(gap.agent_answers),
            gap.article["title"] if gap.article else "",
            "" if gap.deflection_before is None else f"{gap.deflection_before:.3f}",
            "" if gap.deflection_after is None else f"{gap.deflection_after:.3f}",
        ])
    return out.getvalue()
