"""The bot answers a ticket, the content team edits the article it cited in the (sandbox) help
center, the help center is indexed again (the nightly task in the worker process, or `helpdesk-bot
index`): the reply is checked again against the new text, the agent gets one note when it is no
longer supported, and `helpdesk-bot impact` lists it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from integrations.sandbox import BOT_AGENT_EMAIL
from tests.conftest import running_stack, wait_for
from workers.celery_app import create_celery


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url, embedder, help_center_index):
    # A stack of its own (and a Redis database of its own): these tests edit the help center.
    with running_stack(tmp_path_factory.mktemp("impact"), redis_url.removesuffix("/0") + "/3", embedder,
                       index=help_center_index) as running:
        # The copied index is in step with this help center: the next runs read only what changes.
        # (The first of them starts the change log from the index as it is.)
        running.ledger.save_sync_cursor("zendesk help center", str(int(time.time())))
        yield running


def nightly_reindex(stack) -> None:
    """Run the nightly re-index in the worker and wait until it has finished."""
    runs = len(stack.ledger.index_runs(limit=1000))
    create_celery(stack.settings).send_task("workers.tasks.reindex_help_center")
    wait_for(lambda: len(stack.ledger.index_runs(limit=1000)) > runs, 90, what="the nightly re-index")
    # The run is recorded before its changes are checked: wait for the check too.
    wait_for(lambda: not stack.ledger.unchecked_changes(), 30, what="the impact check")


def cli(stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "helpdesk_bot.ops.cli", *args], env=stack.env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def answer(stack, subject: str, question: str) -> tuple[int, dict, str]:
    """A ticket the bot answers by itself: (ticket id, its decision, the cited article's id)."""
    ticket_id = stack.sandbox.create_ticket(subject, question, f"impact-{subject[:8].lower()}@example.com", "Robin")
    stack.processed(ticket_id)
    [decision] = stack.ledger.decisions_for(str(ticket_id))
    assert decision["action"] == "auto_send", decision["reasons"]
    [cited] = {s["id"].split("#")[0] for s in json.loads(decision["sources"]) if s["cited"]}
    return ticket_id, decision, cited


def edit_article(stack, article_id: str, change) -> None:
    api = f"{stack.sandbox.url}/api/v2/help_center/articles/{article_id}.json"
    auth = (f"{BOT_AGENT_EMAIL}/token", "x")
    if change is None:
        assert requests.delete(api, auth=auth, timeout=10).status_code == 204  # archived
        return
    body = requests.get(api, auth=auth, timeout=10).json()["article"]["body"]
    assert change(body) != body
    requests.put(api, json={"article": {"body": change(body)}}, auth=auth, timeout=10).raise_for_status()


def signed_in(stack) -> requests.Session:
    from tests.test_dashboard import PASSWORD, token_of

    if not stack.ledger.check_login("impact", PASSWORD):
        stack.ledger.create_user("impact", PASSWORD)
    session, base = requests.Session(), stack.webhook_url.removesuffix("/webhooks/zendesk")
    page = session.get(f"{base}/dashboard/login", timeout=10)
    session.post(f"{base}/dashboard/login", timeout=10,
                 data={"username": "impact", "password": PASSWORD, "csrf_token": token_of(page.text)}).raise_for_status()
    return session


def notes(stack, ticket_id: int) -> list[dict]:
    return [c for c in stack.bot_comments(ticket_id) if not c["public"]]


def listed(stack, ticket_id: int) -> list[dict]:
    return [item for item in json.loads(cli(stack, "impact", "--json")) if item["ticket"] == str(ticket_id)]


def test_a_changed_number_flags_the_reply_and_the_agent_is_told_once(stack):
    ticket_id, decision, article_id = answer(stack, "Password reset link",
                                             "How long is the password reset link valid? Mine stopped working.")
    [reply] = stack.bot_comments(ticket_id)
    assert "60 minutes" in reply["plain_body"]

    edit_article(stack, article_id, lambda body: body.replace("60 minutes", "30 minutes"))
    nightly_reindex(stack)
    nightly_reindex(stack)  # nothing changed since: no second note

    [note] = notes(stack, ticket_id)
    assert "60 minutes" in note["plain_body"] and "30 minutes" in note["plain_body"]
    assert "is contradicted or no longer supported by the article" in note["plain_body"]
    assert "ai_source_changed" in stack.sandbox.ticket(ticket_id)["tags"]
    [item] = listed(stack, ticket_id)
    assert (item["helpdesk"], item["decision_id"], item["article_id"], item["change"], item["verdict"]) == (
        "zendesk", decision["id"], article_id, "updated", "unsupported_now")
    assert item["article_title"] == "Resetting your password and sign-in lockouts"
    [sentence] = item["sentences_affected"]
    assert "60 minutes" in sentence["sentence"] and "30 minutes" in sentence["new"]
    assert sentence["figures"] == [{"old": "60 minutes", "new": "30 minutes"}]
    assert item["answer"] == "reply" and item["answered_at"].endswith("Z") and item["note"] == "posted"

    # The dashboard page: the reply beside the new text, filtered by verdict.
    session, base = signed_in(stack), stack.webhook_url.removesuffix("/webhooks/zendesk")
    page = session.get(f"{base}/dashboard/article-changes", params={"verdict": "unsupported_now"}, timeout=10).text
    assert f"zendesk #{ticket_id}" in page and "60 minutes → 30 minutes" in page
    assert f"/dashboard/tickets/zendesk/{ticket_id}" in page and f"/articles/{article_id}" in page
    page = session.get(f"{base}/dashboard/article-changes", params={"verdict": "still_supported"}, timeout=10).text
    assert f"zendesk #{ticket_id}<" not in page


def test_a_removed_article_flags_the_reply_as_source_removed(stack):
    ticket_id, _, article_id = answer(stack, "Deleted project",
                                      "I deleted a project by mistake. How long do deleted projects stay in the "
                                      "Trash before they are gone?")
    edit_article(stack, article_id, None)
    report = json.loads(cli(stack, "index", "--from-helpdesk", "--json"))
    assert (report["deleted"], report["impact"]["source_removed"], report["impact"]["notes_posted"]) == (1, 1, 1)

    [note] = notes(stack, ticket_id)
    assert "was removed" in note["plain_body"] and "has lost its source" in note["plain_body"]
    assert "30 days" in note["plain_body"]
    [item] = listed(stack, ticket_id)
    assert (item["article_id"], item["change"], item["verdict"]) == (article_id, "removed", "source_removed")


def test_a_cosmetic_change_leaves_the_reply_still_supported_and_says_nothing(stack):
    ticket_id, _, article_id = answer(stack, "Locked out after getting a new phone",
                                      "Hi, I switched phones and my authenticator app no longer gives me codes. "
                                      "How can I sign in?")
    # Punctuation, spacing and capitals: the chunk's text changes, not what it says.
    edit_article(stack, article_id, lambda body: body.replace(" — ", " - ").replace(". ", ".  ")
                 .replace("authenticator app", "Authenticator app"))
    nightly_reindex(stack)

    assert notes(stack, ticket_id) == []
    [item] = listed(stack, ticket_id)
    assert (item["verdict"], item["sentences_affected"], item["note"]) == ("still_supported", [], "not_needed")
