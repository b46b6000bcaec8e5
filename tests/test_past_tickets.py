"""Solved tickets as knowledge, from the sandbox Zendesk through zenpy over loopback HTTP: which
tickets qualify, what gets indexed (redacted), and how customers and agents see the source."""

from __future__ import annotations

import json

import pytest
import requests
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from helpdesk_bot.domain import PAST_TICKET, Draft, Message, Source, Ticket
from helpdesk_bot.drafting import reply_html
from helpdesk_bot.guardrails import allowed_links
from helpdesk_bot.indexing import index_past_tickets
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.policy import ANSWERED_TAG
from helpdesk_bot.retrieval import Retriever
from helpdesk_bot.services import open_store
from helpdesk_bot.settings import Settings
from integrations.sandbox import BOT_AGENT_EMAIL, SandboxHelpdesk
from integrations.zendesk import ZendeskHelpdesk


@pytest.fixture
def sandbox(monkeypatch):
    sandbox = SandboxHelpdesk().start()
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")  # monkeypatch gives zenpy's old address back
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", sandbox.netloc)
    yield sandbox
    sandbox.stop()


def solved(sandbox, question: str, answer: str | None, public: bool = True, tags=()) -> int:
    ticket_id = sandbox.create_ticket(question.split(".")[0], question, "casey@example.com", "Casey", tags=tags)
    if answer is not None:
        sandbox.add_agent_reply(ticket_id, answer, public=public)
    requests.put(f"{sandbox.url}/api/v2/tickets/{ticket_id}.json", json={"ticket": {"status": "solved"}},
                 auth=(f"{BOT_AGENT_EMAIL}/token", "x"), timeout=10).raise_for_status()
    return ticket_id


@pytest.fixture
def tickets(sandbox):
    """One ticket of each kind the index must take or leave."""
    bot_answered = sandbox.create_ticket("Reset", "How do I reset my password?", "dana@example.com")
    requests.put(f"{sandbox.url}/api/v2/tickets/{bot_answered}.json", auth=(f"{BOT_AGENT_EMAIL}/token", "x"), timeout=10,
                 json={"ticket": {"status": "solved", "comment": {"body": "Use Forgot password.", "public": True}}})
    reopened = solved(sandbox, "The calendar sync stopped.", "Reconnect Google Calendar under Integrations.")
    sandbox.add_customer_reply(reopened, "Still broken.")
    sandbox.add_agent_reply(reopened, "Fixed on our side now.", status="solved")
    sandbox.create_ticket("Open", "Where is the export button?", "lee@example.com")
    return {
        "good": solved(sandbox, "How do I get a refund for the annual plan? Mail me at casey.doe@example.com "
                                "or call +44 20 7946 0958.", "Annual plans are refunded within 14 days from "
                                "Settings, Billing, Request refund."),
        "tagged": solved(sandbox, "Can I pay by invoice?", "Yes, on the Business plan.", tags=[ANSWERED_TAG]),
        "note only": solved(sandbox, "Why was I charged twice?", "Duplicate charge, refunded.", public=False),
        "bot answered": bot_answered,
        "reopened": reopened,
    }


@pytest.fixture
def index(sandbox, database_url, embedder, tmp_path):
    settings = Settings.from_env({"SANDBOX_URL": sandbox.url, "HELPDESK_DATA_DIR": str(tmp_path),
                                  "HELPDESK_INDEX_PAST_TICKETS": "true"})
    ledger = Ledger(database_url)
    helpdesk = ZendeskHelpdesk.from_settings(settings)

    def run():
        return index_past_tickets(settings, ledger, embedder, helpdesk)

    run.settings, run.ledger = settings, ledger
    yield run
    ledger.dispose()


def indexed_chunks(settings) -> list[dict]:
    store = open_store(settings)
    try:
        return store.engine.payloads(["article_id", "title", "text", "url", "kind"])
    finally:
        store.close()


def test_only_solved_tickets_a_human_answered_and_nobody_reopened_are_indexed(index, tickets, sandbox):
    report = index()
    assert (report.added, report.deleted) == (1, 0)
    chunks = indexed_chunks(index.settings)
    assert {c["article_id"] for c in chunks} == {f"ticket:{tickets['good']}"}
    chunk = chunks[0]
    assert chunk["kind"] == PAST_TICKET
    assert chunk["url"] == f"{sandbox.url}/agent/tickets/{tickets['good']}"
    assert "Customer question: How do I get a refund" in chunk["text"]
    assert "Agent answer: Annual plans are refunded within 14 days" in chunk["text"]
    assert "casey.doe@example.com" not in json.dumps(chunks) and "7946" not in json.dumps(chunks)


def test_next_run_starts_at_the_cursor_and_drops_a_ticket_reopened_since(index, tickets, sandbox):
    index()
    assert index.ledger.sync_cursor("zendesk past tickets") is not None
    again = index()
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 1, 0)

    sandbox.add_customer_reply(tickets["good"], "That did not work, the button is missing.")
    sandbox.add_agent_reply(tickets["good"], "Refunds are now in Billing, Refunds.", status="solved")
    report = index()
    assert (report.added, report.deleted) == (0, 1)
    assert indexed_chunks(index.settings) == []
    assert index.ledger.indexed_articles() == []  # knowledge gaps wait for a real article


def test_a_past_ticket_is_retrieved_but_customers_see_neither_its_subject_nor_its_link(index, tickets, embedder, sandbox):
    index()
    store = open_store(index.settings)
    try:
        sources = Retriever(store, embedder).retrieve("How can I get my money back for a yearly subscription?")
    finally:
        store.close()
    past = next(s for s in sources if s.chunk.kind == PAST_TICKET)
    assert past.chunk.public_url == "" and past.chunk.url.endswith(f"/agent/tickets/{tickets['good']}")
    assert past.chunk.url.lower() not in {u.lower() for u in allowed_links([past])}

    ticket = Ticket("zendesk", "9", "Refund", (Message("customer", "Refund please"),), requester_name="Ana")
    html = reply_html(Draft(text="Annual plans are refunded within 14 days [1].", cited=(past.chunk.id,),
                            declined=False, drafter="test"), [past], ticket)
    assert "[1] an earlier answer from our support team" in html
    assert "agent/tickets" not in html and past.chunk.title not in html


def test_past_tickets_from_the_command_line_and_the_setting(index, tickets, sandbox, monkeypatch):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(index.settings.data_dir))
    monkeypatch.setenv("SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("DATABASE_URL", index.ledger.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(main, ["index", "--past-tickets", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 1
    status = CliRunner().invoke(main, ["index", "--status"]).output
    assert "zendesk past tickets (incremental): 1 added" in status
    assert index.settings.index_past_tickets and not Settings.from_env({}).index_past_tickets


def test_past_ticket_settings_are_validated():
    from helpdesk_bot.errors import ConfigError

    with pytest.raises(ConfigError, match="HELPDESK_INDEX_PAST_TICKETS"):
        Settings.from_env({"HELPDESK_INDEX_PAST_TICKETS": "maybe"})
    with pytest.raises(ConfigError, match="HELPDESK_PAST_TICKETS_DAYS"):
        Settings.from_env({"HELPDESK_PAST_TICKETS_DAYS": "0"})
