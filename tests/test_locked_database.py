"""A SQLite file locked by someone else must not freeze `helpdesk-bot serve` (gevent's worker).

SQLite waits for its lock inside a C call, and so does `flock`: in a greenlet that stops every
other greenlet of the process, the watchdog that answers 503 included. The ledger writes of the
intake run in a real thread instead, so while an exclusive lock is held for 15 s webhooks get
their 503 (which Zendesk retries) within Zendesk's 10 s and /healthz answers at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from benchmarks.loadgen import SignedWebhook
from integrations.zendesk.webhook import INVOCATION_HEADER
from harness import serving, wait_for

SECRET = "locked-database-secret"
LOCK_SECONDS = 15


@pytest.fixture
def server(tmp_path, redis_url):
    with serving(tmp_path, redis_url.rsplit("/", 1)[0] + "/13", workers=1, log=open(tmp_path / "serve.log", "w"),
                 ZENDESK_WEBHOOK_SECRET=SECRET) as url:
        yield url, tmp_path / "helpdesk.db"


def deliver(url: str) -> tuple[int, float]:
    webhook, started = SignedWebhook(SECRET), time.monotonic()
    try:
        answer = requests.post(f"{url}/webhooks/zendesk", data=webhook.body, timeout=LOCK_SECONDS,
                               headers={**webhook.headers(), INVOCATION_HEADER: str(uuid.uuid4())})
        return answer.status_code, time.monotonic() - started
    except requests.Timeout:
        return 0, time.monotonic() - started


def test_a_locked_sqlite_file_gets_webhooks_a_503_in_time_and_health_checks_answered(server):
    url, database = server
    assert deliver(url)[0] == 202  # the ledger exists and the intake's writer runs
    locked = threading.Event()

    def hold_lock():
        connection = sqlite3.connect(database, timeout=5, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(LOCK_SECONDS)
        connection.execute("ROLLBACK")
        connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        locked.wait(10)
        with ThreadPoolExecutor(4) as pool:
            webhooks = pool.map(lambda _: deliver(url), range(4))
            time.sleep(1)
            started = time.monotonic()
            health = requests.get(f"{url}/healthz", timeout=5)
            health_seconds = time.monotonic() - started
            answers = list(webhooks)
        assert health.status_code == 200 and health_seconds < 1, health_seconds
        assert [status for status, _ in answers] == [503] * 4, answers
        assert max(seconds for _, seconds in answers) < 10, answers  # before Zendesk gives up
    finally:
        holder.join()
    # Back to normal once the lock is gone and the writer has finished the batch it waited with.
    wait_for(lambda: deliver(url)[0] == 202, 10, interval=0.5, what="a webhook accepted after the lock")
