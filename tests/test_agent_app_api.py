"""The sidebar app's API over loopback HTTP: nothing is served without a token Zendesk's proxy signed."""

from __future__ import annotations

import threading
import time

import jwt
import pytest
import requests
from werkzeug.serving import make_server

from helpdesk_bot.web.agent_app import HELPDESK, Unauthorized, verify_token
from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import create_app
from workers.broker import stop_embedded_redis

SECRET = "s3cret-shared-with-the-zendesk-app"


def token(secret: str, ticket_id, agent="36000000000102", lifetime=60, **claims) -> str:
    now = int(time.time())
    body = {"iss": "https://sandbox.zendesk.com", "sub": agent, "ticket_id": str(ticket_id), "iat": now,
            "exp": now + lifetime, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def api(stack):
    base = stack.webhook_url.rsplit("/webhooks/", 1)[0] + "/agent-app/api/tickets"
    secret = stack.settings.agent_app_secret()

    def call(method, ticket_id, path, bearer=None, **kwargs):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return requests.request(method, f"{base}/{ticket_id}/{path}", headers=headers, timeout=60, **kwargs)

    call.secret = secret
    return call


@pytest.fixture(scope="module")
def decided_ticket(stack) -> str:
    ticket_id = stack.sandbox.create_ticket(
        "Export my tasks", "How do I export all tasks to a CSV file?", "ops@example.com", "Jo", tags=[])
    stack.processed(ticket_id)
    return str(ticket_id)


def test_the_latest_draft_is_served_with_a_valid_token(api, stack, decided_ticket):
    response = api("GET", decided_ticket, "draft", token(api.secret, decided_ticket))
    assert response.status_code == 200
    view = response.json()
    decision = stack.ledger.latest_decision(HELPDESK, decided_ticket)
    assert (view["decision_id"], view["draft"], view["confidence"]) == (decision["id"], decision["draft"], decision["confidence"])
    assert {c["name"] for c in view["components"]} >= {"retrieval_strength", "question_coverage", "draft_support"}
    assert all(s["url"].startswith("http") and s["title"] for s in view["sources"])


@pytest.mark.parametrize(("case", "message"), [
    ("no token", "missing bearer token"),
    ("wrong secret", "signature"),
    ("expired", "expired"),
    ("long-lived", "longer than"),
    ("another ticket", "another ticket"),
    ("no agent", "no agent"),
    ("not a jwt", "invalid token"),
    ("none algorithm", "invalid token"),
])
def test_requests_without_a_valid_token_are_refused(api, decided_ticket, case, message):
    bearer = {
        "no token": None,
        "wrong secret": token("some other secret of enough length", decided_ticket),
        "expired": token(api.secret, decided_ticket, lifetime=-120),
        "long-lived": token(api.secret, decided_ticket, lifetime=7 * 24 * 3600),
        "another ticket": token(api.secret, "424242"),
        "no agent": token(api.secret, decided_ticket, agent=None),
        "not a jwt": "abc.def.ghi",
        "none algorithm": jwt.encode({"sub": "1", "ticket_id": decided_ticket, "exp": time.time() + 60}, None,
                                     algorithm="none"),
    }[case]
    for method, path in (("GET", "draft"), ("POST", "regenerate"), ("POST", "feedback")):
        response = api(method, decided_ticket, path, bearer, json={"verdict": "good"})
        assert response.status_code == 401, (case, path)
        assert message.lower() in response.json()["error"].lower()
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("body", "message"), [
    ({"verdict": "meh"}, "verdict"),
    ({"verdict": "bad"}, "what was wrong"),
    ({"verdict": "good", "reason": 5}, "reason must be a string"),
    ({"verdict": "good", "decision_id": "7"}, "decision_id"),
    ({"verdict": "good", "decision_id": 10**9}, "has no decision"),
    ([], "JSON object"),
])
def test_bad_feedback_is_refused_with_a_clear_error(api, stack, decided_ticket, body, message):
    response = api("POST", decided_ticket, "feedback", token(api.secret, decided_ticket), json=body)
    assert response.status_code in (400, 404)
    assert message.lower() in response.json()["error"].lower()
    assert stack.ledger.draft_feedback_for(HELPDESK, decided_ticket) == []


def test_good_feedback_is_recorded_for_the_agent_in_the_token(api, stack, decided_ticket):
    response = api("POST", decided_ticket, "feedback", token(api.secret, decided_ticket, agent="777"),
                   json={"verdict": "good", "reason": ""})
    assert response.status_code == 201
    [row] = [r for r in stack.ledger.draft_feedback_for(HELPDESK, decided_ticket) if r["agent_id"] == "777"]
    assert (row["verdict"], row["decision_id"]) == ("good", None)


def test_regenerating_a_ticket_zendesk_does_not_have_is_a_404(api):
    response = api("POST", "987650", "regenerate", token(api.secret, "987650"), json={})
    assert response.status_code == 404 and "not found" in response.json()["error"].lower()


def test_without_a_configured_secret_the_api_is_off(tmp_path):
    settings = Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path), "ZENDESK_SUBDOMAIN": "acme",
                                  "ZENDESK_EMAIL": "bot@acme.test", "ZENDESK_API_TOKEN": "t",
                                  "ZENDESK_WEBHOOK_SECRET": "w"})
    server = make_server("127.0.0.1", 0, create_app(settings, enqueue=lambda event_id: None), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/agent-app/api/tickets/1/draft"
        response = requests.get(url, headers={"Authorization": f"Bearer {token('x' * 32, 1)}"}, timeout=10)
        assert response.status_code == 503 and "ZENDESK_APP_SECRET" in response.json()["error"]
    finally:
        server.shutdown()
        stop_embedded_redis(tmp_path)  # the app's rate limits started it: no REDIS_URL here


def test_a_token_for_another_zendesk_account_is_refused():
    with pytest.raises(Unauthorized, match="not issued for https://acme.zendesk.com"):
        verify_token(token(SECRET, 5), SECRET, "5", subdomain="acme")
    caller = verify_token(token(SECRET, 5, iss="https://acme.zendesk.com"), SECRET, "5", subdomain="acme")
    assert (caller.agent_id, caller.ticket_id) == ("36000000000102", "5")
