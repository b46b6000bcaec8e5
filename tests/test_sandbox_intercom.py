"""The sandbox Intercom's wire format, and what the Intercom client does beyond the shared
`Helpdesk` contract (test_helpdesk_contract.py): version pin, regions, conversation states,
failures after a reply, tag ids, the bot's admin."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
import requests

from helpdesk_bot.domain import locale_language
from helpdesk_bot.errors import ConfigError, PermanentError, Throttled
from integrations.intercom import IntercomHelpdesk
from integrations.intercom.client import API_VERSION, SNOOZE_SECONDS
from integrations.intercom.webhook import check_signature, parse_event
from integrations.sandbox import intercom as sandbox_module
from integrations.sandbox.intercom import BOT_ADMIN_ID, HUMAN_ADMIN_ID, SUPPORT_TEAM_ID, SandboxIntercom

from harness import Receiver

HELP_CENTER = {"articles": [
    {"id": 1000 + i, "title": f"Article {i}", "body": f"<p>Body {i}</p>", "updated_at": f"2024-02-{i + 1:02d}T10:00:00Z",
     "draft": i == 3}
    for i in range(25)
]}

# One article in four locales (Zendesk-shaped: a translation is the article's id in another
# locale): German and Brazilian Portuguese published, French a draft.
TRANSLATED = {"articles": [
    {"id": 2001, "title": "Reset your password", "body": "<p>Click Forgot password.</p>", "locale": "en-us"},
    {"id": 2001, "title": "Passwort zurücksetzen", "body": "<p>Klicke auf Passwort vergessen.</p>",
     "locale": "de", "source_locale": "en-us"},
    {"id": 2001, "title": "Redefinir sua senha", "body": "<p>Clique em Esqueci minha senha.</p>",
     "locale": "pt-br", "source_locale": "en-us"},
    {"id": 2001, "title": "Réinitialiser votre mot de passe", "body": "<p>Brouillon.</p>",
     "locale": "fr", "source_locale": "en-us", "draft": True},
]}


@pytest.fixture
def sandbox():
    sandbox = SandboxIntercom(help_center=HELP_CENTER).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def translated():
    sandbox = SandboxIntercom(help_center=TRANSLATED).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def client(sandbox) -> IntercomHelpdesk:
    return IntercomHelpdesk("token", base_url=sandbox.url)


@pytest.fixture
def conversation_id(sandbox) -> str:
    return sandbox.start_conversation("maria@example.com", "Where is my invoice?", "Maria Lopez")


def raw(sandbox, method: str, path: str, body=None, headers=None) -> requests.Response:
    return requests.request(method, f"{sandbox.url}{path}", json=body, timeout=5,
                            headers={"Authorization": "Bearer t", **(headers or {})})


# --- the sandbox's wire format -------------------------------------------------------------


def test_requests_without_a_bearer_token_are_refused_as_intercom_does(sandbox):
    response = requests.get(f"{sandbox.url}/me", timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error.list" and body["errors"] == [{"code": "unauthorized", "message": "Access Token Invalid"}]


def test_an_unknown_api_version_is_refused(sandbox, conversation_id):
    response = raw(sandbox, "GET", f"/conversations/{conversation_id}", headers={"Intercom-Version": "9.9"})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "intercom_version_invalid"
    assert raw(sandbox, "GET", f"/conversations/{conversation_id}", headers={"Intercom-Version": "2.14"}).ok


def test_a_conversation_has_the_shape_of_intercoms(sandbox, conversation_id):
    conversation = sandbox.conversation(conversation_id)
    assert list(conversation)[:6] == ["type", "id", "created_at", "updated_at", "waiting_since", "snoozed_until"]
    assert conversation["source"]["body"] == "<p>Where is my invoice?</p>"
    assert conversation["source"]["author"]["type"] == "user"
    assert conversation["contacts"]["type"] == "contact.list"
    assert (conversation["state"], conversation["open"]) == ("open", True)
    assert conversation["conversation_parts"] == {"type": "conversation_part.list", "conversation_parts": [],
                                                  "total_count": 0}


def test_a_reply_answers_only_the_part_it_created(sandbox, conversation_id):
    sandbox.agent_reply(conversation_id, "First")
    answer = sandbox.agent_reply(conversation_id, "<p>Second</p>", message_type="note")
    [part] = answer["conversation_parts"]["conversation_parts"]
    assert (part["part_type"], part["body"], part["author"]["id"]) == ("note", "<p>Second</p>", HUMAN_ADMIN_ID)
    assert len(sandbox.parts(conversation_id)) == 2


def test_a_customer_reply_reopens_a_closed_conversation_with_an_open_part(sandbox, client, conversation_id):
    client.close(conversation_id)
    sandbox.customer_reply(conversation_id, "Thanks again :)")
    conversation = sandbox.conversation(conversation_id)
    assert conversation["state"] == "open"
    assert [p["part_type"] for p in conversation["conversation_parts"]["conversation_parts"]] == ["close", "open"]
    # The client reads that reopening part as what the customer said.
    assert client.fetch_ticket(conversation_id).messages[-1].text == "Thanks again :)"


def test_articles_are_paged_newest_first(sandbox):
    first = raw(sandbox, "GET", "/articles?page=1&per_page=10").json()
    assert first["pages"] == {"type": "pages", "page": 1, "per_page": 10, "total_pages": 3}
    assert first["total_count"] == 25
    assert [a["title"] for a in first["data"][:2]] == ["Article 24", "Article 23"]
    assert first["data"][0]["url"].startswith(f"{sandbox.url}/help/en/articles/1024-")
    assert requests.get(first["data"][0]["url"], timeout=5).ok


def test_an_article_carries_its_translations_as_intercom_does(translated):
    [listed] = raw(translated, "GET", "/articles").json()["data"]
    article = raw(translated, "GET", "/articles/2001").json()
    assert listed == article
    assert (article["default_locale"], article["title"], article["state"]) == ("en", "Reset your password", "published")
    content = article["translated_content"]
    assert list(content) == ["type", "de", "pt-BR", "fr"] and content["type"] == "article_translated_content"
    assert {key: (c["type"], c["state"]) for key, c in content.items() if key != "type"} == {
        "de": ("article_content", "published"), "pt-BR": ("article_content", "published"),
        "fr": ("article_content", "draft")}
    assert content["de"]["title"] == "Passwort zurücksetzen"
    assert content["pt-BR"]["url"] == f"{translated.url}/help/pt-BR/articles/2001-redefinir-sua-senha"
    assert set(content["de"]) == {"type", "title", "description", "body", "author_id", "state", "created_at",
                                  "updated_at", "url"}


def test_a_translations_page_opens_and_a_drafts_does_not(translated):
    content = raw(translated, "GET", "/articles/2001").json()["translated_content"]
    german = requests.get(content["de"]["url"], timeout=5)
    draft = requests.get(content["fr"]["url"], timeout=5)
    assert german.ok and "Klicke auf Passwort vergessen" in german.text
    assert draft.status_code == 404


def test_snoozing_needs_a_time_in_the_future(sandbox, conversation_id):
    response = raw(sandbox, "POST", f"/conversations/{conversation_id}/parts",
                   {"message_type": "snoozed", "admin_id": BOT_ADMIN_ID, "snoozed_until": int(time.time()) - 5})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "parameter_invalid"


def test_missing_records_answer_not_found(sandbox):
    response = raw(sandbox, "GET", "/conversations/404404")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "not_found"
    assert raw(sandbox, "POST", "/conversations/404404/reply",
               {"message_type": "comment", "type": "admin", "admin_id": BOT_ADMIN_ID, "body": "x"}).status_code == 404


def test_a_known_contact_is_found_again_from_the_conflict(sandbox):
    first = sandbox.contact("lee@example.com", "Lee")
    assert sandbox.contact("LEE@example.com") == first
    assert raw(sandbox, "POST", "/contacts", {"role": "user", "email": "lee@example.com"}).status_code == 409


# --- notifications -------------------------------------------------------------------------


@pytest.fixture
def receiver():
    endpoint = Receiver("/webhooks/intercom")
    yield endpoint
    endpoint.close()


def test_notifications_are_signed_and_name_their_topic(sandbox, receiver, client):
    sandbox.configure_webhook(receiver.url, "client-secret")
    conversation_id = sandbox.start_conversation("maria@example.com", "Where is my invoice?", "Maria")
    client.reply(conversation_id, "<p>Under Billing.</p>", "comment")
    sandbox.customer_reply(conversation_id, "Found it")
    assert sandbox.wait_for_webhooks()

    topics = []
    for delivery in receiver.deliveries:
        check_signature("client-secret", delivery["headers"], delivery["body"])  # raises if forged
        payload = json.loads(delivery["body"])
        assert payload["type"] == "notification_event" and payload["id"].startswith("notif_")
        assert payload["data"]["item"]["id"] == conversation_id
        topics.append(payload["topic"])
    assert topics == ["conversation.user.created", "conversation.admin.replied", "conversation.user.replied"]
    replied = json.loads(receiver.deliveries[-1]["body"])
    [part] = replied["data"]["item"]["conversation_parts"]["conversation_parts"]  # the new part only
    assert part["body"] == "<p>Found it</p>"
    assert parse_event(receiver.deliveries[-1]["body"]).kind == "ticket.updated"


def test_a_failed_notification_is_retried_with_the_same_id(sandbox, receiver):
    receiver.statuses = [503, 500]
    sandbox.configure_webhook(receiver.url, "client-secret", topics={"conversation.user.created"})
    sandbox.start_conversation("maria@example.com", "Where is my invoice?")
    assert sandbox.wait_for_webhooks()
    ids = [json.loads(d["body"])["id"] for d in receiver.deliveries]
    attempts = [json.loads(d["body"])["delivery_attempts"] for d in receiver.deliveries]
    assert len(ids) == 3 and len(set(ids)) == 1 and attempts == [1, 2, 3]


def test_the_sandbox_runs_on_its_own_until_ctrl_c(monkeypatch, capsys):
    class CtrlC:
        def wait(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(sandbox_module, "threading", SimpleNamespace(**{**vars(threading), "Event": CtrlC}))
    sandbox_module.main(["--port", "0"])
    out = capsys.readouterr().out
    assert "Sandbox Intercom at http://127.0.0.1:" in out and "stopping" in out


# --- the client: beyond the shared contract -------------------------------------------------


def test_every_request_pins_the_api_version_and_sends_the_token(sandbox, client, conversation_id):
    client.fetch_ticket(conversation_id)
    client.post_reply(conversation_id, "<p>Under Billing.</p>", "open", ("ai_answered",))
    mine = [r for r in sandbox.state.requests if r.path != "/contacts" and r.path != "/conversations"]
    assert mine and {r.version for r in mine} == {API_VERSION}


@pytest.mark.parametrize("region, base", [
    ("us", "https://api.intercom.io"), ("eu", "https://api.eu.intercom.io"), ("au", "https://api.au.intercom.io"),
])
def test_each_region_has_its_base_url(region, base):
    assert IntercomHelpdesk("token", region=region).base_url == base


def test_an_unknown_region_is_a_config_error():
    with pytest.raises(ConfigError, match="INTERCOM_REGION"):
        IntercomHelpdesk("token", region="mars")


@pytest.mark.parametrize("status, state, snoozed", [("open", "open", False), ("pending", "snoozed", True),
                                                     ("hold", "snoozed", True), ("solved", "closed", False)])
def test_the_reply_status_maps_to_a_conversation_state(sandbox, client, conversation_id, status, state, snoozed):
    client.post_reply(conversation_id, "<p>Under Billing.</p>", status, ())
    conversation = sandbox.conversation(conversation_id)
    assert conversation["state"] == state
    if snoozed:
        assert abs(conversation["snoozed_until"] - (time.time() + SNOOZE_SECONDS)) < 60


def test_a_failure_after_the_reply_is_reported_not_raised(sandbox, client, conversation_id):
    sandbox.state.inject_fault("POST", r"/parts$", 429, reset_after=30)
    result = client.post_reply(conversation_id, "<p>Under Billing.</p>", "pending", ("ai_answered",))
    assert "rate limit" in result["snooze_error"]
    assert len([p for p in sandbox.parts(conversation_id) if p["part_type"] == "comment"]) == 1
    assert sandbox.conversation(conversation_id)["state"] == "open"  # the safe side: a teammate sees it


def test_a_note_assigns_the_team_before_it_is_written(sandbox, client, conversation_id):
    client.post_note(conversation_id, "<p>Over to you.</p>", int(SUPPORT_TEAM_ID), ("ai_escalated",))
    calls = [r.path.rsplit("/", 1)[-1] for r in sandbox.state.requests if r.method == "POST"]
    assert calls[-3:] == ["tags", "parts", "reply"]


def test_tags_are_created_once_and_then_reused(sandbox, client):
    for _ in range(3):
        conversation_id = sandbox.start_conversation("maria@example.com", "Hello")
        client.tag(conversation_id, ("ai_answered", "ai_escalated"))
    assert len([r for r in sandbox.state.requests if r.method == "POST" and r.path == "/tags"]) == 2
    assert sorted(t["name"] for t in raw(sandbox, "GET", "/tags").json()["data"]) == ["ai_answered", "ai_escalated"]


def test_the_bot_admin_comes_from_me_unless_configured(sandbox, conversation_id):
    def asked_me() -> int:
        return sum(r.path == "/me" for r in sandbox.state.requests)

    assert IntercomHelpdesk("token", base_url=sandbox.url).admin_id == BOT_ADMIN_ID
    assert asked_me() == 1
    configured = IntercomHelpdesk("token", admin_id=HUMAN_ADMIN_ID, base_url=sandbox.url)
    configured.fetch_ticket(conversation_id)
    assert configured.admin_id == HUMAN_ADMIN_ID and asked_me() == 1


def test_the_rate_limit_wait_comes_from_the_reset_time(sandbox, client, conversation_id):
    sandbox.state.inject_fault("GET", r"/conversations/", 429, reset_after=42)
    with pytest.raises(Throttled) as caught:
        client.fetch_ticket(conversation_id)
    assert 40 <= caught.value.retry_after <= 43


def test_a_refused_request_names_intercoms_error(sandbox, conversation_id):
    client = IntercomHelpdesk("token", admin_id="999", base_url=sandbox.url)  # no such admin
    with pytest.raises(PermanentError, match="not_found: Admin Not Found"):
        client.reply(conversation_id, "<p>x</p>", "note")


def test_an_id_that_would_change_the_path_is_refused(client):
    with pytest.raises(PermanentError, match="not an Intercom id"):
        client.fetch_ticket("1/../../admins")


def test_operator_and_workflow_messages_are_the_helpdesks_own(sandbox, client, conversation_id):
    conversation = sandbox.state.conversations[conversation_id]
    with sandbox.state.lock:  # Operator's automatic "we'll be back" message, as Intercom writes it
        sandbox.state._add_part(conversation, "comment", {"type": "bot", "id": "278", "name": "Operator"},
                                "The team will be back tomorrow.")
    ticket = client.fetch_ticket(conversation_id)
    assert [m.author for m in ticket.messages] == ["customer", "system"]
    assert ticket.pending_customer_messages[-1].text == "Where is my invoice?"


def test_published_translations_are_read_as_articles_of_their_locale(translated):
    articles = IntercomHelpdesk("token", base_url=translated.url).articles()
    # Locales as the product writes Zendesk's and a contact's language: lower case ("pt-BR" → "pt-br").
    assert {(a.id, a.locale, a.title) for a in articles} == {
        ("2001", None, "Reset your password"), ("2001:de", "de", "Passwort zurücksetzen"),
        ("2001:pt-br", "pt-br", "Redefinir sua senha")}  # French is a draft
    assert {a.id: a.url for a in articles}["2001:de"].startswith(f"{translated.url}/help/de/articles/2001-")
    assert {locale_language(a.locale) for a in articles} == {None, "de", "pt"}  # the drafter's own-language rule


def test_only_the_configured_locales_are_read(translated):
    articles = IntercomHelpdesk("token", base_url=translated.url, locales=("en", "pt-br", "fr")).articles()
    assert {(a.id, a.locale) for a in articles} == {("2001:en", "en"), ("2001:pt-br", "pt-br")}


def test_the_default_locales_content_listed_among_the_translations_is_read_once(translated):
    with translated.state.lock:  # Intercom may list the default locale in translated_content too
        article = translated.state.articles["2001"]
        article["translated_content"]["en"] = {"type": "article_content", "title": article["title"],
                                               "body": article["body"], "state": "published", "url": None}
    articles = IntercomHelpdesk("token", base_url=translated.url).articles()
    assert sorted(a.id for a in articles) == ["2001", "2001:de", "2001:pt-br"]


def test_the_index_can_be_built_from_intercoms_articles(sandbox, tmp_path):
    from click.testing import CliRunner

    from helpdesk_bot.ops.cli import main

    env = {"HELPDESK_DATA_DIR": str(tmp_path), "INTERCOM_SANDBOX_URL": sandbox.url, "QDRANT_URL": "", "DATABASE_URL": ""}
    result = CliRunner().invoke(main, ["index", "--from-helpdesk", "--helpdesk", "intercom", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["added"], report["deleted"]) == (24, 0)  # 25 articles, one a draft
    assert any(r.path == "/articles" for r in sandbox.state.requests)
