"""The change log each re-index keeps, and the verdicts on the answers a change touches."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from helpdesk_bot.domain import ARTICLE, PAST_TICKET, Chunk, TicketEvent
from helpdesk_bot.impact import Edit, ImpactCheck, figures, judge
from helpdesk_bot.ledger.article_changes import SOURCE_REMOVED, STILL_SUPPORTED, UNSUPPORTED_NOW
from helpdesk_bot.ledger import Ledger, decisions
from helpdesk_bot.policy import Policy

RESET = ("Open the email and click the link. The link is valid for 60 minutes and can be used once. "
         "After five wrong passwords the account locks for 15 minutes.")
ANSWER = "Open the email and click the link. The link is valid for 60 minutes and can be used once. [1]"


def chunk(article: str, n: int, text: str, kind: str = ARTICLE) -> Chunk:
    return Chunk(id=f"{article}#{n}", article_id=article, title=f"Article {article}", text=text,
                 url=f"https://help.example.com/{article}", kind=kind)


# --- figures and verdicts ----------------------------------------------------------------------


@pytest.mark.parametrize("text, found", [
    ("valid for 60 minutes", ["60 minutes"]),
    ("a 14-day trial, then $12.50 a seat", ["14-day", "$12.50"]),
    ("up to 1,000 GB and 20% off", ["1,000 GB", "20%"]),
    ("see step [2] of the guide", []),  # a citation mark is not a figure
])
def test_figures_are_numbers_with_their_unit_or_currency(text, found):
    assert [f.text for f in figures(text)] == found


def test_a_day_written_two_ways_is_one_figure():
    [hyphenated], [spaced] = figures("a 14-day trial"), figures("a trial of 14 days")
    assert hyphenated.key == spaced.key


def test_a_changed_number_makes_the_answer_unsupported_and_is_called_out():
    new = RESET.replace("60 minutes", "30 minutes")
    verdict = judge(ANSWER, Edit.of((RESET,), (new,)))
    assert verdict.verdict == UNSUPPORTED_NOW
    [affected] = verdict.sentences
    assert affected["sentence"].startswith("The link is valid for 60 minutes")
    assert affected["new"] == "The link is valid for 30 minutes and can be used once."
    assert affected["old"] == "The link is valid for 60 minutes and can be used once."
    assert affected["figures"] == [{"old": "60 minutes", "new": "30 minutes"}]


def test_a_sentence_that_lost_its_support_is_named_beside_the_new_text():
    new = "Open the email and click the link. Reset links now come by text message only."
    verdict = judge(ANSWER, Edit.of((RESET,), (new,)))
    assert verdict.verdict == UNSUPPORTED_NOW
    assert [s["sentence"] for s in verdict.sentences] == ["The link is valid for 60 minutes and can be used once."]


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("five wrong", "five  wrong"),  # whitespace
    lambda text: text.replace("Open the email", "Open the e-mail") + " ",  # a spelling
    lambda text: text.replace("account locks", "acount locks"),  # a typo elsewhere
])
def test_a_cosmetic_change_leaves_the_answer_still_supported(edit):
    verdict = judge(ANSWER, Edit.of((RESET,), (edit(RESET),)))
    assert verdict == judge(ANSWER, Edit.of((RESET,), (RESET,)))
    assert verdict.verdict == STILL_SUPPORTED and verdict.sentences == []


def test_text_moved_to_the_next_chunk_still_supports_the_answer():
    first, second = "Open the email and click the link.", "The link is valid for 60 minutes and can be used once."
    verdict = judge(ANSWER, Edit.of((RESET,), (first, second)))
    assert verdict.verdict == STILL_SUPPORTED


def test_a_negation_added_to_the_article_makes_the_answer_unsupported():
    before = "Guests can export a project as CSV. Owners can export every project."
    after = "Guests cannot export a project as CSV. Owners can export every project."
    verdict = judge("Guests can export a project as CSV. [1]", Edit.of((before,), (after,)))
    assert verdict.verdict == UNSUPPORTED_NOW
    assert [s["new"] for s in verdict.sentences] == ["Guests cannot export a project as CSV."]


def test_a_removed_article_is_source_removed_with_the_sentences_it_carried():
    verdict = judge(ANSWER, Edit.of((RESET,), ()), removed=True)
    assert verdict.verdict == SOURCE_REMOVED
    assert all(s["new"] is None for s in verdict.sentences) and verdict.sentences


# --- the change log --------------------------------------------------------------------------------


@pytest.fixture
def ledger(database_url):
    ledger = Ledger(database_url)
    yield ledger
    ledger.dispose()


@pytest.fixture
def store(ledger):
    return ledger  # the ledger's ArticleChangeStore


def changes(store: Ledger) -> list[tuple]:
    with store.engine.connect() as db:
        rows = db.execute(sa.text(
            "SELECT a.article_id, a.change, c.chunk_id, c.old_hash IS NOT NULL, c.new_hash IS NOT NULL "
            "FROM chunk_changes c JOIN article_changes a ON a.id = c.article_change_id ORDER BY c.id"))
        return [tuple(r) for r in rows]


def test_each_run_keeps_the_old_and_new_hash_of_changed_chunks_and_the_removed_ones(store):
    store.record_reindex("files", [chunk("a", 0, "Alpha one."), chunk("a", 1, "Alpha two."),
                                   chunk("b", 0, "Beta."), chunk("c", 0, "Gamma.")], [])
    assert changes(store) == []  # new articles change nothing

    ids = store.record_reindex("files", [chunk("a", 0, "Alpha one."), chunk("b", 0, "Beta, edited.")], ["c"])
    assert len(ids) == 3
    assert changes(store) == [("a", "updated", "a#1", True, False),  # the article shrank: its chunk 1 is gone
                              ("b", "updated", "b#0", True, True), ("c", "removed", "c#0", True, False)]
    assert store.article_texts(["b", "c"]) == {"b": ["Beta, edited."]}


def test_a_run_over_every_article_removes_those_it_no_longer_has(store):
    store.record_reindex("files", [chunk("a", 0, "Alpha."), chunk("b", 0, "Beta.")], [])
    store.record_reindex("zendesk help center", [chunk("a", 0, "Alpha.")], [], every_article={"a"})
    assert changes(store) == [("b", "removed", "b#0", True, False)]


def test_an_unchanged_rewrite_and_past_tickets_change_nothing(store):
    store.record_reindex("files", [chunk("a", 0, "Alpha.")], [])
    assert store.record_reindex("rebuild", [chunk("a", 0, "Alpha.")], [], every_article={"a"}) == []
    assert store.record_reindex("past tickets", [chunk("ticket:9", 0, "Q and A", kind=PAST_TICKET)], ["ticket:8"]) == []
    assert store.unchecked_changes() == []


# --- the impact check ---------------------------------------------------------------------------------


class FakeHelpdesk:
    """Only the status read and the note: what the impact check asks of a helpdesk."""

    name = "zendesk"

    def __init__(self, status: str = "pending"):
        self.status, self.notes = status, []

    def fetch_ticket(self, ticket_id: str, requester: bool = True):
        return type("T", (), {"status": self.status})()

    def post_note(self, ticket_id, html, group_id, tags):
        self.notes.append((ticket_id, html, tags))
        return {"id": len(self.notes)}

    def has_bot_comment(self, ticket_id, html):
        return any(n[0] == ticket_id and n[1] == html for n in self.notes)


def answered(ledger: Ledger, store: Ledger, ticket_id: str, cited: list[Chunk], draft: str = ANSWER,
             action: str = "auto_send", at: float | None = None) -> int:
    at = time.time() if at is None else at
    event_id, _ = ledger.record_event(TicketEvent("zendesk", f"d-{ticket_id}", ticket_id))
    with ledger.engine.begin() as db:
        db.execute(decisions.insert().values(
            event_id=event_id, helpdesk="zendesk", ticket_id=ticket_id, tags="[]", question="q", sources="[]",
            draft=draft, drafter="extractive", confidence=80, components="{}", rule="default", threshold=70,
            action=action, reasons="[]", latency_ms="{}", created_at=at))
    store.record_citations(event_id, cited, at=at)
    return event_id


def check(ledger, store, helpdesk, **policy) -> dict:
    return ImpactCheck(ledger, {"zendesk": helpdesk}, Policy(**policy), days=30).run()


def test_answers_citing_the_old_text_are_checked_and_the_agent_told_once(ledger, store):
    before = chunk("reset", 0, RESET)
    store.record_reindex("zendesk help center", [before], [])
    answered(ledger, store, "1", [before])
    answered(ledger, store, "2", [before], draft="Open the email and click the link. [1]")
    answered(ledger, store, "3", [before], at=time.time() - 40 * 86400)  # older than HELPDESK_IMPACT_DAYS
    helpdesk = FakeHelpdesk()

    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET.replace("60 minutes", "30 minutes"))], [])
    counts = check(ledger, store, helpdesk)
    assert (counts["changes"], counts[UNSUPPORTED_NOW], counts[STILL_SUPPORTED], counts["notes_posted"]) == (1, 1, 1, 1)
    [(ticket_id, html, tags)] = helpdesk.notes
    assert ticket_id == "1" and "60 minutes" in html and "30 minutes" in html and "ai_source_changed" in tags

    # Due again (a check that died between posting the note and noting it), it is not posted twice.
    with store.engine.begin() as db:
        db.execute(sa.text("UPDATE answer_impacts SET note = 'due' WHERE verdict != 'still_supported'"))
    check(ledger, store, helpdesk)
    assert len(helpdesk.notes) == 1
    [flagged] = store.affected_answers(since=0, verdict=UNSUPPORTED_NOW)
    assert (flagged["ticket_id"], flagged["note"], flagged["ticket_status"]) == ("1", "posted", "pending")
    assert flagged["passages"] == [{"chunk_id": "reset#0", "old": RESET, "new": RESET.replace("60 minutes", "30 minutes")}]


def test_an_answer_drafted_from_the_new_text_is_not_touched(ledger, store):
    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET)], [])
    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET.replace("60", "30"))], [])
    answered(ledger, store, "1", [chunk("reset", 0, RESET.replace("60", "30"))])  # after the change was indexed
    assert check(ledger, store, FakeHelpdesk())["unsupported_now"] == 0
    assert store.affected_answers(since=0) == []


def test_no_note_on_a_solved_ticket_nor_when_the_policy_turns_notes_off(ledger, store):
    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET), chunk("trash", 0, "Trash keeps items 30 days.")], [])
    answered(ledger, store, "1", [chunk("reset", 0, RESET)])
    answered(ledger, store, "2", [chunk("trash", 0, "Trash keeps items 30 days.")],
             draft="Deleted items stay in the Trash for 30 days. [1]")
    solved = FakeHelpdesk(status="solved")
    store.record_reindex("zendesk help center", [], ["reset"])
    assert check(ledger, store, solved)[SOURCE_REMOVED] == 1 and solved.notes == []
    store.record_reindex("zendesk help center", [chunk("trash", 0, "Trash keeps items 14 days.")], [])
    open_ = FakeHelpdesk()
    assert check(ledger, store, open_, article_change_notes=False)[UNSUPPORTED_NOW] == 1 and open_.notes == []
    assert {(i["ticket_id"], i["note"]) for i in store.affected_answers(since=0)} == {("1", "closed"), ("2", "off")}


def test_a_helpdesk_error_leaves_the_note_due_for_the_next_check(ledger, store):
    from helpdesk_bot.errors import TransientError

    class Down(FakeHelpdesk):
        def post_note(self, *args):
            raise TransientError("Zendesk error 503")

    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET)], [])
    answered(ledger, store, "1", [chunk("reset", 0, RESET)])
    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET.replace("60", "30"))], [])
    check(ledger, store, Down())
    [impact] = store.affected_answers(since=0)
    assert impact["note"] == "due" and "503" in impact["note_error"]
    back = FakeHelpdesk()
    assert check(ledger, store, back)["notes_posted"] == 1 and len(back.notes) == 1


def test_a_re_index_that_changed_nothing_does_no_impact_work(ledger, store):
    store.record_reindex("zendesk help center", [chunk("reset", 0, RESET)], [])
    answered(ledger, store, "1", [chunk("reset", 0, RESET)])

    class Untouchable:
        def __getattr__(self, name):
            return getattr(ledger, name)

        def decisions_of_events(self, *_):
            raise AssertionError("no decision is read when nothing changed")

    counts = ImpactCheck(Untouchable(), {}, Policy()).run()
    assert counts["changes"] == 0


def test_answers_recorded_before_the_upgrade_are_cited_from_their_sources(empty_database_url):
    from alembic import command
    from alembic.config import Config

    from helpdesk_bot.ledger import MIGRATIONS

    ledger = Ledger(empty_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ledger.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
    event_id, _ = ledger.record_event(TicketEvent("zendesk", "d-1", "1"))
    with ledger.engine.begin() as db:
        db.execute(sa.text(
            "INSERT INTO decisions (event_id, helpdesk, ticket_id, tags, question, sources, draft, drafter, confidence, "
            "components, rule, threshold, action, reasons, latency_ms, prompt_tokens, completion_tokens, created_at) "
            "VALUES (:e, 'zendesk', '1', '[]', 'q', :sources, 'd [1]', 'extractive', 80, '{}', 'default', 70, "
            "'auto_send', '[]', '{}', 0, 0, 1000.0)"),
            {"e": event_id, "sources": json.dumps([{"id": "reset#0", "cited": 1}, {"id": "reset#1", "cited": 0}])})
    ledger.migrate()
    with ledger.engine.connect() as db:
        assert db.execute(sa.text("SELECT event_id, chunk_id, text_hash, cited_at FROM cited_chunks")).all() == [
            (event_id, "reset#0", None, 1000.0)]
    ledger.dispose()


def test_an_answer_older_than_the_last_change_is_compared_with_what_it_quoted(ledger, store):
    v1, v2, v3 = RESET, RESET.replace("used once", "used twice"), RESET.replace("60 minutes", "30 minutes")
    store.record_reindex("zendesk help center", [chunk("reset", 0, v1)], [])
    answered(ledger, store, "1", [chunk("reset", 0, v1)])
    store.record_reindex("zendesk help center", [chunk("reset", 0, v2)], [])
    check(ledger, store, FakeHelpdesk())  # "used once" became "used twice": flagged
    store.record_reindex("zendesk help center", [chunk("reset", 0, v3)], [])
    check(ledger, store, FakeHelpdesk())
    latest = store.affected_answers(since=0)[0]
    assert latest["passages"][0]["new"] == v3
    [sentence] = latest["sentences"]
    assert sentence["old"] == "The link is valid for 60 minutes and can be used once."  # as quoted, not as of v2
    assert sentence["figures"] == [{"old": "60 minutes", "new": "30 minutes"}]
