"""The confidence score: 0-100 from named, deterministic components. Never asked of the LLM.

Each component is a value in 0..1 with a weight and a one-line explanation, so an agent
reading the note sees why the bot was or wasn't sure.
"""

from __future__ import annotations

import re

from helpdesk_bot.answer_form import check_answer, question_kind
from helpdesk_bot.calibration import Calibration
from helpdesk_bot.domain import Component, Confidence, Draft, Source, Ticket, in_language
from helpdesk_bot.drafting import cited_sources
from helpdesk_bot.groundedness import without_lead_in
from helpdesk_bot.groundedness import grounding
from helpdesk_bot.risk import RiskSignal, risk_signals
from helpdesk_bot.text import key_terms, reading, tokens

# Cosine similarities of all-MiniLM-L6-v2 between a question and a passage that answers it
# mostly fall in 0.45-0.75; unrelated passages stay below ~0.25.
DENSE_FLOOR, DENSE_CEILING = 0.20, 0.65
# MaxSim (retrieval.py) of a question and a passage that answers it is mostly 0.55-0.75; an
# unrelated passage still matches the question's commonest word pieces, so the floor is high.
TOKEN_FLOOR, TOKEN_CEILING = 0.40, 0.70
TOKEN_MATCH_DEPTH = 3  # the passages the draft is made from

WEIGHTS = {
    "retrieval_strength": 0.35,
    # Joins the cosine rather than replacing it: alone it separated answerable questions better on
    # E-Manual (AUROC 0.79 vs 0.68) but worse on finance-forum questions (0.72 vs 0.79).
    "token_match": 0.50,
    "question_coverage": 0.25,
    "draft_support": 0.25,
    "keyword_match": 0.15,
    # The best single sign that the first article is the right one (docs/retrieval-experiments.md).
    "retrieval_margin": 0.25,
    # Light as a weight (on the evaluation sets a heavier one blurred answerable and unanswerable
    # questions); a definition for "how do I" is held at 0 by the gate in `score`.
    "answer_form": 0.15,
}

# Kinds of question whose draft scores 0 when it has none of the shape asked for. Not limits or
# contacts: "where do I see the call center number" is answered by the menu that shows it.
GATED_KINDS = frozenset({"procedure", "error"})

# A lead of 0.15 in rank score (fused score and MaxSim, retrieval.py) over the next article is a
# clear winner; below that, two articles compete and the first is often the wrong one.
MARGIN_CEILING = 0.15


def _scale(value: float, low: float, high: float) -> float:
    return min(max((value - low) / (high - low), 0.0), 1.0)


def retrieval_strength(sources: list[Source]) -> Component:
    top = max((s.dense for s in sources), default=0.0)
    return Component("retrieval_strength", _scale(top, DENSE_FLOOR, DENSE_CEILING), WEIGHTS["retrieval_strength"],
                     f"best passage similarity {top:.2f}")


def token_match(sources: list[Source]) -> Component | None:
    """The best word-by-word match (MaxSim) of the question with one of the top passages.

    Where the pooled cosine blurs a question into one point, this sees whether each of its words
    is in the passage (docs/retrieval-experiments.md). None when the embedder gives no token vectors.
    """
    matches = [s.maxsim for s in sources[:TOKEN_MATCH_DEPTH] if s.maxsim is not None]
    if not matches:
        return None
    best = max(matches)
    return Component("token_match", _scale(best, TOKEN_FLOOR, TOKEN_CEILING), WEIGHTS["token_match"],
                     f"best passage matches the question word by word at {best:.2f}")


def best_per_article(sources: list[Source]) -> list[Source]:
    """The best-ranked passage of each article, in ranking order."""
    seen: dict[str, Source] = {}
    for source in sorted(sources, key=lambda s: s.score, reverse=True):
        seen.setdefault(source.chunk.article_id, source)
    return list(seen.values())


def retrieval_margin(sources: list[Source]) -> Component:
    """How far the best article leads the next one: near-ties are where wrong answers come from."""
    articles = best_per_article(sources)
    if len(articles) < 2:
        value = 1.0 if articles else 0.0
        detail = "only one article matched" if articles else "nothing retrieved"
    else:
        lead = articles[0].score - articles[1].score
        value = _scale(lead, 0.0, MARGIN_CEILING)
        detail = f"best article leads the next ({articles[1].chunk.title[:60]!r}) by {lead:.2f}"
    return Component("retrieval_margin", value, WEIGHTS["retrieval_margin"], detail)


def rankings_agree(sources: list[Source]) -> Component:
    """Shown, not weighed: whether meaning and wording point at the same article.

    On the evaluation sets it did not separate right from wrong answers once the margin was
    counted, so it only informs the agent reading the note.
    """
    articles = best_per_article(sources)
    if not articles:
        return Component("rankings_agree", 0.0, 0.0, "nothing retrieved")
    by_meaning = max(articles, key=lambda s: s.dense).chunk
    by_wording = max(articles, key=lambda s: s.keyword).chunk
    agree = by_meaning.article_id == by_wording.article_id == articles[0].chunk.article_id
    detail = ("the closest in meaning is also the best keyword match" if agree
              else f"closest in meaning: {by_meaning.title[:60]!r}; best keyword match: {by_wording.title[:60]!r}")
    return Component("rankings_agree", float(agree), 0.0, detail)


def citations(draft: Draft, sources: list[Source]) -> Component:
    """A gate: an answer that cites none of the retrieved passages is never sent by itself."""
    if draft.declined:
        return Component("citations", 0.0, 0.0, "no draft")
    valid = cited_sources(draft, sources)
    if not valid:
        return Component("citations", 0.0, 0.0, "the draft cites none of the retrieved sources")
    dropped = len(draft.cited) - len(valid)
    detail = f"cites {len(valid)} retrieved source(s)" + (f"; {dropped} citation(s) to unknown sources" if dropped else "")
    return Component("citations", len(valid) / len(draft.cited), 0.0, detail)


def question_coverage(ticket: Ticket, sources: list[Source]) -> Component:
    terms = key_terms(ticket.question)
    present = set()
    for source in in_language(sources, ticket.language)[:3]:  # a Spanish question's words are looked for in Spanish
        present |= set(tokens(f"{source.chunk.title} {source.chunk.heading} {source.chunk.text}"))
    covered = [t for t in terms if t in present]
    value = len(covered) / len(terms) if terms else 0.0
    missing = [t for t in terms if t not in present][:5]
    detail = f"{len(covered)} of {len(terms)} key terms found in the sources"
    return Component("question_coverage", value, WEIGHTS["question_coverage"],
                     detail + (f"; missing: {', '.join(missing)}" if missing else ""))


def draft_support(draft: Draft, sources: list[Source]) -> Component:
    """How much of the draft is found in the sources it cites (see groundedness.py)."""
    cited = in_language(cited_sources(draft, sources), draft.language)  # like with like
    if draft.declined or not cited:
        return Component("draft_support", 0.0, WEIGHTS["draft_support"], "no cited source to support the draft")
    text = re.sub(r"\[\d+\]", "", without_lead_in(draft.text))  # the lead-in and citation markers are not claims
    found = grounding(text, [f"{s.chunk.title} {s.chunk.heading} {s.chunk.text}" for s in cited])
    detail = f"{found.score:.0%} of the draft's words are in its cited sources"
    if found.unsupported:
        detail += f"; {len(found.unsupported)} sentence(s) not supported: {found.unsupported[0][:80]!r}"
    return Component("draft_support", found.score, WEIGHTS["draft_support"], detail)


def keyword_match(sources: list[Source]) -> Component:
    top = max((s.keyword for s in sources[:3]), default=0.0)
    return Component("keyword_match", top, WEIGHTS["keyword_match"], f"best passage holds {top:.0%} of the key terms")


def drafter_answered(draft: Draft) -> Component:
    """A gate rather than a weight: a declined draft scores 0 whatever the other signals say."""
    if draft.declined:
        return Component("drafter_answered", 0.0, 0.0, f"the drafter declined: {draft.decline_reason}")
    return Component("drafter_answered", 1.0, 0.0, f"the {draft.drafter} drafter answered from the sources")


def answer_form(ticket: Ticket, draft: Draft) -> Component:
    """Whether the draft has the shape of answer the question asks for: the steps for "how do I",
    the number with its unit for a limit or a price, the contact, the cause and the fix.

    Weighed like the others, and a gate: a "how do I" answered with neither steps, instructions
    nor advice (a definition), or an error with neither a cause nor a fix, scores 0.
    """
    if draft.declined:
        return Component("answer_form", 0.0, WEIGHTS["answer_form"], "no draft")
    found = check_answer(ticket.question, re.sub(r"\[\d+\]", "", without_lead_in(draft.text)))
    return Component("answer_form", found.value, WEIGHTS["answer_form"], found.detail)


def risk(signals: list[RiskSignal]) -> Component:
    """Shown, not weighed: a risk signal hands the ticket to a human in the policy (policy.py), not here."""
    if not signals:
        return Component("risk", 1.0, 0.0, "no risk signals")
    return Component("risk", 0.0, 0.0, "; ".join(s.reason for s in signals))


def retrieval_scores(sources: list[Source]) -> dict[str, float]:
    """The search's own scores, for a learned combination to weigh next to the components."""
    articles = best_per_article(sources)
    return {
        "top_fused": articles[0].score if articles else 0.0,
        "second_fused": articles[1].score if len(articles) > 1 else 0.0,
        "top_dense": max((s.dense for s in sources), default=0.0),
        "top_keyword": max((s.keyword for s in sources), default=0.0),
    }


def score(ticket: Ticket, sources: list[Source], draft: Draft, calibration: Calibration | None = None) -> Confidence:
    """Weigh the components, map through the calibration if there is one, then apply the gates.

    A calibration with a learned combination weighs the components (by name) and the retrieval
    scores itself; the hand weights still give `raw`, and the components are shown either way.
    """
    with reading(ticket.language):
        return _score(ticket, sources, draft, calibration)


def _score(ticket: Ticket, sources: list[Source], draft: Draft, calibration: Calibration | None) -> Confidence:
    signals = risk_signals(ticket)
    cites = citations(draft, sources)
    form = answer_form(ticket, draft)
    matched = token_match(sources)
    components = (
        retrieval_strength(sources),
        *((matched,) if matched else ()),
        retrieval_margin(sources),
        rankings_agree(sources),
        question_coverage(ticket, sources),
        draft_support(draft, sources),
        keyword_match(sources),
        form,
        cites,
        drafter_answered(draft),
        risk(signals),
    )
    raw = round(100 * sum(c.value * c.weight for c in components) / sum(c.weight for c in components))
    inputs = {**{c.name: c.value for c in components}, **retrieval_scores(sources)}
    value = round(100 * calibration.probability(raw, inputs)) if calibration else raw
    caps: list[str] = []
    if draft.declined:
        value = 0
        caps.append(f"the drafter declined: {draft.decline_reason}")
    elif cites.value == 0:
        value = 0
        caps.append("the draft cites none of the retrieved sources: score held at 0")
    elif form.value == 0 and question_kind(ticket.question) in GATED_KINDS:
        value = 0
        caps.append(f"the draft does not answer the question: {form.detail}; score held at 0")
    return Confidence(score=value, components=components, caps=tuple(caps), raw=raw, inputs=inputs,
                      combination=calibration.combination if calibration else "weights")
