"""The `Helpdesk` contract: the same assertions against every implementation, each real client
talking to its vendor's sandbox over HTTP (zenpy for Zendesk, the requests client for Intercom)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from helpdesk_bot.domain import original_id, translation_language
from helpdesk_bot.errors import PermanentError, Throttled, TransientError
from integrations.sandbox import SandboxHelpdesk
from integrations.sandbox.intercom import SandboxIntercom

from helpdesk_drivers import DRIVERS

SAMPLE_HELP_CENTER = Path(__file__).parents[1] / "helpdesk_bot" / "sample_data" / "help_center.json"
PUBLISHED_ARTICLES = 40  # the sample help center: 42 articles, 2 of them drafts
TRANSLATIONS = {"es": 6, "de": 5, "fr": 5}  # its translations, all published
SANDBOXES = {"zendesk": SandboxHelpdesk, "intercom": SandboxIntercom}
REPLY = "<p>Hi Dana,</p><p>Click <strong>Use a recovery code instead</strong> on the sign-in screen. [1]</p>"


@pytest.fixture(scope="module", params=sorted(DRIVERS))
def driver(request):
    sandbox = SANDBOXES[request.param](help_center=SAMPLE_HELP_CENTER).start()
    yield DRIVERS[request.param](sandbox)
    sandbox.stop()


@pytest.fixture
def helpdesk(driver, monkeypatch):
    return driver.client(monkeypatch)


@pytest.fixture
def ticket_id(driver) -> str:
    return driver.start("Locked out", "My authenticator app stopped working. How can I sign in?",
                        "dana@example.com", "Dana Whitfield", tags=["account"])


def test_a_new_ticket_reads_as_one_customer_message(helpdesk, driver, ticket_id):
    ticket = helpdesk.fetch_ticket(ticket_id)
    assert (ticket.helpdesk, ticket.id, ticket.subject) == (driver.name, ticket_id, "Locked out")
    [message] = ticket.messages
    assert (message.author, message.public) == ("customer", True)
    assert message.text == "My authenticator app stopped working. How can I sign in?"
    assert message.id
    assert ticket.requester_name == "Dana Whitfield"
    assert "account" in ticket.tags
    assert ticket.human_assignee is None
    assert ticket.latest_customer_message == message.text


def test_a_reply_reaches_the_customer_tagged_and_reads_back_as_the_bots(helpdesk, driver, ticket_id):
    result = helpdesk.post_reply(ticket_id, REPLY, "pending", ("ai_answered",))
    assert isinstance(result, dict)

    [posted] = driver.bot_messages(ticket_id)
    assert posted["public"] and "Use a recovery code instead" in posted["text"]
    assert any("Use a recovery code instead" in text for text in driver.customer_visible(ticket_id))
    assert "ai_answered" in driver.tags(ticket_id)
    ticket = helpdesk.fetch_ticket(ticket_id)
    assert [(m.author, m.public) for m in ticket.messages] == [("customer", True), ("bot", True)]
    assert helpdesk.has_bot_comment(ticket_id, REPLY)
    assert not helpdesk.has_bot_comment(ticket_id, "<p>Something the bot never said.</p>")


def test_a_note_stays_internal_goes_to_the_human_group_and_is_tagged(helpdesk, driver, ticket_id):
    helpdesk.post_note(ticket_id, "<p>Handed over: <em>low confidence</em>.</p>", driver.escalation_group, ("ai_escalated",))

    [note] = driver.bot_messages(ticket_id)
    assert not note["public"] and "low confidence" in note["text"]
    assert not any("low confidence" in text for text in driver.customer_visible(ticket_id))
    assert driver.escalation_target(ticket_id) == driver.escalation_group
    assert "ai_escalated" in driver.tags(ticket_id)
    [_, read_back] = helpdesk.fetch_ticket(ticket_id).messages
    assert (read_back.author, read_back.public) == ("bot", False)
    assert helpdesk.has_bot_comment(ticket_id, "<p>Handed over: <em>low confidence</em>.</p>")


def test_the_conversation_keeps_its_order_and_stable_message_ids(helpdesk, driver, ticket_id):
    helpdesk.post_reply(ticket_id, REPLY, "pending", ("ai_answered",))
    driver.customer_says(ticket_id, "And how do I set up the app on my new phone?")
    first = helpdesk.fetch_ticket(ticket_id)
    assert [m.author for m in first.messages] == ["customer", "bot", "customer"]
    assert first.messages[-1].text == "And how do I set up the app on my new phone?"
    assert len({m.id for m in first.messages}) == 3
    assert [m.id for m in helpdesk.fetch_ticket(ticket_id).messages] == [m.id for m in first.messages]
    assert first.status == "open"  # the customer's reply reopened the waiting ticket


def test_a_human_agent_reads_as_an_agent_and_an_assignment_as_a_human_assignee(helpdesk, driver, ticket_id):
    driver.agent_says(ticket_id, "Riley here, I'll take this one.")
    assert helpdesk.fetch_ticket(ticket_id).messages[-1].author == "agent"
    driver.assign_to_human(ticket_id)
    assert helpdesk.fetch_ticket(ticket_id).human_assignee == driver.human_id


def test_the_history_has_timed_messages_tags_and_the_customers_rating(helpdesk, driver, ticket_id):
    helpdesk.post_reply(ticket_id, REPLY, "pending", ("ai_answered",))
    driver.customer_says(ticket_id, "That worked, thanks!")
    driver.rate(ticket_id, good=True, comment="Quick and clear")
    history = helpdesk.ticket_history(ticket_id)
    assert [(m.author, m.public) for m in history.messages] == [("customer", True), ("bot", True), ("customer", True)]
    assert history.messages[-1].text == "That worked, thanks!"
    times = [m.created_at for m in history.messages]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 120
    assert "ai_answered" in history.tags and history.status == "open"
    assert (history.satisfaction, history.satisfaction_comment) == ("good", "Quick and clear")


def test_articles_are_the_published_ones(helpdesk):
    everything = helpdesk.articles()
    # Every locale the help center publishes is read; the translations carry theirs.
    articles = [a for a in everything if a.locale is None]
    assert len(articles) == PUBLISHED_ARTICLES
    titles = {a.title for a in articles}
    assert "Lost your phone? Signing in with 2FA recovery codes" in titles
    assert "AI task summaries (beta)" not in titles  # a draft
    assert all(a.id and a.body_html.startswith("<") and a.url.startswith("http") for a in articles)


def test_translations_are_articles_of_their_own_locale(helpdesk):
    everything = helpdesk.articles()
    originals = {a.id for a in everything if a.locale is None}
    translations = [a for a in everything if a.locale is not None]
    assert Counter(a.locale for a in translations) == TRANSLATIONS
    assert all(a.id == f"{original_id(a.id)}:{a.locale}" and original_id(a.id) in originals for a in translations)
    spanish = {a.id: a for a in translations}["360001000114:es"]
    assert spanish.title.startswith("¿Has perdido el móvil?") and spanish.url.startswith("http")
    assert translation_language(spanish.id) == "es"


def test_the_knowledge_locales_setting_chooses_the_locales_read(driver, tmp_path):
    helpdesk = driver.configured({"HELPDESK_DATA_DIR": str(tmp_path),
                                  "HELPDESK_KNOWLEDGE_LOCALES": f"{driver.default_locale},DE"})
    everything = helpdesk.articles()
    # Each configured locale's articles carry it, the default locale's too.
    assert Counter(a.locale for a in everything) == {driver.default_locale: PUBLISHED_ARTICLES, "de": TRANSLATIONS["de"]}
    assert all(a.id.endswith(f":{a.locale}") for a in everything)
    assert "Handy verloren? Mit 2FA-Wiederherstellungscodes anmelden" in {a.title for a in everything}


def test_a_rate_limit_is_throttled_with_the_wait_and_nothing_is_posted(helpdesk, driver, ticket_id):
    driver.inject_throttle(7)
    with pytest.raises(Throttled) as caught:
        helpdesk.post_reply(ticket_id, REPLY, "pending", ("ai_answered",))
    assert 5 <= caught.value.retry_after <= 8
    assert driver.bot_messages(ticket_id) == []


def test_a_server_error_is_transient_and_not_throttled(helpdesk, driver, ticket_id):
    driver.inject_server_error()
    with pytest.raises(TransientError) as caught:
        helpdesk.fetch_ticket(ticket_id)
    assert not isinstance(caught.value, Throttled)
    assert helpdesk.fetch_ticket(ticket_id).id == ticket_id  # the next call goes through


def test_a_missing_ticket_is_permanent(helpdesk):
    with pytest.raises(PermanentError):
        helpdesk.fetch_ticket("999999")
