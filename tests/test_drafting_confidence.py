"""Drafters and the confidence score, on hand-built tickets and sources (no index needed).

The OpenAI drafter talks to a stand-in server over loopback that speaks the chat completions
wire format, so the real `openai` client is exercised.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from helpdesk_bot.confidence import score
from helpdesk_bot.domain import Chunk, Draft, Message, Source, Ticket
from helpdesk_bot.drafting import RESPONSE_SCHEMA, SYSTEM_PROMPT, ExtractiveDrafter, OpenAIDrafter
from helpdesk_bot.errors import AIUnavailable
from helpdesk_bot.groundedness import without_lead_in
from helpdesk_bot.knowledge import Article, chunk_article
from integrations.llm_standin import StandinServer

INVOICES = Chunk(
    id="invoices#0",
    article_id="invoices",
    title="Downloading invoices",
    heading="Billing › Invoices",
    url="https://help.example.com/invoices",
    text="\n".join([
        "Invoices are available to workspace owners and billing admins.",
        "To download an invoice, open Settings, choose Billing and click Invoice history.",
        "Each invoice can be saved as a PDF file from that page.",
        "Card payments are charged on the first day of each month.",
    ]),
)
PASSWORDS = Chunk(
    id="passwords#0",
    article_id="passwords",
    title="Resetting your password",
    heading="Account › Sign-in",
    url="https://help.example.com/passwords",
    text="\n".join([
        "Forgot your password? Click Forgot password on the sign-in page.",
        "We email a reset link that works for one hour.",
    ]),
)
EXPORTS = Chunk(
    id="exports#1",
    article_id="exports",
    title="Exporting projects",
    heading="Projects › Export",
    text="Project owners can export a project as CSV from the project menu.",
)


def ticket(question: str, subject: str = "", name: str = "Maria Lopez", tags: tuple[str, ...] = ()) -> Ticket:
    return Ticket(helpdesk="sandbox", id="101", subject=subject, messages=(Message("customer", question),),
                  tags=frozenset(tags), requester_name=name)


def source(chunk: Chunk, dense: float = 0.6, keyword: float = 1.0, fused: float = 0.5) -> Source:
    return Source(chunk=chunk, score=fused, dense=dense, keyword=keyword)


def answered(text: str, *cited: str) -> Draft:
    return Draft(text=text, cited=cited, declined=False, drafter="extractive")


def declined(reason: str = "nothing in the sources") -> Draft:
    return Draft(text="", cited=(), declined=True, drafter="extractive", decline_reason=reason)


INVOICE_QUESTION = ticket("How can I download an invoice as a PDF?", subject="Invoice PDF")
ARCHIVING = Chunk(id="archiving#0", article_id="archiving", title="Archiving projects", heading="Projects",
                  text="Archived projects are read-only and hidden from the sidebar. Archiving keeps every task.")
DELETING = Chunk(id="deleting#0", article_id="deleting", title="Deleting projects", heading="Projects",
                 text="Deleted projects stay in the trash for 30 days. After 30 days they are gone for good.")


# --- ExtractiveDrafter ------------------------------------------------------------------------


def test_extractive_draft_quotes_only_the_chosen_chunk_after_a_lead_in_citing_it():
    draft = ExtractiveDrafter().draft(INVOICE_QUESTION, [source(INVOICES)])
    assert not draft.declined
    lead_in, *paragraphs = draft.text.split("\n\n")
    assert lead_in == "From our article “Downloading invoices” [1]:"
    assert paragraphs
    assert all(line in INVOICES.text.split("\n") for line in paragraphs)


def test_extractive_draft_picks_the_lines_that_answer():
    draft = ExtractiveDrafter().draft(INVOICE_QUESTION, [source(INVOICES)])
    assert "click Invoice history" in draft.text
    assert "saved as a PDF" in draft.text
    assert "Card payments" not in draft.text


def test_extractive_draft_cites_the_matching_chunk_among_others():
    sources = [source(PASSWORDS, dense=0.3), source(INVOICES, dense=0.3), source(EXPORTS, dense=0.3)]
    draft = ExtractiveDrafter().draft(INVOICE_QUESTION, sources)
    assert draft.cited == ("invoices#0",)
    assert draft.drafter == "extractive"


def test_a_chunk_cut_mid_sentence_is_quoted_from_whole_sentences():
    """Text exported from a PDF manual has no paragraph breaks: the chunker cuts it by words, and
    a reply quoted from the cut must neither start nor end with a fragment."""
    said = " ".join(f"Setting {n} of the home screen changes how the remote control moves the focus on the screen."
                    for n in range(40))
    cut = chunk_article(Article("manual", "Home screen", f"<p>{said}</p>"))[1]
    assert cut.text[:1].islower() and not cut.text.endswith(".")  # as the chunker cuts it
    draft = ExtractiveDrafter().draft(ticket("How does the remote control move the focus on the home screen?"),
                                      [source(cut)])
    body = without_lead_in(draft.text).replace(" [1]", "")
    assert body.startswith("Setting ") and body.endswith("screen."), body


def test_a_chunk_that_starts_with_the_end_of_a_sentence_is_quoted_from_the_next_one():
    cut = Chunk(id="season#1", article_id="season", title="Season 1", text=", the events are recapped in a clip show. "
                "The season was released on DVD on February 14, 2006.")
    draft = ExtractiveDrafter().draft(ticket("When was the season released on DVD?"), [source(cut)])
    assert without_lead_in(draft.text).startswith("The season was released"), draft.text


GUESTS = Chunk(id="guests#0", article_id="guests", title="Guest access for clients", heading="Members › Guests",
               text="Invite clients as guests to the projects they need. Guests are free: they take no paid seat.")
SEATS = Chunk(id="seats#0", article_id="seats", title="Changing your number of seats", heading="Billing › Seats",
              text="Each seat is charged every month, on the day your plan renews.")


def test_a_follow_up_that_points_back_is_answered_about_what_it_points_at():
    """ "Are they charged for a seat?" is about the guests of the turn before, not seats in general
    (a conversation's "When did it take place?", after a question about a drama competition, had
    been answered from an architecture article that says "taking place")."""
    follow_up = Ticket(helpdesk="sandbox", id="101", subject="", messages=(
        Message("customer", "Can our clients see our projects as guests?"),
        Message("bot", "Invite clients as guests to the projects they need. [1]"),
        Message("customer", "Are they charged for a seat?"),
    ))
    draft = ExtractiveDrafter().draft(follow_up, [source(GUESTS, fused=0.7), source(SEATS, fused=0.5)])
    assert draft.cited[0] == "guests#0"
    assert "take no paid seat" in draft.text
    # Without a word pointing back, the follow-up's own words lead.
    draft = ExtractiveDrafter().draft(replace(follow_up, messages=follow_up.messages[:2] + (
        Message("customer", "How are seats charged?"),)), [source(GUESTS, fused=0.7), source(SEATS, fused=0.5)])
    assert draft.cited[0] == "seats#0"


def test_a_follow_up_that_points_back_is_not_answered_by_the_earlier_turns_words_alone():
    """The list of limits does not say what happens over them: a person answers."""
    limits = Chunk(id="limits#0", article_id="limits", title="API rate limits", heading="API › Limits",
                   text="Some limits apply on every plan: the search endpoint allows 30 requests per minute.")
    follow_up = Ticket(helpdesk="sandbox", id="101", subject="", messages=(
        Message("customer", "What are the API rate limits?"),
        Message("bot", "The search endpoint allows 30 requests per minute. [1]"),
        Message("customer", "What happens if we go over them?"),
    ))
    assert ExtractiveDrafter().draft(follow_up, [source(limits)]).declined


def test_extractive_drafter_declines_without_sources():
    draft = ExtractiveDrafter().draft(INVOICE_QUESTION, [])
    assert draft.declined
    assert draft.text == ""
    assert draft.cited == ()
    assert draft.decline_reason == "no knowledge was retrieved"


def test_extractive_drafter_declines_when_the_sources_miss_the_question():
    question = ticket("Can the dashboard colour theme be switched to dark mode?")
    draft = ExtractiveDrafter().draft(question, [source(INVOICES), source(PASSWORDS)])
    assert draft.declined
    assert draft.cited == ()
    assert "covers only 0%" in draft.decline_reason


# --- OpenAIDrafter against a loopback stand-in -------------------------------------------------


def completion(content: str, prompt_tokens: int = 321, completion_tokens: int = 45) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1713374290,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def reply(can_answer: bool, answer: str = "", citations: list[str] | None = None, reason: str = "") -> dict:
    return completion(json.dumps({"can_answer": can_answer, "answer": answer,
                                  "citations": citations or [], "reason": reason}))


def api_error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@pytest.fixture(scope="module")
def llm_server():
    server = StandinServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm(llm_server):
    """The stand-in with a clean request log; set `llm.reply = (status, headers, body)`."""
    llm_server.clear()
    return llm_server


@pytest.fixture
def drafter(llm):
    return OpenAIDrafter(api_key="test", base_url=f"http://127.0.0.1:{llm.server_port}/v1", model="m", timeout=5)


SOURCES = [source(PASSWORDS), source(INVOICES), source(EXPORTS)]  # S1, S2, S3


def test_openai_request_carries_the_prompt_schema_and_sources(llm, drafter):
    llm.reply = (200, {}, reply(True, "Open Settings › Billing › Invoice history [S2].", ["S2"]))
    drafter.draft(INVOICE_QUESTION, SOURCES)
    (request,) = llm.requests
    body = request["json"]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer test"
    assert body["model"] == "m"
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert body["response_format"] == {"type": "json_schema", "json_schema": RESPONSE_SCHEMA}
    user = body["messages"][1]["content"]
    assert "[S2] Downloading invoices › Billing › Invoices" in user
    assert "<ticket>\ncustomer: How can I download an invoice as a PDF?\n</ticket>" in user


def test_openai_drafter_reads_the_earlier_turns_of_a_follow_up(llm, drafter):
    llm.reply = (200, {}, reply(True, "Click Company details [S1].", ["S1"]))
    follow_up = Ticket(helpdesk="sandbox", id="101", subject="Invoice PDF", requester_name="Maria Lopez", messages=(
        Message("customer", "How can I download an invoice as a PDF?"),
        Message("bot", "Open Settings, choose Billing and click Invoice history. [1]"),
        Message("agent", "internal: VIP customer", public=False),
        Message("customer", "And where do I add our VAT number?"),
    ))
    drafter.draft(follow_up, SOURCES)
    user = llm.requests[-1]["json"]["messages"][1]["content"]
    assert ("<ticket>\ncustomer: How can I download an invoice as a PDF?\n"
            "bot: Open Settings, choose Billing and click Invoice history. [1]\n"
            "customer: And where do I add our VAT number?\n</ticket>") in user
    assert "VIP" not in user  # internal notes never reach the model


def test_openai_citation_is_renumbered_to_the_chunk_id(llm, drafter):
    llm.reply = (200, {}, reply(True, "Open Settings, choose Billing and click Invoice history [S2].", ["S2"]))
    draft = drafter.draft(INVOICE_QUESTION, SOURCES)
    assert not draft.declined
    assert draft.text == "Open Settings, choose Billing and click Invoice history [1]."
    assert draft.cited == ("invoices#0",)
    assert draft.drafter == "openai"


def test_openai_citations_are_numbered_in_order_of_first_use(llm, drafter):
    llm.reply = (200, {}, reply(True, "Export as CSV [S3]. Reset links last an hour [S1]. Again [S3].", ["S3", "S1"]))
    draft = drafter.draft(INVOICE_QUESTION, SOURCES)
    assert draft.text == "Export as CSV [1]. Reset links last an hour [2]. Again [1]."
    assert draft.cited == ("exports#1", "passwords#0")


def test_openai_unknown_citation_is_dropped(llm, drafter):
    llm.reply = (200, {}, reply(True, "Click Invoice history [S2]. Refunds take a day [S9].", ["S2", "S9"]))
    draft = drafter.draft(INVOICE_QUESTION, SOURCES)
    assert "[S9]" not in draft.text
    assert not re.search(r"\[\d+\]\.$", draft.text)  # the refund sentence carries no marker
    assert draft.cited == ("invoices#0",)


def test_openai_cannot_answer_declines_with_its_reason(llm, drafter):
    llm.reply = (200, {}, reply(False, reason="the sources say nothing about refunds"))
    draft = drafter.draft(INVOICE_QUESTION, SOURCES)
    assert draft.declined
    assert draft.decline_reason == "the sources say nothing about refunds"
    assert draft.text == ""


def test_openai_tokens_are_recorded(llm, drafter):
    llm.reply = (200, {}, completion(json.dumps({"can_answer": True, "answer": "Yes [S2].",
                                                  "citations": ["S2"], "reason": ""}), 1234, 56))
    draft = drafter.draft(INVOICE_QUESTION, SOURCES)
    assert (draft.prompt_tokens, draft.completion_tokens) == (1234, 56)


@pytest.mark.parametrize("content", [
    "Sure! Open Settings [S2].",  # prose, not JSON
    "",
    "[]",
    '{"answer": "Open Settings [S2]."}',  # no can_answer
    '{"can_answer": true, "citations": ["S2"]}',  # no answer
    '{"can_answer": true, "answer": "Open Settings [S2].", "citations": null, "reason": ""}',
])
def test_openai_malformed_output_declines(llm, drafter, content):
    llm.reply = (200, {}, completion(content, 100, 7))
    draft = drafter.draft(INVOICE_QUESTION, SOURCES)
    assert draft.declined
    assert draft.decline_reason == "the model returned malformed output"
    assert (draft.prompt_tokens, draft.completion_tokens) == (100, 7)  # the call still cost tokens


def test_openai_string_can_answer_is_malformed(llm, drafter):
    llm.reply = (200, {}, completion(json.dumps({"can_answer": "false", "answer": "I think refunds take a week [S2].",
                                                 "citations": ["S2"], "reason": "not in the sources"})))
    assert drafter.draft(INVOICE_QUESTION, SOURCES).declined


def test_openai_completion_without_choices_declines(llm, drafter):
    llm.reply = (200, {}, {**completion("{}"), "choices": []})
    assert drafter.draft(INVOICE_QUESTION, SOURCES).declined


def test_openai_without_sources_declines_without_a_call(llm, drafter):
    draft = drafter.draft(INVOICE_QUESTION, [])
    assert draft.declined
    assert not llm.requests


def test_openai_server_error_is_ai_unavailable(llm, drafter):
    llm.reply = (500, {}, api_error("The server had an error", "server_error"))
    with pytest.raises(AIUnavailable):
        drafter.draft(INVOICE_QUESTION, SOURCES)
    assert len(llm.requests) == 1  # no retry inside the client: the task queue retries


def test_openai_rate_limit_is_ai_unavailable_with_retry_after(llm, drafter):
    llm.reply = (429, {"Retry-After": "7"}, api_error("Rate limit reached", "requests"))
    with pytest.raises(AIUnavailable) as caught:
        drafter.draft(INVOICE_QUESTION, SOURCES)
    assert caught.value.retry_after == 7.0
    assert len(llm.requests) == 1


def test_the_stand_in_keeps_only_its_latest_requests():
    server = StandinServer(kept_requests=2).start()
    try:
        drafter = OpenAIDrafter(api_key="test", base_url=server.base_url, model="m", timeout=5)
        for question in ("first", "second", "third"):
            drafter.draft(ticket(f"{question} question"), SOURCES)
        kept = [request["json"]["messages"][1]["content"] for request in server.requests]
        assert server.calls == 3 and len(kept) == 2
        assert "second question" in kept[0] and "third question" in kept[1]
    finally:
        server.stop()


def test_openai_unreachable_server_is_ai_unavailable():
    drafter = OpenAIDrafter(api_key="test", base_url="http://127.0.0.1:1/v1", model="m", timeout=2)
    with pytest.raises(AIUnavailable):
        drafter.draft(INVOICE_QUESTION, SOURCES)


# --- confidence --------------------------------------------------------------------------------

COMPONENTS = ("retrieval_strength", "retrieval_margin", "rankings_agree", "question_coverage", "draft_support",
              "keyword_match", "answer_form", "citations", "drafter_answered", "risk")
COPIED = answered("To download an invoice, open Settings, choose Billing and click Invoice history. [1]", "invoices#0")


def test_confidence_has_the_named_components_in_range():
    confidence = score(INVOICE_QUESTION, [source(INVOICES), source(PASSWORDS, dense=0.1, keyword=0.0)], COPIED)
    assert tuple(c.name for c in confidence.components) == COMPONENTS
    for component in confidence.components:
        assert 0.0 <= component.value <= 1.0, component
        assert component.detail.strip(), component


@pytest.mark.parametrize("dense, keyword", [(-1.0, 0.0), (0.0, 0.0), (0.4, 0.5), (0.7, 1.0), (1.0, 1.0)])
def test_confidence_is_an_int_from_0_to_100(dense, keyword):
    confidence = score(INVOICE_QUESTION, [source(INVOICES, dense=dense, keyword=keyword)], COPIED)
    assert isinstance(confidence.score, int)
    assert 0 <= confidence.score <= 100


def test_confidence_is_100_when_every_signal_is_strong():
    where = ticket("Where are invoices saved as PDF?")  # the draft gives the place: Settings, Billing, Invoice history
    confidence = score(where, [source(INVOICES, dense=0.8, keyword=1.0)], COPIED)
    assert confidence.score == 100
    assert confidence.caps == ()


def test_declined_draft_scores_0_with_a_cap():
    confidence = score(INVOICE_QUESTION, [source(INVOICES, dense=0.9)], declined("no passage about PDFs"))
    assert confidence.score == 0
    assert confidence.caps == ("the drafter declined: no passage about PDFs",)
    assert confidence.as_dict()["drafter_answered"] == 0.0


def test_draft_copied_from_its_cited_source_is_fully_supported():
    confidence = score(INVOICE_QUESTION, [source(INVOICES)], COPIED)
    assert confidence.as_dict()["draft_support"] == 1.0


def test_draft_not_found_in_its_cited_source_has_low_support():
    invented = answered("Enterprise customers receive unlimited storage and priority phone support. "
                        "Refunds arrive within three business days. [1]", "invoices#0")
    confidence = score(INVOICE_QUESTION, [source(INVOICES)], invented)
    support = next(c for c in confidence.components if c.name == "draft_support")
    assert support.value < 0.5
    assert "2 sentence(s) not supported" in support.detail


def test_draft_citing_a_chunk_that_was_not_retrieved_has_no_support():
    confidence = score(INVOICE_QUESTION, [source(INVOICES)], answered(COPIED.text, "somewhere#3"))
    assert confidence.as_dict()["draft_support"] == 0.0


def test_question_coverage_names_the_missing_terms():
    question = ticket("How can I download an invoice in Swahili?")
    coverage = next(c for c in score(question, [source(INVOICES)], COPIED).components if c.name == "question_coverage")
    assert coverage.value == pytest.approx(2 / 3)
    assert coverage.detail.endswith("missing: swahili")


def test_stronger_retrieval_never_lowers_the_score():
    scores = [score(INVOICE_QUESTION, [source(INVOICES, dense=d)], COPIED).score
              for d in (-0.5, 0.0, 0.2, 0.3, 0.45, 0.6, 0.65, 0.9, 1.0)]
    assert scores == sorted(scores)
    assert scores[-1] > scores[0]  # and it does count


def test_retrieval_strength_uses_the_best_source():
    weak_first = [source(PASSWORDS, dense=0.1), source(INVOICES, dense=0.65)]
    strength = next(c for c in score(INVOICE_QUESTION, weak_first, COPIED).components if c.name == "retrieval_strength")
    assert strength.value == 1.0
    assert strength.detail == "best passage similarity 0.65"


def component(confidence, name: str):
    return next(c for c in confidence.components if c.name == name)


def matched(chunk: Chunk, maxsim: float, dense: float = 0.6) -> Source:
    return Source(chunk=chunk, score=0.5, dense=dense, keyword=1.0, maxsim=maxsim)


def test_the_word_by_word_match_is_weighed_next_to_the_cosine_when_retrieval_measured_it():
    confidence = score(INVOICE_QUESTION, [matched(INVOICES, 0.71), matched(PASSWORDS, 0.40)], COPIED)
    names = [c.name for c in confidence.components]
    assert names == [COMPONENTS[0], "token_match", *COMPONENTS[1:]]
    match = component(confidence, "token_match")
    assert match.weight > 0 and component(confidence, "retrieval_strength").weight > 0
    assert match.detail == "best passage matches the question word by word at 0.71"
    scores = [score(INVOICE_QUESTION, [matched(INVOICES, m, dense=0.3)], COPIED).score for m in (0.2, 0.4, 0.55, 0.7, 0.8, 1.0)]
    assert scores == sorted(scores) and scores[-1] > scores[0]


def test_the_word_by_word_match_reads_only_the_passages_a_draft_is_made_from():
    fourth_best = [matched(PASSWORDS, 0.3), matched(PASSWORDS, 0.3), matched(INVOICES, 0.3), matched(EXPORTS, 0.9)]
    assert component(score(INVOICE_QUESTION, fourth_best, COPIED), "token_match").value == 0.0


def test_a_near_tie_between_two_articles_lowers_the_score():
    clear = score(INVOICE_QUESTION, [source(INVOICES, fused=0.8), source(PASSWORDS, fused=0.5)], COPIED)
    tied = score(INVOICE_QUESTION, [source(INVOICES, fused=0.8), source(PASSWORDS, fused=0.79)], COPIED)
    assert component(clear, "retrieval_margin").value == 1.0
    assert component(tied, "retrieval_margin").value == pytest.approx(0.01 / 0.15)  # of the lead that is clear
    assert "'Resetting your password'" in component(tied, "retrieval_margin").detail
    assert tied.score < clear.score


def test_margin_compares_articles_not_passages_of_the_same_article():
    second_passage = Chunk(id="invoices#1", article_id="invoices", title=INVOICES.title, heading="", text="PDF")
    margin = component(score(INVOICE_QUESTION, [source(INVOICES, fused=0.8), source(second_passage, fused=0.79),
                                                source(PASSWORDS, fused=0.55)], COPIED), "retrieval_margin")
    assert margin.value == 1.0  # 0.8 against the password article's 0.55


def test_a_single_matching_article_has_the_full_margin():
    assert component(score(INVOICE_QUESTION, [source(INVOICES)], COPIED), "retrieval_margin").value == 1.0


def test_rankings_agreement_is_shown_but_not_weighed():
    disagree = [source(INVOICES, dense=0.3, keyword=1.0, fused=0.7), source(PASSWORDS, dense=0.6, keyword=0.2, fused=0.4)]
    agreement = component(score(INVOICE_QUESTION, disagree, COPIED), "rankings_agree")
    assert agreement.value == 0.0 and agreement.weight == 0.0
    assert "closest in meaning: 'Resetting your password'" in agreement.detail
    assert component(score(INVOICE_QUESTION, [source(INVOICES)], COPIED), "rankings_agree").value == 1.0


def test_a_draft_citing_nothing_retrieved_is_held_at_0():
    confidence = score(INVOICE_QUESTION, [source(INVOICES, dense=0.9)], answered(COPIED.text, "somewhere#3"))
    assert confidence.score == 0
    assert component(confidence, "citations").value == 0.0
    assert confidence.caps == ("the draft cites none of the retrieved sources: score held at 0",)


def test_a_second_article_about_as_close_to_the_question_is_quoted_too():
    question = ticket("What is the difference between archived and deleted projects?")
    draft = ExtractiveDrafter().draft(question, [source(ARCHIVING, dense=0.6), source(DELETING, dense=0.58)])
    assert draft.cited == ("archiving#0", "deleting#0")
    assert "read-only" in draft.text and "30 days" in draft.text
    assert "Also, from our article “Deleting projects” [2]:" in draft.text


def test_a_second_article_far_from_the_question_is_left_out():
    question = ticket("What is the difference between archived and deleted projects?")
    draft = ExtractiveDrafter().draft(question, [source(ARCHIVING, dense=0.6), source(DELETING, dense=0.3)])
    assert draft.cited == ("archiving#0",) and "30 days" not in draft.text


def test_a_procedure_comes_from_one_article():
    question = ticket("How do I download an invoice?")
    draft = ExtractiveDrafter().draft(question, [source(INVOICES), source(EXPORTS, dense=0.6)])
    assert draft.cited == ("invoices#0",)
