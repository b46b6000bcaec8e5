"""The conversation after the first reply, end to end on both sandboxes: customer message →
signed webhook → web app → Redis → Celery worker process → reply or note in the helpdesk."""

from __future__ import annotations

import json

import pytest

from helpdesk_drivers import DRIVERS

LOCKED_OUT = ("Locked out after getting a new phone",
              "Hi, I switched phones and my authenticator app no longer gives me codes. How can I sign in?")
FOLLOW_UP = "Once I'm signed in, how do I set up 2FA again on the new phone?"


@pytest.fixture(params=sorted(DRIVERS))
def chat(request, stack):
    sandbox = stack.intercom if request.param == "intercom" else stack.sandbox
    return Conversation(stack, DRIVERS[request.param](sandbox))


class Conversation:
    """One ticket, played from the customer's and the agent's side, waiting for the bot each time."""

    def __init__(self, stack, driver):
        self.stack, self.driver, self.helpdesk = stack, driver, driver.name
        self.id = None
        self.customer_messages = 0

    def start(self, subject: str, body: str, tags=()) -> Conversation:
        self.id = self.driver.start(subject, body, "dana@example.com", "Dana Whitfield", tags=tags)
        self.customer_messages = 1
        self.settle()
        return self

    def customer_says(self, text: str) -> None:
        self.driver.customer_says(self.id, text)
        self.customer_messages += 1
        self.settle()

    def settle(self, events: int | None = None) -> list[dict]:
        return self.stack.settled(self.helpdesk, self.id, events or self.customer_messages)

    @property
    def bot(self) -> list[dict]:
        return self.driver.bot_messages(self.id)

    def decisions(self) -> list[dict]:
        return self.stack.ledger.decisions_for(str(self.id), self.helpdesk)

    def reopened(self) -> bool | None:
        """What the ledger says became of the bot's first answer (the dashboard's deflection)."""
        return self.stack.ledger.outcome(self.helpdesk, str(self.id))["reopened"]

    def codes(self) -> list[str]:
        return [d["code"] for d in self.decisions()]


def test_a_follow_up_question_is_answered_again_with_the_conversation_as_context(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    [first] = chat.bot
    assert first["public"] and "recovery code" in first["text"].lower()

    chat.customer_says(FOLLOW_UP)
    first_again, second = chat.bot
    assert second["public"] and "reset authenticator" in second["text"].lower()
    assert second["text"] != first["text"]

    _, decision = chat.decisions()
    assert decision["action"] == "auto_send"
    assert decision["question"] == FOLLOW_UP  # what was asked now; retrieval also read the first turn
    assert chat.reopened() is None  # a next question says nothing against the first answer


def test_a_follow_up_saying_the_answer_did_not_help_is_handed_over_with_a_summary(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    chat.customer_says("That didn't help, I still can't sign in.")

    reply, note = chat.bot
    assert reply["public"] and not note["public"]
    assert "did not help" in note["text"]
    assert "I still can't sign in" in note["text"] and "authenticator app no longer gives me codes" in note["text"]
    assert "ai_escalated" in chat.driver.tags(chat.id)
    assert chat.driver.escalation_target(chat.id) == chat.driver.escalation_group
    assert chat.reopened() is True and chat.codes() == ["", "not_helped"]

    chat.customer_says("Hello? Anyone there? How do I reset the authenticator?")
    assert len(chat.bot) == 2  # handed over: the bot says nothing more


@pytest.mark.parametrize("request_for_a_person", [
    "Can I talk to a person about this please?",
    "I want to speak with a real human, not a bot.",
])
def test_asking_for_a_person_after_an_answer_hands_over_at_once(chat, request_for_a_person):
    chat.start(*LOCKED_OUT, tags=["account"])
    chat.customer_says(request_for_a_person)

    _, note = chat.bot
    assert not note["public"] and "asked for a person" in note["text"]
    assert request_for_a_person in note["text"]
    assert chat.driver.escalation_target(chat.id) == chat.driver.escalation_group
    decision = chat.decisions()[-1]
    assert (decision["action"], decision["drafter"], decision["sources"]) == ("escalate", "none", "[]")
    assert chat.reopened() is True and chat.codes() == ["", "human_requested"]


def test_asking_for_a_person_in_the_first_message_skips_the_answer(chat):
    chat.start("Invoices", "Where can I download our invoices as PDF? Actually, can I just talk to a person?",
               tags=["billing"])
    [note] = chat.bot
    assert not note["public"] and "asked for a person" in note["text"]
    assert chat.reopened() is None and chat.codes() == ["human_requested"]  # no answer to reopen


def test_a_human_agent_replying_silences_the_bot(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    chat.driver.agent_says(chat.id, "Hi Dana, Riley from support here. Let me check your account.")
    chat.customer_says(FOLLOW_UP)
    assert len(chat.bot) == 1
    assert chat.reopened() is None  # the customer answered the agent, not the bot


def test_a_human_assignment_silences_the_bot(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    chat.driver.assign_to_human(chat.id)
    chat.customer_says(FOLLOW_UP)
    chat.customer_says("Can I talk to a person?")
    assert len(chat.bot) == 1


def test_thanks_gets_no_answer(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    assert chat.reopened() is None
    chat.customer_says("Thanks, that worked!")
    assert len(chat.bot) == 1
    assert len(chat.decisions()) == 1
    # The customer came back within the window to say it worked: not a reopen.
    assert chat.reopened() is None


def test_a_redelivered_follow_up_is_answered_at_most_once(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    chat.driver.customer_says(chat.id, FOLLOW_UP)
    # Delivered again at once, with a new delivery id: the two deliveries race in the worker.
    chat.driver.redeliver_follow_up(chat.id)
    events = chat.settle(events=3)
    assert len({e["delivery_id"] for e in events}) == 3
    assert [m["public"] for m in chat.bot] == [True, True]
    assert chat.reopened() is None  # a next question, not a complaint
    assert len(chat.decisions()) == 2  # one per thing said, not one per delivery

    chat.driver.redeliver_follow_up(chat.id)  # and once more, long after the answer
    chat.settle(events=4)
    assert len(chat.bot) == 2


def test_every_turn_is_in_the_ledger(chat):
    chat.start(*LOCKED_OUT, tags=["account"])
    chat.customer_says(FOLLOW_UP)
    chat.customer_says("Talk to a person")
    assert [d["action"] for d in chat.decisions()] == ["auto_send", "auto_send", "escalate"]
    assert chat.codes() == ["", "", "human_requested"] and chat.reopened() is True
    assert all(json.loads(d["latency_ms"]) for d in chat.decisions())


def test_zendesk_event_and_trigger_webhooks_about_one_comment_answer_it_once(stack):
    from datetime import datetime, timezone

    import requests

    from integrations.sandbox import sign_zendesk_webhook
    from integrations.sandbox.webhooks import encode_body, event_payload

    chat = Conversation(stack, DRIVERS["zendesk"](stack.sandbox)).start(*LOCKED_OUT, tags=["account"])
    chat.driver.customer_says(chat.id, FOLLOW_UP)  # the update trigger's webhook
    # ... and a webhook subscribed to zen:event-type:ticket.comment_added, about the same comment.
    ticket = stack.sandbox.ticket(int(chat.id))
    comment = stack.sandbox.comments(int(chat.id))[-1]
    assert comment["author_id"] == ticket["requester_id"]
    body = encode_body(event_payload(ticket, "ticket.updated", comment, stack.sandbox.state.user(comment["author_id"])))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = requests.post(stack.webhook_url, data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": sign_zendesk_webhook(stack.settings.webhook_secret(), stamp, body)})
    assert response.status_code == 202
    chat.settle(events=3)
    assert [m["public"] for m in chat.bot] == [True, True]
