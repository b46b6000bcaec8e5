"""`helpdesk-bot index`: sources in, a report out, the runs listed by --status."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from helpdesk_bot.errors import BadInput
from helpdesk_bot.knowledge import load_articles, load_openapi

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_openapi_gives_one_article_per_operation_with_parameters_and_responses():
    articles = {a.id: a for a in load_openapi(FIXTURES / "openapi.yaml")}
    assert set(articles) == {"openapi.yaml#GET /v1/tasks", "openapi.yaml#POST /v1/tasks"}
    listing = articles["openapi.yaml#GET /v1/tasks"]
    assert listing.title == "GET /v1/tasks: List tasks"
    for text in ("project_id (query, required)", "X-Workspace (header, required)", "429: Too many requests"):
        assert text in listing.body_html
    assert "application/json" in articles["openapi.yaml#POST /v1/tasks"].body_html


@pytest.mark.parametrize("content", ["not: [valid", '{"swagger": "2.0", "paths": {}}'])
def test_openapi_refuses_what_it_cannot_read(tmp_path, content):
    path = tmp_path / "api.yaml"
    path.write_text(content)
    with pytest.raises(BadInput, match="api.yaml"):
        load_openapi(path)


def test_unknown_source_kind_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(BadInput, match="expected"):
        load_articles(path)


def test_index_twice_then_status(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    kb = tmp_path / "kb.jsonl"
    kb.write_text("\n".join(json.dumps(row) for row in [
        {"id": "a", "title": "Refunds", "body": "Annual plans are refunded within 14 days."},
        {"id": "b", "title": "Exports", "body": "Export a workspace from Settings, Data."},
    ]))
    runner = CliRunner()
    first = runner.invoke(main, ["index", str(kb), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["added"] == 2
    second = runner.invoke(main, ["index", str(FIXTURES / "openapi.yaml"), "--keep-missing", "--json"])
    assert json.loads(second.output)["added"] == 2
    again = runner.invoke(main, ["index", str(kb), "--json"])
    report = json.loads(again.output)
    assert (report["unchanged"], report["deleted"], report["chunks"]) == (2, 2, 0)  # the API docs left with --keep-missing off

    status = runner.invoke(main, ["index", "--status", "--json"])
    assert status.exit_code == 0, status.output
    summary = json.loads(status.output)
    assert summary["chunks"] == 2
    assert [run["report"]["added"] for run in summary["runs"]] == [0, 2, 2]
    assert "index holds 2 chunks" in runner.invoke(main, ["index", "--status"]).output


def test_index_needs_exactly_one_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["index"])
    assert result.exit_code == 2 and "SOURCE" in result.output
