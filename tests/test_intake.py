"""Intake in batches: concurrent deliveries recorded and queued together, each answered after
its own event is recorded and queued; events a down broker refused are queued once it is back."""

from __future__ import annotations

import threading
import time

import pytest

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.web.intake import Intake, one_by_one
from helpdesk_bot.ledger import Ledger
from harness import wait_for


def make_ledger(tmp_path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.create_schema()
    return ledger


def delivery(n: int, ticket: str = "7") -> TicketEvent:
    return TicketEvent("zendesk", f"delivery-{n}", ticket)


def test_concurrent_deliveries_share_batches_and_each_is_queued_once(tmp_path):
    ledger = make_ledger(tmp_path)
    queued, batches = [], []
    gate = threading.Event()

    def enqueue_many(ids):
        gate.wait(5)  # hold the first batch so the others pile up behind it
        batches.append(list(ids))
        queued.extend(ids)
        return list(ids)

    intake = Intake(ledger, enqueue_many)
    results = {}

    def post(n):
        results[n] = intake.accept(delivery(n % 20))  # 40 requests, 20 distinct deliveries

    threads = [threading.Thread(target=post, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    gate.set()
    for thread in threads:
        thread.join(10)

    assert len(results) == 40
    assert sorted(queued) == sorted({event_id for event_id, _ in results.values()})  # each new event once
    assert sum(new for _, new in results.values()) == 20
    assert len(batches) < 20  # shared, not one by one
    deadline = time.time() + 5  # marked queued with the next batch, or once deliveries stop
    while any(ledger.get_event(event_id).status != "queued" for event_id in queued) and time.time() < deadline:
        time.sleep(0.05)
    assert {ledger.get_event(event_id).status for event_id in queued} == {"queued"}


def test_a_request_is_answered_only_after_its_event_is_queued(tmp_path):
    ledger = make_ledger(tmp_path)
    order = []
    intake = Intake(ledger, one_by_one(lambda event_id: order.append(("queued", event_id))))
    event_id, new = intake.accept(delivery(1))
    order.append(("answered", event_id))
    assert new and order == [("queued", event_id), ("answered", event_id)]
    assert intake.accept(delivery(1)) == (event_id, False)
    assert order.count(("queued", event_id)) == 1


def test_an_event_queued_just_before_a_broker_restart_is_seen_as_lost(tmp_path):
    # "Queued" is written a little after the message (with the next batch); the time written
    # must be the message's, or beat's sweeper would take a message lost in a Redis restart
    # right after it for one queued into the new Redis, and wait half an hour to queue it again.
    ledger = make_ledger(tmp_path)
    intake = Intake(ledger, one_by_one(lambda event_id: None))
    event_id, _ = intake.accept(delivery(1))
    restarted_at = time.time()  # the broker's new data epoch starts after the answer
    wait_for(lambda: ledger.get_event(event_id).status == "queued", 5, what="the event marked queued")
    assert ledger.stalled_events(queued_before=restarted_at) == [event_id]


def test_broker_down_leaves_the_events_recorded_for_beat(tmp_path, caplog):
    ledger = make_ledger(tmp_path)
    broker_up = threading.Event()

    def enqueue(event_id):
        if not broker_up.is_set():
            raise ConnectionError("broker unreachable")

    intake = Intake(ledger, one_by_one(enqueue))
    event_id, new = intake.accept(delivery(2))
    assert new
    assert ledger.get_event(event_id).status == "received"
    assert event_id in ledger.unqueued_events(older_than=-1)
    refused = [r for r in caplog.records if r.getMessage().startswith(f"could not queue event {event_id};")]
    assert refused and isinstance(refused[0].exc_info[1], ConnectionError)
    # The writer thread retries every second for as long as the process lives: with the broker
    # back it queues the event and stops, instead of logging the refusal after the test.
    broker_up.set()
    wait_for(lambda: ledger.get_event(event_id).status == "queued", 5, what="the event queued once the broker is back")


def test_events_left_by_a_down_broker_are_queued_when_it_answers_again(tmp_path):
    ledger = make_ledger(tmp_path)
    broker_up, queued = threading.Event(), []

    def enqueue(event_id):
        if not broker_up.is_set():
            raise ConnectionError("broker unreachable")
        queued.append(event_id)

    intake = Intake(ledger, one_by_one(enqueue))
    first, _ = intake.accept(delivery(5))
    second, _ = intake.accept(delivery(6))
    assert ledger.still_received([first, second]) == [first, second]
    ledger.mark_queued_many([(second, time.time())])  # as beat's sweeper would: not queued a second time here
    broker_up.set()
    deadline = time.time() + 5
    while ledger.get_event(first).status != "queued" and time.time() < deadline:
        time.sleep(0.05)  # no new delivery comes: the writer retries on its own
    assert ledger.get_event(first).status == "queued"
    assert queued == [first]
    third, _ = intake.accept(delivery(7))
    assert queued == [first, third]


def test_a_ledger_failure_reaches_the_request_and_the_writer_goes_on(tmp_path):
    ledger = make_ledger(tmp_path)
    intake = Intake(ledger, one_by_one(lambda event_id: None))
    original = ledger.record_events
    ledger.record_events = lambda events, queued=(): (_ for _ in ()).throw(RuntimeError("disk full"))
    try:
        intake.accept(delivery(3))
    except RuntimeError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("the failure was swallowed")
    ledger.record_events = original
    assert intake.accept(delivery(4))[1] is True


def test_messages_written_to_redis_match_what_celery_sends(tmp_path, redis_url):
    import base64
    import json

    import redis

    from helpdesk_bot.web.intake import celery_enqueue_many
    from helpdesk_bot.web.limits import Counting
    from helpdesk_bot.settings import Settings
    from workers.broker import BROKER_EPOCH_KEY
    from workers.celery_app import create_celery

    broker = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own: no worker takes from it
    celery = create_celery(Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path), "REDIS_URL": broker}))
    client = redis.Redis.from_url(broker)
    client.flushdb()
    try:
        celery.send_task("workers.tasks.answer_ticket", args=[41])
        client.delete(BROKER_EPOCH_KEY)
        assert celery_enqueue_many(celery).push({42: [(0, 0)], 43: [(0, 0)]}, Counting([])) == [42, 43]
        assert client.get(BROKER_EPOCH_KEY) is not None  # the epoch starts with the first message
        # The worker pops from the right: Celery's first, then 42, then 43.
        sent, first, second = [json.loads(m) for m in reversed(client.lrange("celery", 0, -1))]
        ids = {"id", "root_id", "correlation_id", "delivery_tag", "argsrepr"}
        for ours, event_id in ((first, 42), (second, 43)):
            assert list(ours) == list(sent)
            assert {k: v for k, v in ours["headers"].items() if k not in ids} == \
                   {k: v for k, v in sent["headers"].items() if k not in ids}
            assert {k: v for k, v in ours["properties"].items() if k not in ids} == \
                   {k: v for k, v in sent["properties"].items() if k not in ids}
            assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
            assert ours["headers"]["argsrepr"] == f"[{event_id}]"
            body = json.loads(base64.b64decode(ours["body"]))
            assert body == [[event_id]] + json.loads(base64.b64decode(sent["body"]))[1:]
        assert first["headers"]["id"] != second["headers"]["id"]
    finally:
        client.flushdb()


def test_rate_limits_are_counted_in_redis_for_every_process(redis_url):
    import redis

    from helpdesk_bot.web.limits import RateLimiter, hit_in_order

    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/8")
    client.flushdb()
    try:
        # Two limiters on one Redis, as two gunicorn processes have: one count.
        first, second = RateLimiter(client, "IP", 3, 60), RateLimiter(client, "IP", 3, 60)
        assert [first.hit("10.0.0.1").allowed, second.hit("10.0.0.1").allowed, first.hit("10.0.0.1").allowed,
                second.hit("10.0.0.1").allowed] == [True, True, True, False]
        assert second.refused_already("10.0.0.1") is not None and first.refused_already("10.0.0.2") is None
        assert 0 < client.ttl(next(iter(client.scan_iter("helpdesk-bot:rate:IP:10.0.0.1:*")))) <= 61

        # A batch: each request's limiters in order; one refused by the first is not counted by the next.
        ip, account = RateLimiter(client, "IP", 2, 60), RateLimiter(client, "account", 10, 60)
        checks = [(ip, "10.0.0.9"), (account, "zendesk:acme")]
        verdicts = hit_in_order([checks, checks, checks, []])
        assert verdicts[0] is None and verdicts[1] is None and verdicts[3] is None
        refused_by, verdict = verdicts[2]
        assert refused_by is ip and not verdict.allowed and verdict.retry_after >= 1
        assert int(client.get(next(iter(client.scan_iter("helpdesk-bot:rate:account:zendesk:acme:*"))))) == 2

        # Two accounts behind one address: the address counts every request, each account only
        # those the address let through, and the request over the address's limit is refused.
        ip = RateLimiter(client, "IP", 3, 60)
        to_x, to_y = [(ip, "10.0.0.7"), (account, "zendesk:x")], [(ip, "10.0.0.7"), (account, "zendesk:y")]
        verdicts = hit_in_order([to_x, to_y, to_x, to_y])
        assert verdicts.count(None) == 3 and next(v for v in verdicts if v)[0] is ip

        def counted(scope, key):
            return int(client.get(next(iter(client.scan_iter(f"helpdesk-bot:rate:{scope}:{key}:*")))))

        assert (counted("IP", "10.0.0.7"), counted("account", "zendesk:x") + counted("account", "zendesk:y")) == (4, 3)

        client.script_flush()  # as after a Redis restart: the script is loaded again
        assert hit_in_order([[(account, "zendesk:other")]]) == [None]
    finally:
        client.flushdb()


def test_rate_limits_count_in_memory_when_redis_is_down():
    import redis

    from helpdesk_bot.web.limits import RateLimiter, hit_in_order

    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    # Windows of 10⁹ s (the current one ends in 2033), so no two calls fall on either side of a
    # window's end, as they did once with 60 s windows on a loaded machine.
    long = 10**9
    ip = RateLimiter(down, "IP", 1, long)
    assert hit_in_order([[(ip, "a")]]) == [None]
    refused = hit_in_order([[(ip, "a")]])[0]
    assert refused[0] is ip and not refused[1].allowed
    two = RateLimiter(down, "IP", 2, long)  # a batch: the third request to one key is the one refused
    assert [v is None for v in hit_in_order([[(two, "b")], [(two, "b")], [(two, "b")], [(two, "c")]])] == [
        True, True, False, True]


@pytest.mark.parametrize("queue", ["redis script", "count, then queue"])
def test_deliveries_a_rate_limit_refuses_are_not_kept_or_queued(tmp_path, redis_url, queue):
    # The batch is recorded first, then counted and queued (in one script on Redis): a refused
    # delivery's new event is forgotten before the refusal, so Zendesk's retry is new.
    import json

    import redis

    from helpdesk_bot.web.intake import RateLimited, _Pending, celery_enqueue_many
    from helpdesk_bot.web.limits import RateLimiter
    from helpdesk_bot.settings import Settings
    from workers.celery_app import create_celery

    broker = redis_url.rsplit("/", 1)[0] + "/6"  # a database of its own: no worker takes from it
    client = redis.Redis.from_url(broker)
    client.flushdb()
    ledger = make_ledger(tmp_path)
    queued = []
    if queue == "redis script":
        enqueue_many = celery_enqueue_many(create_celery(Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path),
                                                                             "REDIS_URL": broker})))

        def queued_now():
            return sorted(json.loads(json.loads(m)["headers"]["argsrepr"])[0] for m in client.lrange("celery", 0, -1))
    else:
        enqueue_many = one_by_one(queued.append)

        def queued_now():
            return sorted(queued)
    intake = Intake(ledger, enqueue_many)
    ip = RateLimiter(client, "IP", 2, 60)
    a, b = [(ip, "10.0.0.1")], [(ip, "10.0.0.2")]
    ledger.record_events([delivery(0)])
    try:
        batch = [_Pending(delivery(1), a), _Pending(delivery(2), a),
                 _Pending(delivery(3), a), _Pending(delivery(3), b),  # one delivery from two addresses
                 _Pending(delivery(4), a), _Pending(delivery(0), a)]
        intake._write(batch)
        assert all(p.done.is_set() for p in batch)
        assert [type(p.error) for p in batch] == [type(None), type(None), RateLimited, type(None), RateLimited,
                                                  RateLimited]
        first, second, _, third, _, _ = [p.result for p in batch]
        assert first[1] and second[1] and third[1]  # the second request of delivery 3 is the one that counts
        assert queued_now() == sorted([first[0], second[0], third[0]])
        kept = {(e.event.delivery_id, e.status) for e in map(ledger.get_event, range(1, 10)) if e is not None}
        assert kept == {("delivery-0", "received"), ("delivery-1", "received"), ("delivery-2", "received"),
                        ("delivery-3", "received")}  # delivery 4 is forgotten; delivery 0 was there before

        retry = _Pending(delivery(4), b)  # Zendesk's retry of the refused delivery is a new event
        intake._write([retry])
        assert retry.error is None and retry.result[1] is True
        assert retry.result[0] in queued_now()
    finally:
        client.flushdb()


def test_requests_a_stuck_writer_holds_are_answered_in_time(tmp_path, monkeypatch):
    from helpdesk_bot.web import intake as intake_module
    from helpdesk_bot.errors import TransientError

    monkeypatch.setattr(intake_module, "WAIT_SECONDS", 2.0)
    monkeypatch.setattr(intake_module, "WATCH_SECONDS", 0.25)
    ledger = make_ledger(tmp_path)
    record, unstuck = ledger.record_events, threading.Event()

    def stuck_once(events, queued=()):  # a database lock another process holds, say
        unstuck.wait(10)
        return record(events, queued)

    monkeypatch.setattr(ledger, "record_events", stuck_once)
    intake = Intake(ledger, one_by_one(lambda event_id: None))
    answers = {}

    def post(n):
        started = time.monotonic()
        try:
            answers[n] = intake.accept(delivery(n))
        except TransientError as exc:
            answers[n] = exc
        answers[n] = (answers[n], time.monotonic() - started)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # the first is the batch the writer is stuck on; the others wait behind it
    for thread in threads:
        thread.join(5)
    assert [type(answer) for answer, _ in answers.values()] == [TransientError] * 3
    assert all(waited < 2.0 for _, waited in answers.values())
    monkeypatch.setattr(ledger, "record_events", record)
    unstuck.set()
    event_id, new = intake.accept(delivery(9))  # the writer goes on
    assert new and ledger.get_event(event_id) is not None
    assert {ledger.get_event(i).event.delivery_id for i in range(1, event_id + 1) if ledger.get_event(i)} <= {
        "delivery-0", "delivery-9"}  # the stuck batch may still be recorded; those behind it are not


def test_a_backlog_of_over_a_thousand_events_is_queued_with_a_counted_batch(tmp_path, redis_url):
    # The script takes 1,000 messages a call and counts the limits with the first call: the
    # batch's new events must go in that one, ahead of what a down broker left behind.
    import redis

    from helpdesk_bot.web.intake import _Pending, celery_enqueue_many
    from helpdesk_bot.web.limits import RateLimiter
    from helpdesk_bot.settings import Settings
    from workers.celery_app import create_celery

    broker = redis_url.rsplit("/", 1)[0] + "/5"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    ledger = make_ledger(tmp_path)
    intake = Intake(ledger, celery_enqueue_many(create_celery(Settings.from_env(
        {"HELPDESK_DATA_DIR": str(tmp_path), "REDIS_URL": broker}))))
    try:
        intake._unqueued = [event_id for event_id, _ in ledger.record_events([delivery(n) for n in range(1100)])]
        ip = RateLimiter(client, "IP", 1, 60)
        batch = [_Pending(delivery(2000), [(ip, "10.0.0.3")]), _Pending(delivery(2001), [(ip, "10.0.0.3")])]
        intake._write(batch)
        assert batch[0].result[1] is True and batch[1].error is not None
        assert client.llen("celery") == 1101 and intake._unqueued == []
    finally:
        client.flushdb()
