"""The impact check after a re-index: 100,000 recorded answers, 500 changed chunks.

A SQLite ledger holds 20,000 indexed chunks (4,000 articles of 5) and 100,000 decisions of the
last 30 days, each citing 1 to 3 chunks and quoting their sentences. A re-index then changes a
figure in every chunk of 100 articles (500 chunks). Measured, each the median of `--rounds`:

- `record_changes`: the re-index keeping what changed (old and new hash and text per chunk);
- `check`: finding the answers that cited the old text through the decision → cited chunk
  index, re-running the groundedness check of each against the new text, recording verdicts
  (notes off: each note is two helpdesk calls, and solved tickets get none);
- `no_op`: the check after a re-index that changed nothing;
- baseline, in the same process: finding the same answers by reading every decision of the
  window and its sources, which is what the index saves (finding only, no checking).

    python -m benchmarks.bench_impact [--decisions 100000] [--changed-articles 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.common import emit, log, machine
from helpdesk_bot.domain import Chunk
from helpdesk_bot.impact import ImpactCheck
from helpdesk_bot.ledger import Ledger, decisions, ticket_events
from helpdesk_bot.ledger.article_changes import text_hash
from helpdesk_bot.ledger.tables import answer_impacts, article_changes, cited_chunks
from helpdesk_bot.policy import Policy

CHUNKS_PER_ARTICLE = 5
WORDS = ("workspace project board task invoice export member guest admin owner calendar timeline report "
         "integration webhook token password browser device notification comment label status sprint "
         "template archive trash storage upload seat plan billing receipt refund").split()
UNITS = ("days", "hours", "minutes", "GB", "seats", "members", "projects")


def chunk_text(rng: random.Random, article: int, n: int, figure: int) -> str:
    def sentence(k: int) -> str:
        words = rng.sample(WORDS, 7)
        return (f"The {words[0]} {words[1]} keeps each {words[2]} for {figure + k} {UNITS[(article + k) % len(UNITS)]} "
                f"before the {words[3]} {words[4]} moves it to {words[5]} {words[6]}.")
    return " ".join(sentence(k) for k in range(6)) + f" Section {n} of article {article}."


def build(ledger: Ledger, store: Ledger, articles: int, n_decisions: int, rng: random.Random) -> list[Chunk]:
    chunks = [Chunk(id=f"{a}#{n}", article_id=str(a), title=f"Article {a}", text=chunk_text(rng, a, n, 10 + a % 50),
                    url=f"https://help.example.com/articles/{a}")
              for a in range(articles) for n in range(CHUNKS_PER_ARTICLE)]
    store.record_reindex("help center", chunks, [])
    now = time.time()
    events, rows, cited = [], [], []
    for i in range(1, n_decisions + 1):
        at = now - rng.uniform(0, 29) * 86400
        quoted = rng.sample(chunks, rng.choice((1, 2, 2, 3)))
        draft = " ".join(c.text.split(". ")[rng.randrange(5)] + f". [{k}]" for k, c in enumerate(quoted, 1))
        events.append({"id": i, "helpdesk": "zendesk", "delivery_id": f"d{i}", "ticket_id": str(i),
                       "kind": "ticket.created", "status": "done", "attempts": 1, "received_at": at})
        rows.append({"id": i, "event_id": i, "helpdesk": "zendesk", "ticket_id": str(i), "tags": "[]",
                     "question": "q", "draft": draft, "drafter": "extractive", "confidence": 80,
                     "sources": json.dumps([{"id": c.id, "cited": k} for k, c in enumerate(quoted, 1)]),
                     "components": "{}", "rule": "default", "threshold": 70, "action": "auto_send",
                     "reasons": "[]", "latency_ms": "{}", "created_at": at})
        cited.extend({"event_id": i, "chunk_id": c.id, "text_hash": text_hash(c.text), "cited_at": at} for c in quoted)
    with ledger.engine.begin() as db:
        db.execute(ticket_events.insert(), events)
        db.execute(decisions.insert(), rows)
        db.execute(cited_chunks.insert(), cited)
    return chunks


def changed_chunks(chunks: list[Chunk], articles: list[int]) -> list[Chunk]:
    """Every chunk of these articles, with its first figure changed (as an editor changes a limit)."""
    chosen = {str(a) for a in articles}
    out = []
    for c in chunks:
        if c.article_id in chosen:
            figure = c.text.split(" for ")[1].split(" ")[0]
            out.append(Chunk(id=c.id, article_id=c.article_id, title=c.title, url=c.url,
                             text=c.text.replace(f" for {figure} ", f" for {int(figure) + 7} ", 1)))
    return out


def scan_decisions(ledger: Ledger, changed: set[str], since: float) -> int:
    """The baseline: every decision of the window, its sources read, to find those citing a changed chunk."""
    touched = 0
    with ledger.engine.connect() as db:
        for (sources,) in db.execute(sa.select(decisions.c.sources).where(decisions.c.created_at >= since)):
            touched += any(s["cited"] and s["id"] in changed for s in json.loads(sources))
    return touched


def reset(store: Ledger, chunks: list[Chunk]) -> None:
    """Back to the index before the change, so each round checks the same change."""
    with store.engine.begin() as db:
        db.execute(answer_impacts.delete())
        db.execute(sa.text("DELETE FROM chunk_changes"))
        db.execute(article_changes.delete())
    store.record_reindex("help center", chunks, [])


def run(n_decisions: int, changed_articles: int, rounds: int) -> dict:
    rng = random.Random(20)
    folder = Path(tempfile.mkdtemp(prefix="bench-impact-"))
    ledger = Ledger(f"sqlite:///{folder}/ledger.db")
    ledger.migrate()
    store = ledger  # its ArticleChangeStore
    articles = 20_000 // CHUNKS_PER_ARTICLE
    log(f"recording {n_decisions} decisions citing {articles * CHUNKS_PER_ARTICLE} chunks")
    chunks = build(ledger, store, articles, n_decisions, rng)
    edited = changed_chunks(chunks, rng.sample(range(articles), changed_articles))
    originals = [c for c in chunks if c.article_id in {e.article_id for e in edited}]
    check = ImpactCheck(ledger, {}, Policy(article_change_notes=False), days=30)
    # Wall time, and the check's CPU time: on a machine shared with other work they differ.
    timings: dict[str, list[float]] = {"record_changes": [], "check": [], "check_cpu": [], "no_op": [],
                                       "baseline_scan": []}
    counts = {}
    for n in range(rounds):
        log(f"round {n + 1}")
        if n:
            reset(store, originals)
        started = time.perf_counter()
        store.record_reindex("help center", edited, [])
        timings["record_changes"].append(time.perf_counter() - started)
        started, cpu = time.perf_counter(), time.process_time()
        counts = check.run()
        timings["check"].append(time.perf_counter() - started)
        timings["check_cpu"].append(time.process_time() - cpu)
        started = time.perf_counter()
        check.run()
        timings["no_op"].append(time.perf_counter() - started)
        started = time.perf_counter()
        scanned = scan_decisions(ledger, {c.id for c in edited}, time.time() - 30 * 86400)
        timings["baseline_scan"].append(time.perf_counter() - started)
    checked = counts["still_supported"] + counts["unsupported_now"] + counts["source_removed"]
    with ledger.engine.connect() as db:
        answers = db.execute(sa.select(sa.func.count(sa.distinct(answer_impacts.c.event_id)))).scalar()
    assert answers == scanned, (answers, scanned)  # the index finds exactly what reading every decision finds
    ledger.dispose()
    return {
        "decisions": n_decisions, "chunks": len(chunks), "changed_chunks": len(edited),
        "answers_touched": answers, "verdicts_recorded": checked,  # an answer citing two changed articles: two
        "verdicts": {k: counts[k] for k in ("still_supported", "unsupported_now", "source_removed")},
        "seconds_median": {k: round(statistics.median(v), 3) for k, v in timings.items()},
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in timings.items()},
        "reindex_to_verdicts_seconds": round(statistics.median(timings["record_changes"])
                                             + statistics.median(timings["check"]), 3),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--changed-articles", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    emit("impact", run(args.decisions, args.changed_articles, args.rounds))


if __name__ == "__main__":
    main()
