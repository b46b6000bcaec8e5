"""Agents' feedback on drafts and the latest decision per ticket, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from test_ledger import database_url, event, ledger, outcome  # noqa: F401  (shared fixtures and builders)


def test_latest_decision_is_the_newest_for_that_ticket_and_helpdesk(ledger):  # noqa: F811
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


def test_draft_feedback_is_kept_click_by_click(ledger):  # noqa: F811
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


def test_a_verdict_other_than_good_or_bad_is_refused(ledger):  # noqa: F811
    with pytest.raises(ValueError, match="verdict"):
        ledger.record_draft_feedback("zendesk", "1", "meh", "", "7")
