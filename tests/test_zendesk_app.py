"""The sidebar app in headless Chromium, as an agent uses it inside a Zendesk ticket.

The app is served from the upload zip that `helpdesk-bot zendesk-app package` builds, at the kind
of address Zendesk serves apps from. The ZAF SDK's URL serves tests/zaf_standin.js, a stand-in
client that records calls; its request() goes to `zafProxy` below, which does what Zendesk's
proxy does for a secure request (fill in the secure setting, sign the JWT) and calls the real
product API over loopback. The product is the shared stack (tests/conftest.py): web app,
Redis, a Celery worker process and the sandbox Zendesk, so the draft shown is a real decision.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from helpdesk_bot.web.agent_app import HELPDESK
from integrations.sandbox import HUMAN_AGENT_ID
from integrations.zendesk_app.package import build

STANDIN = Path(__file__).parent / "zaf_standin.js"
SDK_URL = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
APP_ORIGIN = "https://1000001.apps.zdusercontent.com"  # where Zendesk serves an uploaded app's assets
AGENT = {"id": HUMAN_AGENT_ID, "name": "Riley Morgan", "email": "riley@orbitask.example", "role": "agent"}

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def product_url(stack) -> str:
    return stack.webhook_url.rsplit("/webhooks/", 1)[0]


@pytest.fixture(scope="module")
def upload(tmp_path_factory, product_url):
    """The app as uploaded to Zendesk: the zip's files and its manifest."""
    package = build(tmp_path_factory.mktemp("app") / "app.zip", product_url)
    with zipfile.ZipFile(package.path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return files, json.loads(files["manifest.json"])


class ZendeskProxy:
    """What Zendesk's app proxy does with `client.request({secure: true, jwt, ...})`."""

    def __init__(self, manifest: dict, installation_settings: dict):
        self.manifest, self.settings = manifest, installation_settings
        self.sent: list[dict] = []

    def _fill(self, text: str) -> str:
        return re.sub(r"\{\{setting\.(\w+)\}\}", lambda m: str(self.settings[m.group(1)]), text)

    def __call__(self, options: dict) -> dict:
        url = options["url"]
        if not options.get("secure"):
            return {"status": 400, "body": json.dumps({"error": "secure settings need secure: true"})}
        if urlsplit(url).hostname not in self.manifest["domainWhitelist"]:
            return {"status": 403, "body": json.dumps({"error": "the domain is not in domainWhitelist"})}
        token = ""
        if options.get("jwt"):
            spec, now = options["jwt"], int(time.time())
            claims = {**spec.get("claims", {}), "iat": now, "exp": now + int(spec.get("expiry", 3600))}
            token = jwt.encode(claims, self._fill(spec["secret_key"]), algorithm=spec["algorithm"])
        headers = {name: self._fill(value).replace("{{jwt.token}}", token)
                   for name, value in (options.get("headers") or {}).items()}
        if options.get("contentType"):
            headers["Content-Type"] = options["contentType"]
        response = requests.request(options.get("type", "GET"), self._fill(url), data=options.get("data"),
                                    headers=headers, timeout=60)
        self.sent.append({"method": options.get("type", "GET"), "url": url, "status": response.status_code})
        return {"status": response.status_code, "body": response.text}


def open_sidebar(browser, upload, product_url, ticket_id, secret: str):
    """The app's sidebar page for a ticket, with the stand-in client and a proxy holding `secret`."""
    files, manifest = upload
    proxy = ZendeskProxy(manifest, {"api_url": product_url, "shared_secret": secret})
    context = browser.new_context(viewport={"width": 340, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.add_init_script("window.__zafConfig = " + json.dumps({
        "ticketId": ticket_id, "currentUser": AGENT, "subdomain": "sandbox", "installationId": 42,
        "settings": {"api_url": product_url, "title": manifest["name"]},  # secure settings never reach the browser
    }))
    page.expose_function("zafProxy", proxy)

    def serve(route):
        url = route.request.url
        if url == SDK_URL:
            return route.fulfill(status=200, content_type="application/javascript", body=STANDIN.read_text())
        if url.startswith(APP_ORIGIN + "/"):
            name = urlsplit(url).path.removeprefix("/1000001/")
            if name in files:
                kind = {"html": "text/html", "js": "application/javascript", "css": "text/css", "png": "image/png"}
                return route.fulfill(status=200, body=files[name], content_type=kind[name.rsplit(".", 1)[1]])
            return route.fulfill(status=404, body="not in the app")
        return route.abort()  # the app reaches helpdesk-bot only through the proxy

    page.route("**/*", serve)
    page.goto(f"{APP_ORIGIN}/1000001/{manifest['location']['support']['ticket_sidebar']['url']}")
    return page, proxy


def zaf_calls(page, method: str) -> list[list]:
    return [c["args"] for c in page.evaluate("window.__zaf.calls") if c["method"] == method]


@pytest.fixture(scope="module")
def answered_ticket(stack) -> dict:
    ticket_id = stack.sandbox.create_ticket(
        "Download invoices", "Where can I download our invoices as PDF?", "ap.team@example.com", "Alex", tags=["billing"])
    stack.processed(ticket_id)
    return stack.ledger.latest_decision(HELPDESK, str(ticket_id))


def test_the_sidebar_shows_the_draft_and_inserts_it_into_the_reply(browser, upload, product_url, stack, answered_ticket):
    decision = answered_ticket
    page, proxy = open_sidebar(browser, upload, product_url, int(decision["ticket_id"]), stack.settings.agent_app_secret())
    try:
        page.wait_for_selector("#draft-panel:not([hidden])")
        draft_text = page.inner_text("#draft")
        first_line = decision["draft"].split("\n")[0].replace(" [1]", "")
        assert first_line[:40] in draft_text
        assert page.inner_text("#confidence") == f"Confidence {decision['confidence']}/100"
        components = page.inner_text("#components")
        for name in json.loads(decision["components"]):
            assert name in components
        links = page.eval_on_selector_all("#sources a", "links => links.map(a => [a.textContent, a.href])")
        assert len(links) == len(json.loads(decision["sources"]))
        assert all(re.search(r"/hc/en-us/articles/\d+", href) for _, href in links)
        assert all(title and not title.startswith(tuple("0123456789")) for title, _ in links)  # titles, not chunk ids

        page.screenshot(path=str(stack.settings.data_dir / "sidebar.png"), full_page=True)  # to look at when it fails
        page.click("#insert")
        page.wait_for_selector("text=Draft inserted into your reply.")
        [[name, html]] = zaf_calls(page, "invoke")[-1:]
        assert name == "ticket.editor.insert"
        assert first_line[:40] in html and html.startswith("<p>")
        # The stored draft keeps its citation markers, each backed by a source link.
        assert "[1]" in html and re.search(r'<a href="[^"]+/hc/en-us/articles/\d+', html)
        # Every request went through the proxy with a token the product accepted.
        assert [(s["method"], s["status"]) for s in proxy.sent] == [("GET", 200)]
        [request] = zaf_calls(page, "request")
        assert request[0]["secure"] is True and "{{setting.shared_secret}}" == request[0]["jwt"]["secret_key"]
    finally:
        page.context.close()


def test_feedback_from_the_sidebar_reaches_the_ledger(browser, upload, product_url, stack, answered_ticket):
    decision = answered_ticket
    ticket_id = decision["ticket_id"]
    page, _ = open_sidebar(browser, upload, product_url, int(ticket_id), stack.settings.agent_app_secret())
    try:
        page.wait_for_selector("#draft-panel:not([hidden])")
        page.click("#verdict-bad")
        page.click("#send-feedback")
        page.wait_for_selector("text=Say what was wrong with the draft.")
        assert stack.ledger.draft_feedback_for(HELPDESK, ticket_id) == []

        page.fill("#reason", "Links to the old billing page")
        page.click("#send-feedback")
        page.wait_for_selector("text=Thanks: your feedback was recorded.")
        [row] = stack.ledger.draft_feedback_for(HELPDESK, ticket_id)
        assert (row["verdict"], row["reason"], row["agent_id"], row["decision_id"]) == (
            "bad", "Links to the old billing page", str(AGENT["id"]), decision["id"])
    finally:
        page.context.close()


def test_regenerate_shows_a_new_draft_and_posts_nothing(browser, upload, product_url, stack, answered_ticket):
    ticket_id = int(answered_ticket["ticket_id"])
    comments_before = len(stack.sandbox.comments(ticket_id))
    decisions_before = len(stack.ledger.decisions_for(str(ticket_id)))
    page, proxy = open_sidebar(browser, upload, product_url, ticket_id, stack.settings.agent_app_secret())
    try:
        page.wait_for_selector("#draft-panel:not([hidden])")
        page.click("#regenerate")
        page.wait_for_selector("text=New draft, not saved or sent.", timeout=60_000)
        assert "Confidence" in page.inner_text("#confidence")
        assert page.locator("#sources a").count() >= 1
        assert ("POST", 200) in [(s["method"], s["status"]) for s in proxy.sent]
        page.click("#insert")
        page.wait_for_selector("text=Draft inserted into your reply.")
        html = zaf_calls(page, "invoke")[-1][1]
        assert "<p>Sources:</p>" in html and "/hc/en-us/articles/" in html  # a fresh draft knows its citations
    finally:
        page.context.close()
    assert len(stack.sandbox.comments(ticket_id)) == comments_before
    assert len(stack.ledger.decisions_for(str(ticket_id))) == decisions_before


def test_a_ticket_without_a_draft_says_so(browser, upload, product_url, stack):
    page, _ = open_sidebar(browser, upload, product_url, 99999, stack.settings.agent_app_secret())
    try:
        page.wait_for_selector("text=helpdesk-bot has not drafted an answer for this ticket yet.")
        assert page.locator("#draft-panel").is_hidden()
    finally:
        page.context.close()


def test_a_wrong_shared_secret_is_refused_and_shown(browser, upload, product_url, stack, answered_ticket):
    page, proxy = open_sidebar(browser, upload, product_url, int(answered_ticket["ticket_id"]), "not the shared secret that the product holds")
    try:
        page.wait_for_selector("#status.error")
        assert "signature" in page.inner_text("#status").lower()
        assert [s["status"] for s in proxy.sent] == [401]
    finally:
        page.context.close()
