"""The conversation after the first reply, without servers: what a customer message says,
what the bot does next, what it reads, and the pipeline's choices on a real ledger and a
sandbox helpdesk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpdesk_bot import analytics
from helpdesk_bot.conversation import (
    asks_for_a_person, classify_follow_up, conversation_summary, handover_note, next_turn, only_thanks, says_not_helped,
)
from helpdesk_bot.domain import Chunk, Confidence, Decision, Draft, Message, Outcome, Source, Ticket, TicketEvent
from helpdesk_bot.drafting import ExtractiveDrafter
from helpdesk_bot.errors import PermanentError
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.pipeline import Answerer, Pipeline, action_key
from helpdesk_bot.policy import ESCALATED_TAG, Policy, decide, parse_policy
from integrations.sandbox.intercom import SUPPORT_TEAM_ID, SandboxIntercom

from helpdesk_drivers import IntercomDriver

ASKS_FOR_A_PERSON = [
    "Can I talk to a person please?",
    "I want to speak to a human",
    "let me speak with someone from support",
    "connect me to an agent",
    "Please transfer me to a real person.",
    "HUMAN",
    "agent please",
    "I need a human",
    "Is there a live agent I can chat with?",
    "get me a representative",
    "I'd like to talk to someone",
    "I want to speak with a member of staff",
    "stop the bot",
    "I don't want a bot, I want a real person",
    "speak to an actual human being",
    "Could you put me through to a support agent?",
    "human support please",
    "I need a person to help me with this",
    "¿Puedo hablar con una persona?", "Quiero hablar con un agente", "pásame con alguien por favor",
    "Je voudrais parler à un conseiller", "Puis-je parler avec quelqu'un ?", "je veux une vraie personne",
    "Ich möchte mit einem Menschen sprechen", "Kann ich mit jemandem reden?", "bitte einen echten Mitarbeiter",
    "Quero falar com um atendente", "posso falar com alguém?", "Vorrei parlare con un operatore",
    "Ik wil met een medewerker spreken", "kan ik praten met iemand?",
]
DOES_NOT_ASK_FOR_A_PERSON = [
    "How do I assign a task to a person?",
    "Can I add another person to my workspace?",
    "Can an agent see private projects?",
    "I need a person to approve the invoice",
    "I don't need to talk to a person, just tell me where the invoices are",
    "Who is the person responsible for billing in my account?",
    "How many people can join a team?",
    "Our support team wants to export tasks",
    "We need an agent seat for our new hire",
    "Where can I download invoices?",
    "¿Cómo asigno una tarea a una persona?", "¿Cuántas personas pueden unirse a un equipo?",
    "Comment ajouter une personne à mon espace ?", "Wie füge ich eine Person zum Projekt hinzu?",
    "Como adiciono um agente à minha conta?", "Hoeveel medewerkers kunnen een project zien?",
]
NOT_HELPED = [
    "That didn't help", "this does not work", "Still not working", "I still can't sign in", "That's not what I asked",
    "No luck, same error", "I already tried that", "doesn't answer my question", "Thanks, but it didn't work",
    "wrong answer", "nope, still broken",
    "No funcionó", "no me ayudó, sigue igual", "Ça n'a pas marché", "ça ne fonctionne toujours pas",
    "Das hat leider nicht geholfen", "funktioniert immer noch nicht", "Não funcionou", "non ha funzionato",
    "het werkt nog steeds niet",
]
THANKS = ["Thanks!", "Thank you so much", "Perfect, that worked", "Great, thanks!", "Got it, thanks",
          "That fixed it, cheers", "ok thanks", "¡Muchas gracias!", "Merci beaucoup", "Danke schön",
          "Perfeito, obrigado", "grazie mille", "Top, bedankt", "Gracias, como siempre", "Thanks for the comment"]
NOT_ONLY_THANKS = ["Thanks, but how do I export?", "Thanks! Also where is the VAT field?",
                   "Thanks, it didn't work though", "thanks for nothing, still broken",
                   "Gracias, pero no funcionó", "Merci, mais comment exporter ?", "Danke, aber wie exportiere ich"]


@pytest.mark.parametrize("text", ASKS_FOR_A_PERSON)
def test_requests_for_a_person_are_recognised(text):
    assert asks_for_a_person(text)
    assert classify_follow_up(text) == "human_requested"


@pytest.mark.parametrize("text", DOES_NOT_ASK_FOR_A_PERSON)
def test_questions_that_mention_people_are_not_requests_for_one(text):
    assert not asks_for_a_person(text)


@pytest.mark.parametrize("text", NOT_HELPED)
def test_follow_ups_saying_the_answer_did_not_help(text):
    assert says_not_helped(text)
    assert classify_follow_up(text) == "not_helped"


@pytest.mark.parametrize("text", [
    "We already back off and still get 429s.",
    "Still getting the same error after the update.",
    "Same error as before.",
    "I already tried that and it still fails.",
    "We already followed those steps.",
])
def test_follow_ups_saying_it_still_fails_or_was_already_tried(text):
    assert classify_follow_up(text) == "not_helped"


@pytest.mark.parametrize("text", [
    "Is it still possible to export archived projects?",
    "Do I still need a password once SSO is on?",
])
def test_still_in_a_new_question_is_not_a_failure(text):
    assert classify_follow_up(text) == "question"


@pytest.mark.parametrize("text, needs_a_person", [
    ("Can you raise our limit?", True),
    ("Could you increase our API rate limit to 2,000 per minute?", True),
    ("Please change our plan to annual billing.", True),
    ("Can you delete all my data?", True),
    ("Please delete my personal data from your systems.", True),
    ("How do I change my plan?", False),
    ("How do I delete a project?", False),
    ("What is the API rate limit on the Business plan?", False),
])
def test_requests_only_a_person_can_do_are_handed_over_on_any_turn(text, needs_a_person):
    turn = next_turn(ticket(customer(text, id="c1")))
    assert (turn.step == "hand_over" and turn.code == "needs_a_person") == needs_a_person, turn


@pytest.mark.parametrize("text", THANKS)
def test_a_plain_thank_you(text):
    assert only_thanks(text) and classify_follow_up(text) == "thanks"


@pytest.mark.parametrize("text", NOT_ONLY_THANKS + ["How do I export archived projects too?"])
def test_thanks_with_more_to_it_is_not_only_thanks(text):
    assert not only_thanks(text)


# --- next_turn ------------------------------------------------------------------------------

FIRST = Message("customer", "How do I download an invoice?", id="c1")
ANSWER = Message("bot", "Hi Maria, open Settings › Billing › Invoice history. [1] Sources: Downloading invoices", id="b1")


def ticket(*messages: Message, tags=(), assignee: str | None = None, subject: str = "Billing PDFs") -> Ticket:
    return Ticket(helpdesk="zendesk", id="7", subject=subject, messages=messages, tags=frozenset(tags),
                  requester_name="Maria Lopez", human_assignee=assignee)


def customer(text: str, id: str = "c2") -> Message:
    return Message("customer", text, id=id)


def test_a_new_ticket_is_answered():
    turn = next_turn(ticket(FIRST))
    assert (turn.step, turn.message, turn.follow_up) == ("answer", FIRST, None)


def test_a_follow_up_question_is_answered_and_marked_as_one():
    follow_up = customer("And where do I add our VAT number?")
    turn = next_turn(ticket(FIRST, ANSWER, follow_up))
    assert (turn.step, turn.message, turn.follow_up) == ("answer", follow_up, "question")


@pytest.mark.parametrize("messages, reason", [
    ((FIRST, Message("agent", "Riley here, looking into it", id="a1"), customer("Thanks, and VAT?")), "human agent has written"),
    ((FIRST, ANSWER, Message("agent", "Internal: refund approved", public=False, id="a2"), customer("And VAT?")), "written"),
])
def test_once_a_human_agent_has_written_the_bot_is_silent(messages, reason):
    turn = next_turn(ticket(*messages))
    assert turn.step == "stay_silent" and reason in turn.reason


def test_once_a_human_is_assigned_the_bot_is_silent_even_to_a_request_for_a_person():
    turn = next_turn(ticket(FIRST, ANSWER, customer("talk to a person"), assignee="36000000000102"))
    assert turn.step == "stay_silent" and "36000000000102" in turn.reason


def test_after_a_handover_the_bot_is_silent():
    assert next_turn(ticket(FIRST, customer("Hello?"), tags=[ESCALATED_TAG])).step == "stay_silent"


def test_nothing_waiting_means_nothing_to_say():
    turn = next_turn(ticket(FIRST, ANSWER))
    assert (turn.step, turn.message) == ("stay_silent", None)


def test_system_messages_neither_answer_nor_take_over():
    operator = Message("system", "The team will be back tomorrow", id="s1")
    assert next_turn(ticket(FIRST, operator)).step == "answer"


def test_a_request_for_a_person_hands_over_at_once_first_message_or_later():
    first = next_turn(ticket(customer("Can I talk to a person about my invoice?", id="c1")))
    later = next_turn(ticket(FIRST, ANSWER, customer("I want a human")))
    assert (first.step, first.follow_up) == ("hand_over", None)
    assert (later.step, later.follow_up) == ("hand_over", "human_requested")


def test_not_helped_hands_over_but_only_after_an_answer():
    assert next_turn(ticket(FIRST, ANSWER, customer("That didn't help"))).step == "hand_over"
    # As a first message "does not work" describes the problem; it is a question to answer.
    assert next_turn(ticket(customer("Export does not work", id="c1"))).step == "answer"


def test_thanks_is_silent_but_counted_as_a_follow_up():
    turn = next_turn(ticket(FIRST, ANSWER, customer("Thanks, that worked!")))
    assert (turn.step, turn.follow_up) == ("stay_silent", "thanks")


def test_several_messages_since_the_answer_are_read_together():
    turn = next_turn(ticket(FIRST, ANSWER, customer("One more thing.", id="c2"), customer("Can I speak to someone?", id="c3")))
    assert (turn.step, turn.message.id) == ("hand_over", "c3")


# --- what the drafter and retrieval read ---------------------------------------------------


def test_the_question_of_a_new_ticket_is_subject_and_message():
    assert ticket(FIRST).question == "Billing PDFs\nHow do I download an invoice?"


def test_a_follow_ups_question_is_what_was_written_since_the_answer():
    follow = ticket(FIRST, ANSWER, customer("Where is the VAT field?", id="c2"), customer("on the PDF", id="c3"))
    assert follow.question == "Where is the VAT field?\non the PDF"
    assert follow.is_follow_up


def test_the_search_query_reads_the_customers_side_of_the_conversation():
    follow = ticket(FIRST, ANSWER, customer("Where is the VAT field?"))
    assert follow.search_query == "Billing PDFs\nHow do I download an invoice?\nWhere is the VAT field?"
    assert "Invoice history" not in follow.search_query  # not the bot's own words


def test_the_search_query_keeps_the_latest_three_customer_messages():
    messages = [customer(f"message {n}", id=f"c{n}") for n in range(5)]
    assert ticket(*messages, subject="").search_query == "message 2\nmessage 3\nmessage 4"


class RecordingRetriever:
    default_language = "en"

    def __init__(self, sources):
        self.queries, self.sources = [], sources

    def retrieve(self, query, brand=None, locale=None, language=None):
        self.queries.append(query)
        return self.sources


VAT = Chunk(id="vat#0", article_id="vat", title="Adding VAT or company details to invoices",
            text="To add your VAT number, open Settings, choose Billing and click Company details.\n"
                 "The VAT number is printed on every invoice PDF from then on.")


def test_the_answerer_retrieves_with_the_conversation_and_drafts_for_the_follow_up():
    retriever = RecordingRetriever([Source(chunk=VAT, score=0.5, dense=0.7, keyword=1.0)])
    answerer = Answerer(retriever=retriever, drafter=ExtractiveDrafter(), policy=Policy())
    follow = ticket(FIRST, ANSWER, customer("Where do I add our VAT number?"))
    outcome = answerer.answer(follow)
    assert retriever.queries == [follow.search_query]
    assert "VAT number" in outcome.draft.text and outcome.decision.action == "auto_send"


# --- policy: the repeat rule and per-helpdesk groups ---------------------------------------


def test_a_draft_repeating_an_answer_already_sent_is_handed_over():
    from helpdesk_bot.domain import Component, Confidence, Draft

    strong = Confidence(score=95, components=(Component("retrieval_strength", 1.0, 1.0, "strong"),))
    draft = Draft(text="Open Settings › Billing › Invoice history. [1]", cited=("invoices#0",), declined=False,
                  drafter="extractive")
    follow = ticket(FIRST, ANSWER, customer("Where exactly?"))
    decision = decide(follow, draft, strong, Policy())
    assert (decision.action, decision.rule) == ("escalate", "repeated answer")
    new_draft = Draft(text="Click Company details to add the VAT number. [1]", cited=("vat#0",), declined=False,
                      drafter="extractive")
    assert decide(follow, new_draft, strong, Policy()).action == "auto_send"


def test_each_helpdesk_can_have_its_own_escalation_group():
    policy = parse_policy({"escalation_group_id": 360001, "intercom": {"escalation_group_id": 5017691}})
    assert policy.escalation_group_for("zendesk") == 360001
    assert policy.escalation_group_for("intercom") == 5017691
    assert parse_policy({"escalation_group_id": 360001, "intercom": {"escalation_group_id": 0}}
                        ).escalation_group_for("intercom") is None


@pytest.mark.parametrize("raw, names", [
    ({"intercom": {"team": 5}}, "[intercom]"),
    ({"intercom": 5}, "[intercom]"),
    ({"intercom": {"escalation_group_id": "5"}}, "intercom.escalation_group_id"),
    ({"zendesk": {"escalation_group_id": -1}}, "zendesk.escalation_group_id"),
])
def test_a_bad_helpdesk_table_is_refused_by_name(raw, names):
    from helpdesk_bot.errors import ConfigError

    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(raw)


# --- the handover note ---------------------------------------------------------------------


def test_the_handover_note_says_why_and_who_said_what():
    note = handover_note(ticket(FIRST, ANSWER, customer("I want to talk to a <b>person</b>")), "the customer asked for a person")
    assert "the customer asked for a person" in note
    assert "<strong>Customer:</strong> How do I download an invoice?" in note
    assert "<strong>helpdesk-bot:</strong> Hi Maria" in note
    assert "&lt;b&gt;person&lt;/b&gt;" in note  # the customer's words are escaped
    assert "wrote 2 message(s); the bot answered 1 time(s)" in note


def test_the_summary_shortens_long_messages_and_leaves_out_internal_notes():
    long = customer("word " * 200)
    summary = conversation_summary(ticket(FIRST, Message("bot", "secret draft", public=False, id="n1"), long))
    assert "secret draft" not in summary and "…" in summary and len(summary) < 1200


# --- the pipeline's choices, on a real ledger and the sandbox Intercom ----------------------


@pytest.fixture
def intercom():
    sandbox = SandboxIntercom(help_center=Path(__file__).parents[1] / "helpdesk_bot" / "sample_data" / "help_center.json")
    yield IntercomDriver(sandbox.start())
    sandbox.stop()


@pytest.fixture
def pipeline(intercom, tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.create_schema()
    # No retriever or drafter: these paths must never draft (they would fail on None).
    policy = Policy(escalation_group_id=999, helpdesk_escalation_groups=(("intercom", int(SUPPORT_TEAM_ID)),))
    return Pipeline(answerer=Answerer(retriever=None, drafter=None, policy=policy),
                    helpdesks={"intercom": intercom.client()}, ledger=ledger)


def record(pipeline, conversation_id: str, delivery: str, kind: str = "ticket.updated") -> int:
    event_id, _ = pipeline.ledger.record_event(TicketEvent("intercom", delivery, conversation_id, kind))
    return event_id


def test_a_request_for_a_person_is_handed_over_without_drafting(pipeline, intercom):
    conversation_id = intercom.start("Invoices", "Can I talk to a person about an invoice?", "maria@example.com", "Maria")
    result = pipeline.handle_event(record(pipeline, conversation_id, "n1", "ticket.created"))
    assert result == "note posted"
    [note] = intercom.bot_messages(conversation_id)
    assert not note["public"] and "asked for a person" in note["text"]
    assert intercom.escalation_target(conversation_id) == int(SUPPORT_TEAM_ID)
    [decision] = pipeline.ledger.decisions_for(conversation_id, "intercom")
    assert (decision["drafter"], decision["confidence"], decision["rule"]) == ("none", 0, "the customer asked for a person")


def test_a_delivery_of_a_message_another_event_is_answering_stands_down(pipeline, intercom):
    conversation_id = intercom.start("Invoices", "Talk to a person", "maria@example.com", "Maria")
    first, second = record(pipeline, conversation_id, "n1"), record(pipeline, conversation_id, "n2")
    message_id = intercom.client().fetch_ticket(conversation_id).messages[-1].id
    key = action_key(TicketEvent("intercom", "n1", conversation_id), Message("customer", "", id=message_id))
    assert pipeline.ledger.claim_action(key, first, "note", "<p>being written</p>") is not None

    assert pipeline.handle_event(second) == f"note to this message claimed by event {first}"
    assert intercom.bot_messages(conversation_id) == []
    assert pipeline.ledger.get_event(second).status == "done"
    assert pipeline.ledger.decisions_for(conversation_id) == []


def test_a_stale_claim_by_another_event_is_taken_over(pipeline, intercom):
    conversation_id = intercom.start("Invoices", "Talk to a person", "maria@example.com", "Maria")
    first, second = record(pipeline, conversation_id, "n1"), record(pipeline, conversation_id, "n2")
    message_id = intercom.client().fetch_ticket(conversation_id).messages[-1].id
    key = action_key(TicketEvent("intercom", "n1", conversation_id), Message("customer", "", id=message_id))
    pipeline.ledger.claim_action(key, first, "note", "<p>the note its worker died writing</p>")
    with pipeline.ledger.engine.begin() as db:  # that worker died a minute ago
        from helpdesk_bot.ledger import actions

        db.execute(actions.update().values(claimed_at=time.time() - 60))
    assert pipeline.handle_event(second) == "note posted"
    [note] = intercom.bot_messages(conversation_id)
    assert "the note its worker died writing" in note["text"]  # finished as it was started


def test_an_event_for_an_unconfigured_helpdesk_is_permanent(pipeline):
    event_id, _ = pipeline.ledger.record_event(TicketEvent("freshdesk", "d1", "12"))
    with pytest.raises(PermanentError, match="freshdesk"):
        pipeline.handle_event(event_id)


def test_a_helpdesk_table_survives_the_dashboards_editor():
    from helpdesk_bot.policy import describe_changes, parse_policy_text, policy_to_toml

    policy = parse_policy({"escalation_group_id": 360001, "intercom": {"escalation_group_id": 5017691}})
    assert parse_policy_text(policy_to_toml(policy)) == policy
    moved = parse_policy({"escalation_group_id": 360001, "intercom": {"escalation_group_id": 5017692}})
    assert describe_changes(policy, moved) == ["intercom escalation group: 5017691 → 5017692"]


# A drafter's tokens at the default prices (LLM_PRICE_INPUT/OUTPUT_PER_MTOK): what the dashboard shows as cost.
PRICES, PROMPT_TOKENS, COMPLETION_TOKENS = (0.15, 0.60), 1200, 80
DRAFT_COST = (PROMPT_TOKENS * PRICES[0] + COMPLETION_TOKENS * PRICES[1]) / 1e6


class AgentActsWhileDrafting:
    """An answerer whose draft takes long enough for an agent to act on the ticket meanwhile."""

    def __init__(self, agent_acts, policy: Policy):
        self.agent_acts, self.policy = agent_acts, policy

    def answer(self, ticket, timings) -> Outcome:
        self.agent_acts(ticket.id)
        draft = Draft("Invoices are under Billing.", (), False, "openai", prompt_tokens=PROMPT_TOKENS,
                      completion_tokens=COMPLETION_TOKENS)
        return Outcome(ticket=ticket, sources=(), draft=draft, confidence=Confidence(90, ()),
                       decision=Decision("auto_send", 70, "default threshold", ("confidence 90 ≥ 70",), would_send=True))


@pytest.mark.parametrize("agent_acts", ["nothing", "agent_says", "assign_to_human"])
def test_an_agent_who_answers_or_takes_the_ticket_while_the_reply_is_drafted_is_not_talked_over(
        pipeline, intercom, agent_acts):
    acts = {"nothing": lambda ticket_id: None,
            "agent_says": lambda ticket_id: intercom.agent_says(ticket_id, "Hi Maria, I'll take this one."),
            "assign_to_human": intercom.assign_to_human}[agent_acts]
    pipeline.answerer = AgentActsWhileDrafting(acts, pipeline.answerer.policy)
    pipeline.ledger.price_per_mtok = PRICES
    conversation_id = intercom.start("Invoices", "Where do I find my invoices?", "maria@example.com", "Maria")
    event_id = record(pipeline, conversation_id, "n1", "ticket.created")
    result = pipeline.handle_event(event_id)
    bot = intercom.bot_messages(conversation_id)
    [decision] = pipeline.ledger.decisions_for(conversation_id, "intercom")
    assert (decision["prompt_tokens"], decision["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert decision["cost_usd"] == pytest.approx(DRAFT_COST)  # held back or sent, the draft cost the same
    summary = analytics.summarize(analytics.load_tickets(pipeline.ledger))
    assert (summary.tickets, summary.cost_usd) == (1, pytest.approx(DRAFT_COST))
    if agent_acts == "nothing":
        assert result == "reply posted" and [m["public"] for m in bot] == [True]
        assert decision["action"] == "auto_send" and (summary.auto_sent, summary.held_back) == (1, 0)
        return
    assert result.startswith("silent: a human agent") and result.endswith("since the reply was drafted")
    assert bot == []
    assert pipeline.ledger.get_event(event_id).status == "done"
    assert (decision["action"], decision["code"], decision["would_send"]) == ("held_back", "taken_over", False)
    assert json.loads(decision["reasons"])[0] == f"held back: {result.removeprefix('silent: ')}"
    assert decision["draft"] == "Invoices are under Billing."
    # Neither a reply the bot sent nor a ticket it handed over: no deflection, escalation or verdict.
    assert (summary.held_back, summary.auto_sent, summary.deflected, summary.escalated) == (1, 0, 0, 0)
    assert (summary.escalation_reasons, summary.knowledge_gaps, summary.judged) == ({}, 0, 0)
    assert summary.deflection_rate == 0 and summary.latency_p50_ms is None  # nothing was posted
    assert all(band[kind] == 0 for band in analytics.confidence_vs_outcome(analytics.load_tickets(pipeline.ledger))
               for kind in ("good", "bad", "unjudged", "escalated"))

    # The task run again (its worker died before marking the event done), or another delivery of
    # the same message: the ticket is the agent's, and the draft stays recorded once.
    pipeline.ledger.set_status(event_id, "queued")
    assert pipeline.handle_event(event_id).startswith("silent: a human agent")
    assert pipeline.handle_event(record(pipeline, conversation_id, "n2")).startswith("silent: a human agent")
    assert [d["id"] for d in pipeline.ledger.decisions_for(conversation_id)] == [decision["id"]]
