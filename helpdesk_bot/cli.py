"""`helpdesk-bot`: run the web app, workers and beat; index knowledge; ask; demo."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from helpdesk_bot.errors import HelpdeskBotError
from helpdesk_bot.settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except HelpdeskBotError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Answer support tickets from your knowledge; hand the rest to humans with reasons."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
def serve(host: str, port: int, workers: int) -> None:
    """Run the web app (webhooks, health) under gunicorn."""
    _settings()  # fail here, with the setting's name, rather than in every gunicorn worker
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
                               "--threads", "4", "--access-logfile", "-", "helpdesk_bot.wsgi:app"])


@main.command()
@click.option("--concurrency", "-c", default=8, show_default=True, type=int)
@click.option("--pool", default="threads", show_default=True, type=click.Choice(["threads", "prefork", "solo"]),
              help="threads suits waiting on the LLM; embedded Qdrant needs threads or solo")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int, pool: str, loglevel: str) -> None:
    """Run a Celery worker that answers queued tickets."""
    settings = _settings()
    if pool == "prefork" and not settings.qdrant_url:
        raise click.ClickException("embedded Qdrant opens in one process only: use --pool threads, or set QDRANT_URL")
    from workers.celery_app import celery_app

    celery_app.worker_main(["worker", "--pool", pool, "--concurrency", str(concurrency), "--loglevel", loglevel,
                            "--without-gossip", "--without-mingle"])


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler (nightly re-index, re-queueing); run exactly one."""
    settings = _settings()
    from workers.celery_app import celery_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel", loglevel, "--schedule", str(settings.data_dir / "beat-schedule")])


@main.command()
@click.argument("source", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--from-helpdesk", is_flag=True, help="index the helpdesk's published articles instead of a file")
@click.option("--helpdesk", type=click.Choice(["zendesk", "intercom"]), default=None,
              help="with --from-helpdesk: whose articles (default: Intercom if only it is configured, else Zendesk)")
@click.option("--keep-missing", is_flag=True, help="don't remove indexed articles that SOURCE no longer has")
@click.option("--json", "as_json", is_flag=True)
def index(source: Path | None, from_helpdesk: bool, helpdesk: str | None, keep_missing: bool, as_json: bool) -> None:
    """Index articles from a JSONL file, a folder of Markdown/HTML files, or the helpdesk."""
    from helpdesk_bot.embedding import default_embedder
    from helpdesk_bot.knowledge import load_articles, sync_index
    from helpdesk_bot.services import make_helpdesk, open_store

    settings = _settings()
    if bool(source) == from_helpdesk:
        raise click.UsageError("give a SOURCE file or folder, or --from-helpdesk")
    try:
        articles = make_helpdesk(settings, helpdesk).articles() if from_helpdesk else load_articles(source)
        embedder = default_embedder()
        store = open_store(settings, embedder)
        report = sync_index(store, embedder, articles, remove_missing=not keep_missing)
        store.close()
    except HelpdeskBotError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"{len(articles)} articles: {report.added} added, {report.updated} updated, "
                   f"{report.unchanged} unchanged, {report.deleted} removed; {report.chunks} chunks embedded")


@main.command()
@click.argument("question")
@click.option("--tag", "tags", multiple=True, help="ticket tags, for the policy (repeatable)")
@click.option("--json", "as_json", is_flag=True)
def ask(question: str, tags: tuple[str, ...], as_json: bool) -> None:
    """Answer a question as a ticket would be answered, without posting anything."""
    from helpdesk_bot.domain import Message, Ticket
    from helpdesk_bot.services import build_answerer

    try:
        ticket = Ticket(helpdesk="cli", id="ask", subject="", messages=(Message("customer", question),),
                        tags=frozenset(t.lower() for t in tags))
        outcome = build_answerer(_settings()).answer(ticket)
    except HelpdeskBotError as exc:
        raise click.ClickException(str(exc)) from None
    summary = outcome.summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(summary["draft"] or f"(no draft: {outcome.draft.decline_reason})")
    click.echo("\nSources:")
    for n, source in enumerate(summary["sources"], 1):
        click.echo(f"  {n}. {source['title']}  {source['url']}  (score {source['score']})")
    click.echo(f"\nConfidence {summary['confidence']}/100")
    for component in outcome.confidence.components:
        click.echo(f"  {component.name:<20} {component.value:.2f}  {component.detail}")
    click.echo(f"\nDecision: {summary['decision']}")
    for reason in summary["reasons"]:
        click.echo(f"  - {reason}")


@main.command()
@click.option("--once", is_flag=True, help="exit when every sample ticket has been processed")
@click.option("--port", default=8000, show_default=True, type=int, help="web app port")
def demo(once: bool, port: int) -> None:
    """Run everything on embedded defaults and send the sample tickets through it."""
    from helpdesk_bot.demo import run_demo

    sys.exit(run_demo(once=once, port=port))


@main.group()
def deadletter() -> None:
    """Tickets that failed after every retry."""


@deadletter.command("list")
def deadletter_list() -> None:
    from helpdesk_bot.services import open_ledger

    rows = open_ledger(_settings()).dead_letters()
    if not rows:
        click.echo("no dead letters")
    for row in rows:
        notified = "human notified" if row["human_notified"] else "human NOT notified"
        click.echo(f"{row['id']:>5}  {row['helpdesk']} ticket {row['ticket_id']}  ({notified})  {row['error'][:120]}")


@deadletter.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True)
def deadletter_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    """Queue dead-lettered tickets again."""
    from helpdesk_bot.services import open_ledger
    from workers.tasks import answer_ticket

    ledger = open_ledger(_settings())
    targets = [row["id"] for row in ledger.dead_letters()] if replay_all else list(ids)
    for dead_letter_id in targets:
        event_id = ledger.mark_replayed(dead_letter_id)
        answer_ticket.delay(event_id)
        click.echo(f"replayed dead letter {dead_letter_id} (event {event_id})")


if __name__ == "__main__":
    main()
