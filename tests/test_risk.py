"""Risk signals hold the bot back on tickets a human should answer, whatever the knowledge says."""

from __future__ import annotations

import pytest

from helpdesk_bot.confidence import score
from helpdesk_bot.domain import Chunk, Draft, Message, Source, Ticket
from helpdesk_bot.risk import risk_signals


def ticket(text: str, subject: str = "", tags=(), channel: str | None = None) -> Ticket:
    return Ticket(helpdesk="zendesk", id="1", subject=subject, messages=(Message("customer", text),),
                  tags=frozenset(tags), channel=channel)


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("If this is not fixed my lawyer will be in touch.", "legal"),
        ("We will take legal action over this invoice.", "legal"),
        ("I think my account was hacked, there are projects I never made.", "security"),
        ("Someone else logged in to my account from Brazil.", "security"),
        ("Someone logged into my account and changed my email, it wasn't me.", "security"),
        ("Someone has reset my password, I did not ask for that.", "security"),
        ("I was charged twice this month.", "billing_dispute"),
        ("I will file a chargeback with my bank.", "billing_dispute"),
        ("Can I get a refund for the annual plan?", "refund"),
        ("How do I cancel my subscription?", "cancellation"),
        ("Please close my account at the end of the month.", "cancellation"),
        ("Can you delete all our data? We are leaving.", "cancellation"),
        ("We're leaving at the end of the quarter, what happens to our files?", "cancellation"),
        ("This is unacceptable, the export has been broken all week.", "angry"),
        ("WHY DOES THIS NEVER WORK. FIX IT", "angry"),
        ("Please help asap, production is down", "urgent"),
        ("How do I export? Can I import CSV? What about Jira? Is there an API?", "several_questions"),
    ],
)
def test_content_signals(text, signal):
    assert signal in {s.name for s in risk_signals(ticket(text))}


@pytest.mark.parametrize(
    "text",
    [
        "How do I add a team member to a project?",
        "Is there an issue with the Slack integration? Messages arrive late.",  # "issue" is not "sue"
        "Thanks for the courtesy reminder about SAML and HTTPS settings.",  # not "court"; acronyms are not shouting
        "Where can I download invoices as PDF?",
        "How do I cancel a recurring task?",  # cancelling a task is not leaving
    ],
)
def test_ordinary_questions_raise_no_signal(text):
    assert risk_signals(ticket(text)) == []


def test_ticket_signals_priority_tags_and_voice_channel():
    names = {s.name for s in risk_signals(ticket("Where are invoices?", tags=["vip"], channel="voice"))}
    assert names == {"priority_ticket", "voice_channel"}


def test_risk_signals_are_shown_in_the_confidence_not_weighed():
    chunk = Chunk(id="a#0", article_id="a", title="Refund policy", text="Annual plans can be refunded within 14 days.")
    sources = [Source(chunk=chunk, score=1.0, dense=0.9, keyword=1.0)]
    draft = Draft(text="Annual plans can be refunded within 14 days. [1]", cited=("a#0",), declined=False, drafter="extractive")
    calm = score(ticket("Can annual plans be refunded within 14 days?"), sources, draft)
    angry = score(ticket("Refund my annual plan NOW or I will call my lawyer!!"), sources, draft)
    assert calm.score > 70 and angry.score > 0 and angry.caps == ()  # the policy hands these to a human
    risk = next(c for c in angry.components if c.name == "risk")
    assert (risk.value, risk.weight) == (0.0, 0.0) and "legal action" in risk.detail
