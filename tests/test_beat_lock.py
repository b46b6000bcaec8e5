"""Replicated beat: the Redis lock, and two real beat processes that never both send."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from harness import wait_for
from workers.beat_lock import LeaderLock
from workers.broker import redis_client

REQUEUE_TASK = "workers.tasks.requeue_unqueued_events"


@pytest.fixture
def beat_redis(redis_url):
    """A database of the session's Redis of its own, so no worker consumes what beat sends."""
    url = redis_url.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url, client
    client.flushdb()


def test_one_holder_at_a_time_and_takeover_after_expiry(beat_redis):
    _, client = beat_redis
    first = LeaderLock(client, key="test-lock", ttl=0.4, holder="first")
    second = LeaderLock(client, key="test-lock", ttl=0.4, holder="second")

    assert first.acquire_or_renew()
    assert not second.acquire_or_renew()
    assert first.acquire_or_renew()  # renewing one's own lock
    assert client.pttl("test-lock") > 300
    second.release()  # releasing a lock one does not hold leaves it alone
    assert first.current_holder() == "first"

    time.sleep(0.5)  # the holder stopped renewing: the lock expires
    assert second.acquire_or_renew()
    assert not first.acquire_or_renew()
    second.release()
    assert first.current_holder() is None


def test_redis_client_understands_the_embedded_socket_url(tmp_path):
    client = redis_client(f"redis+socket://{tmp_path}/redis.sock")
    assert client.connection_pool.connection_kwargs["path"] == f"{tmp_path}/redis.sock"


def _sent(client: redis.Redis) -> int:
    """Requeue tasks waiting in the Celery queue (nothing consumes this database)."""
    return sum(json.loads(raw)["headers"]["task"] == REQUEUE_TASK for raw in client.lrange("celery", 0, -1))


def _beat(tmp_path: Path, name: str, url: str) -> tuple[subprocess.Popen, Path]:
    data_dir = tmp_path / name  # each replica keeps its own schedule file, as on separate machines
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENDESK_", "OPENAI_", "QDRANT_", "DATABASE_URL"))}
    env.update(HELPDESK_DATA_DIR=str(data_dir), REDIS_URL=url, HELPDESK_REQUEUE_SECONDS="0.5",
               HELPDESK_BEAT_LOCK_SECONDS="1.5")
    log_file = tmp_path / f"{name}.log"
    process = subprocess.Popen([sys.executable, "-m", "helpdesk_bot.ops.cli", "beat", "--loglevel", "INFO"],
                               env=env, stdout=log_file.open("w"), stderr=subprocess.STDOUT)
    return process, log_file


def test_two_beats_send_each_scheduled_task_once_and_a_standby_takes_over(tmp_path, beat_redis):
    url, client = beat_redis
    first, first_log = _beat(tmp_path, "beat-a", url)
    second, second_log = _beat(tmp_path, "beat-b", url)
    processes = {"beat-a": (first, first_log), "beat-b": (second, second_log)}
    try:
        def both_decided():
            logs = [log.read_text() for _, log in processes.values()]
            return all("holding the beat lock" in text or "standing by" in text for text in logs)

        wait_for(lambda: both_decided() or first.poll() is not None or second.poll() is not None, 30,
                 what="both beats to start")
        assert first.poll() is None and second.poll() is None, first_log.read_text() + second_log.read_text()
        leaders = [name for name, (_, log) in processes.items() if "holding the beat lock" in log.read_text()]
        assert len(leaders) == 1, {name: log.read_text()[-2000:] for name, (_, log) in processes.items()}

        # Every 0.5 s for 4 s: one beat sends about 8, two would send about 16.
        client.delete("celery")
        time.sleep(4)
        sent = _sent(client)
        assert 5 <= sent <= 10, sent

        # The leader stops cleanly and gives the lock back: the other beat carries on.
        leader, leader_log = processes[leaders[0]]
        standby_name = next(name for name in processes if name != leaders[0])
        standby, standby_log = processes[standby_name]
        leader.send_signal(signal.SIGTERM)
        leader.wait(15)
        wait_for(lambda: "holding the beat lock" in standby_log.read_text(), 10, what="the standby to take over")
        client.delete("celery")
        time.sleep(2)
        assert 2 <= _sent(client) <= 6

        # A leader that dies without a word (SIGKILL) holds the lock until it expires.
        restarted, restarted_log = _beat(tmp_path, leaders[0], url)
        processes[leaders[0]] = (restarted, restarted_log)
        wait_for(lambda: "standing by" in restarted_log.read_text(), 30, what="the restarted beat to stand by")
        standby.kill()
        standby.wait(5)
        started = time.monotonic()
        wait_for(lambda: "holding the beat lock" in restarted_log.read_text(), 10, what="the takeover after expiry")
        assert time.monotonic() - started <= 3.5  # lock lifetime 1.5 s, checked every 0.5 s
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_a_leader_that_loses_redis_stands_by_instead_of_crashing():
    """Redis restarting under the leader must not end beat: tick() lets no Redis error out."""
    from workers.beat_lock import LeaderLock, SingleBeatScheduler

    dead = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_timeout=1, socket_connect_timeout=1)
    scheduler = SingleBeatScheduler.__new__(SingleBeatScheduler)  # only the lock logic, no app or schedule file
    scheduler.lock, scheduler.leader, scheduler._checked_at = LeaderLock(dead, ttl=3), True, 0.0
    assert scheduler._check() is False
    assert scheduler.leader is False


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
