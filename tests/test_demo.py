"""`helpdesk-bot demo --once`, the README's quick start, end to end in its own processes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest


# The whole product in its own processes, indexing the sample help center in four languages:
# the subprocess's own limit (240 s) is the one that counts, not the suite's default.
@pytest.mark.timeout(300)
def test_demo_decides_every_sample_ticket_and_leaves_nothing_running(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "DATABASE_URL"))}
    env["HELPDESK_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "helpdesk_bot.ops.cli", "demo", "--once", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    decided = re.search(r"(\d+)/(\d+) tickets decided", done.stdout)
    assert decided and decided.group(1) == decided.group(2) != "0", done.stdout[-3000:]
    assert "dashboard        http://127.0.0.1:" in done.stdout
    # Earlier days and a dead letter, so every chart and page has something to show.
    assert re.search(r"\d+ earlier tickets spread over the last 14 days for the charts; 1 dead letter", done.stdout), \
        done.stdout[-3000:]
    # The backtest over the sample history: every past ticket replayed from both helpdesks, a line per tag.
    from helpdesk_bot.ops.sample_history import past_tickets

    assert f"{len(past_tickets())} solved tickets replayed" in done.stdout, done.stdout[-3000:]
    assert re.search(r"tag billing +n=\d+ +(threshold \d+|no recommendation: )", done.stdout)
    report = (tmp_path / "demo" / "backtest.html").read_text()
    assert "Per tag" in report and report.count("<svg") > 1
    assert "superuser" not in done.stdout + done.stderr  # Celery's warning stays in the worker's log
    from helpdesk_bot.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'demo' / 'helpdesk.db'}")
    [letter] = ledger.dead_letters()
    assert letter["human_notified"] and "503" in letter["error"]
    ledger.dispose()
    # The worker runs with the data dir in its environment, the embedded redis-server in it.
    left = [p.info for p in psutil.process_iter(["pid", "cmdline", "cwd", "environ"])
            if str(tmp_path) in (p.info["cwd"] or "") or (p.info["environ"] or {}).get("HELPDESK_DATA_DIR") == env["HELPDESK_DATA_DIR"]]
    assert left == []


def test_a_busy_port_is_named_before_anything_starts(tmp_path: Path):
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "DATABASE_URL"))}
    env["HELPDESK_DATA_DIR"] = str(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "helpdesk_bot.ops.cli", "demo", "--once", "--port", str(port)],
                              env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"port {port} is in use" in done.stdout and "--port" in done.stdout
    assert "indexed" not in done.stdout  # refused before indexing


def test_the_printed_ticket_command_creates_a_ticket_the_bot_sees(tmp_path: Path):
    import shlex

    from helpdesk_bot.ops.demo import ticket_command
    from integrations.sandbox import SandboxHelpdesk

    with SandboxHelpdesk() as sandbox:
        command = ticket_command(sandbox.url).split("\n  then")[0].replace("\\\n", " ")
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        ticket_id = json.loads(done.stdout)["ticket"]["id"]
        assert sandbox.ticket(ticket_id)["subject"] == "Invoices" and "billing" in sandbox.ticket(ticket_id)["tags"]
