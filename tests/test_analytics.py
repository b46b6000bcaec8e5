"""Metrics on a seeded ledger whose answers are known by hand (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from helpdesk_bot import analytics
from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.ledger import Ledger, actions, decisions, outcomes

D1 = datetime(2026, 11, 2, 10, tzinfo=timezone.utc).timestamp()  # Monday, ISO week 45
D2 = datetime(2026, 11, 3, 10, tzinfo=timezone.utc).timestamp()  # Tuesday, week 45
D3 = datetime(2026, 11, 10, 10, tzinfo=timezone.utc).timestamp()  # Tuesday, week 46
STRONG = {"retrieval_strength": 0.8, "question_coverage": 0.9, "draft_support": 0.9}
WEAK = {"retrieval_strength": 0.1, "question_coverage": 0.2, "draft_support": 0.0}

# ticket, day, action, code, would_send, tags, confidence, latency ms, cost, reopened, final, feedback, csat
TICKETS = [
    ("T1", D1, "auto_send", "", True, ["billing"], 90, 1000, 0.002, False, True, None, None),
    ("T2", D1, "auto_send", "", True, ["billing", "refund"], 80, 2000, 0.002, True, False, None, "bad"),
    ("T3", D1, "escalate", "declined", False, ["sales"], 10, 3000, 0.001, None, False, None, None),
    ("T4", D2, "escalate", "below_threshold", False, ["billing"], 60, 4000, 0.0, None, False, None, None),
    ("T5", D2, "escalate", "shadow", True, [], 85, 5000, 0.0, None, False, "good", None),
    ("T6", D3, "auto_send", "", True, ["billing"], 95, 6000, 0.003, None, False, "bad", "good"),
    ("T7", D3, "escalate", "always_human", False, ["vip"], 99, 7000, 0.0, None, False, None, None),
]


def seed(ledger: Ledger, ticket_id, day, action, code, would_send, tags, confidence, latency, cost, reopened, final,
         rating, csat, helpdesk="zendesk", brand="B1", kind="ticket.created", first=True) -> int:
    event_id, _ = ledger.record_event(TicketEvent(helpdesk, f"inv-{ticket_id}-{kind}", ticket_id, kind))
    with ledger.engine.begin() as db:
        db.execute(sa.text("UPDATE ticket_events SET received_at = :t, status = 'done' WHERE id = :e"),
                   {"t": day, "e": event_id})
        db.execute(decisions.insert().values(
            event_id=event_id, helpdesk=helpdesk, ticket_id=ticket_id, tags=json.dumps(tags), question=f"question {ticket_id}",
            sources="[]", draft="draft", drafter="openai", confidence=confidence,
            components=json.dumps(WEAK if code == "declined" else STRONG), rule="default threshold", threshold=70,
            action=action, reasons="[]", latency_ms=json.dumps({"retrieve": 1.0}), prompt_tokens=0, completion_tokens=0,
            created_at=day + 0.5, brand_id=brand, channel="web", code=code, would_send=would_send, cost_usd=cost))
        db.execute(actions.insert().values(key=f"{helpdesk}:{ticket_id}:{kind}", event_id=event_id,
                                           kind="reply" if action == "auto_send" else "note", state="done", body="b",
                                           claimed_at=day, done_at=day + latency / 1000))
        if first:
            db.execute(outcomes.insert().values(helpdesk=helpdesk, ticket_id=ticket_id, event_id=event_id, action=action,
                                                answered_at=day + 1, reopened=reopened, final=final, csat=csat))
    if rating:
        ledger.add_feedback(helpdesk, ticket_id, rating, "because", source="sidebar", agent="riley")
    return event_id


@pytest.fixture
def seeded(database_url) -> Ledger:
    ledger = Ledger(database_url)
    for row in TICKETS[:-1]:
        seed(ledger, *row)
    seed(ledger, *TICKETS[-1], helpdesk="intercom", brand="B2")
    # A follow-up on T1: the same ticket answered again does not count as another ticket.
    seed(ledger, "T1", D3, "escalate", "declined", False, ["billing"], 5, 9000, 0.5, None, False, None, None,
         kind="ticket.updated", first=False)
    yield ledger
    ledger.dispose()


def test_summary_of_all_tickets(seeded):
    s = analytics.summarize(analytics.load_tickets(seeded))
    assert (s.tickets, s.auto_sent, s.deflected, s.reopened, s.escalated) == (7, 3, 2, 1, 4)
    assert s.deflection_rate == pytest.approx(2 / 7)
    assert s.auto_send_rate == pytest.approx(3 / 7)
    assert s.escalation_reasons == {"declined": 1, "below_threshold": 1, "shadow": 1, "always_human": 1}
    assert s.knowledge_gaps == 1
    assert (s.judged, s.judged_good, s.precision) == (4, 2, 0.5)  # T1 good, T2 reopened, T5 good, T6 feedback bad
    assert s.latency_p50_ms == pytest.approx(4000)
    assert s.latency_p95_ms == pytest.approx(6700)  # 6000 + 0.7 × (7000 − 6000)
    assert s.cost_usd == pytest.approx(0.008)
    assert s.cost_per_ticket == pytest.approx(0.008 / 7)
    assert (s.csat_good, s.csat_bad, s.csat_score) == (1, 1, 0.5)


def test_per_day_and_per_week(seeded):
    records = analytics.load_tickets(seeded)
    days = {day: s for day, s in analytics.by_period(records, "day")}
    assert list(days) == ["2026-11-02", "2026-11-03", "2026-11-10"]
    assert [days[d].tickets for d in days] == [3, 2, 2]
    assert days["2026-11-02"].deflection_rate == pytest.approx(1 / 3)
    assert days["2026-11-03"].deflection_rate == 0
    assert days["2026-11-10"].deflection_rate == 0.5
    weeks = dict(analytics.by_period(records, "week"))
    assert {w: s.tickets for w, s in weeks.items()} == {"2026-W45": 5, "2026-W46": 2}
    assert weeks["2026-W45"].auto_send_rate == pytest.approx(2 / 5)
    months = dict(analytics.by_period(records, "month"))
    assert months["2026-11"].cost_usd == pytest.approx(0.008)


def test_per_tag(seeded):
    tags = dict(analytics.by_tag(analytics.load_tickets(seeded)))
    assert {t: s.tickets for t, s in tags.items()} == {"billing": 4, "refund": 1, "sales": 1, "(no tag)": 1, "vip": 1}
    assert tags["billing"].deflection_rate == 0.5
    assert tags["billing"].precision == pytest.approx(1 / 3)  # T1 good; T2, T6 bad
    assert tags["refund"].reopened == 1
    assert tags["sales"].knowledge_gaps == 1


def test_per_helpdesk_and_brand_and_filters(seeded):
    groups = dict(analytics.by_helpdesk_brand(analytics.load_tickets(seeded)))
    assert {k: s.tickets for k, s in groups.items()} == {"zendesk · brand B1": 6, "intercom · brand B2": 1}
    assert [r.ticket_id for r in analytics.load_tickets(seeded, helpdesk="intercom")] == ["T7"]
    assert [r.ticket_id for r in analytics.load_tickets(seeded, brand="B2")] == ["T7"]
    assert [r.ticket_id for r in analytics.load_tickets(seeded, tag="refund")] == ["T2"]
    assert [r.ticket_id for r in analytics.load_tickets(seeded, since=D3)] == ["T6", "T7"]
    assert [r.ticket_id for r in analytics.load_tickets(seeded, until=D2)] == ["T1", "T2", "T3"]


def test_confidence_against_outcomes(seeded):
    bands = {b["band"]: b for b in analytics.confidence_vs_outcome(analytics.load_tickets(seeded))}
    assert list(bands)[0] == "0-9" and list(bands)[-1] == "90-100"
    assert bands["90-100"] == {"band": "90-100", "good": 1, "bad": 1, "unjudged": 0, "escalated": 1}
    assert bands["80-89"] == {"band": "80-89", "good": 1, "bad": 1, "unjudged": 0, "escalated": 0}
    assert bands["60-69"]["escalated"] == 1 and bands["10-19"]["escalated"] == 1
    assert sum(b["good"] + b["bad"] + b["unjudged"] + b["escalated"] for b in bands.values()) == 7


def test_an_auto_sent_reply_is_unjudged_until_its_window_closes(seeded):
    with seeded.engine.begin() as db:
        db.execute(outcomes.update().where(outcomes.c.ticket_id == "T1").values(final=False))
    [t1] = [r for r in analytics.load_tickets(seeded) if r.ticket_id == "T1"]
    assert (t1.deflected, t1.verdict) == (True, None)


def test_latest_feedback_wins(seeded):
    seeded.add_feedback("zendesk", "T6", "good", "on second look", source="tag")
    [t6] = [r for r in analytics.load_tickets(seeded) if r.ticket_id == "T6"]
    assert (t6.verdict, t6.feedback_reason) == ("good", "on second look")


def test_empty_ledger_has_no_rates(database_url):
    s = analytics.summarize(analytics.load_tickets(Ledger(database_url)))
    assert (s.tickets, s.deflection_rate, s.precision, s.latency_p50_ms, s.cost_per_ticket) == (0, None, None, None, None)


@pytest.mark.parametrize("values, q, expected", [
    ([5], 95, 5), ([1, 2], 50, 1.5), ([3, 1, 2], 50, 2), ([10, 20, 30, 40], 95, 38.5), ([], 50, None),
])
def test_percentile_interpolates_like_numpy(values, q, expected):
    assert analytics.percentile(values, q) == expected


@pytest.mark.parametrize("code, components, gap", [
    ("declined", {"risk": 1.0}, True),  # no article answered it
    ("below_threshold", {"retrieval_strength": 0.2, "risk": 1.0}, True),
    ("below_threshold", {"retrieval_strength": 0.2, "risk": 0.75}, True),  # a refund question all the same
    ("below_threshold", {"retrieval_strength": 0.9, "question_coverage": 0.9, "risk": 1.0}, False),
    ("declined", {"risk": 0.5}, False),  # a rant: "this is ridiculous, worst tool ever!!"
    ("below_threshold", {"retrieval_strength": 0.1, "risk": 0.0}, False),  # a disputed charge, legal action
    ("human_requested", {}, False),
], ids=["declined", "weak-retrieval", "refund", "strong-knowledge", "rant", "dispute", "asked-for-a-person"])
def test_a_knowledge_gap_is_an_escalation_no_article_answered_not_one_that_needed_a_person(code, components, gap):
    from helpdesk_bot.analytics import TicketRecord

    record = TicketRecord(event_id=1, helpdesk="zendesk", ticket_id="1", created_at=0.0, tags=(), brand_id=None,
                          channel=None, action="escalate", code=code, would_send=False, confidence=10,
                          components=components)
    assert record.knowledge_gap is gap
