"""Pipeline overhead per ticket: everything a worker does for one ticket except the LLM's own
time, on the cached 20,000-chunk index.

`Pipeline.handle_event` runs in this process exactly as a worker runs it (fetch from the
sandbox Zendesk over HTTP → retrieve → draft → score → decide → post → record), with the
product's OpenAI drafter pointed at the LLM stand-in answering at once; so the LLM's own
time is zero and everything measured is overhead (the stand-in's HTTP round trip included).
The retrieve → draft → score part alone (`Answerer.answer`) is reported too.

    python -m benchmarks.bench_pipeline [--tickets 300] [--chunks 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import sqlalchemy as sa

from benchmarks.bench_worker import create_tickets
from benchmarks.common import (CACHE_DIR, background, clean_env, emit, fresh_dir, free_port, log, machine,
                               summary)
from benchmarks.corpus import build_corpus, cached_index, copy_index, questions, store_fingerprint
from helpdesk_bot.domain import Message, Ticket, TicketEvent
from helpdesk_bot.embedding import default_embedder
from helpdesk_bot.services import build_pipeline
from helpdesk_bot.settings import Settings


def run(tickets: int, chunks: int) -> dict:
    corpus = build_corpus(chunks)
    index_dir, index_info = cached_index(corpus, default_embedder())
    work = fresh_dir(CACHE_DIR / "runs" / "pipeline")
    data_dir = copy_index(index_dir, work / "data")
    asks = questions(corpus, tickets + 20, seed=5)

    sandbox_port, llm_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = clean_env(HELPDESK_DATA_DIR=str(data_dir), SANDBOX_URL=sandbox_url, REDIS_URL="redis://127.0.0.1:1/0",
                    OPENAI_BASE_URL=f"http://127.0.0.1:{llm_port}/v1", OPENAI_API_KEY="bench",
                    OPENAI_MODEL="standin-1", DATABASE_URL=f"sqlite:///{work / 'ledger.db'}")
    settings = Settings.from_env(env)
    with background([sys.executable, "-m", "integrations.sandbox", "--port", str(sandbox_port)], env=env,
                    log_file=work / "sandbox.log", ready_port=sandbox_port), \
         background([sys.executable, "-m", "integrations.llm_standin", "--port", str(llm_port), "--delay", "0"],
                    env=env, log_file=work / "llm.log", ready_port=llm_port):
        started = time.perf_counter()
        pipeline = build_pipeline(settings)
        pipeline.answerer.retriever.embedder.embed(["warm up"])  # as the worker does when it starts
        open_seconds = time.perf_counter() - started
        ticket_ids = create_tickets(sandbox_url, asks)

        totals, answer_ms = [], []
        for n, ticket_id in enumerate(ticket_ids):
            event_id, _ = pipeline.ledger.record_event(TicketEvent("zendesk", uuid.uuid4().hex, str(ticket_id)))
            t0 = time.perf_counter()
            pipeline.handle_event(event_id)
            elapsed = (time.perf_counter() - t0) * 1000
            if n >= 20:  # the first tickets warm caches and connections
                totals.append(elapsed)
        for subject, body, tags in asks[20:]:
            ticket = Ticket("zendesk", "0", subject, (Message("customer", body),), frozenset(tags))
            t0 = time.perf_counter()
            pipeline.answerer.answer(ticket)
            answer_ms.append((time.perf_counter() - t0) * 1000)
        with pipeline.ledger.engine.connect() as db:
            rows = db.execute(sa.text("SELECT latency_ms, action FROM decisions ORDER BY id")).all()[20:]

    stages: dict[str, list[float]] = {}
    for latency, _ in rows:
        for stage, ms in json.loads(latency).items():
            stages.setdefault(stage, []).append(ms)
    overall = summary(totals)
    log(f"handle_event p50 {overall['p50']} ms, p95 {overall['p95']} ms")
    return {
        "index_chunks": index_info["points"],
        "store": store_fingerprint(),
        "tickets": len(totals),
        "llm": "stand-in answering at once (OpenAI wire format over loopback)",
        "overhead_ms": overall,
        "answer_ms": summary(answer_ms),
        "stage_ms": {stage: summary(values) for stage, values in stages.items()},
        "actions": {a: sum(1 for _, x in rows if x == a) for a in {x for _, x in rows}},
        "open_index_and_model_seconds": round(open_seconds, 2),
        "target_p95_ms_max": 50,
        "meets_target": overall["p95"] <= 50,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=20_000)
    args = parser.parse_args()
    emit("pipeline", run(args.tickets, args.chunks))


if __name__ == "__main__":
    main()
