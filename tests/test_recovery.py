"""Recovery of lost queue messages and of half-finished work, without the full chaos run.

The chaos run (tests/test_chaos.py, `make chaos`) proves these end to end with killed worker
processes and a restarted Redis; these tests pin each mechanism down on a real ledger and a
real Redis, fast enough for every run of the suite.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_lib

from helpdesk_bot.domain import (Component, Confidence, Decision, Draft, Message, Outcome, Ticket,
                                 TicketEvent)
from helpdesk_bot.errors import TransientError
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.recovery import RECEIVED_GRACE_SECONDS, requeue_lost_events


@pytest.fixture
def ledger(database_url):
    """A migrated, empty ledger on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""
    ledger = Ledger(database_url)
    yield ledger
    ledger.dispose()


def event(ledger: Ledger, n: int, status: str, age: float) -> int:
    from helpdesk_bot.ledger import ticket_events

    event_id, _ = ledger.record_event(TicketEvent("zendesk", f"delivery-{n}", str(n)))
    with ledger.engine.begin() as db:
        db.execute(ticket_events.update().where(ticket_events.c.id == event_id).values(
            status=status, received_at=time.time() - age, queued_at=time.time() - age))
    return event_id


def test_events_never_queued_and_events_queued_before_a_broker_restart_are_queued_again(ledger):
    now = time.time()
    fresh = event(ledger, 1, "received", age=1)  # the web app is queueing it right now
    unqueued = event(ledger, 2, "received", age=RECEIVED_GRACE_SECONDS + 5)  # the broker was down
    lost = event(ledger, 3, "queued", age=120)  # published before Redis restarted
    waiting = event(ledger, 4, "queued", age=5)  # published after: still in the queue
    done = event(ledger, 5, "done", age=300)
    dead = event(ledger, 6, "dead", age=300)
    queued: list[int] = []
    requeued = requeue_lost_events(ledger, queued.append, broker_data_since=now - 60, requeue_after=1800, now=now)
    assert requeued.never_queued == [unqueued] and requeued.lost == [lost]
    assert sorted(queued) == sorted([unqueued, lost])
    assert {fresh, waiting, done, dead}.isdisjoint(queued)
    # Queued again means published again: the next sweep leaves them alone.
    assert requeue_lost_events(ledger, queued.append, now - 60, 1800).count == 0
    assert ledger.get_event(unqueued).status == "queued"


def test_a_message_older_than_requeue_after_counts_as_lost_without_a_restart(ledger):
    now = time.time()
    old = event(ledger, 7, "queued", age=2000)
    recent = event(ledger, 8, "queued", age=100)
    queued: list[int] = []
    requeue_lost_events(ledger, queued.append, broker_data_since=now - 10_000, requeue_after=1800, now=now)
    assert queued == [old] and recent not in queued


def test_the_broker_epoch_starts_again_when_redis_loses_its_data(redis_url):
    from workers.broker import BROKER_EPOCH_KEY, broker_client, broker_epoch

    class App:  # what broker_epoch needs of a Celery app
        conf = type("conf", (), {"broker_url": redis_url.removesuffix("/0") + "/5"})()

    app = App()
    client = redis_lib.Redis.from_url(app.conf.broker_url)
    client.delete(BROKER_EPOCH_KEY)
    first = broker_epoch(app)
    time.sleep(0.01)
    assert broker_epoch(app) == first  # the same Redis: the same epoch
    client.flushdb()  # what a restart without persistence does to the data
    assert broker_epoch(app) > first
    assert broker_client(app) is broker_client(app)


def outcome(ticket_id: str = "1") -> Outcome:
    ticket = Ticket("zendesk", ticket_id, "Subject", (Message("customer", "Question?"),))
    return Outcome(ticket=ticket, sources=(), draft=Draft("Answer [1]", ("a#0",), False, "extractive"),
                   confidence=Confidence(80, (Component("retrieval_strength", 0.8, 1.0, "ok"),)),
                   decision=Decision("auto_send", 70, "default threshold", ("ok",)))


def test_two_workers_recording_one_events_decision_leave_one_row(ledger):
    event_id = event(ledger, 9, "queued", age=1)
    errors = []
    barrier = threading.Barrier(4)

    def record():
        barrier.wait()
        try:
            ledger.record_decision(event_id, outcome("9"), {"draft": 1.0})
        except Exception as exc:  # noqa: BLE001 - any error is the failure under test
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(ledger.decisions_for("9")) == 1


class RecordingHelpdesk:
    name = "zendesk"

    def __init__(self, posted_bodies=()):
        self.posted = list(posted_bodies)
        self.notes = []

    def has_bot_comment(self, ticket_id, html):
        return html in self.posted

    def post_note(self, ticket_id, html, group_id, tags):
        self.notes.append(html)
        self.posted.append(html)
        return {}


def pipeline_with(ledger, helpdesk):
    from helpdesk_bot.pipeline import Answerer, Pipeline
    from helpdesk_bot.policy import Policy

    return Pipeline(answerer=Answerer(retriever=None, drafter=None, policy=Policy()), helpdesks={"zendesk": helpdesk},
                    ledger=ledger)


def test_a_failure_after_the_reply_was_posted_adds_no_second_comment(ledger):
    event_id = event(ledger, 10, "queued", age=1)
    ledger.claim_action("zendesk:10:ticket.created", event_id, "reply", "<p>the reply</p>")
    helpdesk = RecordingHelpdesk(posted_bodies=["<p>the reply</p>"])  # posted, then the worker crashed
    pipeline_with(ledger, helpdesk).report_failure(event_id, "unexpected error: bookkeeping")
    assert helpdesk.notes == []
    assert ledger.action("zendesk:10:ticket.created")["state"] == "done"
    [letter] = ledger.dead_letters()
    assert letter["human_notified"]


def test_a_failure_before_anything_was_posted_tells_a_human(ledger):
    event_id = event(ledger, 11, "queued", age=1)
    helpdesk = RecordingHelpdesk()
    pipeline_with(ledger, helpdesk).report_failure(event_id, "LLM unavailable", ai_unavailable=True)
    [note] = helpdesk.notes
    assert "AI unavailable" in note


def test_a_dead_lettered_event_is_not_run_again_by_a_redelivered_task(ledger):
    event_id = event(ledger, 12, "dead", age=1)
    assert pipeline_with(ledger, RecordingHelpdesk()).handle_event(event_id) == "already dead-lettered"


def test_kombu_scans_for_a_dead_workers_tasks_within_the_visibility_timeout():
    from workers.celery_app import redis_transport_options

    for timeout in (10, 60, 900, 3600):
        options = redis_transport_options(timeout)
        scan_period = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
        assert options["visibility_timeout"] == timeout and scan_period <= max(timeout / 2, 100)


def test_a_posted_note_with_a_table_is_recognised_when_reconciling(tmp_path):
    """A worker killed after posting must not post again: the note is found on the ticket, even
    though plain_body runs the table's cells together."""
    from helpdesk_bot.services import make_helpdesk
    from helpdesk_bot.settings import Settings
    from integrations.sandbox import SandboxHelpdesk

    from harness import restored_environment

    with restored_environment(), SandboxHelpdesk() as sandbox:
        helpdesk = make_helpdesk(Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path), "SANDBOX_URL": sandbox.url}))
        ticket_id = str(sandbox.create_ticket("Help", "A question", "c@example.com"))
        note = ("<p><strong>Handed over.</strong> Confidence 41/100.</p><ul><li>weak coverage</li></ul>"
                "<table><tr><th>component</th><th>value</th></tr><tr><td>retrieval_strength</td><td>0.60</td></tr>"
                "</table><p>Sources:</p><ul><li><a href=\"https://x.example/a\">Billing</a> (similarity 0.47)</li></ul>")
        assert not helpdesk.has_bot_comment(ticket_id, note)
        helpdesk.post_note(ticket_id, note, None, ())
        assert helpdesk.has_bot_comment(ticket_id, note)
        assert not helpdesk.has_bot_comment(ticket_id, note.replace("41/100", "42/100"))


class FailingOnceHelpdesk(RecordingHelpdesk):
    """A ticket whose customer asks for a human; the first note gets a 503."""

    def __init__(self):
        super().__init__()
        self.failures = 1

    def fetch_ticket(self, ticket_id, requester=True):
        return Ticket("zendesk", ticket_id, "Help", (Message("customer", "human please", id="m1"),))

    def post_note(self, ticket_id, html, group_id, tags):
        if self.failures:
            self.failures -= 1
            raise TransientError("Zendesk answered 503")
        return super().post_note(ticket_id, html, group_id, tags)


def test_a_retry_after_a_5xx_on_our_own_post_does_not_wait_out_the_action_lease(ledger):
    """The lease protects a call still running; after a failed call the retry goes ahead at once
    (3 attempts used to take 2 leases, 64 s, whatever HELPDESK_RETRY_BACKOFF said)."""
    event_id = event(ledger, 13, "queued", age=1)
    helpdesk = FailingOnceHelpdesk()
    pipeline = pipeline_with(ledger, helpdesk)
    with pytest.raises(TransientError):
        pipeline.handle_event(event_id)
    assert pipeline.handle_event(event_id) == "note posted"  # not ActionInProgress(retry_after=30)
    assert len(helpdesk.notes) == 1


def test_a_retry_after_a_5xx_that_did_post_finds_the_note_and_posts_nothing(ledger):
    event_id = event(ledger, 14, "queued", age=1)
    helpdesk = FailingOnceHelpdesk()
    pipeline = pipeline_with(ledger, helpdesk)
    with pytest.raises(TransientError):
        pipeline.handle_event(event_id)
    [claim] = ledger.actions_of_event(event_id)
    helpdesk.posted.append(claim["body"])  # the 503 came after Zendesk had saved the comment
    assert pipeline.handle_event(event_id) == "note found already posted"
    assert helpdesk.notes == []


def test_a_claim_whose_call_is_still_running_is_not_taken_by_another_delivery(ledger):
    first, second = event(ledger, 15, "queued", age=1), event(ledger, 16, "queued", age=1)
    key = "zendesk:15:message:m1"
    ledger.claim_action(key, first, "note", "<p>note</p>")
    ledger.end_attempt(key, second)  # only the claim's own event can end its attempt
    assert not ledger.reclaim_stale_action(key, ledger.action(key)["claimed_at"], 30)
