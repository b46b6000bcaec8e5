"""`helpdesk-bot serve`: the web app under gunicorn's gevent worker, as it is deployed.

The other tests serve the app from a thread (werkzeug). This one runs the real command and
talks to it over loopback: concurrent signed webhooks are each recorded and queued once, the
dashboard signs in and hands slow work to a worker, and on PostgreSQL psycopg waits
cooperatively under gevent.
"""

import json
import os
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis
import requests
import sqlalchemy as sa

from benchmarks.loadgen import SignedWebhook
from integrations.zendesk.webhook import INVOCATION_HEADER
from harness import free_port, wait_for

SECRET = "serve-test-secret"
PASSWORD = "a long enough password"


def test_serve_records_and_queues_concurrent_webhooks_and_signs_in(tmp_path, redis_url, database_url):
    broker_url = redis_url.rsplit("/", 1)[0] + "/11"
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "DATABASE_URL", "ZENDESK_"))}
    env.update(HELPDESK_DATA_DIR=str(tmp_path), REDIS_URL=broker_url, DATABASE_URL=database_url,
               ZENDESK_WEBHOOK_SECRET=SECRET)
    cli = [sys.executable, "-m", "helpdesk_bot.ops.cli"]
    subprocess.run([*cli, "admin", "create-user", "ops", "--password-stdin"], input=PASSWORD + "\n", env=env,
                   check=True, capture_output=True, text=True, timeout=60)
    port = free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--workers", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:  # the port is bound before the workers have loaded the app
                return requests.get(f"{url}/healthz", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return server.poll() is None and None

        assert wait_for(up, 60, what="helpdesk-bot serve"), server.stdout.read()

        # Many at once, so that the intake's batches hold several deliveries, and one delivered twice.
        webhook = SignedWebhook(SECRET)
        deliveries = [str(uuid.uuid4()) for _ in range(60)]

        def deliver(invocation):
            return requests.post(f"{url}/webhooks/zendesk", data=webhook.body, timeout=10,
                                 headers={**webhook.headers(), INVOCATION_HEADER: invocation})

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(deliver, deliveries + deliveries[:1]))
        assert sorted(a.status_code for a in answers) == [200] + [202] * 60, [a.text for a in answers]
        event_ids = {a.json()["event_id"] for a in answers}
        assert len(event_ids) == 60

        engine = sa.create_engine(database_url)
        with engine.connect() as db:
            recorded = db.execute(sa.text("SELECT count(*) FROM ticket_events")).scalar_one()
        engine.dispose()
        assert recorded == 60
        queued = wait_for(lambda: broker.llen("celery") == 60 or None, 5, what="60 queued tasks")
        assert queued

        # A forged delivery is refused with the reason, as from the development server.
        forged = requests.post(f"{url}/webhooks/zendesk", data=webhook.body, timeout=10,
                               headers={**webhook.headers(), "X-Zendesk-Webhook-Signature": "forged"})
        assert forged.status_code == 401 and "signature does not match" in forged.json()["error"]

        session = requests.Session()
        page = session.get(f"{url}/dashboard/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        overview = session.post(f"{url}/dashboard/login", timeout=10,
                                data={"username": "ops", "password": PASSWORD, "csrf_token": token})
        assert overview.status_code == 200 and "Overview" in overview.text

        # Recomputing topics embeds every recent ticket: the web process hands it to a worker.
        topics = session.get(f"{url}/dashboard/topics", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', topics.text).group(1)
        refreshed = session.post(f"{url}/dashboard/topics/refresh", data={"csrf_token": token}, timeout=10)
        assert refreshed.status_code == 200 and "recomputed by a worker" in refreshed.text
        assert json.loads(broker.lindex("celery", 0))["headers"]["task"] == "workers.tasks.refresh_topics"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
        broker.flushdb()
    assert "CappedGeventWorker" in output  # gunicorn names its worker class when it boots
    assert "Traceback" not in output, output[-3000:]
