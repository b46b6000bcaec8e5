"""The ledger on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from helpdesk_bot.confidence import score
from helpdesk_bot.domain import Chunk, Draft, Message, Outcome, Source, Ticket, TicketEvent
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.policy import Policy, TagRule, decide


def event(delivery_id: str = "01HV7ZQ3GJ2W8XK5N9T4RB6C1D", ticket_id: str = "35436", helpdesk: str = "zendesk") -> TicketEvent:
    return TicketEvent(helpdesk=helpdesk, delivery_id=delivery_id, ticket_id=ticket_id)


def outcome(ticket_id: str = "35436", dense: float = 0.7, policy: Policy = Policy(), tags=frozenset({"billing"})) -> Outcome:
    """A real outcome: the confidence is scored and the decision decided, as the pipeline does."""
    ticket = Ticket(helpdesk="zendesk", id=ticket_id, subject="Invoice",
                    messages=(Message("customer", "How do I download an invoice?"),), tags=tags)
    chunk = Chunk(id="invoices#0", article_id="invoices", title="Downloading invoices",
                  text="To download an invoice, open Settings, choose Billing and click Invoice history.")
    sources = (Source(chunk=chunk, score=0.5, dense=dense, keyword=1.0),)
    draft = Draft(text=f"{chunk.text} [1]", cited=(chunk.id,), declined=False, drafter="extractive")
    confidence = score(ticket, list(sources), draft)
    return Outcome(ticket=ticket, sources=sources, draft=draft, confidence=confidence,
                   decision=decide(ticket, draft, confidence, policy))


@pytest.fixture
def ledger(database_url):
    ledger = Ledger(database_url)
    yield ledger
    ledger.dispose()


@pytest.fixture
def event_id(ledger) -> int:
    return ledger.record_event(event())[0]


def all_at_once(n: int, call) -> list:
    """Run `call()` in n threads released together; return their results."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


# --- events --------------------------------------------------------------------------------


def test_new_event_is_recorded_as_received(ledger):
    event_id, new = ledger.record_event(event())
    assert new is True
    stored = ledger.get_event(event_id)
    assert stored.event == event()
    assert (stored.status, stored.attempts) == ("received", 0)


def test_redelivered_event_is_deduped(ledger):
    first, _ = ledger.record_event(event())
    again, new = ledger.record_event(event(ticket_id="35436"))
    assert (again, new) == (first, False)


def test_same_delivery_id_from_another_helpdesk_is_a_new_event(ledger):
    first, _ = ledger.record_event(event(helpdesk="zendesk"))
    other, new = ledger.record_event(event(helpdesk="intercom"))
    assert new is True
    assert other != first


def test_concurrent_redeliveries_record_one_event(ledger):
    results = all_at_once(4, lambda: ledger.record_event(event()))
    assert len({event_id for event_id, _ in results}) == 1
    assert sorted(new for _, new in results) == [False, False, False, True]


def test_unknown_event_is_none(ledger):
    assert ledger.get_event(999) is None


def test_mark_queued_moves_a_received_event(ledger, event_id):
    ledger.mark_queued(event_id)
    assert ledger.get_event(event_id).status == "queued"


def test_mark_queued_does_not_overwrite_done(ledger, event_id):
    ledger.set_status(event_id, "done")
    ledger.mark_queued(event_id)
    assert ledger.get_event(event_id).status == "done"


def test_count_attempt_counts(ledger, event_id):
    assert [ledger.count_attempt(event_id) for _ in range(3)] == [1, 2, 3]
    assert ledger.get_event(event_id).attempts == 3


def test_unqueued_events_are_the_received_ones_old_enough(ledger, event_id):
    queued, _ = ledger.record_event(event(delivery_id="other"))
    ledger.mark_queued(queued)
    assert ledger.unqueued_events(older_than=3600) == []
    time.sleep(0.02)
    assert ledger.unqueued_events(older_than=0.01) == [event_id]


# --- side effects ----------------------------------------------------------------------------


def test_claim_action_is_exclusive(ledger, event_id):
    first = ledger.claim_action("35436:reply", event_id, "reply", "<p>Hi</p>")
    assert first == {"key": "35436:reply", "kind": "reply", "state": "claimed"}
    assert ledger.claim_action("35436:reply", event_id, "reply", "<p>Hi again</p>") is None
    assert ledger.action("35436:reply")["body"] == "<p>Hi</p>"


def test_racing_claims_have_one_winner(ledger, event_id):
    results = all_at_once(4, lambda: ledger.claim_action("35436:reply", event_id, "reply", "<p>Hi</p>"))
    assert sum(r is not None for r in results) == 1


def test_finish_action_records_the_result(ledger, event_id):
    ledger.claim_action("35436:note", event_id, "note", "<p>Note</p>")
    ledger.finish_action("35436:note", {"audit_id": 77})
    row = ledger.action("35436:note")
    assert row["state"] == "done"
    assert row["done_at"] >= row["claimed_at"]
    assert json.loads(row["result"]) == {"audit_id": 77}
    assert ledger.claim_action("35436:note", event_id, "note", "<p>Note</p>") is None


def test_unknown_action_is_none(ledger):
    assert ledger.action("nothing") is None


def test_stale_claim_is_not_reclaimed_within_the_lease(ledger, event_id):
    ledger.claim_action("k", event_id, "reply", "b")
    assert ledger.reclaim_stale_action("k", ledger.action("k")["claimed_at"], lease_seconds=60) is False


def test_stale_claim_is_reclaimed_after_the_lease(ledger, event_id):
    ledger.claim_action("k", event_id, "reply", "b")
    claimed_at = ledger.action("k")["claimed_at"]
    time.sleep(0.05)
    assert ledger.reclaim_stale_action("k", claimed_at, lease_seconds=0.01) is True
    assert ledger.action("k")["claimed_at"] > claimed_at
    # A second worker holding the old claim time lost the race.
    assert ledger.reclaim_stale_action("k", claimed_at, lease_seconds=0.01) is False


def test_racing_reclaims_have_one_winner(ledger, event_id):
    ledger.claim_action("k", event_id, "reply", "b")
    claimed_at = ledger.action("k")["claimed_at"]
    time.sleep(0.02)
    results = all_at_once(4, lambda: ledger.reclaim_stale_action("k", claimed_at, lease_seconds=0.01))
    assert sorted(results) == [False, False, False, True]


def test_finished_action_is_never_reclaimed(ledger, event_id):
    ledger.claim_action("k", event_id, "reply", "b")
    claimed_at = ledger.action("k")["claimed_at"]
    ledger.finish_action("k", {})
    time.sleep(0.02)
    assert ledger.reclaim_stale_action("k", claimed_at, lease_seconds=0.01) is False


# --- decisions and dead letters --------------------------------------------------------------


def test_record_decision_stores_the_outcome(ledger, event_id):
    sent = outcome(dense=0.7)
    ledger.record_decision(event_id, sent, {"retrieve": 12.345, "draft": 3.0})
    (row,) = ledger.decisions_for("35436")
    assert row["event_id"] == event_id
    assert (row["action"], row["confidence"], row["threshold"]) == ("auto_send", sent.confidence.score, 70)
    assert json.loads(row["sources"])[0]["id"] == "invoices#0"
    assert json.loads(row["tags"]) == ["billing"]
    assert json.loads(row["latency_ms"]) == {"retrieve": 12.3, "draft": 3.0}
    assert set(json.loads(row["components"])) == {c.name for c in sent.confidence.components}


def test_record_decision_twice_keeps_one_row_per_event(ledger, event_id):
    ledger.record_decision(event_id, outcome(dense=0.7, policy=Policy(threshold=80)), {})
    ledger.record_decision(event_id, outcome(dense=0.0, policy=Policy(threshold=80)), {})  # the retry scored lower
    (row,) = ledger.decisions_for("35436")
    assert row["action"] == "escalate"


def test_decisions_of_two_events_on_one_ticket_are_both_kept(ledger, event_id):
    second, _ = ledger.record_event(event(delivery_id="second"))
    ledger.record_decision(event_id, outcome(), {})
    ledger.record_decision(second, outcome(), {})
    assert [r["event_id"] for r in ledger.decisions_for("35436")] == [event_id, second]


def test_decision_under_a_rule_with_many_tags_is_recorded(ledger, event_id):
    tags = frozenset(f"customer-segment-{n:02}" for n in range(12))
    policy = Policy(rules=(TagRule(tags=tags, threshold=80),))
    recorded = outcome(policy=policy, tags=tags)
    assert len(recorded.decision.rule) > 200
    ledger.record_decision(event_id, recorded, {})
    assert ledger.decisions_for("35436")[0]["rule"] == recorded.decision.rule


def test_dead_letter_is_listed_with_its_ticket(ledger, event_id):
    ledger.set_status(event_id, "dead", error="helpdesk said 403")
    ledger.add_dead_letter(event_id, "helpdesk said 403", human_notified=True)
    (letter,) = ledger.dead_letters()
    assert (letter["event_id"], letter["ticket_id"], letter["helpdesk"]) == (event_id, "35436", "zendesk")
    assert (letter["error"], letter["human_notified"], letter["replayed_at"]) == ("helpdesk said 403", True, None)


def test_mark_replayed_resets_the_event_and_hides_the_letter(ledger, event_id):
    ledger.count_attempt(event_id)
    ledger.set_status(event_id, "dead", error="boom")
    ledger.add_dead_letter(event_id, "boom", human_notified=False)
    (letter,) = ledger.dead_letters()
    assert ledger.mark_replayed(letter["id"]) == event_id
    stored = ledger.get_event(event_id)
    assert (stored.status, stored.attempts) == ("queued", 0)
    assert ledger.dead_letters() == []
    (replayed,) = ledger.dead_letters(include_replayed=True)
    assert replayed["replayed_at"] is not None


def test_decisions_can_be_read_per_helpdesk(ledger, event_id):
    ledger.record_decision(event_id, outcome(), {"retrieve": 1.0})
    assert len(ledger.decisions_for("35436", "zendesk")) == 1
    assert ledger.decisions_for("35436", "intercom") == []


# --- agents' feedback on drafts, and the latest decision per ticket ----------------------------


def test_latest_decision_is_the_newest_for_that_ticket_and_helpdesk(ledger):
    assert ledger.latest_decision("zendesk", "35436") is None
    first, _ = ledger.record_event(event("d1"))
    second, _ = ledger.record_event(event("d2"))
    other, _ = ledger.record_event(event("d3", ticket_id="99"))
    ledger.record_decision(first, outcome(dense=0.3), {})
    ledger.record_decision(second, outcome(dense=0.7), {})
    ledger.record_decision(other, outcome(ticket_id="99"), {})
    latest = ledger.latest_decision("zendesk", "35436")
    assert latest["event_id"] == second and latest["ticket_id"] == "35436"
    assert ledger.latest_decision("intercom", "35436") is None


def test_draft_feedback_is_kept_click_by_click(ledger):
    event_id, _ = ledger.record_event(event())
    ledger.record_decision(event_id, outcome(), {})
    decision_id = ledger.latest_decision("zendesk", "35436")["id"]
    first = ledger.record_draft_feedback("zendesk", "35436", "bad", "cites the wrong plan", "36000000000102", decision_id)
    second = ledger.record_draft_feedback("zendesk", "35436", "good", "", "36000000000102")
    rows = ledger.draft_feedback_for("zendesk", "35436")
    assert [r["id"] for r in rows] == [first, second]
    assert [(r["verdict"], r["reason"], r["agent_id"], r["decision_id"]) for r in rows] == [
        ("bad", "cites the wrong plan", "36000000000102", decision_id), ("good", "", "36000000000102", None)]
    assert ledger.draft_feedback_for("zendesk", "1") == []


def test_a_verdict_other_than_good_or_bad_is_refused(ledger):
    with pytest.raises(ValueError, match="verdict"):
        ledger.record_draft_feedback("zendesk", "1", "meh", "", "7")


def test_record_events_records_a_batch_in_order_and_spots_duplicates(ledger):
    known_id, _ = ledger.record_event(event("known"))
    results = ledger.record_events([event("a", "1"), event("known"), event("b", "2"), event("a", "1"),
                                    event("a", "1", helpdesk="intercom")])
    (a, a_new), (known, known_new), (b, b_new), (a_again, a_again_new), (other, other_new) = results
    assert (a_new, known_new, b_new, a_again_new, other_new) == (True, False, True, False, True)
    assert known == known_id and a_again == a and len({a, b, other, known}) == 4
    assert ledger.get_event(b).event == event("b", "2") and ledger.get_event(b).status == "received"
    assert ledger.record_events([]) == []


def test_mark_queued_many_moves_only_received_events(ledger):
    (first, _), (second, _) = ledger.record_events([event("x"), event("y")])
    ledger.set_status(second, "done")
    ledger.mark_queued_many([(first, 100.0), (second, 200.0)])
    assert ledger.get_event(first).status == "queued"
    assert ledger.get_event(second).status == "done"
    # Marked with the time its message was queued, which beat's sweeper compares with the broker's epoch.
    assert ledger.stalled_events(queued_before=101.0) == [first] and ledger.stalled_events(queued_before=99.0) == []
