"""On embedded defaults (no REDIS_URL) every process of an installation shares one redis-server.

`helpdesk-bot serve` with several gunicorn workers and a `helpdesk-bot worker` must find the
same server: a webhook taken by any web worker is queued where the Celery worker reads it, and
the server stops once the last of them has ended.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa

from helpdesk_bot.ledger import ticket_events
from helpdesk_bot.services import open_ledger
from helpdesk_bot.settings import Settings
from integrations.sandbox import SandboxHelpdesk
from harness import SAMPLE_HELP_CENTER, free_port, restored_environment, wait_for
from workers.broker import stop_embedded_redis, use_embedded_redis

TICKETS = 20


def redis_servers(data_dir: Path) -> list[psutil.Process]:
    """The redis-servers serving `data_dir` (a redis-server works in the folder of its database)."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "redis-server" and Path(process.cwd()) == data_dir:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def watchers(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline[-3:] == ["-m", "workers.broker", str(data_dir)]:
            found.append(process)
    return found


@pytest.mark.parametrize("web_workers", [2, 4])
def test_web_workers_and_the_worker_share_one_embedded_redis(tmp_path, help_center_index, web_workers):
    data_dir = (tmp_path / "data").resolve()
    shutil.copytree(help_center_index / "knowledge", data_dir / "knowledge")
    with restored_environment(), SandboxHelpdesk(help_center=SAMPLE_HELP_CENTER) as sandbox:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("REDIS_URL", "DATABASE_URL", "ZENDESK_", "INTERCOM_", "OPENAI_", "QDRANT_"))}
        env.update(HELPDESK_DATA_DIR=str(data_dir), SANDBOX_URL=sandbox.url, ZENDESK_WEBHOOK_SECRET="embedded-secret")
        settings = Settings.from_env(env)
        cli = [sys.executable, "-m", "helpdesk_bot.ops.cli"]
        port = free_port()
        with (tmp_path / "worker.log").open("w") as worker_log, (tmp_path / "serve.log").open("w") as serve_log:
            worker = subprocess.Popen([*cli, "worker", "--pool", "threads", "--concurrency", "4"], env=env,
                                      stdout=worker_log, stderr=subprocess.STDOUT)
            server = subprocess.Popen([*cli, "serve", "--port", str(port), "--workers", str(web_workers)], env=env,
                                      stdout=serve_log, stderr=subprocess.STDOUT)
        try:
            def up():
                try:
                    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
                except (requests.ConnectionError, requests.Timeout):
                    return server.poll() is None and None

            assert wait_for(up, 60, what="helpdesk-bot serve"), (tmp_path / "serve.log").read_text()[-3000:]
            wait_for(lambda: "ready." in (tmp_path / "worker.log").read_text() or worker.poll() is not None, 60,
                     what="the worker")
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            sandbox.configure_webhook(f"http://127.0.0.1:{port}/webhooks/zendesk", settings.webhook_secret(),
                                      "trigger", on_update=False)

            ticket_ids = [str(sandbox.create_ticket(f"Question {n}", "How do I export a project to CSV?",
                                                    f"customer{n}@example.com", f"Customer {n}"))
                          for n in range(TICKETS)]
            sent = time.monotonic()
            ledger = open_ledger(settings)

            def answered():
                with ledger.engine.connect() as db:
                    statuses = db.execute(sa.select(ticket_events.c.status)
                                          .where(ticket_events.c.ticket_id.in_(ticket_ids))).scalars().all()
                return len(statuses) == TICKETS and all(s in ("done", "dead") for s in statuses) or None

            assert wait_for(answered, 30, what=f"{TICKETS} tickets answered\n"
                                               f"{(tmp_path / 'worker.log').read_text()[-3000:]}")
            elapsed = time.monotonic() - sent
            print(f"{web_workers} web workers: {TICKETS} tickets answered in {elapsed:.1f} s")
            with ledger.engine.connect() as db:
                statuses = db.execute(sa.select(ticket_events.c.status)
                                      .where(ticket_events.c.ticket_id.in_(ticket_ids))).scalars().all()
            ledger.engine.dispose()
            assert statuses == ["done"] * TICKETS
            assert len(redis_servers(data_dir)) == 1
            assert len(watchers(data_dir)) == 1
        finally:
            for process in (server, worker):
                process.terminate()
            for process in (server, worker):
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    # Nobody uses it any more: it stops, saving its data, and its watcher with it.
    assert wait_for(lambda: not redis_servers(data_dir) and not watchers(data_dir), 15, what="the broker to stop")
    assert not (data_dir / "broker.json").exists()


def test_the_server_stops_with_its_last_user_and_never_outlives_its_watcher(tmp_path):
    data_dir = (tmp_path / "data").resolve()
    socket = use_embedded_redis(data_dir)
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; from workers.broker import use_embedded_redis;"
                              f"print(use_embedded_redis({str(data_dir)!r}), flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == socket  # found, not started again
        (server,) = redis_servers(data_dir)
        stop_embedded_redis(data_dir)  # another process still uses it
        assert server.is_running() and server.status() != psutil.STATUS_ZOMBIE
    finally:
        other.kill()  # however a user ends, the kernel drops its lock and the watcher notices
        other.wait()
    assert wait_for(lambda: not redis_servers(data_dir) and not watchers(data_dir), 15, what="the broker to stop")

    use_embedded_redis(data_dir)  # started again on the same data
    try:
        (server,) = redis_servers(data_dir)
        (watcher,) = watchers(data_dir)
        watcher.kill()
        assert wait_for(lambda: not redis_servers(data_dir), 10, what="the orphaned server to stop")
    finally:
        stop_embedded_redis(data_dir)
