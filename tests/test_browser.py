"""The dashboard in headless Chromium, against the real stack: web app over HTTP, Redis, a
Celery worker process and the sandbox helpdesk (tests/conftest.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

QUESTION = ("Locked out after getting a new phone",
            "I switched phones and my authenticator app no longer gives me codes. How can I sign in?")

pytestmark = pytest.mark.browser



@pytest.fixture
def page(browser, stack):
    if not any(u["username"] == "lead" for u in stack.ledger.users()):
        stack.ledger.create_user("lead", "a long enough password")
    policy_file = Path(stack.env["HELPDESK_POLICY"])
    original = policy_file.read_text()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    base = stack.webhook_url.rsplit("/webhooks/", 1)[0]
    page.goto(f"{base}/dashboard/")
    page.fill("#username", "lead")
    page.fill("#password", "a long enough password")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Deflection over time")
    page.base = base
    yield page
    context.close()
    policy_file.write_text(original)  # the stack is shared with other tests


def decision_for(stack, subject_body, tags):
    ticket_id = stack.sandbox.create_ticket(*subject_body, "pilot@example.com", "Pat", tags=tags)
    stack.processed(ticket_id)
    [decision] = stack.ledger.decisions_for(str(ticket_id))
    return decision


def test_a_tag_threshold_changed_in_the_dashboard_applies_to_the_next_ticket(page, stack):
    page.goto(f"{page.base}/dashboard/policy")
    page.fill("input[name$='-tags'][placeholder='new rule: tags']", "pilot")
    page.fill("tr.new-rule input[name$='-threshold']", "100")
    page.click("#save-policy")
    page.wait_for_selector("text=rule for tags pilot added: threshold 100")

    decision = decision_for(stack, QUESTION, ["pilot"])
    assert (decision["rule"], decision["threshold"], decision["action"]) == ("rule for tags pilot", 100, "escalate")

    page.fill("input[aria-label='threshold for rule for tags pilot']", "0")
    page.click("#save-policy")
    page.wait_for_selector("text=rule for tags pilot: threshold 100 → 0")
    assert "lead" in page.inner_text("#audit")

    decision = decision_for(stack, QUESTION, ["pilot"])
    assert (decision["rule"], decision["threshold"], decision["action"]) == ("rule for tags pilot", 0, "auto_send")


def test_charts_render(page, stack):
    from PIL import Image

    decision_for(stack, QUESTION, ["account"])  # at least one ticket in the ledger
    page.goto(f"{page.base}/dashboard/?days=7")
    chart = page.locator("svg.chart").first
    chart.wait_for()
    assert chart.locator("circle").count() >= 1  # a point per day on the deflection line
    image = Image.open(io.BytesIO(chart.screenshot())).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 20, "the chart screenshot is blank"
    # The deflection line's green and the auto-send line's blue were drawn.
    pixels = {image.getpixel((x, y)) for x in range(0, image.width, 2) for y in range(0, image.height, 2)}
    assert any(abs(r - 0x2F) < 30 and abs(g - 0x7D) < 30 and abs(b - 0x4F) < 30 for r, g, b in pixels)

    page.goto(f"{page.base}/dashboard/quality?days=7")
    bars = Image.open(io.BytesIO(page.locator("svg.chart").first.screenshot())).convert("RGB")
    assert len(bars.getcolors(maxcolors=1 << 16) or []) > 20
    page.screenshot(path=str(Path(stack.settings.data_dir) / "quality.png"), full_page=True)
