"""The guardrails' checks on a draft (`guardrails.reply_problems`: links on the Public Suffix
List, action claims, commitments, sentence-level support), per draft, against the bag-of-words
check they replaced, in the same process.

    python -m benchmarks guardrails

Drafts: the answers of tests/data/hostile_tickets.jsonl (what an obedient model wrote) and
tests/data/benign_tickets.jsonl (what a careful one wrote), each checked against 5 chunks of
the sample help center drawn at random (seeded), as a retrieval would hand the drafter.
"""

from __future__ import annotations

import json
import random
import time

from benchmarks.common import ROOT, emit, log, machine, summary
from helpdesk_bot.domain import Draft, Message, Source, Ticket
from helpdesk_bot.groundedness import grounding
from helpdesk_bot.guardrails import reply_problems
from helpdesk_bot.knowledge import Article, chunk_article

ROUNDS = 5
SOURCES_PER_DRAFT = 5


def cases(seed: int = 17) -> list[tuple[Draft, list[Source]]]:
    rng = random.Random(seed)
    data = json.loads((ROOT / "helpdesk_bot/sample_data/help_center.json").read_text())
    chunks = [c for a in data["articles"]
              for c in chunk_article(Article(id=str(a["id"]), title=a["title"], url=a["html_url"], body_html=a["body"]))]
    answers = [json.loads(line)["obeyed_answer"] for line in (ROOT / "tests/data/hostile_tickets.jsonl").open()]
    answers += [json.loads(line)["careful_answer"].replace("{url}", "https://orbitask.zendesk.com/hc/en-us/articles/1")
                for line in (ROOT / "tests/data/benign_tickets.jsonl").open()]
    out = []
    for text in answers:
        sources = [Source(c, 1.0, 0.5, 0.5) for c in rng.sample(chunks, SOURCES_PER_DRAFT)]
        out.append((Draft(f"{text} [1]", (sources[0].chunk.id,), False, "openai"), sources))
    return out


def main() -> None:
    drafts = cases()
    ticket = Ticket("zendesk", "1", "Question", (Message("customer", "How do I do this?"),))
    log(f"{len(drafts)} drafts × {SOURCES_PER_DRAFT} sources, {ROUNDS} rounds")
    reply_problems(ticket, *drafts[0])  # the Public Suffix List and the stemmer's first words
    current, baseline = [], []
    for _ in range(ROUNDS):
        for draft, sources in drafts:
            start = time.perf_counter()
            reply_problems(ticket, draft, sources)
            current.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            grounding(draft.text, [f"{s.chunk.title} {s.chunk.heading} {s.chunk.text}" for s in sources])
            baseline.append((time.perf_counter() - start) * 1000)
    emit("guardrails", {
        "machine": machine(),
        "drafts": len(drafts),
        "sources_per_draft": SOURCES_PER_DRAFT,
        "ms_per_draft": summary(current, 2),
        "bag_of_words_check_ms_per_draft": summary(baseline, 2),
    })


if __name__ == "__main__":
    main()
