"""The nightly help center run against the sandbox Zendesk, through zenpy over loopback HTTP:
the first run reads everything, later ones only what the incremental export returns, and
removals (deleted, archived, turned draft or restricted) are found from the id listing."""

from __future__ import annotations

import pytest
import requests

from helpdesk_bot.indexing import index_help_center
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.services import open_store
from helpdesk_bot.settings import Settings
from integrations.sandbox import BOT_AGENT_EMAIL, SandboxHelpdesk
from integrations.zendesk import ZendeskHelpdesk

SECTION_ID = 360000000101
TOPICS = ["resetting a password", "downloading invoices", "exporting a project", "connecting Slack",
          "deleting a workspace", "turning on two-factor authentication"]
FIRST = 360000001000


def help_center() -> dict:
    return {
        "categories": [{"id": 360000000001, "name": "Account"}],
        "sections": [{"id": SECTION_ID, "category_id": 360000000001, "name": "Basics"}],
        "articles": [{"id": FIRST + i, "title": f"How {topic} works", "section_id": SECTION_ID,
                      "body": f"<p>This article explains {topic} step by step.</p>",
                      "updated_at": f"2025-0{i + 1}-10T10:00:00Z"} for i, topic in enumerate(TOPICS)],
    }


@pytest.fixture
def zendesk(monkeypatch):
    sandbox = SandboxHelpdesk(help_center=help_center()).start()
    # from_settings points zenpy at the sandbox; monkeypatch gives the old address back afterwards.
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", sandbox.netloc)
    http = requests.Session()
    http.auth = (f"{BOT_AGENT_EMAIL}/token", "x")
    yield sandbox, http
    http.close()
    sandbox.stop()


@pytest.fixture
def run(zendesk, database_url, embedder, tmp_path):
    sandbox, _ = zendesk
    settings = Settings.from_env({"SANDBOX_URL": sandbox.url, "HELPDESK_DATA_DIR": str(tmp_path)})
    helpdesk = ZendeskHelpdesk.from_settings(settings)
    ledger = Ledger(database_url)

    def index(**options):
        return index_help_center(settings, ledger, embedder, helpdesk, **options)

    index.ledger, index.settings = ledger, settings
    yield index
    ledger.dispose()


def indexed(settings) -> set[str]:
    store = open_store(settings)
    try:
        return set(store.article_hashes())
    finally:
        store.close()


def counts(report) -> tuple:
    return report.mode, report.added, report.updated, report.unchanged, report.deleted


def requests_to(sandbox, path: str) -> int:
    return sum(r.path == path for r in sandbox.state.requests)


def test_first_run_reads_everything_and_stores_the_cursor(run, zendesk):
    sandbox, _ = zendesk
    report = run()
    assert counts(report) == ("full", 6, 0, 0, 0)
    assert run.ledger.sync_cursor("zendesk help center") is not None
    assert requests_to(sandbox, "/api/v2/help_center/incremental/articles.json") == 0
    assert indexed(run.settings) == {str(FIRST + i) for i in range(6)}


def test_next_run_reads_only_changes_and_finds_removals(run, zendesk):
    sandbox, http = zendesk
    run()
    cursor = run.ledger.sync_cursor("zendesk help center")
    quiet = run()
    assert counts(quiet) == ("incremental", 0, 0, 6, 0) and quiet.chunks == 0

    api = f"{sandbox.url}/api/v2/help_center/articles"
    http.put(f"{api}/{FIRST}.json", json={"article": {"body": "<p>Passwords now reset from the app.</p>"}})
    http.put(f"{api}/{FIRST + 1}.json", json={"article": {"label_names": ["billing"]}})  # metadata only
    http.put(f"{api}/{FIRST + 2}.json", json={"article": {"draft": True}})
    http.put(f"{api}/{FIRST + 3}.json", json={"article": {"user_segment_id": 360000000777}})  # signed-in users only
    assert http.delete(f"{api}/{FIRST + 4}.json").status_code == 204  # archived
    created = http.post(f"{sandbox.url}/api/v2/help_center/sections/{SECTION_ID}/articles.json",
                        json={"article": {"title": "Inviting guests", "body": "<p>Guests see one project.</p>",
                                          "locale": "en-us"}}).json()["article"]

    report = run()
    assert counts(report) == ("incremental", 1, 1, 2, 3)
    assert indexed(run.settings) == {str(FIRST), str(FIRST + 1), str(FIRST + 5), str(created["id"])}
    assert int(run.ledger.sync_cursor("zendesk help center")) >= int(cursor)
    # The changed articles came from the export; nothing was read twice to find them.
    assert requests_to(sandbox, "/api/v2/help_center/incremental/articles.json") == 2

    ledger_rows = {r["article_id"]: r for r in run.ledger.indexed_articles()}
    assert {a for a, r in ledger_rows.items() if r["removed_at"]} == {str(FIRST + i) for i in (2, 3, 4)}
    assert ledger_rows[str(created["id"])]["removed_at"] is None


def test_a_republished_article_comes_back(run, zendesk):
    sandbox, http = zendesk
    run()
    api = f"{sandbox.url}/api/v2/help_center/articles"
    http.put(f"{api}/{FIRST + 2}.json", json={"article": {"draft": True}})
    assert counts(run()) == ("incremental", 0, 0, 5, 1)
    http.put(f"{api}/{FIRST + 2}.json", json={"article": {"draft": False}})
    assert counts(run()) == ("incremental", 1, 0, 5, 0)
    assert str(FIRST + 2) in indexed(run.settings)


def test_an_index_that_lost_articles_is_read_in_full(run, zendesk):
    run()
    store = open_store(run.settings, writable=True)
    store.delete_articles([str(FIRST)])  # e.g. restored from an older backup
    store.close()
    report = run()
    assert counts(report) == ("full", 1, 0, 5, 0)


def test_full_option_reads_everything_again(run):
    run()
    assert counts(run(full=True)) == ("full", 0, 0, 6, 0)


def test_status_shows_the_run_mode_and_counts(run, monkeypatch):
    from click.testing import CliRunner

    from helpdesk_bot.ops.cli import main

    run()
    run()
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(run.settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", run.ledger.engine.url.render_as_string(hide_password=False))
    output = CliRunner().invoke(main, ["index", "--status"]).output
    assert "zendesk help center (incremental): 0 added, 0 updated, 6 unchanged, 0 removed, 0 errors" in output
    assert "zendesk help center (full): 6 added" in output


def test_configured_locales_are_indexed_with_their_locale_and_the_brand(zendesk, database_url, embedder, tmp_path):
    sandbox, http = zendesk
    german = http.post(f"{sandbox.url}/api/v2/help_center/de/sections/{SECTION_ID}/articles.json",
                       json={"article": {"title": "Passwort zurücksetzen", "locale": "de",
                                         "body": "<p>Klicken Sie auf Passwort vergessen.</p>"}}).json()["article"]
    settings = Settings.from_env({"SANDBOX_URL": sandbox.url, "HELPDESK_DATA_DIR": str(tmp_path),
                                  "HELPDESK_KNOWLEDGE_LOCALES": "en-us, DE", "HELPDESK_KNOWLEDGE_BRAND_ID": "360000000042"})
    assert settings.knowledge_locales == ("en-us", "de")
    ledger = Ledger(database_url)
    helpdesk = ZendeskHelpdesk.from_settings(settings)
    try:
        assert counts(index_help_center(settings, ledger, embedder, helpdesk)) == ("full", 7, 0, 0, 0)
        http.put(f"{sandbox.url}/api/v2/help_center/articles/{german['id']}.json",
                 json={"article": {"body": "<p>Klicken Sie auf der Anmeldeseite auf Passwort vergessen.</p>"}})
        assert counts(index_help_center(settings, ledger, embedder, helpdesk)) == ("incremental", 0, 1, 6, 0)
    finally:
        ledger.dispose()
    store = open_store(settings)
    try:
        payloads = {p["article_id"]: p for p in store.engine.payloads(["article_id", "locale", "brand"])}
    finally:
        store.close()
    assert payloads[f"{german['id']}:de"]["locale"] == "de"
    assert payloads[f"{FIRST}:en-us"]["locale"] == "en-us"
    assert {p["brand"] for p in payloads.values()} == {"360000000042"}
    calls = {r.path for r in sandbox.state.requests}
    assert {"/api/v2/help_center/en-us/articles.json", "/api/v2/help_center/de/articles.json"} <= calls


@pytest.mark.parametrize("env, setting", [
    ({"HELPDESK_KNOWLEDGE_LOCALES": "en_US"}, "HELPDESK_KNOWLEDGE_LOCALES"),
    ({"HELPDESK_KNOWLEDGE_BRAND_ID": "acme"}, "HELPDESK_KNOWLEDGE_BRAND_ID"),
])
def test_locale_and_brand_settings_are_validated(env, setting):
    from helpdesk_bot.errors import ConfigError

    with pytest.raises(ConfigError, match=setting):
        Settings.from_env(env)


def test_a_zendesk_ticket_carries_its_requester_locale_for_retrieval(zendesk, tmp_path):
    sandbox, _ = zendesk
    helpdesk = ZendeskHelpdesk.from_settings(Settings.from_env({"SANDBOX_URL": sandbox.url,
                                                                "HELPDESK_DATA_DIR": str(tmp_path)}))
    ticket = helpdesk.fetch_ticket(str(sandbox.create_ticket("Hi", "Where are invoices?", "ana@example.com")))
    assert ticket.locale == "en-us"  # the sandbox's users are en-US, as Zendesk spells it


def test_rebuild_reads_everything_into_a_new_index_and_past_tickets_start_over(run):
    run()
    run.ledger.save_sync_cursor("zendesk past tickets", "1700000000")
    report = run(rebuild=True)
    assert counts(report) == ("rebuild", 6, 0, 0, 0)
    assert len(indexed(run.settings)) == 6
    assert run.ledger.sync_cursor("zendesk past tickets") is None
    assert counts(run()) == ("incremental", 0, 0, 6, 0)


def test_a_failed_run_is_recorded_publishes_nothing_and_keeps_the_cursor(run, zendesk):
    from helpdesk_bot.errors import TransientError

    sandbox, http = zendesk
    run()
    cursor = run.ledger.sync_cursor("zendesk help center")
    http.put(f"{sandbox.url}/api/v2/help_center/articles/{FIRST}.json", json={"article": {"body": "<p>New.</p>"}})
    sandbox.state.inject_fault("GET", r"/help_center/articles\.json$", 503)  # the id listing, after the export
    with pytest.raises(TransientError):
        run()
    last = run.ledger.index_runs()[0]
    assert last["source"] == "zendesk help center" and last["report"]["mode"] == "failed"
    assert "503" in last["report"]["errors"][0]
    assert run.ledger.sync_cursor("zendesk help center") == cursor
    assert counts(run()) == ("incremental", 0, 1, 5, 0)  # the next run reads the same change
