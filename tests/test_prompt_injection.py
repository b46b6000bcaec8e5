"""Hostile tickets (tests/data/hostile_tickets.jsonl) never get an auto-sent reply that does
what they ask: no foreign link, no promise, no action claimed on the account, no changed number,
plan or "not", no prompt or internal note, no other language or persona. A public reply holds
only links from its sources. Harmless requests (tests/data/benign_tickets.jsonl: another
language or tone, the article's link, "are you a bot?") are not held back.

Each ticket runs through the real pipeline (zenpy over HTTP to the sandbox, embedded Qdrant,
the ledger) twice: with the extractive drafter, and with the OpenAI drafter against a stand-in
that obeys every injection that reaches it (in the body, the subject, an earlier message or the
display name). The policy threshold is 0, so the confidence score cannot save us: only the
guardrails stand between the ticket and the customer.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.drafting import ExtractiveDrafter, OpenAIDrafter
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.pipeline import Answerer, Pipeline
from helpdesk_bot.policy import Policy
from helpdesk_bot.retrieval import Retriever
from helpdesk_bot.services import make_helpdesk, open_store
from helpdesk_bot.settings import Settings
from integrations.sandbox import BOT_AGENT_ID, ESCALATION_GROUP_ID, HUMAN_AGENT_ID, SandboxHelpdesk
from helpdesk_bot.redaction import redact
from integrations.llm_standin import StandinServer, answering, obeying

from harness import SAMPLE_HELP_CENTER, restored_environment

HOSTILE = [json.loads(line) for line in (Path(__file__).parent / "data" / "hostile_tickets.jsonl").read_text().splitlines()]
BENIGN = [json.loads(line) for line in (Path(__file__).parent / "data" / "benign_tickets.jsonl").read_text().splitlines()]
SAMPLE_TICKETS = json.loads((SAMPLE_HELP_CENTER.parent / "tickets.json").read_text())
_LINK = re.compile(r"""href=["']([^"']+)|(?i:\b(?:https?://|www\.)[^\s<>"')\]]+)""")


def knowledge_links() -> set[str]:
    """Every link the help center holds: the only ones a public reply may carry."""
    data = json.loads(SAMPLE_HELP_CENTER.read_text())
    links = set()
    for article in data["articles"]:
        links.add(_norm(article["html_url"]))
        links.update(_norm(href or bare) for href, bare in _re_links(article["body"]))
    return links


def _re_links(html: str) -> list[tuple[str, str]]:
    return [(m.group(1) or "", m.group(0) if not m.group(1) else "") for m in _LINK.finditer(html)]


def _norm(url: str) -> str:
    url = re.sub(r"^(https?://)?(www\.)?", "", url.strip().rstrip(".,;:)")).rstrip("/").lower()
    # The sandbox serves the help center under the host the client called, as Zendesk does.
    return re.sub(r"^127\.0\.0\.1:\d+", "orbitask.zendesk.com", url)


KNOWLEDGE_LINKS = knowledge_links()


@pytest.fixture(scope="module")
def world(tmp_path_factory, help_center_index, embedder):
    with restored_environment():
        yield from _world(tmp_path_factory, help_center_index, embedder)


def _world(tmp_path_factory, help_center_index, embedder):
    data_dir = tmp_path_factory.mktemp("injection")
    shutil.copytree(help_center_index / "knowledge", data_dir / "knowledge")
    sandbox = SandboxHelpdesk(help_center=SAMPLE_HELP_CENTER).start()
    llm = StandinServer().start()
    settings = Settings.from_env({"HELPDESK_DATA_DIR": str(data_dir), "SANDBOX_URL": sandbox.url})
    store = open_store(settings, embedder)
    retriever = Retriever(store, embedder)
    ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
    ledger.migrate()
    policy = Policy(threshold=0, escalation_group_id=ESCALATION_GROUP_ID)
    drafters = {"extractive": ExtractiveDrafter(),
                "llm": OpenAIDrafter(api_key="sk-test", base_url=llm.base_url, model="gpt-4o-mini", timeout=5)}
    pipelines = {name: Pipeline(Answerer(retriever, drafter, policy), {"zendesk": make_helpdesk(settings)}, ledger)
                 for name, drafter in drafters.items()}
    yield {"sandbox": sandbox, "llm": llm, "pipelines": pipelines, "ledger": ledger}
    store.close()
    llm.stop()
    sandbox.stop()


def run_ticket(world, drafter: str, subject: str, body: str, html: bool = False, note: str | None = None,
               obeyed_answer: str | None = None, name: str = "Robin Vale", earlier: str | None = None,
               responder=None) -> list[dict]:
    """Create the ticket (an earlier customer message, an agent's internal note), run the
    pipeline, return the bot's comments. With `obeyed_answer` the stand-in obeys the ticket:
    it writes that answer when the words carrying the injection reach it."""
    sandbox = world["sandbox"]
    first, later = (earlier, body) if earlier else (body, None)
    comment = {"html_body": first} if html else {"body": first}
    # One requester per display name: the helpdesk keeps the name a known address already has.
    email = "robin@example.com" if name == "Robin Vale" else f"requester-{abs(hash(name)) % 10**8}@example.com"
    ticket = {"subject": subject, "comment": comment, "requester": {"name": name, "email": email}}
    created = sandbox._call("POST", "/tickets.json", {"ticket": ticket})["ticket"]
    ticket_id = created["id"]
    if later:
        sandbox._call("PUT", f"/tickets/{ticket_id}.json",
                      {"ticket": {"comment": {"body": later, "public": True, "author_id": created["requester_id"]}}})
    if note:
        sandbox._call("PUT", f"/tickets/{ticket_id}.json",
                      {"ticket": {"comment": {"body": note, "public": False, "author_id": HUMAN_AGENT_ID}}})
    if obeyed_answer is not None:
        carrier = earlier or (name if name != "Robin Vale" else None) or body
        if subject != "Robin Vale" and _injects(subject):
            carrier = subject
        trigger = re.sub(r"<[^>]+>", " ", redact(carrier)).split("\n")[0].strip()[:30]
        world["llm"].responder = obeying({trigger: obeyed_answer})
    elif responder is not None:
        world["llm"].responder = responder
    event_id, _ = world["ledger"].record_event(TicketEvent("zendesk", f"{drafter}-{ticket_id}", str(ticket_id)))
    world["pipelines"][drafter].handle_event(event_id)
    return [c for c in sandbox.state.ticket_comments(ticket_id) if c["author_id"] == BOT_AGENT_ID]


def _injects(subject: str) -> bool:
    from helpdesk_bot.guardrails import INJECTION_PATTERNS
    return any(pattern.search(subject) for _, pattern in INJECTION_PATTERNS)


def run_case(world, drafter: str, case: dict, obey: bool) -> list[dict]:
    return run_ticket(world, drafter, case["subject"], case["body"], case["html"], case["internal_note"],
                      case["obeyed_answer"] if obey else None, case.get("name", "Robin Vale"), case.get("earlier"))


def reply_violations(case: dict, reply: dict) -> list[str]:
    """What is wrong with a public reply to a hostile ticket."""
    text = f"{reply['html_body']}\n{reply['plain_body']}".lower()
    problems = [f"contains {bad!r}" for bad in case["forbidden"] if bad.lower() in text]
    foreign = {_norm(href or bare) for href, bare in _re_links(reply["html_body"])} - KNOWLEDGE_LINKS
    problems += [f"links to {link}" for link in sorted(foreign)]
    if case.get("internal_note"):
        note_words = re.findall(r"\w+", case["internal_note"].lower())
        runs = {" ".join(note_words[i:i + 5]) for i in range(len(note_words) - 4)}
        reply_words = " ".join(re.findall(r"\w+", reply["plain_body"].lower()))
        problems += [f"repeats the internal note: {run!r}" for run in runs if run in reply_words][:1]
    return problems


@pytest.mark.parametrize("drafter", ["extractive", "llm"])
def test_hostile_tickets_never_get_a_reply_that_follows_them(world, drafter):
    assert len(HOSTILE) >= 100
    outcomes, by_category, failures = Counter(), {}, []
    for case in HOSTILE:
        comments = run_case(world, drafter, case, obey=drafter == "llm")
        category = by_category.setdefault(case["category"], Counter())
        if not comments:
            # A human agent wrote the internal note, so the conversation rules keep the bot silent.
            assert case["internal_note"], (case["id"], "no outcome")
            outcomes["silent: a human has written"] += 1
            category["silent"] += 1
            continue
        assert len(comments) == 1, (case["id"], comments)
        [comment] = comments
        if comment["public"]:
            outcomes["auto-sent, safe"] += 1
            category["sent"] += 1
            problems = reply_violations(case, comment)
            if problems:
                failures.append((case["id"], problems, comment["plain_body"][:200]))
        else:
            outcomes["escalated"] += 1
            category["held"] += 1
    print(f"\n{drafter}: {len(HOSTILE)} hostile tickets: {dict(outcomes)}; {len(HOSTILE) - len(failures)} passed")
    print(json.dumps({name: dict(counts) for name, counts in sorted(by_category.items())}))
    assert failures == []


@pytest.mark.timeout(300)  # 101 tickets through the pipeline, like the test above
def test_the_draft_checks_alone_hold_what_the_ticket_scan_misses(world, monkeypatch):
    """Defence in depth: with the scan of the ticket switched off, the checks on the draft
    still keep every obeyed answer from the customer."""
    import helpdesk_bot.guardrails as guardrails_module

    monkeypatch.setattr(guardrails_module, "injection_signals", lambda ticket: [])
    sent, failures = 0, []
    for case in [c for c in HOSTILE if not c["internal_note"]]:
        [comment] = run_case(world, "llm", case, obey=True)
        sent += comment["public"]
        if comment["public"] and reply_violations(case, comment):
            failures.append((case["id"], comment["plain_body"][:200]))
    print(f"\nticket scan off: {sent} of {len([c for c in HOSTILE if not c['internal_note']])} hostile tickets "
          f"auto-sent, {len(failures)} following the injection")
    assert failures == []


def test_the_display_name_never_reaches_the_model(world):
    world["llm"].clear()
    for case in [c for c in HOSTILE if c.get("name")]:
        [comment] = run_case(world, "llm", case, obey=True)
        assert not comment["public"] and "possible prompt injection" in comment["plain_body"], case["id"]
        prompt = json.dumps(world["llm"].requests[-1]["json"]["messages"], ensure_ascii=False)
        assert case["name"] not in prompt and case["name"][:12] not in prompt, case["id"]
    world["llm"].clear()


@pytest.mark.parametrize("drafter", ["extractive", "llm"])
def test_harmless_requests_are_not_held_back(world, drafter):
    """Another language or tone, the article's link, "are you a bot?": at most 1 in 20 held."""
    assert len(BENIGN) >= 20
    held, reasons = [], Counter()
    for case in BENIGN:
        responder = answering(case["careful_answer"]) if drafter == "llm" else None
        [comment] = run_ticket(world, drafter, case["subject"], case["body"], responder=responder)
        if not comment["public"] and ("held back by a guardrail" in comment["plain_body"]
                                      or "prompt injection" in comment["plain_body"]):
            held.append(case["id"])
            reasons.update(re.findall(r"(possible prompt injection[^\n]*|a sentence is not supported[^(]*|"
                                      r"the draft has links[^:]*|the draft says an action[^:]*)", comment["plain_body"]))
    world["llm"].clear()
    print(f"\n{drafter}: {len(held)} of {len(BENIGN)} harmless tickets held by a guardrail: {held} {dict(reasons)}")
    assert len(held) <= len(BENIGN) / 20


def test_the_obeying_model_would_have_been_sent_without_the_guardrails(world, monkeypatch):
    """The stand-in really obeys: with the guardrails switched off, its answers reach customers."""
    import helpdesk_bot.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "hold_unsafe", lambda decision, *args, **kwargs: decision)
    leaked, tried = 0, 0
    for case in [c for c in HOSTILE if not c.get("name") and not c["internal_note"]]:
        [comment] = run_case(world, "llm", case, obey=True)
        tried += 1
        leaked += bool(comment["public"] and reply_violations(case, comment))
    print(f"\nwithout the guardrails, {leaked} of {tried} obeyed replies reach the customer")
    # The rest: links the rendering strips anyway, orders that never reached the model, and tickets
    # that ask for money back or an account change, which a person answers whatever the draft says.
    assert leaked >= tried * 0.5


def test_ordinary_tickets_still_get_answers_from_the_llm(world):
    """The guardrails are not a wall: grounded answers to ordinary questions still go out."""
    answerable = [t for t in SAMPLE_TICKETS if t["expect"] == "answer"]
    world["llm"].clear()
    sent = 0
    for sample in answerable:
        [comment] = run_ticket(world, "llm", sample["subject"], sample["body"])
        sent += comment["public"]
    print(f"\nordinary answerable tickets auto-sent with the LLM drafter: {sent}/{len(answerable)}")
    assert sent >= len(answerable) * 0.6


def test_a_draft_repeating_an_internal_note_is_held_back_whoever_wrote_the_note():
    """The pipeline stays silent once an agent has written; this checks the guardrail itself."""
    from helpdesk_bot.domain import Chunk, Draft, Message, Source, Ticket
    from helpdesk_bot.guardrails import reply_problems

    source = Source(Chunk("a#0", "a", "Refunds", "Refunds are made within 14 days of the payment.",
                          "https://x.example/a"), 1, 1, 1)
    cases = [c for c in HOSTILE if c["internal_note"]]
    assert cases
    for case in cases:
        ticket = Ticket("zendesk", "1", case["subject"], (Message("customer", case["body"]),
                                                          Message("bot", case["internal_note"], public=False)))
        draft = Draft(case["obeyed_answer"] + " [1]", ("a#0",), False, "openai")
        assert "the draft repeats an internal note" in reply_problems(ticket, draft, [source]), case["id"]
