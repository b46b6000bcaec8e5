"""What many test files need and no fixture gives: a free port and a patient wait (the
benchmarks' own), a webhook endpoint that records deliveries, and the environment zenpy reads
given back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import free_port, wait_for  # noqa: F401: the test files import them from here

SAMPLE_HELP_CENTER = Path(__file__).parents[1] / "helpdesk_bot" / "sample_data" / "help_center.json"


class Receiver:
    """A webhook endpoint recording raw deliveries; answers from `statuses`, then 200."""

    def __init__(self, path: str = "/webhooks/zendesk"):
        self.deliveries: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# zenpy reads these from the process environment on every request: a test that points zenpy at
# its own sandbox must give the previous values back, or later tests talk to a stopped one.
ZENPY_ENVIRONMENT = ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", "SANDBOX_URL")


@contextmanager
def restored_environment(names=ZENPY_ENVIRONMENT):
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def serving(data_dir: Path, redis_url: str, workers: int, log=subprocess.DEVNULL, **settings: str):
    """`helpdesk-bot serve` as deployed (gunicorn, gevent) on its own port and data folder; its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "DATABASE_URL", "ZENDESK_"))}
    env.update(HELPDESK_DATA_DIR=str(data_dir), REDIS_URL=redis_url, **settings)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "helpdesk_bot.ops.cli", "serve", "--port", str(port),
                                "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up():
        import requests

        try:
            return requests.get(f"{url}/healthz", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return process.poll() is None and None

    try:
        wait_for(up, 60, what="helpdesk-bot serve")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
