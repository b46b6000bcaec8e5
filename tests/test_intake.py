"""Intake in batches: concurrent deliveries recorded and queued together, each answered after
its own event is recorded and queued; broker failures leave events recorded for beat."""

from __future__ import annotations

import threading
import time

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.intake import Intake, one_by_one
from helpdesk_bot.ledger import Ledger


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
    for event_id in queued:
        assert ledger.get_event(event_id).status == "queued"  # marked before anyone was answered


def test_a_request_is_answered_only_after_its_event_is_queued(tmp_path):
    ledger = make_ledger(tmp_path)
    order = []
    intake = Intake(ledger, one_by_one(lambda event_id: order.append(("queued", event_id))))
    event_id, new = intake.accept(delivery(1))
    order.append(("answered", event_id))
    assert new and order == [("queued", event_id), ("answered", event_id)]
    assert intake.accept(delivery(1)) == (event_id, False)
    assert order.count(("queued", event_id)) == 1


def test_broker_down_leaves_the_events_recorded_for_beat(tmp_path):
    ledger = make_ledger(tmp_path)

    def broker_down(event_id):
        raise ConnectionError("broker unreachable")

    intake = Intake(ledger, one_by_one(broker_down))
    event_id, new = intake.accept(delivery(2))
    assert new
    assert ledger.get_event(event_id).status == "received"
    assert event_id in ledger.unqueued_events(older_than=-1)


def test_a_ledger_failure_reaches_the_request_and_the_writer_goes_on(tmp_path):
    ledger = make_ledger(tmp_path)
    intake = Intake(ledger, one_by_one(lambda event_id: None))
    original = ledger.record_events
    ledger.record_events = lambda events: (_ for _ in ()).throw(RuntimeError("disk full"))
    try:
        intake.accept(delivery(3))
    except RuntimeError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("the failure was swallowed")
    ledger.record_events = original
    assert intake.accept(delivery(4))[1] is True
