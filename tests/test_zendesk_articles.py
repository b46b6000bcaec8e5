"""Help Center articles through zenpy against the sandbox: what gets indexed and with what path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpdesk_bot.settings import Settings
from integrations.sandbox import SandboxHelpdesk
from integrations.zendesk import ZendeskHelpdesk

SAMPLE = json.loads((Path(__file__).parents[1] / "helpdesk_bot" / "sample_data" / "help_center.json").read_text())


@pytest.fixture
def help_center():
    data = json.loads(json.dumps(SAMPLE))
    data["articles"][0]["user_segment_id"] = 360000000777  # visible to signed-in users only
    sandbox = SandboxHelpdesk(help_center=data).start()
    yield sandbox, data
    sandbox.stop()


def helpdesk(sandbox, tmp_path, **env) -> ZendeskHelpdesk:
    return ZendeskHelpdesk.from_settings(Settings.from_env({"SANDBOX_URL": sandbox.url, "HELPDESK_DATA_DIR": str(tmp_path), **env}))


def test_drafts_and_restricted_articles_are_not_indexed(help_center, tmp_path):
    sandbox, data = help_center
    articles = {a.id for a in helpdesk(sandbox, tmp_path).articles()}
    drafts = {str(a["id"]) for a in data["articles"] if a["draft"]}
    assert drafts and not drafts & articles
    assert str(data["articles"][0]["id"]) not in articles
    assert len(articles) == len(data["articles"]) - len(drafts) - 1


def test_restricted_articles_can_be_included(help_center, tmp_path):
    sandbox, data = help_center
    articles = {a.id for a in helpdesk(sandbox, tmp_path, HELPDESK_INCLUDE_RESTRICTED_ARTICLES="1").articles()}
    assert str(data["articles"][0]["id"]) in articles


def test_articles_carry_their_category_and_section(help_center, tmp_path):
    sandbox, data = help_center
    article = next(a for a in helpdesk(sandbox, tmp_path).articles() if a.id == str(data["articles"][1]["id"]))
    section = next(s for s in data["sections"] if s["id"] == data["articles"][1]["section_id"])
    category = next(c for c in data["categories"] if c["id"] == section["category_id"])
    assert article.breadcrumb == f"{category['name']} › {section['name']}"
    assert article.url.endswith(f"/hc/en-us/articles/{data['articles'][1]['id']}") or str(data["articles"][1]["id"]) in article.url
