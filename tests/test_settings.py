"""Settings from an explicit environment: embedded defaults, URL fixes and start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk_bot.errors import ConfigError
from helpdesk_bot.settings import Settings

ZENDESK = {
    "ZENDESK_SUBDOMAIN": "example",
    "ZENDESK_EMAIL": "bot@example.com",
    "ZENDESK_API_TOKEN": "token",
    "ZENDESK_WEBHOOK_SECRET": "secret",
}


@pytest.fixture
def env(tmp_path) -> dict:
    """A bare environment: only the data directory, so nothing leaks in from the machine."""
    return {"HELPDESK_DATA_DIR": str(tmp_path / "data")}


def settings(env: dict, **changes: str) -> Settings:
    return Settings.from_env({**env, **changes})


def config_error(env: dict, **changes: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(env, **changes)
    return str(caught.value)


# --- defaults ----------------------------------------------------------------------------------


def test_embedded_defaults(env, tmp_path):
    s = settings(env)
    assert s.data_dir == (tmp_path / "data").resolve()
    assert s.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'helpdesk.db'}"
    assert s.helpdesk == "sandbox"
    assert s.drafter == "extractive"
    assert (s.redis_url, s.qdrant_url, s.policy_path) == (None, None, None)
    assert s.qdrant_collection == "knowledge"
    assert s.max_attempts == 6


def test_data_dir_defaults_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).data_dir == tmp_path.resolve() / ".helpdesk-bot"


def test_blank_variables_count_as_unset(env):
    s = settings(env, DATABASE_URL="  ", OPENAI_API_KEY="", HELPDESK_MAX_ATTEMPTS=" ")
    assert s.database_url.startswith("sqlite:///")
    assert s.drafter == "extractive"
    assert s.max_attempts == 6


# --- database URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize("given, expected", [
    ("postgres://u:p@db:5432/bot", "postgresql+psycopg://u:p@db:5432/bot"),
    ("postgresql://u:p@db:5432/bot", "postgresql+psycopg://u:p@db:5432/bot"),
    ("postgresql+psycopg://u@db/bot", "postgresql+psycopg://u@db/bot"),
    ("sqlite:////var/lib/bot.db", "sqlite:////var/lib/bot.db"),
])
def test_database_url_gets_the_psycopg_dialect(env, given, expected):
    assert settings(env, DATABASE_URL=given).database_url == expected


# --- helpdesk ------------------------------------------------------------------------------------


def test_zendesk_with_email_and_token(env):
    s = settings(env, **ZENDESK)
    assert s.helpdesk == "zendesk"
    assert s.webhook_secret() == "secret"


def test_zendesk_with_an_oauth_token(env):
    s = settings(env, ZENDESK_SUBDOMAIN="example", ZENDESK_OAUTH_TOKEN="oauth", ZENDESK_WEBHOOK_SECRET="secret")
    assert s.helpdesk == "zendesk"


@pytest.mark.parametrize("dropped, named", [
    (("ZENDESK_EMAIL", "ZENDESK_API_TOKEN"), "ZENDESK_OAUTH_TOKEN"),
    (("ZENDESK_API_TOKEN",), "ZENDESK_API_TOKEN"),
    (("ZENDESK_EMAIL",), "ZENDESK_EMAIL"),
    (("ZENDESK_WEBHOOK_SECRET",), "ZENDESK_WEBHOOK_SECRET"),
])
def test_zendesk_without_what_it_needs_is_refused_by_name(env, dropped, named):
    zendesk = {k: v for k, v in ZENDESK.items() if k not in dropped}
    message = config_error(env, **zendesk)
    assert named in message
    assert "ZENDESK_SUBDOMAIN" in message


def test_secrets_stay_out_of_repr(env):
    secrets = {"ZENDESK_API_TOKEN": "zd-api-7f3a", "ZENDESK_WEBHOOK_SECRET": "zd-hook-9c1e",
               "OPENAI_API_KEY": "sk-test-4b2d", "SENTRY_DSN": "https://key-8e5f@sentry.example.com/1"}
    text = repr(settings(env, **{**ZENDESK, **secrets}))
    assert "bot@example.com" in text  # repr does show the settings that are not secret
    assert [value for value in secrets.values() if value in text] == []


def test_sandbox_webhook_secret_is_made_once_per_data_dir(env):
    first, second = settings(env).webhook_secret(), settings(env).webhook_secret()
    assert first == second
    assert len(first) == 48


# --- drafter ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, drafter", [
    ({}, "extractive"),
    ({"OPENAI_API_KEY": "sk-test"}, "openai"),
    ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, "openai"),
])
def test_drafter_is_chosen_by_key_or_base_url(env, changes, drafter):
    assert settings(env, **changes).drafter == drafter


def test_openai_model_has_a_default_and_can_be_set(env):
    assert settings(env).openai_model == "gpt-4o-mini"
    assert settings(env, OPENAI_MODEL="llama3.1").openai_model == "llama3.1"


# --- integers and the policy file -----------------------------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("HELPDESK_MAX_ATTEMPTS", "six"),
    ("HELPDESK_MAX_ATTEMPTS", "6.5"),
    ("ZENDESK_BOT_AGENT_ID", "bot"),
])
def test_bad_integer_is_refused_by_name(env, name, value):
    message = config_error(env, **{name: value})
    assert name in message
    assert repr(value) in message


def test_integers_are_read(env):
    s = settings(env, HELPDESK_MAX_ATTEMPTS=" 3 ", ZENDESK_BOT_AGENT_ID="9873843")
    assert (s.max_attempts, s.zendesk_bot_agent_id) == (3, 9873843)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_max_attempts_below_one_is_refused(env, value):
    assert "HELPDESK_MAX_ATTEMPTS" in config_error(env, HELPDESK_MAX_ATTEMPTS=value)


def test_policy_path_that_does_not_exist_is_refused(env, tmp_path):
    message = config_error(env, HELPDESK_POLICY=str(tmp_path / "nowhere.toml"))
    assert "HELPDESK_POLICY" in message
    assert "nowhere.toml" in message


def test_policy_path_that_is_a_folder_is_refused(env, tmp_path):
    assert "HELPDESK_POLICY" in config_error(env, HELPDESK_POLICY=str(tmp_path))


def test_policy_path_that_exists_is_kept(env, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("threshold = 80\n", encoding="utf-8")
    assert settings(env, HELPDESK_POLICY=str(policy)).policy_path == policy


# --- Intercom -------------------------------------------------------------------------------

INTERCOM = {"INTERCOM_ACCESS_TOKEN": "dG9rOmFiYw==", "INTERCOM_CLIENT_SECRET": "client-secret"}


def test_intercom_is_the_sandbox_until_a_token_is_set(env):
    s = settings(env, INTERCOM_SANDBOX_URL="http://127.0.0.1:5001")
    assert (s.intercom, s.intercom_region, s.knowledge_helpdesk) == ("sandbox", "us", "zendesk")
    assert s.intercom_webhook_secret() != s.webhook_secret()  # each sandbox signs with its own
    assert s.intercom_webhook_secret() == settings(env, INTERCOM_SANDBOX_URL="x").intercom_webhook_secret()


def test_without_intercom_or_its_sandbox_no_intercom_secret_is_accepted(env):
    assert settings(env).intercom_webhook_secret() is None


def test_secret_files_are_readable_by_their_owner_only(env):
    s = settings(env, INTERCOM_SANDBOX_URL="http://127.0.0.1:5001")
    data = Path(env["HELPDESK_DATA_DIR"])
    data.mkdir(parents=True)
    (data / "sandbox_webhook_secret").write_text("written-by-an-earlier-version")
    (data / "sandbox_webhook_secret").chmod(0o644)
    s.dashboard_secret_key(), s.webhook_secret(), s.intercom_webhook_secret(), s.agent_app_secret()
    files = sorted(p.name for p in data.iterdir())
    assert files == ["dashboard_secret_key", "sandbox_app_secret", "sandbox_intercom_webhook_secret",
                     "sandbox_webhook_secret"]  # no temporary file left behind
    assert {oct(p.stat().st_mode & 0o777) for p in data.iterdir()} == {"0o600"}
    assert s.webhook_secret() == "written-by-an-earlier-version"


def test_intercom_with_a_token_and_client_secret(env):
    s = settings(env, **INTERCOM, INTERCOM_REGION="EU", INTERCOM_ADMIN_ID="991267715")
    assert (s.intercom, s.intercom_region, s.intercom_admin_id) == ("intercom", "eu", "991267715")
    assert s.intercom_webhook_secret() == "client-secret"
    assert s.knowledge_helpdesk == "intercom"  # Intercom alone: its articles are the knowledge
    assert settings(env, **INTERCOM, **ZENDESK).knowledge_helpdesk == "zendesk"


@pytest.mark.parametrize("changes, named", [
    ({"INTERCOM_ACCESS_TOKEN": "tok"}, "INTERCOM_CLIENT_SECRET"),
    ({**INTERCOM, "INTERCOM_REGION": "mars"}, "INTERCOM_REGION"),
    ({**INTERCOM, "INTERCOM_ADMIN_ID": "bot@example.com"}, "INTERCOM_ADMIN_ID"),
])
def test_intercom_without_what_it_needs_is_refused_by_name(env, changes, named):
    assert named in config_error(env, **changes)


def test_intercom_secrets_stay_out_of_repr(env):
    text = repr(settings(env, **INTERCOM))
    assert "dG9rOmFiYw==" not in text and "client-secret" not in text


def test_scheduling_settings_are_read_here(env):
    read = settings(env, HELPDESK_REINDEX_CRON="0 2 * * 1", HELPDESK_REQUEUE_SECONDS="5", HELPDESK_BEAT_LOCK_SECONDS="1.5")
    assert (read.reindex_cron, read.requeue_seconds, read.beat_lock_seconds) == ("0 2 * * 1", 5.0, 1.5)


@pytest.mark.parametrize("name, value", [
    ("HELPDESK_REINDEX_CRON", "every night"),
    ("HELPDESK_REQUEUE_SECONDS", "0"),
    ("HELPDESK_REQUEUE_SECONDS", "soon"),
    ("HELPDESK_BEAT_LOCK_SECONDS", "-1"),
])
def test_bad_scheduling_setting_is_refused_by_name(env, name, value):
    assert name in config_error(env, **{name: value})


def test_a_cron_field_out_of_range_is_refused_when_the_schedule_is_built(env):
    from workers.schedule import beat_schedule

    with pytest.raises(ConfigError, match="HELPDESK_REINDEX_CRON"):
        beat_schedule(settings(env, HELPDESK_REINDEX_CRON="99 3 * * *"))
