"""`helpdesk-bot backtest` replays solved tickets from the (sandbox) helpdesk."""

from __future__ import annotations

import json
from pathlib import Path

import requests
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from integrations.sandbox import HUMAN_AGENT_ID, SandboxHelpdesk

SAMPLE = json.loads((Path(__file__).parents[1] / "helpdesk_bot" / "sample_data" / "help_center.json").read_text())
# Invoices and VAT, 2FA recovery codes, refunds, exports: enough to answer most of SOLVED, quick to embed.
KEEP = {360001000131, 360001000114, 360001000132, 360001000123}
HELP_CENTER = {**SAMPLE, "articles": [a for a in SAMPLE["articles"] if a["id"] in KEEP]}

SOLVED = [
    ("How do I download invoices?", "Open Settings → Billing → Invoices and click Download PDF next to the invoice.", ["billing"]),
    ("Can I add our VAT number to invoices?", "Add it in Settings → Billing → Company details; it appears on the next invoices.", ["billing"]),
    ("My authenticator app is gone, how do I sign in?", "Use one of your recovery codes on the sign-in page.", ["account"]),
    ("Is there an on-premise version?", "No, we only offer the cloud service today.", ["sales"]),
]


def solve(sandbox, subject: str, answer: str, tags: list[str]) -> int:
    ticket_id = sandbox.create_ticket(subject, subject, "customer@example.com", "Casey", tags=tags)
    response = requests.put(f"{sandbox.url}/api/v2/tickets/{ticket_id}.json", auth=("agent@example.com/token", "x"),
                            json={"ticket": {"status": "solved", "comment": {"body": answer, "public": True,
                                                                              "author_id": HUMAN_AGENT_ID}}}, timeout=10)
    response.raise_for_status()
    return ticket_id


def test_backtest_compares_drafts_with_agent_answers(tmp_path, monkeypatch):
    sandbox = SandboxHelpdesk(help_center=HELP_CENTER).start()
    try:
        monkeypatch.setenv("HELPDESK_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("SANDBOX_URL", sandbox.url)
        for subject, answer, tags in SOLVED:
            solve(sandbox, subject, answer, tags)
        sandbox.create_ticket("Still open", "Where is the export button?", "other@example.com", "Lee", tags=["billing"])
        runner = CliRunner()
        assert runner.invoke(main, ["index", "--from-helpdesk", "--json"]).exit_code == 0
        report_path = tmp_path / "backtest.html"
        result = runner.invoke(main, ["backtest", "--json", "--min-tickets", "2", "--report", str(report_path)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert summary["n"] == len(SOLVED)  # the open ticket is not a past resolution
        assert set(summary["per_tag"]) == {"billing"}  # the only tag with 2 or more tickets
        assert summary["per_tag"]["billing"]["n"] == 2
        assert len(summary["curve"]) == 101 and "per tag" in report_path.read_text()
    finally:
        sandbox.stop()
