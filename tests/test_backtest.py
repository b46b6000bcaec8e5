"""`helpdesk-bot backtest` replays solved tickets from the sandbox Zendesk and Intercom over HTTP,
judges each draft by what the agent's answer says, and recommends only thresholds the tickets support."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from helpdesk_bot.backtest import Agreement, Replayed, agreement, backtest_report, wilson_lower_bound
from helpdesk_bot.ops.cli import main
from integrations.sandbox import HUMAN_AGENT_ID, SandboxHelpdesk
from integrations.sandbox.intercom import SandboxIntercom

SAMPLE = json.loads((Path(__file__).parents[1] / "helpdesk_bot" / "sample_data" / "help_center.json").read_text())
# Invoices and VAT, 2FA recovery codes, refunds, exports: enough to answer most of SOLVED, quick to embed.
KEEP = {360001000131, 360001000114, 360001000132, 360001000123}
HELP_CENTER = {**SAMPLE, "articles": [a for a in SAMPLE["articles"] if a["id"] in KEEP]}

SOLVED = [
    ("How do I download invoices?",
     "Open Settings → Billing → Invoices and click Download PDF next to an invoice.", ["billing"]),
    ("Can I add our VAT number to invoices?",
     "Open Settings → Billing → Billing details and fill in the Tax ID (VAT, GST or ABN number).", ["billing"]),
    ("My authenticator app is gone, how do I sign in?",
     "On the Enter your 6-digit code screen, click Use a recovery code instead and type one of your recovery codes.",
     ["account"]),
    ("Is there an on-premise version?", "No, we only offer the cloud service today.", ["sales"]),
]
CONVERSATIONS = [
    ("How do I export all our workspace data?",
     "Open Settings → Data → Export and choose Full workspace export (JSON). You get an email with a download link.",
     ["data"]),
    ("Where can I get our invoices as PDF files?",
     "Go to Settings → Billing → Invoices and click Download PDF next to the invoice.", ["billing"]),
]


def solve(sandbox, subject: str, answer: str, tags: list[str]) -> int:
    ticket_id = sandbox.create_ticket(subject, subject, "customer@example.com", "Casey", tags=tags)
    response = requests.put(f"{sandbox.url}/api/v2/tickets/{ticket_id}.json", auth=("agent@example.com/token", "x"),
                            json={"ticket": {"status": "solved", "comment": {"body": answer, "public": True,
                                                                              "author_id": HUMAN_AGENT_ID}}}, timeout=10)
    response.raise_for_status()
    return ticket_id


def test_backtest_reads_zendesk_and_intercom_and_judges_by_the_agents_answer(tmp_path, monkeypatch):
    with SandboxHelpdesk(help_center=HELP_CENTER) as sandbox, SandboxIntercom(help_center=HELP_CENTER) as intercom:
        monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("SANDBOX_URL", sandbox.url)
        monkeypatch.setenv("INTERCOM_SANDBOX_URL", intercom.url)
        for subject, answer, tags in SOLVED:
            solve(sandbox, subject, answer, tags)
        sandbox.create_ticket("Still open", "Where is the export button?", "other@example.com", "Lee", tags=["billing"])
        for question, answer, tags in CONVERSATIONS:
            conversation = intercom.start_conversation("robin@example.com", question, "Robin")
            intercom.tag(conversation, tags)
            intercom.agent_reply(conversation, answer)
            intercom.close(conversation)
        intercom.start_conversation("open@example.com", "How do I export a project to CSV?", "Open")  # not closed
        runner = CliRunner()
        assert runner.invoke(main, ["index", "--from-helpdesk", "--json"]).exit_code == 0
        report_path = tmp_path / "backtest.html"
        result = runner.invoke(main, ["backtest", "--json", "--helpdesk", "zendesk", "--helpdesk", "intercom",
                                      "--min-tickets", "2", "--min-sent", "1", "--report", str(report_path)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        # Open tickets and conversations are no past resolutions; the search found the closed ones over HTTP.
        assert summary["replayed"] == len(SOLVED) + len(CONVERSATIONS)
        assert any(r["path"] == "/conversations/search" for r in map(vars, intercom.state.requests))
        assert set(summary["per_tag"]) == {"billing", "account", "sales", "data"}
        assert summary["per_tag"]["billing"]["n"] == 3  # two Zendesk tickets and one Intercom conversation
        # "No on-premise version" is not in the help center: whatever the bot drafts, it does not say that.
        assert summary["agreeing"] < summary["n"]
        assert summary["per_tag"]["sales"]["threshold"] is None and "only 1 tickets" in summary["per_tag"]["sales"]["reason"]
        assert len(summary["curve"]) == 101
        page = report_path.read_text()
        assert "Per tag" in page and page.count("<svg") == 1 + len(summary["per_tag"])

        text = runner.invoke(main, ["backtest", "--helpdesk", "intercom", "--min-tickets", "5"])
        assert text.exit_code == 0, text.output
        assert "2 solved tickets replayed" in text.output and "no recommendation: only 2 tickets" in text.output


def test_a_draft_agrees_when_it_says_what_the_agent_said():
    draft = ("Annual plans can be refunded in full if you ask within 14 days of the annual payment. "
             "Monthly payments are not refundable.")
    assert agreement(draft, "Hi! Annual plans get a full refund within 14 days of payment. Best, Riley").agrees
    wrong_number = agreement(draft, "Annual plans can be refunded in full within 30 days of the annual payment.")
    assert not wrong_number.agrees and wrong_number.recall >= 0.5  # the words match, the number does not
    off_topic = agreement(draft, "Open Settings → Billing → Invoices and click Download PDF.")
    assert not off_topic.agrees and off_topic.recall < 0.5
    # Reworded so that no sentence matches as such, with the same number: it agrees.
    assert agreement("Team plan — Free guests: 2 per paid seat.", "On the Team plan you can invite 2 guests per paid seat.").agrees
    assert not agreement("Team plan — Free guests: 2 per paid seat.", "On the Team plan you can invite 5 guests per paid seat.").agrees
    declined = agreement("", "Annual plans get a full refund within 14 days of payment.")
    assert not declined.agrees and declined.claims == 1
    greeting = "Hi Sam,\n\nThanks for reaching out! Annual plans get a full refund within 14 days.\n\nBest regards,\nRiley"
    assert agreement(draft, greeting).agrees and agreement(draft, greeting).support == 1.0  # no sign-off to support
    assert agreement(draft, "Hi Sam,\n\nThanks for reaching out!\n\nBest,\nRiley").claims == 0  # nothing to judge


def rows(confidences_and_agreement, tag="billing"):
    return [Replayed("zendesk", str(i), (tag,), confidence, False, Agreement(agrees, 1.0 if agrees else 0.0, 1.0, 1))
            for i, (confidence, agrees) in enumerate(confidences_and_agreement)]


@pytest.mark.parametrize("tickets, threshold, reason", [
    # Everything agrees: the threshold is the lowest confidence seen, never 0 ("send everything").
    ([(40 + i, True) for i in range(30)], 40, ""),
    ([(40 + i, True) for i in range(10)], None, "only 10 tickets; 20 are needed"),
    # High confidence is where the agreeing drafts are: the threshold is where precision reaches 0.95.
    ([(20 + 2 * i, False) for i in range(10)] + [(60 + i, True) for i in range(15)], 60, ""),
    # 95% is reached only at the very top, by fewer tickets than a precision can rest on.
    ([(i * 3, i % 2 == 0) for i in range(30)] + [(95, True)] * 3, None, "no threshold that sends 10 or more"),
])
def test_a_threshold_only_where_the_tickets_support_one(tickets, threshold, reason):
    summary = backtest_report(rows(tickets), min_tickets=20)
    tag = summary["per_tag"]["billing"]
    assert tag["threshold"] == threshold
    assert reason in tag["reason"] and (tag["reason"] == "") == (threshold is not None)
    if threshold is not None:
        assert tag["precision"] >= 0.95 and tag["sent"] >= 10 and tag["precision_low"] < tag["precision"]


def test_wilson_lower_bound():
    assert wilson_lower_bound(10, 10) == pytest.approx(0.722, abs=0.001)
    assert wilson_lower_bound(0, 0) == 0.0
