"""`helpdesk-bot demo`: the whole product on embedded defaults, fed the sample tickets, then
one Intercom conversation with follow-ups, a request for a person and a human takeover.

Sandbox helpdesk → signed webhook → web app → Redis → Celery worker process → sandbox.
Nothing is simulated between the webhook and the posted reply.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from werkzeug.serving import make_server

from helpdesk_bot.domain import Message, TicketEvent
from helpdesk_bot.embedding import make_embedder
from helpdesk_bot.knowledge import sync_index
from helpdesk_bot.pipeline import action_key
from helpdesk_bot.ops.sample_history import past_tickets
from helpdesk_bot.services import build_answerer, make_helpdesk, make_helpdesks, open_ledger, open_store
from helpdesk_bot.settings import Settings
from helpdesk_bot.text import html_to_text
from integrations.sandbox.constants import HUMAN_AGENT_EMAIL
from workers.broker import stop_embedded_redis

SAMPLE_DATA = Path(__file__).parents[1] / "sample_data"
ATTEMPTS = 3  # HELPDESK_MAX_ATTEMPTS in the demo, with a 0.5 s first wait: a dead letter within seconds
TIMEOUT_SECONDS = 180
DEMO_ADMIN = "admin"


def run_demo(once: bool, port: int) -> int:
    from integrations.sandbox import SandboxHelpdesk

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per HTTP request drowns the story
    if problem := port_in_use(port):  # before a minute of indexing, not after
        _say(f"port {port} is in use ({problem}): pick another with --port (make demo PORT=...)")
        return 2

    base = Settings.from_env()
    data_dir = base.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)  # every demo starts from an empty ledger and index
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZENDESK_", "INTERCOM_", "OPENAI_", "QDRANT_", "DATABASE_URL"))}
    env["HELPDESK_DATA_DIR"] = str(data_dir)
    env.setdefault("HELPDESK_MAX_ATTEMPTS", str(ATTEMPTS))
    env.setdefault("HELPDESK_RETRY_BACKOFF", "0.5")

    from integrations.sandbox.intercom import SandboxIntercom

    sandbox = SandboxHelpdesk(help_center=SAMPLE_DATA / "help_center.json").start()
    intercom = SandboxIntercom(help_center=SAMPLE_DATA / "help_center.json").start()
    env["SANDBOX_URL"] = sandbox.url
    env["INTERCOM_SANDBOX_URL"] = intercom.url
    os.environ.update(env)
    settings = Settings.from_env(env)
    _say(f"sandbox Zendesk   {sandbox.url}")
    _say(f"sandbox Intercom  {intercom.url}")

    embedder = make_embedder(settings)
    store = open_store(settings, embedder, writable=True)
    articles = make_helpdesk(settings).articles()
    report = sync_index(store, embedder, articles)
    store.close()  # publishes the index for the worker
    open_ledger(settings).record_indexed_articles(articles)
    _say(f"indexed {len(articles)} help-center articles ({report.chunks} chunks)")

    # The worker's own output (Celery's banner, its warning about running as root) goes to a
    # file: the story printed here stays readable, and the file is there when something fails.
    worker_log = open(data_dir / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "helpdesk_bot.ops.cli", "worker", "--concurrency", "4", "--loglevel", "WARNING"], env=env,
        stdout=worker_log, stderr=subprocess.STDOUT,
    )
    _say(f"worker log       {worker_log.name}")
    try:
        # Before the webhooks are set up, so the bot hears nothing of them: they are history.
        seeded = _seed_past_tickets(sandbox, intercom)
        _say(f"{seeded} past tickets solved by agents (Zendesk and Intercom), for the backtest")
        from helpdesk_bot.web.app import create_app

        app = create_app(settings)
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        webhook_url = f"http://127.0.0.1:{server.server_port}/webhooks/zendesk"
        sandbox.configure_webhook(webhook_url, settings.webhook_secret(), "trigger", on_update=True)
        intercom_url = f"http://127.0.0.1:{server.server_port}/webhooks/intercom"
        intercom.configure_webhook(intercom_url, settings.intercom_webhook_secret())
        _say(f"web app          {webhook_url}")
        _say(f"                 {intercom_url}")
        _wait_for_worker(app.extensions["celery"], worker)
        _say("worker ready")

        tickets = json.loads((SAMPLE_DATA / "tickets.json").read_text())
        created = {}
        for sample in tickets:
            ticket_id = sandbox.create_ticket(sample["subject"], sample["body"], sample["requester"]["email"],
                                              sample["requester"]["name"], tags=sample["tags"])
            created[ticket_id] = (sample, time.time())
        _say(f"created {len(created)} sample tickets; waiting for the worker...\n")

        ledger = app.extensions["ledger"]
        results = _wait_for_decisions(ledger, created)
        latencies = _print_results(sandbox, ledger, created, results)
        decided = sum(1 for r in results.values() if r)
        if latencies:
            _say(f"\n{decided}/{len(created)} tickets decided; webhook-to-posted time p50 "
                 f"{statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms")
        _say(_summary(created, results))
        conversed = _converse(intercom, ledger)
        try:
            _follow_up(sandbox, app, settings, embedder, created, results)
        except Exception as exc:  # the dashboard still shows the first answers
            _say(f"\n(the follow-up story stopped early: {exc!r})")
        try:
            _history(sandbox, ledger, tickets, settings.max_attempts)
        except Exception as exc:  # the dashboard still shows today
            _say(f"\n(the earlier days were not seeded: {exc!r})")
        try:
            _backtest(settings, data_dir / "backtest.html")
        except Exception as exc:  # the dashboard still shows the live tickets
            _say(f"\n(the backtest stopped early: {exc!r})")
        password = secrets.token_urlsafe(12)
        ledger.create_user(DEMO_ADMIN, password)
        dashboard_url = f"http://127.0.0.1:{server.server_port}/dashboard/"
        _say(f"\ndashboard        {dashboard_url}\n                 user {DEMO_ADMIN}   password {password}")
        if once:
            return 0 if decided == len(created) and conversed else 1
        _say("\nStill serving; Ctrl-C to stop. Create a ticket as a customer of the sandbox Zendesk would:\n"
             + ticket_command(sandbox.url))
        while worker.poll() is None:
            time.sleep(1)
        return worker.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
        sandbox.stop()
        intercom.stop()
        if not settings.redis_url:
            stop_embedded_redis(settings.data_dir)


def _follow_up(sandbox, app, settings, embedder, created: dict, results: dict) -> None:
    """Play the people after the bot's first answers, through the sandbox's API, then run the
    outcomes and topics jobs so the dashboard has outcomes, topics and a knowledge gap."""
    from helpdesk_bot.outcomes import check_outcomes
    from helpdesk_bot.topics import knowledge_gaps, load_topics, refresh_topics

    story = json.loads((SAMPLE_DATA / "demo_followup.json").read_text())
    ledger = app.extensions["ledger"]
    by_subject = {sample["subject"]: ticket_id for ticket_id, (sample, _) in created.items()}
    _say("\nAfter the first answers: agents answer the handed-over tickets and rate drafts, "
         "customers come back or rate the replies...")
    for subject, answer in story["agent_answers"].items():
        ticket_id = by_subject.get(subject)
        if ticket_id and results.get(ticket_id) and results[ticket_id]["action"] == "escalate":
            sandbox.add_agent_reply(ticket_id, answer)
    for subject in story["good_drafts"]:
        if subject in by_subject:
            sandbox.add_tags(by_subject[subject], ["ai_draft_good"])
    for subject, text in story["customer_comes_back"].items():
        if subject in by_subject:
            sandbox.add_customer_reply(by_subject[subject], text)
    for subject, (score, comment) in story["csat"].items():
        if subject in by_subject:
            sandbox.rate_ticket(by_subject[subject], score, comment)

    more = {}
    for sample in story["similar_questions"]:
        ticket_id = sandbox.create_ticket(sample["subject"], sample["body"], "customer@example.com", "Alex",
                                          tags=sample["tags"])
        more[ticket_id] = (sample, time.time())
    decided = _wait_for_decisions(ledger, more)
    _say(f"{len(more)} more customers asked similar questions: "
         f"{sum(1 for d in decided.values() if d and d['action'] == 'auto_send')} answered by the bot")

    counts = check_outcomes(ledger, make_helpdesks(settings))
    _say(f"outcomes job: {counts['checked']} answers checked, {counts['reopened']} reopened, "
         f"{counts['feedback']} feedback tags")
    refresh_topics(ledger, embedder)

    article = story["new_article"]
    if article["for"] in by_subject and app.extensions.get("celery") is not None:
        section = sandbox._call("GET", "/help_center/sections.json")["sections"][0]["id"]
        sandbox._call("POST", f"/help_center/sections/{section}/articles.json",
                      {"article": {"title": article["title"], "body": article["body"], "locale": "en-us"}})
        app.extensions["celery"].send_task("workers.tasks.reindex_help_center")
        deadline = time.time() + 60
        while time.time() < deadline and not any(a["title"] == article["title"] for a in ledger.indexed_articles()):
            time.sleep(0.2)
        asked = article["then_asked"]
        ticket_id = sandbox.create_ticket(asked["subject"], asked["body"], "cto@example.com", "Robin", tags=asked["tags"])
        decision = _wait_for_decisions(ledger, {ticket_id: (asked, time.time())})[ticket_id]
        _say(f"an agent published “{article['title']}”; the next customer asking got: "
             f"{decision['action'] if decision else 'no decision'}")
        refresh_topics(ledger, embedder)

    topic_list = load_topics(ledger)
    gaps = knowledge_gaps(ledger, topic_list)
    _say(f"topics job: {len(topic_list)} topics, {len(gaps)} knowledge gaps"
         + (f" (largest: “{gaps[0].title}”)" if gaps else ""))


HISTORY_DAYS = 14


def _history(sandbox, ledger, samples: list[dict], attempts: int) -> None:
    """Earlier days, so every chart has a line and every page something to show: the sample
    tickets asked again through the whole path (sandbox → webhook → worker), their records
    then moved back over the last HISTORY_DAYS days; and one ticket the helpdesk kept refusing,
    which ends as a dead letter with a note for a human."""
    import random

    rng = random.Random(7)  # the same history every demo
    asked = {}
    for day in range(1, HISTORY_DAYS):
        for sample in rng.sample(samples, k=rng.randint(1, 3)):
            ticket_id = sandbox.create_ticket(sample["subject"], sample["body"], sample["requester"]["email"],
                                              sample["requester"]["name"], tags=sample["tags"])
            asked[ticket_id] = (sample, day * 86400 + rng.uniform(0, 3 * 3600))
    _wait_for_decisions(ledger, {t: (s, 0) for t, (s, _) in asked.items()})
    for ticket_id, (_, seconds) in asked.items():
        for event in ledger.events_for("zendesk", str(ticket_id)):
            ledger.backdate(event.id, seconds)

    # Zendesk answers 503 to every update of the next ticket until the retries run out.
    sandbox.state.inject_fault("PUT", r"/api/v2/tickets/\d+\.json$", 503, times=attempts)
    sample = samples[0]
    failing = sandbox.create_ticket(sample["subject"], sample["body"], sample["requester"]["email"],
                                    sample["requester"]["name"], tags=sample["tags"])
    _wait_for_decisions(ledger, {failing: (sample, 0)})
    dead = [d for d in ledger.dead_letters() if d["ticket_id"] == str(failing)]
    _say(f"\n{len(asked)} earlier tickets spread over the last {HISTORY_DAYS} days for the charts; "
         f"{len(dead)} dead letter (ticket #{failing}: Zendesk answered 503 to every attempt)")


def _seed_past_tickets(sandbox, intercom) -> int:
    """The sample history (sample_history.py), solved by a human agent in each sandbox."""
    tickets = past_tickets()
    for past in tickets:
        if past.helpdesk == "zendesk":
            ticket_id = sandbox.create_ticket(past.subject, past.body, past.requester_email, past.requester_name,
                                              tags=past.tags)
            sandbox.add_agent_reply(ticket_id, past.agent_answer, status="solved")
        else:
            conversation_id = intercom.start_conversation(past.requester_email, past.body, past.requester_name)
            intercom.tag(conversation_id, past.tags)
            intercom.agent_reply(conversation_id, past.agent_answer)
            intercom.close(conversation_id)
    return len(tickets)


def _backtest(settings: Settings, report: Path) -> None:
    """What ops run before turning the bot on: the past tickets replayed, a threshold per tag."""
    from helpdesk_bot.backtest import backtest_report, run_backtest, write_backtest_report
    from helpdesk_bot.ops.cli import render_backtest

    _say("\nBacktest: the agents' past answers against what the bot would have drafted...")
    helpdesks = [make_helpdesk(settings, "zendesk"), make_helpdesk(settings, "intercom")]
    rows = run_backtest(helpdesks, build_answerer(settings), since=int(time.time()) - 90 * 86400, limit=500)
    summary = backtest_report(rows)
    write_backtest_report(report, summary)
    _say(render_backtest(summary))
    _say(f"backtest report  {report}  (helpdesk-bot backtest --helpdesk zendesk --helpdesk intercom --report ...)")


def port_in_use(port: int) -> str | None:
    """Why the web app could not listen on `port` (127.0.0.1), or None."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def ticket_command(sandbox_url: str) -> str:
    """A curl command that creates a ticket in the sandbox Zendesk (any known user's email with
    /token and any token signs in there; the bot answers in a few seconds)."""
    body = json.dumps({"ticket": {"subject": "Invoices", "comment": {"body": "Where can I download our invoices as PDF?"},
                                  "requester": {"name": "Alex", "email": "alex@example.com"}, "tags": ["billing"]}})
    return (f"  curl -u '{HUMAN_AGENT_EMAIL}/token:sandbox' -H 'Content-Type: application/json' \\\n"
            f"       -d '{body}' \\\n       {sandbox_url}/api/v2/tickets.json\n"
            f"  then see it answered: {sandbox_url}/api/v2/tickets/<id>/comments.json (same -u)")


def _wait_for_worker(celery, worker: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while time.time() < deadline and worker.poll() is None:
        if celery.control.ping(timeout=0.5):
            return
    raise RuntimeError("the worker did not start; see its output above")


def _wait_for_decisions(ledger, created: dict) -> dict:
    deadline = time.time() + TIMEOUT_SECONDS
    results: dict = {}
    while time.time() < deadline:
        results = {ticket_id: ledger.decisions_for(str(ticket_id)) for ticket_id in created}
        dead = {row["ticket_id"] for row in ledger.dead_letters()}
        if all(results[t] or str(t) in dead for t in created):
            break
        time.sleep(0.2)
    return {ticket_id: (rows[-1] if rows else None) for ticket_id, rows in results.items()}


def _print_results(sandbox, ledger, created: dict, results: dict) -> list[float]:
    latencies = []
    for ticket_id, (sample, created_at) in created.items():
        decision = results[ticket_id]
        _say(f"#{ticket_id} {sample['subject']}")
        if decision is None:
            _say("   no decision (see `helpdesk-bot deadletter list`)\n")
            continue
        first_message = Message("customer", "", id=str(sandbox.comments(ticket_id)[0]["id"]))
        action = ledger.action(action_key(TicketEvent("zendesk", "", str(ticket_id)), first_message))
        if action and action["done_at"]:
            latencies.append((action["done_at"] - created_at) * 1000)
        components = json.loads(decision["components"])
        _say(f"   {decision['action'].upper()}  confidence {decision['confidence']}/100 "
             f"({decision['rule']}: {decision['threshold']})  expected: {sample['expect']}")
        _say("   components: " + ", ".join(f"{k} {v:.2f}" for k, v in components.items()))
        for reason in json.loads(decision["reasons"]):
            _say(f"   - {reason}")
        posted = [c for c in sandbox.comments(ticket_id) if c["author_id"] != sandbox.ticket(ticket_id)["requester_id"]]
        if posted and posted[-1]["public"]:  # what the customer reads, whole
            _say("   posted public reply:")
            for line in html_to_text(posted[-1]["html_body"]).split("\n"):
                _say(f"   | {line}")
        elif posted:
            text = " ".join(html_to_text(posted[-1]["html_body"]).split())
            _say(f"   posted internal note: {text[:160]}{'…' if len(text) > 160 else ''}")
        _say("")
    return latencies


def _summary(created: dict, results: dict) -> str:
    """One line: how many tickets were answered, handed over, and decided as the sample expects."""
    answered = sum(1 for d in results.values() if d and d["action"] == "auto_send")
    handed = sum(1 for d in results.values() if d and d["action"] != "auto_send")
    expected = sum(1 for ticket_id, (sample, _) in created.items() if results[ticket_id]
                   and (results[ticket_id]["action"] == "auto_send") == (sample["expect"] == "answer"))
    return f"summary: {answered} answered, {handed} handed over, {expected}/{len(created)} as expected"


# One Intercom conversation: (who, what they do). The bot's turns are whatever it does.
CONVERSATION = [
    ("customer", "Hi, I switched phones and my authenticator app no longer gives me codes. How can I sign in?"),
    ("customer", "Once I'm signed in, how do I set up 2FA again on the new phone?"),
    ("customer", "Thanks! Can I talk to a person about requiring security keys for our whole team?"),
    ("agent", "Hi Dana, Riley here. Happy to help with security keys: what plan is your workspace on?"),
    ("customer", "We're on Business. And is there a way to export the audit log?"),
]


def _converse(intercom, ledger) -> bool:
    """Play CONVERSATION on the sandbox Intercom, printing each turn and what the bot did."""
    from helpdesk_bot.conversation import next_turn
    from integrations.intercom import IntercomHelpdesk

    reader = IntercomHelpdesk("demo", base_url=intercom.url)
    _say("\nAn Intercom conversation after the first reply:\n")
    conversation_id, seen, customer_messages = None, 0, 0
    for who, text in CONVERSATION:
        if who == "agent":
            intercom.agent_reply(conversation_id, text)
            _say(f"   Agent (Riley): {text}")
            seen += 1
            continue
        if conversation_id is None:
            conversation_id = intercom.start_conversation("dana@example.com", text, "Dana Whitfield")
        else:
            intercom.customer_reply(conversation_id, text)
        customer_messages += 1
        _say(f"   Customer: {text}")
        if not _wait_for_events(ledger, conversation_id, customer_messages):
            _say("   (the worker did not finish in time)")
            return False
        ticket = reader.fetch_ticket(conversation_id)
        said = [m for m in ticket.messages[seen + 1:] if m.author == "bot"]
        for message in said:
            if message.public:  # what the customer reads, whole
                _say("   helpdesk-bot (reply):")
                for line in message.text.split("\n"):
                    _say(f"   | {line}")
            else:
                text = " ".join(message.text.split())
                _say(f"   helpdesk-bot (internal note): {text[:200]}{'…' if len(text) > 200 else ''}")
        if not said:
            _say(f"   helpdesk-bot stays silent: {next_turn(ticket).reason}")
        seen = len(ticket.messages)
    outcome = ledger.outcome("intercom", conversation_id) or {}
    _say(f"\n   The ledger records the bot's first answer as {'reopened' if outcome.get('reopened') else 'not reopened'}.")
    return True


def _wait_for_events(ledger, conversation_id: str, count: int) -> bool:
    deadline = time.time() + 60
    while time.time() < deadline:
        events = ledger.events_for("intercom", conversation_id)
        if len(events) >= count and all(e.status in ("done", "dead") for e in events):
            return True
        time.sleep(0.1)
    return False


def _say(text: str) -> None:
    print(text, flush=True)
