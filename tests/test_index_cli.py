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
    assert (report["unchanged"], report["deleted"], report["chunks"]) == (2, 0, 0)  # the API docs are another source

    status = runner.invoke(main, ["index", "--status", "--json"])
    assert status.exit_code == 0, status.output
    summary = json.loads(status.output)
    chunks = json.loads(first.output)["chunks"] + json.loads(second.output)["chunks"]
    assert summary["chunks"] == chunks
    assert [run["report"]["added"] for run in summary["runs"]] == [0, 2, 2]
    assert f"index holds {chunks} chunks" in runner.invoke(main, ["index", "--status"]).output


def test_index_needs_exactly_one_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["index"])
    assert result.exit_code == 2 and "SOURCE" in result.output


def test_indexing_a_folder_keeps_the_help_center_and_removes_only_its_own_articles(tmp_path, monkeypatch):
    from conftest import SAMPLE_HELP_CENTER
    from integrations.sandbox import SandboxHelpdesk

    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "guides"
    folder.mkdir()
    for name in ("sso", "audit-log", "sandbox"):
        (folder / f"{name}.md").write_text(f"# {name}\n\nHow {name} works, step by step.\n")
    runner = CliRunner()
    with SandboxHelpdesk(help_center=SAMPLE_HELP_CENTER) as sandbox:
        monkeypatch.setenv("SANDBOX_URL", sandbox.url)
        help_center = json.loads(runner.invoke(main, ["index", "--from-helpdesk", "--json"]).output)
        assert help_center["added"] > 30

        first = json.loads(runner.invoke(main, ["index", str(folder), "--json"]).output)
        assert (first["added"], first["deleted"]) == (3, 0)
        (folder / "sandbox.md").unlink()
        second = json.loads(runner.invoke(main, ["index", str(folder), "--json"]).output)
        assert (second["unchanged"], second["deleted"]) == (2, 1)

        nightly = json.loads(runner.invoke(main, ["index", "--from-helpdesk", "--full", "--json"]).output)
        assert (nightly["unchanged"], nightly["deleted"]) == (help_center["added"], 0)  # the folder's 2 stay too
    summary = json.loads(runner.invoke(main, ["index", "--status", "--json"]).output)
    assert summary["chunks"] == help_center["chunks"] + 2


@pytest.mark.parametrize("make", [
    lambda path: path.mkdir(),
    lambda path: (path.mkdir(), (path / "notes.txt").write_text("not an article")),
    lambda path: path.with_suffix(".jsonl").write_text(""),
], ids=["empty-folder", "no-articles-in-folder", "empty-file"])
def test_a_source_without_articles_is_an_error_and_removes_nothing(tmp_path, monkeypatch, make):
    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    kb = tmp_path / "kb.jsonl"
    kb.write_text(json.dumps({"id": "a", "title": "Refunds", "body": "Annual plans are refunded within 14 days."}))
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(kb)]).exit_code == 0
    source = tmp_path / "source"
    make(source)
    if not source.exists():
        source = source.with_suffix(".jsonl")
    result = runner.invoke(main, ["index", str(source)])
    assert result.exit_code == 1 and "no articles" in result.output and "0 added" not in result.output
    assert json.loads(runner.invoke(main, ["index", "--status", "--json"]).output)["chunks"] == 1


def test_ask_on_an_empty_index_says_so_and_the_sample_help_center_fills_it(tmp_path, monkeypatch):
    from helpdesk_bot.knowledge import SAMPLE_HELP_CENTER

    monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    empty = runner.invoke(main, ["ask", "How do I change the workspace URL?"])
    assert empty.exit_code == 1 and "index is empty" in empty.output and "index --sample" in empty.output

    sample = json.loads(runner.invoke(main, ["index", "--sample", "--json"]).output)
    published = [a for a in json.loads(SAMPLE_HELP_CENTER.read_text())["articles"] if not a.get("draft")]
    assert sample["added"] == len(published)  # drafts are left out
    answer = json.loads(runner.invoke(main, ["ask", "How do I change the workspace URL?", "--json"]).output)
    assert "Changing your workspace name or URL" in {source["title"] for source in answer["sources"]}
