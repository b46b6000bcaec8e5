"""The dashboard, the feedback API, /metrics and /readyz over real HTTP on loopback."""

from __future__ import annotations

import functools
import re
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from helpdesk_bot.domain import TicketEvent
from helpdesk_bot.ledger import admin_users
from helpdesk_bot.policy import load_policy
from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import create_app
from workers.broker import stop_embedded_redis

PASSWORD = "correct horse battery"


@functools.cache
def password_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD)
TOKEN = "sidebar-token-0123456789"


@pytest.fixture
def site(tmp_path):
    """The web app on SQLite (the ledger's PostgreSQL behaviour is covered by the ledger's own tests)."""
    yield from _site(tmp_path, f"sqlite:///{tmp_path}/ledger.db")


@pytest.fixture
def pg_site(tmp_path, database_url):
    """The web app on each database the ledger tests use."""
    yield from _site(tmp_path, database_url)


def _site(tmp_path, database_url):
    policy = tmp_path / "policy.toml"
    policy.write_text('threshold = 70\n[[rules]]\ntags = ["billing"]\nthreshold = 85\n')
    settings = Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path), "DATABASE_URL": database_url,
                                  "HELPDESK_POLICY": str(policy), "HELPDESK_API_TOKEN": TOKEN})
    queued = []
    app = create_app(settings, enqueue=queued.append)
    with app.extensions["ledger"].engine.begin() as db:  # hashing once per run, not once per test
        db.execute(admin_users.insert().values(username="admin", password_hash=password_hash(), created_at=time.time()))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield type("Site", (), {"url": f"http://127.0.0.1:{server.server_port}", "app": app, "queued": queued,
                            "ledger": app.extensions["ledger"], "policy": policy})
    server.shutdown()
    app.extensions["ledger"].dispose()
    stop_embedded_redis(tmp_path)  # the app's rate limits started it: no REDIS_URL here


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(site, username="admin", password=PASSWORD) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{site.url}/dashboard/login", timeout=10)
    response = session.post(f"{site.url}/dashboard/login", timeout=10, data={
        "username": username, "password": password, "csrf_token": token_of(page.text)})
    assert response.status_code == 200 and "Overview" in response.text, response.text[:500]
    return session


# --- sign-in ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/dashboard/", "/dashboard/policy", "/dashboard/tickets", "/dashboard/topics",
                                  "/dashboard/dead-letters", "/dashboard/gaps.csv", "/dashboard/article-changes",
                                  "/dashboard/languages"])
def test_pages_need_sign_in(site, page):
    response = requests.get(site.url + page, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/login")


def test_wrong_password_is_refused(site):
    session = requests.Session()
    page = session.get(f"{site.url}/dashboard/login", timeout=10)
    response = session.post(f"{site.url}/dashboard/login", timeout=10, data={
        "username": "admin", "password": "wrong password!", "csrf_token": token_of(page.text)})
    assert response.status_code == 401 and "Wrong username or password" in response.text
    assert session.get(f"{site.url}/dashboard/", allow_redirects=False, timeout=10).status_code == 302


def test_users_are_created_with_hashed_passwords(site):
    import sqlalchemy as sa

    site.ledger.create_user("riley", "another long password")
    with site.ledger.engine.connect() as db:
        stored = db.execute(sa.select(admin_users.c.password_hash).where(admin_users.c.username == "riley")).scalar_one()
    assert "another long password" not in stored and stored.startswith(("scrypt:", "pbkdf2:"))
    assert site.ledger.check_login("riley", "another long password")["username"] == "riley"
    assert site.ledger.check_login("riley", "another long passwore") is None
    with pytest.raises(ValueError, match="already exists"):
        site.ledger.create_user("riley", "yet another password")
    with pytest.raises(ValueError, match="at least 10"):
        site.ledger.create_user("sam", "short")


def test_sign_in_without_the_csrf_token_is_refused(site):
    response = requests.post(f"{site.url}/dashboard/login", timeout=10,
                             data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400


def test_form_without_the_csrf_token_is_refused_and_changes_nothing(site):
    session = signed_in(site)
    before = site.policy.read_text()
    response = session.post(f"{site.url}/dashboard/policy", data={"form": "fields", "threshold": "10"}, timeout=10)
    assert response.status_code == 400
    assert site.policy.read_text() == before


def test_session_expires_after_idle_time(site):
    site.app.config["DASHBOARD_IDLE_SECONDS"] = 1
    session = signed_in(site)
    assert session.get(f"{site.url}/dashboard/", allow_redirects=False, timeout=10).status_code == 200
    time.sleep(1.3)
    response = session.get(f"{site.url}/dashboard/", allow_redirects=False, timeout=10)
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]


def test_sign_out_ends_the_session(site):
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/", timeout=10)
    session.post(f"{site.url}/dashboard/logout", data={"csrf_token": token_of(page.text)}, timeout=10)
    assert session.get(f"{site.url}/dashboard/", allow_redirects=False, timeout=10).status_code == 302


def test_a_copied_session_cookie_no_longer_works_after_sign_out(site):
    session = signed_in(site)
    copied = dict(session.cookies)  # what someone who saw the cookie (a shared machine, a proxy log) keeps
    page = session.get(f"{site.url}/dashboard/", timeout=10)
    session.post(f"{site.url}/dashboard/logout", data={"csrf_token": token_of(page.text)}, timeout=10)
    replayed = requests.get(f"{site.url}/dashboard/", cookies=copied, allow_redirects=False, timeout=10)
    assert replayed.status_code == 302 and "/dashboard/login" in replayed.headers["Location"]
    assert signed_in(site).get(f"{site.url}/dashboard/", timeout=10).status_code == 200  # a new sign-in works


@pytest.mark.parametrize("page", ["/dashboard/login", "/dashboard/", "/dashboard/policy", "/dashboard/tickets",
                                  "/dashboard/topics", "/dashboard/dead-letters", "/dashboard/gaps.csv"])
def test_every_dashboard_page_forbids_framing_and_sniffing(site, page):
    response = signed_in(site).get(site.url + page, timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'none'" in policy


@pytest.mark.parametrize("next_page", ["/dashboard/\r\nSet-Cookie: x=1", "/dashboard/%0d%0aLocation: //evil.example"])
def test_a_line_break_in_next_is_a_bad_request(site, next_page):
    from urllib.parse import unquote

    session = requests.Session()
    page = session.get(f"{site.url}/dashboard/login", timeout=10)
    response = session.post(f"{site.url}/dashboard/login", allow_redirects=False, timeout=10, data={
        "username": "admin", "password": PASSWORD, "csrf_token": token_of(page.text), "next": unquote(next_page)})
    assert response.status_code == 400
    shown = requests.get(f"{site.url}/dashboard/login", params={"next": unquote(next_page)}, timeout=10)
    assert shown.status_code == 400


def test_the_session_cookie_is_secure_when_the_public_address_is_https(tmp_path):
    for env, secure in [({"HELPDESK_PUBLIC_URL": "https://bot.example.com"}, True),
                        ({"HELPDESK_PUBLIC_URL": "https://bot.example.com", "HELPDESK_SECURE_COOKIES": "false"}, False),
                        ({"HELPDESK_PUBLIC_URL": "http://localhost:8000"}, False),
                        ({"HELPDESK_SECURE_COOKIES": "true"}, True), ({}, False)]:
        settings = Settings.from_env({"HELPDESK_DATA_DIR": str(tmp_path), **env})
        app = create_app(settings, enqueue=[].append)
        app.extensions["ledger"].dispose()
        stop_embedded_redis(tmp_path)  # the app's rate limits started it: no REDIS_URL here
        assert app.config["SESSION_COOKIE_SECURE"] is secure, env


def test_sign_in_never_redirects_off_site(site):
    session = requests.Session()
    page = session.get(f"{site.url}/dashboard/login", timeout=10)
    response = session.post(f"{site.url}/dashboard/login", allow_redirects=False, timeout=10, data={
        "username": "admin", "password": PASSWORD, "csrf_token": token_of(page.text), "next": "//evil.example/"})
    assert response.headers["Location"] == "/dashboard/"


# --- the policy editor ------------------------------------------------------------------------------------


def test_changing_a_tag_threshold_writes_the_file_and_the_audit_log(pg_site):
    site = pg_site  # on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/policy", timeout=10)
    response = session.post(f"{site.url}/dashboard/policy", timeout=10, data={
        "csrf_token": token_of(page.text), "form": "fields", "threshold": "70", "rollout": "25", "shadow": "on",
        "always_human_tags": "VIP, legal", "reply_status": "pending", "escalation_group_id": "0",
        "rule-0-tags": "billing", "rule-0-threshold": "60", "rule-0-allow_risks": "refund",
        "rule-1-tags": "howto", "rule-1-channels": "email", "rule-1-threshold": "50"})
    assert response.status_code == 200
    policy = load_policy(site.policy)
    assert policy.rollout == 25 and policy.shadow and policy.always_human_tags == {"vip", "legal"}
    assert {(tuple(sorted(r.tags)), r.threshold) for r in policy.rules} == {(("billing",), 60), (("howto",), 50)}
    assert {r.allow_risks for r in policy.rules} == {frozenset({"refund"}), frozenset()}
    assert 'name="rule-0-allow_risks" value="refund"' in response.text  # shown, so the next save keeps it
    [change] = site.ledger.policy_changes()
    assert change["changed_by"] == "admin"
    assert "rule for tags billing: threshold 85 → 60, allowed risks none → refund" in change["summary"]
    assert "rollout share: 100% → 25%" in change["summary"]
    assert "threshold = 85" in change["before_toml"] and "threshold = 60" in change["after_toml"]
    assert "rule for tags billing: threshold 85 → 60" in response.text  # shown in the audit log


def test_deleting_a_rule_and_the_kill_switch(site):
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/policy", timeout=10)
    session.post(f"{site.url}/dashboard/policy", timeout=10, data={
        "csrf_token": token_of(page.text), "form": "fields", "threshold": "70", "rollout": "100",
        "kill_switch": "on", "rule-0-tags": "billing", "rule-0-threshold": "85", "rule-0-delete": "on"})
    policy = load_policy(site.policy)
    assert policy.kill_switch and policy.rules == ()
    assert "kill switch: off → on" in site.ledger.policy_changes()[0]["summary"]


@pytest.mark.parametrize("fields, message", [
    ({"threshold": "170"}, "threshold must be an integer from 0 to 100"),
    ({"rollout": "150"}, "rollout must be a percentage"),
    ({"rule-0-tags": "billing", "rule-0-threshold": "high"}, "rules[1].threshold"),
    ({"rule-0-tags": "", "rule-0-threshold": "80"}, "rules[1].tags must name at least one tag"),
])
def test_invalid_policy_is_refused_by_name_and_not_written(site, fields, message):
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/policy", timeout=10)
    before = site.policy.read_text()
    data = {"csrf_token": token_of(page.text), "form": "fields", "threshold": "70", "rollout": "100",
            "rule-0-tags": "billing", "rule-0-threshold": "85", **fields}
    response = session.post(f"{site.url}/dashboard/policy", data=data, timeout=10)
    assert response.status_code == 400
    assert message in response.text.replace("&#39;", "'").replace("&gt;", ">")
    assert site.policy.read_text() == before and site.ledger.policy_changes() == []


def test_policy_edited_as_toml(site):
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/policy", timeout=10)
    session.post(f"{site.url}/dashboard/policy", timeout=10, data={
        "csrf_token": token_of(page.text), "form": "toml", "toml": "threshold = 80\n[[rules]]\nbrands = [7]\nthreshold = 90\n"})
    policy = load_policy(site.policy)
    assert policy.threshold == 80 and policy.rules[0].brands == {"7"}
    bad = session.post(f"{site.url}/dashboard/policy", timeout=10, data={
        "csrf_token": token_of(page.text), "form": "toml", "toml": "threshold = \n"})
    assert bad.status_code == 400 and "not valid TOML" in bad.text


# --- dead letters --------------------------------------------------------------------------------------


def test_dead_letter_is_listed_and_replayed(site):
    event_id, _ = site.ledger.record_event(TicketEvent("zendesk", "inv-dead", "777"))
    site.ledger.set_status(event_id, "dead", "helpdesk said 403")
    site.ledger.add_dead_letter(event_id, "helpdesk said 403", human_notified=True)
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/dead-letters", timeout=10)
    assert "helpdesk said 403" in page.text and "#777" in page.text
    [letter] = site.ledger.dead_letters()
    response = session.post(f"{site.url}/dashboard/dead-letters/replay", timeout=10,
                            data={"csrf_token": token_of(page.text), "id": str(letter["id"])})
    assert "Replayed 1 dead letter" in response.text
    assert site.queued == [event_id]
    assert site.ledger.dead_letters() == [] and site.ledger.get_event(event_id).status == "queued"


# --- the feedback API ----------------------------------------------------------------------------------


def answered_ticket(site, ticket_id="555"):
    from tests.test_ledger import outcome

    event_id, _ = site.ledger.record_event(TicketEvent("zendesk", f"inv-{ticket_id}", ticket_id))
    site.ledger.record_decision(event_id, outcome(ticket_id=ticket_id), {"retrieve": 5.0})
    return event_id


def test_feedback_api_records_an_agents_verdict(site):
    answered_ticket(site)
    response = requests.post(f"{site.url}/api/feedback", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"ticket_id": 555, "rating": "bad", "reason": "wrong plan", "agent": 360002})
    assert response.status_code == 201 and response.json()["status"] == "recorded"
    [fb] = site.ledger.feedback_for("zendesk", "555")
    assert (fb["rating"], fb["reason"], fb["source"], fb["agent"]) == ("bad", "wrong plan", "sidebar", "360002")
    again = requests.post(f"{site.url}/api/feedback", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"ticket_id": "555", "rating": "good", "agent": 360002})
    assert again.status_code == 201
    assert [f["rating"] for f in site.ledger.feedback_for("zendesk", "555")] == ["good"]  # the same agent changed their mind


@pytest.mark.parametrize("headers, body, status", [
    ({}, {"ticket_id": "555", "rating": "good"}, 401),
    ({"Authorization": "Bearer nope"}, {"ticket_id": "555", "rating": "good"}, 401),
    ({"Authorization": f"Basic {TOKEN}"}, {"ticket_id": "555", "rating": "good"}, 401),
    ({"Authorization": f"Bearer {TOKEN}"}, {"ticket_id": "555", "rating": "meh"}, 400),
    ({"Authorization": f"Bearer {TOKEN}"}, {"rating": "good"}, 400),
    ({"Authorization": f"Bearer {TOKEN}"}, ["not", "an", "object"], 400),
    ({"Authorization": f"Bearer {TOKEN}"}, {"ticket_id": "404404", "rating": "good"}, 404),
])
def test_feedback_api_refuses_bad_requests(site, headers, body, status):
    answered_ticket(site)
    response = requests.post(f"{site.url}/api/feedback", json=body, headers=headers, timeout=10)
    assert response.status_code == status and response.json()["error"]
    assert site.ledger.feedback_for("zendesk", "555") == []


# --- pages with data, /metrics, /readyz -----------------------------------------------------------------------


def test_pages_show_the_ledger(site):
    answered_ticket(site, "555")
    session = signed_in(site)
    overview = session.get(f"{site.url}/dashboard/", timeout=10).text
    assert '<div class="value" id="tickets">1</div>' in overview and "<svg" in overview
    assert "#555" in session.get(f"{site.url}/dashboard/tickets", timeout=10).text
    detail = session.get(f"{site.url}/dashboard/tickets/zendesk/555", timeout=10).text
    assert ">Downloading invoices <" in detail and "retrieval_strength" in detail  # the article's title, not its id
    assert "billing" in session.get(f"{site.url}/dashboard/tags", timeout=10).text
    assert "Confidence against outcomes" in session.get(f"{site.url}/dashboard/quality", timeout=10).text
    assert session.get(f"{site.url}/dashboard/tickets/zendesk/nope", timeout=10).status_code == 404


def test_a_draft_held_back_for_an_agent_is_neither_sent_nor_escalated_but_its_cost_counts(site):
    from dataclasses import replace

    from helpdesk_bot.pipeline import held_back
    from tests.test_ledger import outcome

    drafted = outcome(ticket_id="556")
    drafted = replace(drafted, draft=replace(drafted.draft, prompt_tokens=1200, completion_tokens=80))
    event_id, _ = site.ledger.record_event(TicketEvent("zendesk", "inv-556", "556"))
    site.ledger.record_decision(event_id, held_back(drafted, "a human agent (360002) is assigned"), {"draft": 900.0})
    session = signed_in(site)
    overview = session.get(f"{site.url}/dashboard/", timeout=10).text
    assert '<div class="value" id="tickets">1</div>' in overview
    assert "Of these 0 escalations, 0 were for lack of knowledge" in overview and "Not counted here: 1 ticket an agent took" in overview
    held = session.get(f"{site.url}/dashboard/tickets", params={"action": "held_back"}, timeout=10).text
    assert "#556" in held and "held back: an agent took over" in held
    assert "#556" not in session.get(f"{site.url}/dashboard/tickets", params={"action": "escalate"}, timeout=10).text
    detail = session.get(f"{site.url}/dashboard/tickets/zendesk/556", timeout=10).text
    assert "held back: a human agent (360002) is assigned since the reply was drafted" in detail
    assert "Tokens 1200 + 80" in detail
    text = requests.get(f"{site.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert 'helpdesk_bot_decisions_total{action="held_back",code="taken_over"} 1.0' in text
    assert "helpdesk_bot_llm_cost_usd_total 0.000228" in text  # 1200 × $0.15 + 80 × $0.60 per million tokens


def test_metrics_for_prometheus(site):
    answered_ticket(site)
    assert requests.get(f"{site.url}/metrics", timeout=10).status_code == 401  # not without the token
    text = requests.get(f"{site.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert 'helpdesk_bot_decisions_total{action="auto_send",code=""} 1.0' in text
    assert "helpdesk_bot_dead_letters_open 0.0" in text
    assert "helpdesk_bot_policy_rollout_percent 100.0" in text
    assert "helpdesk_bot_beat_running 0.0" in text  # nothing re-queues lost events: worth an alert
    assert 'helpdesk_bot_article_change_answers_total{verdict="unsupported_now"} 0.0' in text
    assert "helpdesk_bot_article_change_notes_due 0.0" in text
    from workers.beat_lock import LeaderLock

    assert LeaderLock(site.app.extensions["broker_redis"], holder="beat-host:1:test").acquire_or_renew()
    text = requests.get(f"{site.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert "helpdesk_bot_beat_running 1.0" in text


def test_readyz_checks_the_database_schema(site):
    response = requests.get(f"{site.url}/readyz", timeout=10)
    assert response.status_code == 200 and response.json()["checks"]["database"] == "ok"
    with site.ledger.engine.begin() as db:
        import sqlalchemy as sa

        db.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    response = requests.get(f"{site.url}/readyz", timeout=10)
    assert response.status_code == 503 and "0001" in response.json()["checks"]["database"]


def test_repeated_failed_sign_ins_lock_the_account_for_a_while(site):
    import uuid

    username = f"ops-{uuid.uuid4().hex[:8]}"  # its own counters: the limits live in Redis
    site.ledger.create_user(username, PASSWORD)

    def attempt(password):
        session = requests.Session()
        page = session.get(f"{site.url}/dashboard/login", timeout=10)
        return session.post(f"{site.url}/dashboard/login", timeout=10, allow_redirects=False, data={
            "username": username, "password": password, "csrf_token": token_of(page.text)})

    assert attempt(PASSWORD).status_code == 302  # a success counts nothing
    for _ in range(5):
        assert attempt("a wrong guess").status_code == 401
    locked = attempt(PASSWORD)  # even the right password: it is not checked until the window ends
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert signed_in(site)  # another account from the same address still signs in


def test_a_read_only_policy_is_shown_without_the_editor_and_says_why(site, monkeypatch):
    """A Kubernetes ConfigMap is mounted read-only: access(2) says EROFS, for root too."""
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if mode == os.W_OK and str(path).startswith(
        str(site.policy.parent)) else real_access(path, mode))
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/policy", timeout=10)
    assert 'id="policy-read-only"' in page.text and "configmap.yaml" in page.text
    assert 'id="policy-form"' not in page.text and "threshold = 70" in page.text
    before = site.policy.read_text()
    refused = session.post(f"{site.url}/dashboard/policy", timeout=10, data={
        "csrf_token": token_of(page.text), "form": "toml", "toml": "threshold = 10\n"})
    assert refused.status_code == 409 and "read-only" in refused.text
    assert site.policy.read_text() == before


def test_tag_links_and_the_tag_filter_narrow_the_ticket_list(site):
    from tests.test_ledger import outcome

    for ticket_id, tags in (("601", {"billing"}), ("602", {"sso", "enterprise"}), ("603", {"billing", "vip"})):
        event_id, _ = site.ledger.record_event(TicketEvent("zendesk", f"inv-{ticket_id}", ticket_id))
        site.ledger.record_decision(event_id, outcome(ticket_id=ticket_id, tags=frozenset(tags)), {"retrieve": 5.0})
    session = signed_in(site)
    tags_page = session.get(f"{site.url}/dashboard/tags", timeout=10).text
    billing_link = re.search(r'href="([^"]*tag=billing[^"]*)">billing<', tags_page).group(1).replace("&amp;", "&")
    listed = session.get(site.url + billing_link, timeout=10).text
    assert "#601" in listed and "#603" in listed and "#602" not in listed
    assert 'id="tag-filter"' in listed and "<option selected>billing</option>" in listed
    sso = session.get(f"{site.url}/dashboard/tickets", params={"tag": "sso"}, timeout=10).text
    assert "#602" in sso and "#601" not in sso
    assert 'href="/dashboard/tickets?days=30&amp;tag=vip"' in sso or "tag=vip" in listed  # each row's tags link too


def test_the_overview_says_which_escalations_were_for_lack_of_knowledge(site):
    from tests.test_ledger import outcome

    for ticket_id, dense in (("701", 0.1), ("702", 0.1), ("703", 0.9)):
        event_id, _ = site.ledger.record_event(TicketEvent("zendesk", f"inv-{ticket_id}", ticket_id))
        site.ledger.record_decision(event_id, outcome(ticket_id=ticket_id, dense=dense), {"retrieve": 5.0})
    s = site.ledger  # noqa: F841
    overview = signed_in(site).get(f"{site.url}/dashboard/", timeout=10).text
    share = re.search(r'id="knowledge-gap-share">(.*?)</p>', overview, re.S).group(1)
    from helpdesk_bot import analytics

    summary = analytics.summarize(analytics.load_tickets(site.ledger))
    assert f"Of these {summary.escalated} escalations, {summary.knowledge_gaps} were for lack of knowledge" in share
    for code, n in summary.knowledge_gap_reasons.items():
        assert f"{n} of the “{analytics.ESCALATION_REASONS[code]}”" in share
    assert sum(summary.knowledge_gap_reasons.values()) == summary.knowledge_gaps <= summary.escalated


def test_every_page_names_its_icon_and_the_icon_is_served(site):
    page = requests.get(f"{site.url}/dashboard/login", timeout=10).text
    icon = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', page).group(1)
    served = requests.get(site.url + icon, timeout=10)
    assert served.status_code == 200 and served.content.startswith(b"<svg")


def test_the_languages_page_counts_per_language_and_lists_the_articles_without_a_translation(site):
    from dataclasses import replace

    from helpdesk_bot.domain import Article
    from tests.test_ledger import outcome

    for ticket_id, language in (("601", "es"), ("602", "es"), ("603", "en")):
        answered = outcome(ticket_id=ticket_id)
        event_id, _ = site.ledger.record_event(TicketEvent("zendesk", f"inv-{ticket_id}", ticket_id))
        site.ledger.record_decision(event_id, replace(answered, ticket=replace(answered.ticket, language=language)),
                                    {"retrieve": 5.0})
    site.ledger.record_indexed_articles([Article("invoices", "Downloading invoices", "<p>x</p>"),
                                         Article("refunds", "Refund policy", "<p>x</p>"),
                                         Article("refunds:es", "Política de reembolsos", "<p>x</p>", locale="es")])
    session = signed_in(site)
    page = session.get(f"{site.url}/dashboard/languages", timeout=10).text
    assert "Spanish <span class=\"muted\">es</span></td><td class=\"num\">2</td>" in page
    assert "English <span class=\"muted\">en</span></td><td class=\"num\">1</td>" in page
    spanish = page.split('id="missing-es"')[1]
    assert "Spanish: 1 article without a translation" in spanish
    assert "<td>Downloading invoices</td><td class=\"num\">2</td>" in spanish  # both Spanish tickets needed it
    assert "Refund policy" not in spanish
    assert "<td>es</td>" in session.get(f"{site.url}/dashboard/tickets", timeout=10).text
