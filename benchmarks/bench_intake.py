"""Webhook intake under gunicorn: signed Zendesk delivery → 202, recorded and queued, against a
bare Flask endpoint answering 202 in the same server configuration.

Peak throughput (wrk, closed loop) alternates between the two apps for several rounds and
reports medians; then latency at a fixed 200 requests/s (open loop). After every intake run
the ledger and the Redis queue are checked: one event and one queued task per 202.

    python -m benchmarks.bench_intake [--database sqlite|postgresql://...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import redis
import sqlalchemy as sa

from benchmarks import loadgen
from benchmarks.common import (CACHE_DIR, background, clean_env, emit, fresh_dir, free_port, log, machine, median,
                               redis_server, summary, wait_for)
from helpdesk_bot.ops.cli import gunicorn_options

SECRET = "bench-webhook-secret"


def gunicorn(app: str, port: int, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *options, app]


def count_events(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    with engine.connect() as db:
        n = db.execute(sa.text("SELECT count(*) FROM ticket_events")).scalar_one()
    engine.dispose()
    return n


def reset_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        return
    engine = sa.create_engine(database_url)  # every table, the migrations' bookkeeping too
    existing = sa.MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    engine.dispose()


def run(database: str, rounds: int, seconds: float, connections: int, rate: float, rate_seconds: float,
        workers: int, worker_class: str, connections_per_worker: int, threads: int) -> dict:
    options = gunicorn_options(workers, worker_class, connections_per_worker, threads)
    work = fresh_dir(CACHE_DIR / "runs" / "intake")
    database_url = f"sqlite:///{work / 'data' / 'helpdesk.db'}" if database == "sqlite" else database
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    reset_database(database_url)
    webhook = loadgen.SignedWebhook(SECRET)
    use_wrk = loadgen.wrk_available()
    if not use_wrk:
        log("wrk not found (apt-get install wrk): peak throughput comes from the slower Python load generator")

    with redis_server(work / "redis") as redis_url:
        # All the load comes from one address and one account: the rate limits still count
        # every request (their cost is part of intake), but must not refuse any.
        env = clean_env(HELPDESK_DATA_DIR=str(work / "data"), REDIS_URL=redis_url, ZENDESK_WEBHOOK_SECRET=SECRET,
                        DATABASE_URL=database_url, HELPDESK_WEBHOOK_RATE_LIMIT=f"{10**9}/60",
                        HELPDESK_ACCOUNT_RATE_LIMIT=f"{10**9}/60", HELPDESK_MAX_CONNECTIONS_PER_IP="0")
        bare_port, intake_port = free_port(), free_port()
        broker = redis.Redis.from_url(redis_url)
        with background(gunicorn("benchmarks.bare_app:app", bare_port, options), env=env, log_file=work / "bare.log",
                        ready_port=bare_port), \
             background(gunicorn("helpdesk_bot.web.wsgi:app", intake_port, options), env=env, log_file=work / "intake.log",
                        ready_port=intake_port):
            urls = {"bare": f"http://127.0.0.1:{bare_port}/webhooks/zendesk",
                    "intake": f"http://127.0.0.1:{intake_port}/webhooks/zendesk"}

            def peak(name: str) -> dict:
                if use_wrk:
                    return loadgen.wrk(urls[name], webhook, seconds, connections)
                return loadgen.closed_loop(urls[name], webhook, seconds, connections)

            def checked(name: str, result: dict, before: int) -> None:
                if name != "intake":
                    return
                def settled():  # requests still in flight when the load stopped finish first
                    first = (count_events(database_url), broker.llen("celery"))
                    time.sleep(0.3)
                    second = (count_events(database_url), broker.llen("celery"))
                    return second if first == second else None

                recorded, queued = wait_for(settled, 10, what="intake to settle")
                recorded -= before
                broker.delete("celery")  # no worker runs here: keep Redis small between rounds
                result["recorded"], result["queued"] = recorded, queued
                # wrk stops counting with requests still in flight: those are recorded but not counted.
                if not (0 <= recorded - result["ok"] <= connections and queued == recorded):
                    raise RuntimeError(f"intake answered {result['ok']} requests but recorded {recorded} events "
                                       f"and queued {queued} tasks")

            for name in urls:  # warm up: first requests import modules and open connections
                peak_result = loadgen.closed_loop(urls[name], webhook, 2, 4)
            broker.delete("celery")
            runs: dict[str, list[dict]] = {"bare": [], "intake": []}
            for r in range(rounds):
                order = ["bare", "intake"] if r % 2 == 0 else ["intake", "bare"]
                for name in order:
                    before = count_events(database_url) if name == "intake" else 0
                    peak_result = peak(name)
                    checked(name, peak_result, before)
                    runs[name].append(peak_result)
                    log(f"round {r + 1}/{rounds} {name}: {peak_result['rps']:.0f} requests/s")
            # Latency at a fixed rate, alternating the two apps in short slices, so a burst of
            # load from elsewhere on the machine falls on both alike.
            samples: dict[str, list[float]] = {"bare": [], "intake": []}
            fixed_runs: dict[str, list[dict]] = {"bare": [], "intake": []}
            for r in range(rounds):
                for name in (["bare", "intake"] if r % 2 == 0 else ["intake", "bare"]):
                    before = count_events(database_url) if name == "intake" else 0
                    fixed = loadgen.fixed_rate(urls[name], webhook, rate, rate_seconds / rounds)
                    ok = sum(n for status, n in fixed["statuses"].items() if 200 <= status < 300)
                    checked(name, {"ok": ok}, before)
                    samples[name] += fixed.pop("latencies_ms")
                    fixed_runs[name].append(fixed)
            latency = {}
            for name in ("bare", "intake"):
                runs_ = fixed_runs[name]
                latency[name] = {**summary(samples[name], 2), "sent": sum(f["sent"] for f in runs_),
                                 "errors": sum(f["errors"] for f in runs_),
                                 "non_2xx": sum(n for f in runs_ for status, n in f["statuses"].items()
                                                if not 200 <= status < 300)}
                log(f"{rate:.0f} requests/s {name}: p99 {latency[name]['p99']} ms")

    bare_rps = median([r["rps"] for r in runs["bare"]])
    intake_rps = median([r["rps"] for r in runs["intake"]])
    ratios = [i["rps"] / b["rps"] for i, b in zip(runs["intake"], runs["bare"])]
    return {
        "database": database_url.split(":", 1)[0],
        "server": "gunicorn " + " ".join(options),
        "load": (f"wrk -t1 -c{connections} -d{seconds}s" if use_wrk else f"python closed loop, {connections} connections")
                + f"; then open loop at {rate:.0f}/s, {rate_seconds:.0f} s per app in {rounds} alternating slices",
        "rounds": rounds,
        "bare_rps_median": round(bare_rps, 1),
        "intake_rps_median": round(intake_rps, 1),
        "intake_vs_bare": round(intake_rps / bare_rps, 3),
        "intake_vs_bare_per_round_median": round(median(ratios), 3),
        "bare_rps": [round(r["rps"], 1) for r in runs["bare"]],
        "intake_rps": [round(r["rps"], 1) for r in runs["intake"]],
        "intake_errors": sum(r["requests"] - r["ok"] for r in runs["intake"]),
        f"latency_ms_at_{rate:.0f}_rps": latency,
        "targets": {"intake_vs_bare_min": 0.70, "p99_ms_max": 20.0},
        "meets_targets": intake_rps / bare_rps >= 0.70 and latency["intake"]["p99"] <= 20.0,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", "sqlite"),
                        help="'sqlite' (default) or a postgresql:// URL for the ledger")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--rate-seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, for both apps")
    parser.add_argument("--worker-class", default="gevent", choices=["gevent", "gthread"],
                        help="gunicorn worker class, for both apps (as `helpdesk-bot serve`)")
    parser.add_argument("--worker-connections", type=int, default=1000, help="gevent: requests at once per worker")
    parser.add_argument("--threads", type=int, default=64, help="gthread: threads per worker")
    args = parser.parse_args()
    emit("intake", run(args.database, args.rounds, args.seconds, args.connections, args.rate, args.rate_seconds,
                       args.workers, args.worker_class, args.worker_connections, args.threads))


if __name__ == "__main__":
    main()
