"""Security: only signed webhooks and health checks are open, secrets stay out of logs, and
webhooks have size and rate limits."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest
import requests

from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import PUBLIC_ENDPOINTS, create_app
from integrations.zendesk import webhook as zendesk_webhook

SECRETS = {
    "ZENDESK_WEBHOOK_SECRET": "whsec-Kq8vN2xP7tR4mZ9wL3cY6bH1",
    "OPENAI_API_KEY": "sk-proj-T7yU2iO9pA4sD6fG1hJ3kL5zX8cV0bN",
    "ZENDESK_API_TOKEN": "zdtok-Rr5Tt6Yy7Uu8Ii9Oo0Pp1Aa2Ss3",
    "QDRANT_API_KEY": "qd-key-Mm4Nn5Bb6Vv7Cc8Xx9Zz0",
    "DATABASE_URL": "postgresql://helpdesk:Pg-Pa55-Xq81@db.internal/helpdesk",
}
# Paths anyone may call: signed webhooks, health checks, static files and the sign-in page.
# Everything else must ask for a login or a token.
PUBLIC_PATH_PREFIXES = ("/webhooks/", "/healthz", "/readyz", "/static/", "/dashboard/static/", "/dashboard/login")


def make_app(tmp_path, redis_url, **env):
    # A Redis database of their own: the rate limits count there, and the other tests of the
    # session post plenty of webhooks from 127.0.0.1 too.
    redis_url = redis_url.rsplit("/", 1)[0] + "/9"
    settings = Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path), "REDIS_URL": redis_url,
                                  "ZENDESK_WEBHOOK_SECRET": SECRETS["ZENDESK_WEBHOOK_SECRET"], **env})
    queued = []
    return create_app(settings, enqueue=queued.append), settings


def signed(body: bytes, secret: str = SECRETS["ZENDESK_WEBHOOK_SECRET"]) -> dict:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {zendesk_webhook.SIGNATURE_HEADER: zendesk_webhook.signature(secret, stamp, body),
            zendesk_webhook.TIMESTAMP_HEADER: stamp, "Content-Type": "application/json"}


def test_every_endpoint_but_signed_webhooks_and_health_needs_a_login(tmp_path, redis_url):
    app, _ = make_app(tmp_path, redis_url, HELPDESK_API_TOKEN="feedback-token-for-the-test",  # the API switched on
                      INTERCOM_SANDBOX_URL="http://127.0.0.1:9")
    client = app.test_client()
    checked = []
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<", "").replace(">", "")  # any value will do for a converter
        if rule.rule.startswith(PUBLIC_PATH_PREFIXES):
            assert rule.endpoint in PUBLIC_ENDPOINTS, rule
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            redirected_to_login = response.status_code in (302, 303) and "login" in response.headers.get("Location", "")
            # 400: a form post without its CSRF token is refused before the login is looked at.
            assert response.status_code in (400, 401, 403) or redirected_to_login, (rule.rule, method,
                                                                                    response.status_code)
            checked.append((rule.rule, method))
    # Every webhook refuses an unsigned POST.
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/webhooks/") and "POST" in rule.methods:
            response = client.post(rule.rule, data=b"{}")
            assert 400 <= response.status_code < 500 and response.status_code != 404, rule.rule


def test_public_endpoints_are_only_webhooks_health_static_and_sign_in():
    assert PUBLIC_ENDPOINTS <= {"zendesk", "intercom", "intercom_validation", "healthz", "readyz", "static",
                                "dashboard.static", "dashboard.login"}


def test_secrets_are_not_in_settings_repr_or_the_web_apps_logs(tmp_path, redis_url, caplog):
    with caplog.at_level(logging.DEBUG):
        app, settings = make_app(tmp_path, redis_url, ZENDESK_SUBDOMAIN="acme", ZENDESK_EMAIL="bot@acme.example",
                                 **{k: v for k, v in SECRETS.items() if k not in ("ZENDESK_WEBHOOK_SECRET", "DATABASE_URL")})
        client = app.test_client()
        body = b'{"ticket_id": "41"}'
        client.post("/webhooks/zendesk", data=body, headers=signed(body))  # genuine
        client.post("/webhooks/zendesk", data=body, headers=signed(body, secret="wrong"))  # forged
        client.post("/webhooks/zendesk", data=b"{not json", headers=signed(b"{not json"))
        app.logger.error("settings at start: %r", settings)
        logging.getLogger("helpdesk_bot").exception("an error with the settings %s", settings)
    with_db = Settings.from_env({"DATABASE_URL": SECRETS["DATABASE_URL"], "REDIS_URL": "redis://:Rd-Pa55-Zz@r:6379/0"})
    text = caplog.text + repr(settings) + repr(with_db)
    for name, value in {**SECRETS, "DATABASE_URL": "Pg-Pa55-Xq81", "REDIS_URL": "Rd-Pa55-Zz"}.items():
        assert value not in text, name


def test_webhooks_are_rate_limited_per_ip_with_retry_after(tmp_path, redis_url):
    app, _ = make_app(tmp_path, redis_url, HELPDESK_WEBHOOK_RATE_LIMIT="5/60")
    client = app.test_client()
    answers = [client.post("/webhooks/zendesk", data=b"{}", environ_base={"REMOTE_ADDR": "203.0.113.7"})
               for _ in range(7)]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 2
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "rate limit" in refused.get_json()["error"] and "per IP" in refused.get_json()["error"]
    other = client.post("/webhooks/zendesk", data=b"{}", environ_base={"REMOTE_ADDR": "203.0.113.8"})
    assert other.status_code == 401  # another sender is not affected
    assert client.get("/healthz").status_code == 200  # health checks are not rate limited


def test_webhooks_are_rate_limited_per_account(tmp_path, redis_url):
    app, _ = make_app(tmp_path, redis_url, HELPDESK_ACCOUNT_RATE_LIMIT="3/60")
    client = app.test_client()
    statuses = []
    for n in range(5):
        body = json.dumps({"ticket_id": str(9100 + n)}).encode()
        statuses.append(client.post("/webhooks/zendesk", data=body,
                                    headers={**signed(body), "X-Zendesk-Account-Id": "4242"}).status_code)
    assert statuses == [202, 202, 202, 429, 429]
    body = b'{"ticket_id": "9200"}'
    assert client.post("/webhooks/zendesk", data=body,
                       headers={**signed(body), "X-Zendesk-Account-Id": "77"}).status_code == 202


@pytest.mark.parametrize("setting", ["HELPDESK_WEBHOOK_RATE_LIMIT", "HELPDESK_ACCOUNT_RATE_LIMIT"])
@pytest.mark.parametrize("value", ["fast", "0/60", "10/0", "10/x"])
def test_a_bad_rate_limit_setting_is_named(setting, value):
    from helpdesk_bot.errors import ConfigError

    with pytest.raises(ConfigError, match=setting):
        Settings.from_env({setting: value})


def test_an_oversized_chunked_body_is_refused_over_http(stack):
    def chunks():
        yield b'{"ticket_id": "1", "pad": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    # Signature headers of the right form (a request without them is refused before its body is read).
    response = requests.post(stack.webhook_url, data=chunks(), timeout=30,
                             headers={**signed(b"", secret="not-the-secret"), "Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["error"]


def test_the_worker_log_holds_no_secret(stack):
    log = stack.worker_log.read_text(errors="replace")
    assert stack.settings.webhook_secret() not in log
    assert "ready." in log


def test_the_intercom_webhook_refuses_everything_when_no_intercom_is_configured(tmp_path, redis_url):
    from integrations.intercom.webhook import SIGNATURE_HEADER, signature
    from helpdesk_bot.settings import sandbox_secret

    app, _ = make_app(tmp_path, redis_url)
    client = app.test_client()
    body = b'{"type": "notification_event", "topic": "conversation.user.created", "data": {"item": {"id": "1"}}}'
    forged_with_the_sandbox_secret = {SIGNATURE_HEADER: signature(sandbox_secret(tmp_path, "intercom"), body)}
    assert client.post("/webhooks/intercom", data=body, headers=forged_with_the_sandbox_secret).status_code == 404
    assert client.head("/webhooks/intercom").status_code == 404
