"""`helpdesk-bot zendesk setup` against the sandbox Zendesk: plan, create, idempotent re-runs,
repairs, and the triggers it makes firing (or not) as tickets change."""

from __future__ import annotations

import json
import os
import threading

import pytest
import requests
from click.testing import CliRunner
from werkzeug.serving import make_server

from helpdesk_bot.ops.cli import main
from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import create_app
from integrations.sandbox import BOT_AGENT_ID, ESCALATION_GROUP_ID, HUMAN_AGENT_ID, SandboxHelpdesk
from integrations.zendesk.setup import FOLLOW_UP_TRIGGER, NEW_TICKET_TRIGGER, WEBHOOK_NAME
from workers.broker import stop_embedded_redis

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def sandbox():
    with SandboxHelpdesk() as sandbox:
        yield sandbox


@pytest.fixture
def env(sandbox, tmp_path, monkeypatch):
    policy = tmp_path / "policy.toml"
    policy.write_text(f"escalation_group_id = {ESCALATION_GROUP_ID}\n")
    for name in list(os.environ):
        if name.startswith("ZENDESK_"):
            monkeypatch.delenv(name)
    return {"SANDBOX_URL": sandbox.url, "HELPDESK_DATA_DIR": str(tmp_path), "HELPDESK_POLICY": str(policy)}


def setup(env, url="https://bot.example.com", *args):
    result = CliRunner().invoke(main, ["zendesk", "setup", "--url", url, "--json", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def actions(report) -> dict[str, str]:
    return {f"{s['what']} {s['name']}": s["action"] for s in report["steps"]}


def writes(sandbox) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sandbox.state.requests if r.method in WRITES]


def api(sandbox, path):
    response = requests.get(f"{sandbox.url}/api/v2/{path}", auth=("bot@orbitask.example/token", "sandbox"), timeout=10)
    response.raise_for_status()
    return response.json()


def test_dry_run_plans_everything_and_changes_nothing(sandbox, env):
    code, report = setup(env, "https://bot.example.com", "--dry-run")
    assert code == 0 and report["dry_run"] and report["changed"]
    assert actions(report) == {
        f"bot agent {BOT_AGENT_ID}": "ok", f"escalation group {ESCALATION_GROUP_ID}": "ok",
        f"webhook {WEBHOOK_NAME}": "create", f"trigger {NEW_TICKET_TRIGGER}": "create",
        f"trigger {FOLLOW_UP_TRIGGER}": "create",
    }
    assert "signing_secret" not in report
    assert writes(sandbox) == []
    assert api(sandbox, "webhooks")["webhooks"] == [] and api(sandbox, "triggers.json")["triggers"] == []


def test_setup_creates_once_and_a_second_run_changes_nothing(sandbox, env):
    code, first = setup(env)
    assert code == 0 and first["changed"]
    [webhook] = api(sandbox, "webhooks")["webhooks"]
    assert (webhook["name"], webhook["endpoint"], webhook["http_method"], webhook["request_format"],
            webhook["subscriptions"]) == (WEBHOOK_NAME, "https://bot.example.com/webhooks/zendesk", "POST", "json",
                                          ["conditional_ticket_events"])
    secret = api(sandbox, f"webhooks/{webhook['id']}/signing_secret")["signing_secret"]["secret"]
    assert first["signing_secret"] == secret and first["webhook_id"] == webhook["id"]

    triggers = {t["title"]: t for t in api(sandbox, "triggers.json")["triggers"]}
    new_ticket = triggers[NEW_TICKET_TRIGGER]
    assert {"field": "update_type", "operator": "is", "value": "Create"} in new_ticket["conditions"]["all"]
    assert {"field": "current_tags", "operator": "not_includes", "value": "ai_answered ai_escalated"} in \
        new_ticket["conditions"]["all"]
    [action] = new_ticket["actions"]
    assert action["field"] == "notification_webhook" and action["value"][0] == webhook["id"]
    assert json.loads(action["value"][1]) == {"ticket_id": "{{ticket.id}}", "event": "ticket.created"}
    follow_up = triggers[FOLLOW_UP_TRIGGER]
    assert {"field": "role", "operator": "is", "value": "end_user"} in follow_up["conditions"]["all"]
    assert {"field": "assignee_id", "operator": "is", "value": ""} in follow_up["conditions"]["any"]

    before = writes(sandbox)
    code, second = setup(env)
    assert code == 0 and not second["changed"]
    assert set(actions(second).values()) == {"ok", "unchanged"}
    assert writes(sandbox) == before  # nothing written the second time
    assert second["signing_secret"] == secret and second["webhook_id"] == webhook["id"]
    assert len(api(sandbox, "webhooks")["webhooks"]) == 1 and len(api(sandbox, "triggers.json")["triggers"]) == 2


def test_setup_repairs_what_was_changed_by_hand(sandbox, env):
    setup(env)
    [webhook] = api(sandbox, "webhooks")["webhooks"]
    trigger = next(t for t in api(sandbox, "triggers.json")["triggers"] if t["title"] == NEW_TICKET_TRIGGER)
    admin = sandbox.state.admin
    admin.update_trigger(trigger["id"], {"active": False, "conditions": {
        "all": [{"field": "update_type", "operator": "is", "value": "Create"}], "any": []}})

    code, report = setup(env, "https://new-host.example.com")
    assert code == 0
    assert actions(report)[f"webhook {WEBHOOK_NAME}"] == "update"
    assert actions(report)[f"trigger {NEW_TICKET_TRIGGER}"] == "update"
    assert actions(report)[f"trigger {FOLLOW_UP_TRIGGER}"] == "unchanged"
    assert admin.webhook(webhook["id"])["endpoint"] == "https://new-host.example.com/webhooks/zendesk"
    repaired = admin.trigger(trigger["id"])
    assert repaired["active"] is True and len(repaired["conditions"]["all"]) == 2
    assert setup(env, "https://new-host.example.com")[1]["changed"] is False


def test_a_missing_escalation_group_is_a_problem(sandbox, env, tmp_path):
    (tmp_path / "policy.toml").write_text("escalation_group_id = 123\n")
    code, report = setup(env)
    assert code == 1 and report["problems"] == 1
    [problem] = [s for s in report["steps"] if s["action"] == "problem"]
    assert problem["what"] == "escalation group" and "Support (36000000000201)" in problem["detail"]


def test_plain_http_to_another_host_is_refused(env):
    result = CliRunner().invoke(main, ["zendesk", "setup", "--url", "http://bot.example.com"], env=env)
    assert result.exit_code == 2 and "https" in result.output


def test_the_triggers_send_new_tickets_and_follow_ups_but_not_the_bots_own_updates(sandbox, env, tmp_path):
    """Point the webhook at a real web app; the sandbox runs the triggers as tickets change."""
    queued: list[int] = []
    app = create_app(Settings.from_env({**env, "HELPDESK_DATA_DIR": str(tmp_path / "app")}), enqueue=queued.append)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, report = setup(env, f"http://127.0.0.1:{server.server_port}")
        assert code == 0
        app.extensions["webhook_secret"] = report["signing_secret"]  # as if set as ZENDESK_WEBHOOK_SECRET
        admin = sandbox.state.admin

        def deliveries():
            assert admin.wait_idle(10)
            return [(a.event, a.status_code) for a in admin.attempts]

        ticket_id = sandbox.create_ticket("Invoices", "Where are my invoices?", "cu@example.com", "Cu")
        assert deliveries() == [("trigger:" + str(_trigger_id(sandbox, NEW_TICKET_TRIGGER)), 202)]
        assert len(queued) == 1

        # The bot's note and tag (an agent's update) fire neither trigger.
        requests.put(f"{sandbox.url}/api/v2/tickets/{ticket_id}.json", auth=("bot@orbitask.example/token", "sandbox"),
                     json={"ticket": {"comment": {"html_body": "<p>note</p>", "public": False},
                                      "additional_tags": ["ai_escalated"]}}, timeout=10).raise_for_status()
        assert len(deliveries()) == 1

        # The customer writes again while no human is assigned: a follow-up delivery.
        sandbox.add_customer_reply(ticket_id, "Any news?")
        follow_up = "trigger:" + str(_trigger_id(sandbox, FOLLOW_UP_TRIGGER))
        assert deliveries()[1:] == [(follow_up, 202)]

        # Once a human is assigned, the customer's replies are theirs to answer.
        requests.put(f"{sandbox.url}/api/v2/tickets/{ticket_id}.json", auth=("riley@orbitask.example/token", "x"),
                     json={"ticket": {"assignee_id": HUMAN_AGENT_ID}}, timeout=10).raise_for_status()
        sandbox.add_customer_reply(ticket_id, "Hello?")
        assert len(deliveries()) == 2

        # A ticket created with the bot's own tag (e.g. by an import) is not sent either.
        sandbox.create_ticket("Imported", "Old question", "old@example.com", tags=["ai_answered"])
        assert len(deliveries()) == 2
    finally:
        server.shutdown()
        stop_embedded_redis(tmp_path / "app")  # the app's rate limits started it: no REDIS_URL here


def _trigger_id(sandbox, title) -> int:
    return next(t["id"] for t in sandbox.state.admin.list_triggers() if t["title"] == title)


def test_a_fresh_install_without_a_policy_file_uses_the_built_in_defaults(sandbox, env, tmp_path):
    del env["HELPDESK_POLICY"]
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "fresh")  # no policy.toml in it
    code, report = setup(env)
    assert code == 0 and report["problems"] == 0, report
    [group] = [s for s in report["steps"] if s["what"] == "escalation group"]
    assert "keep their group" in group["detail"] and "Support (36000000000201)" in group["detail"]
    assert actions(report)[f"webhook {WEBHOOK_NAME}"] == "create"
