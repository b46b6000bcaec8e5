"""Faults outside us: the helpdesk and the LLM answer 429, 5xx, time out or reset the connection.

Each is retried with backoff within HELPDESK_MAX_ATTEMPTS (3 here); after the last attempt the
ticket gets a dead-letter record and, when the helpdesk is reachable, a note for a human. The
vector store or the LLM being down ends in an "AI unavailable" escalation, never in nothing.
All through the real path: sandbox webhook → web app → Redis → Celery worker process.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import running_stack
from harness import free_port, wait_for
from integrations.llm_standin import LLMFault, StandinServer

QUESTION = ("Download invoices", "Where can I download our invoices as PDF?")


def new_ticket(stack, subject: str = QUESTION[0], body: str = QUESTION[1]) -> int:
    return stack.sandbox.create_ticket(subject, body, "ap@example.com", "Alex", tags=["billing"])


def one_outcome(stack, ticket_id: int) -> dict:
    comments = stack.bot_comments(ticket_id)
    assert len(comments) == 1, [c["plain_body"][:80] for c in comments]
    return comments[0]


def dead_letter_for(stack, ticket_id: int) -> dict:
    [letter] = [d for d in stack.ledger.dead_letters() if d["ticket_id"] == str(ticket_id)]
    return letter


@pytest.fixture
def sandbox_faults(stack):
    stack.sandbox.state.clear_faults()
    yield stack.sandbox.state
    stack.sandbox.state.clear_faults()


# --- the helpdesk ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    dict(method="PUT", path=r"/api/v2/tickets/\d+\.json$", status=503),
    dict(method="GET", path=r"/api/v2/tickets/\d+\.json$", status=502),
    dict(method="GET", path=r"/api/v2/tickets/\d+/comments\.json", status=None, reset=True),
    dict(method="GET", path=r"/api/v2/tickets/\d+\.json$", status=None, delay=3.0),  # client timeout is 2 s
], ids=["put-503", "get-502", "connection-reset", "timeout"])
def test_helpdesk_fault_is_retried_and_the_ticket_answered_once(stack, sandbox_faults, fault):
    sandbox_faults.inject_fault(fault["method"], fault["path"], fault["status"], times=2,
                                delay=fault.get("delay", 0.0), reset=fault.get("reset", False))
    ticket_id = new_ticket(stack)
    event = stack.processed(ticket_id, timeout=40)
    assert event["status"] == "done" and event["attempts"] == 2
    one_outcome(stack, ticket_id)
    assert not sandbox_faults._faults, "the fault was never hit"


def test_helpdesk_down_on_every_attempt_dead_letters_and_tells_a_human(stack, sandbox_faults):
    sandbox_faults.inject_fault("GET", r"/api/v2/tickets/\d+\.json$", 503, times=3)
    ticket_id = new_ticket(stack)
    event = stack.processed(ticket_id, timeout=40)
    assert event["status"] == "dead" and event["attempts"] == 3
    note = one_outcome(stack, ticket_id)
    assert note["public"] is False and "could not process this ticket" in note["plain_body"]
    assert "ai_escalated" in stack.sandbox.ticket(ticket_id)["tags"]
    letter = dead_letter_for(stack, ticket_id)
    assert letter["human_notified"] and "503" in letter["error"]


def test_unreachable_helpdesk_leaves_a_dead_letter_and_replay_answers_it(stack, sandbox_faults):
    sandbox_faults.inject_fault("*", r"/api/v2/tickets/\d+", 503, times=100)
    ticket_id = new_ticket(stack)
    event = stack.processed(ticket_id, timeout=40)
    assert event["status"] == "dead"
    from integrations.sandbox import BOT_AGENT_ID

    assert [c for c in sandbox_faults.ticket_comments(ticket_id) if c["author_id"] == BOT_AGENT_ID] == []
    letter = dead_letter_for(stack, ticket_id)
    assert not letter["human_notified"]

    listed = cli(stack, "deadletter", "list")
    assert f"ticket {ticket_id}" in listed and "human NOT notified" in listed

    sandbox_faults.clear_faults()  # the helpdesk is back
    replayed = cli(stack, "deadletter", "replay", str(letter["id"]))
    assert f"replayed dead letter {letter['id']}" in replayed
    wait_for(lambda: stack.bot_comments(ticket_id), 30, what="the replayed ticket's answer")
    assert stack._events(ticket_id)[0]["status"] == "done"
    one_outcome(stack, ticket_id)
    assert f"ticket {ticket_id}" not in cli(stack, "deadletter", "list")


def cli(stack, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "helpdesk_bot.ops.cli", *args], env=stack.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- the LLM and the vector store -----------------------------------------------------------


@pytest.fixture(scope="module")
def llm():
    standin = StandinServer().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def llm_stack(tmp_path_factory, redis_url, embedder, llm, help_center_index):
    """A second stack whose worker drafts with the OpenAI drafter against the stand-in."""
    env = {"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-test-standin", "OPENAI_TIMEOUT_SECONDS": "1"}
    with running_stack(tmp_path_factory.mktemp("llm"), redis_url.removesuffix("/0") + "/1", embedder, env,
                       index=help_center_index) as stack:
        yield stack


@pytest.fixture
def clean_llm(llm):
    llm.clear()
    yield llm
    llm.clear()


@pytest.mark.parametrize("faults", [
    [LLMFault(status=429, retry_after=1), LLMFault(status=429, retry_after=1)],
    [LLMFault(status=500), LLMFault(status=503)],
    [LLMFault(reset=True), LLMFault(delay=2.0)],  # a reset, then a timeout (the client waits 1 s)
], ids=["rate-limited", "server-errors", "reset-and-timeout"])
def test_llm_fault_is_retried_and_the_ticket_answered_once(llm_stack, clean_llm, faults):
    for fault in faults:
        clean_llm.inject(fault)
    started = time.time()
    ticket_id = new_ticket(llm_stack)
    event = llm_stack.processed(ticket_id, timeout=40)
    assert event["status"] == "done" and event["attempts"] == 2
    assert len(clean_llm.requests) == 3 and not clean_llm.faults
    if faults[0].retry_after:
        assert time.time() - started >= 2.0  # Retry-After was honoured twice
    one_outcome(llm_stack, ticket_id)


def test_llm_down_escalates_as_ai_unavailable(llm_stack, clean_llm):
    clean_llm.inject(LLMFault(status=503), times=3)
    ticket_id = new_ticket(llm_stack)
    event = llm_stack.processed(ticket_id, timeout=40)
    assert event["status"] == "dead"
    note = one_outcome(llm_stack, ticket_id)
    assert note["public"] is False and "AI unavailable" in note["plain_body"]
    assert "ai_escalated" in llm_stack.sandbox.ticket(ticket_id)["tags"]
    assert dead_letter_for(llm_stack, ticket_id)["human_notified"]


@pytest.fixture(scope="module")
def index_down_stack(tmp_path_factory, redis_url, embedder):
    """A stack whose vector store (a Qdrant server) does not answer."""
    env = {"QDRANT_URL": f"http://127.0.0.1:{free_port()}"}
    with running_stack(tmp_path_factory.mktemp("noindex"), redis_url.removesuffix("/0") + "/2", embedder,
                       env) as stack:
        yield stack


def test_vector_store_down_escalates_as_ai_unavailable(index_down_stack):
    ticket_id = new_ticket(index_down_stack)
    event = index_down_stack.processed(ticket_id, timeout=40)
    assert event["status"] == "dead"
    note = one_outcome(index_down_stack, ticket_id)
    assert note["public"] is False and "AI unavailable" in note["plain_body"]
    assert dead_letter_for(index_down_stack, ticket_id)["human_notified"]


def test_the_llm_workers_log_holds_no_api_key(llm_stack):
    log = llm_stack.worker_log.read_text(errors="replace")
    assert "ready." in log and llm_stack.env["OPENAI_API_KEY"] not in log
