"""Pipeline overhead per ticket: everything a worker does for one ticket except the LLM's own
time, on the cached 20,000-chunk index.

`Pipeline.handle_event` runs in this process exactly as a worker runs it (fetch from the
sandbox Zendesk over HTTP → retrieve → draft → score → decide → post → record), with the
product's OpenAI drafter pointed at the LLM stand-in answering at once; so the LLM's own
time is zero and everything measured is overhead (the stand-in's HTTP round trip included).
The retrieve → draft → score part alone (`Answerer.answer`) is reported too.

These machines are shared and noisy, so next to wall-clock times the benchmark reports the CPU
time each ticket took in this process (all its threads) and, per ticket on average, in the
sandbox and LLM stand-in processes: on an idle machine wall-clock time is about their sum.

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
from benchmarks.common import (CACHE_DIR, background, clean_env, contention, cpu_seconds, emit, fresh_dir,
                               free_port, log, machine, summary)
from benchmarks.corpus import product_embedder, build_corpus, cached_index, copy_index, questions, store_fingerprint

# The overhead's budget since the word-by-word re-ranking joined retrieval (a quality stage may
# spend ~200 ms per ticket); it was 50 ms before. On an idle machine the wall-clock time is at
# most the sum of the CPU times: less, since the embedding model spreads over both cores.
TARGET_P95_MS = 250
from helpdesk_bot.domain import Message, Ticket, TicketEvent
from helpdesk_bot.services import build_pipeline
from helpdesk_bot.settings import Settings


def run(tickets: int, chunks: int) -> dict:
    corpus = build_corpus(chunks)
    index_dir, index_info = cached_index(corpus, product_embedder())
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
                    log_file=work / "sandbox.log", ready_port=sandbox_port) as sandbox, \
         background([sys.executable, "-m", "integrations.llm_standin", "--port", str(llm_port), "--delay", "0"],
                    env=env, log_file=work / "llm.log", ready_port=llm_port) as llm:
        started = time.perf_counter()
        pipeline = build_pipeline(settings)
        pipeline.answerer.retriever.embedder.embed(["warm up"])  # as the worker does when it starts
        open_seconds = time.perf_counter() - started
        ticket_ids = create_tickets(sandbox_url, asks)

        busy_before = contention()
        totals, cpu_ms, answer_ms, answer_cpu_ms = [], [], [], []
        others = [sandbox.pid, llm.pid]
        for n, ticket_id in enumerate(ticket_ids):
            event_id, _ = pipeline.ledger.record_event(TicketEvent("zendesk", uuid.uuid4().hex, str(ticket_id)))
            if n == 20:  # the first tickets warm caches and connections
                others_cpu = sum(cpu_seconds(pid) for pid in others)
            t0, c0 = time.perf_counter(), time.process_time()
            pipeline.handle_event(event_id)
            elapsed, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
            if n >= 20:
                totals.append(elapsed)
                cpu_ms.append(cpu)
        others_cpu_per_ticket = (sum(cpu_seconds(pid) for pid in others) - others_cpu) * 1000 / len(totals)
        for subject, body, tags in asks[20:]:
            ticket = Ticket("zendesk", "0", subject, (Message("customer", body),), frozenset(tags))
            t0, c0 = time.perf_counter(), time.process_time()
            pipeline.answerer.answer(ticket)
            answer_ms.append((time.perf_counter() - t0) * 1000)
            answer_cpu_ms.append((time.process_time() - c0) * 1000)
        busy_after = contention()
        with pipeline.ledger.engine.connect() as db:
            rows = db.execute(sa.text("SELECT latency_ms, action FROM decisions ORDER BY id")).all()[20:]

    stages: dict[str, list[float]] = {}
    for latency, _ in rows:
        for stage, ms in json.loads(latency).items():
            stages.setdefault(stage, []).append(ms)
    overall = summary(totals)
    cpu = summary(cpu_ms)
    idle_estimate_p95 = round(cpu["p95"] + others_cpu_per_ticket, 1)
    log(f"handle_event p50 {overall['p50']} ms, p95 {overall['p95']} ms wall; CPU p95 {cpu['p95']} ms "
        f"+ {others_cpu_per_ticket:.1f} ms in the sandbox and stand-in")
    return {
        "index_chunks": index_info["points"],
        "store": store_fingerprint(),
        "tickets": len(totals),
        "llm": "stand-in answering at once (OpenAI wire format over loopback)",
        "overhead_ms": overall,
        "overhead_cpu_ms": cpu,
        "sandbox_and_llm_cpu_ms_per_ticket": round(others_cpu_per_ticket, 1),
        "idle_machine_estimate_p95_ms": idle_estimate_p95,
        "answer_ms": summary(answer_ms),
        "answer_cpu_ms": summary(answer_cpu_ms),
        "contention": {"before": busy_before, "after": busy_after},
        "stage_ms": {stage: summary(values) for stage, values in stages.items()},
        "actions": {a: sum(1 for _, x in rows if x == a) for a in {x for _, x in rows}},
        "open_index_and_model_seconds": round(open_seconds, 2),
        "target_p95_ms_max": TARGET_P95_MS,
        "meets_target": overall["p95"] <= TARGET_P95_MS,
        "meets_target_on_idle_estimate": idle_estimate_p95 <= TARGET_P95_MS,
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
