"""Webhook intake's work per request in CPU instructions (valgrind's callgrind), against the
bare Flask endpoint under the same gunicorn options: a figure the machine's noise hardly moves.

bench_intake measures throughput, but on a shared machine the bare endpoint's speed swings by
a quarter between one 8 s window and the next. Instructions run in user space per request
repeat within a few percent whatever else the machine does, so they show what a change to
intake saves. They leave out the kernel, Redis's own work and the cost of cache misses, so
their ratio is an upper bound for the throughput ratio, not a substitute for it.

    python -m benchmarks.bench_intake_instructions [--seconds 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import loadgen
from benchmarks.bench_intake import SECRET, gunicorn
from benchmarks.common import (CACHE_DIR, background, clean_env, emit, fresh_dir, free_port, log, machine,
                               redis_server, wait_for)
from helpdesk_bot.ops.cli import gunicorn_options

APPS = {"bare": "benchmarks.bare_app:app", "intake": "helpdesk_bot.web.wsgi:app"}


def instructions_per_request(app: str, folder: Path, env: dict, options: list[str], seconds: float,
                             connections: int) -> dict:
    """Run one app under callgrind with counting off while it starts, count during a wrk run."""
    port = free_port()
    command = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
               f"--callgrind-out-file={folder}/callgrind.%p", *gunicorn(app, port, [*options, "--timeout", "900"])]
    webhook = loadgen.SignedWebhook(SECRET)
    url = f"http://127.0.0.1:{port}/webhooks/zendesk"
    with background(command, env=env, log_file=folder / "server.log", ready_port=port, timeout=600):
        wait_for(lambda: loadgen.closed_loop(url, webhook, 3, 8)["ok"] > 10, 600, interval=1, what=f"{app} to answer")
        loadgen.closed_loop(url, webhook, 5, 16)  # warm up: imports, connections, caches
        subprocess.run(["callgrind_control", "--instr=on"], check=True, capture_output=True)
        result = loadgen.wrk(url, webhook, seconds, connections)
        subprocess.run(["callgrind_control", "--instr=off"], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--dump"], check=True, capture_output=True)
    # Requests wrk gave up on were still served: they count too.
    requests = result["ok"] + result["errors_timeout"]
    total = sum(int(line.split()[1]) for dump in folder.glob("callgrind.*.*")
                for line in dump.read_text().splitlines() if line.startswith("totals:"))
    return {"requests": requests, "instructions_per_request": round(total / requests)}


def run(seconds: float, connections: int, workers: int) -> dict:
    options = gunicorn_options(workers)
    work = fresh_dir(CACHE_DIR / "runs" / "intake_instructions")
    results = {}
    with redis_server(work / "redis") as redis_url:
        env = clean_env(HELPDESK_DATA_DIR=str(work / "data"), REDIS_URL=redis_url, ZENDESK_WEBHOOK_SECRET=SECRET,
                        DATABASE_URL=f"sqlite:///{work / 'data' / 'helpdesk.db'}",
                        HELPDESK_WEBHOOK_RATE_LIMIT=f"{10**9}/60", HELPDESK_ACCOUNT_RATE_LIMIT=f"{10**9}/60",
                        HELPDESK_MAX_CONNECTIONS_PER_IP="0")
        for name, app in APPS.items():  # one at a time: callgrind_control talks to every callgrind process
            folder = fresh_dir(work / name)
            results[name] = instructions_per_request(app, folder, env, options, seconds, connections)
            log(f"{name}: {results[name]['instructions_per_request']:,} instructions a request "
                f"({results[name]['requests']} requests)")
    return {
        "server": "gunicorn " + " ".join(options) + ", under valgrind --tool=callgrind",
        "load": f"wrk -t1 -c{connections} -d{seconds}s",
        **{f"{name}_{key}": value for name, result in results.items() for key, value in result.items()},
        "bare_vs_intake": round(results["bare"]["instructions_per_request"]
                                / results["intake"]["instructions_per_request"], 3),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, for both apps")
    args = parser.parse_args()
    if not (shutil.which("valgrind") and shutil.which("callgrind_control") and loadgen.wrk_available()):
        sys.exit("needs valgrind and wrk (apt-get install valgrind wrk)")
    emit("intake_instructions", run(args.seconds, args.connections, args.workers))


if __name__ == "__main__":
    main()
