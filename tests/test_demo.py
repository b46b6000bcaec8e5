"""`helpdesk-bot demo --once`, the README's first command, end to end in its own processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil


def test_demo_decides_every_sample_ticket_and_leaves_nothing_running(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "DATABASE_URL"))}
    env["HELPDESK_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "helpdesk_bot.ops.cli", "demo", "--once", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    decided = re.search(r"(\d+)/(\d+) tickets decided", done.stdout)
    assert decided and decided.group(1) == decided.group(2) != "0", done.stdout[-3000:]
    assert "dashboard        http://127.0.0.1:" in done.stdout
    # The worker runs with the data dir in its environment, the embedded redis-server in it.
    left = [p.info for p in psutil.process_iter(["pid", "cmdline", "cwd", "environ"])
            if str(tmp_path) in (p.info["cwd"] or "") or (p.info["environ"] or {}).get("HELPDESK_DATA_DIR") == env["HELPDESK_DATA_DIR"]]
    assert left == []
