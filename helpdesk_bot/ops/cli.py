"""`helpdesk-bot`: run the web app, workers and beat; index knowledge; ask; demo."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from helpdesk_bot.calibration import COMBINATIONS
from helpdesk_bot.errors import HelpdeskBotError
from helpdesk_bot.progress import Progress
from helpdesk_bot.settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except HelpdeskBotError as exc:
        raise click.ClickException(str(exc)) from None


class _Commands(click.Group):
    """Bad input (a malformed file, a wrong setting) ends in a one-line error, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HelpdeskBotError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
@click.version_option(package_name="helpdesk-bot", message="helpdesk-bot %(version)s")
def main() -> None:
    """Answer support tickets from your knowledge; hand the rest to humans with reasons."""


def gunicorn_options(workers: int, worker_class: str = "gevent", connections: int = 1000, threads: int = 64) -> list[str]:
    """How `serve` runs gunicorn (the intake benchmark runs its baseline the same way).

    gevent by default: a webhook's request waits on its process's intake batch (helpdesk_bot/
    intake.py), and with threads every wait and wake-up is a context switch and a fight for
    the GIL; greenlets switch in user space. BENCHMARKS.md has the figures.
    """
    if worker_class == "gevent":  # gevent's worker with a cap on one client's connections
        return ["--workers", str(workers), "--worker-class", "helpdesk_bot.web.serving.CappedGeventWorker",
                "--worker-connections", str(connections)]
    return ["--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads)]


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", default=8000, show_default=True, type=int, help="port to listen on")
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--worker-class", default="gevent", show_default=True, type=click.Choice(["gevent", "gthread"]),
              help="gevent: requests are greenlets; gthread: requests are threads")
@click.option("--connections", default=1000, show_default=True, type=int,
              help="gevent: requests at once per worker; more of them make bigger intake batches")
@click.option("--threads", default=64, show_default=True, type=int, help="gthread: threads per worker")
def serve(host: str, port: int, workers: int, worker_class: str, connections: int, threads: int) -> None:
    """Run the web app (webhooks, dashboard, sidebar app API, health) under gunicorn."""
    _settings()  # fail here, with the setting's name, rather than in every gunicorn worker
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
                               *gunicorn_options(workers, worker_class, connections, threads),
                               "--access-logfile", "-", "helpdesk_bot.web.wsgi:app"])


@main.command()
@click.option("--concurrency", "-c", default=8, show_default=True, type=int, help="tickets handled at once")
@click.option("--pool", default="threads", show_default=True, type=click.Choice(["threads", "prefork", "solo"]),
              help="threads suits waiting on the LLM; embedded Qdrant needs threads or solo")
@click.option("--loglevel", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
def worker(concurrency: int, pool: str, loglevel: str) -> None:
    """Run a Celery worker that answers queued tickets."""
    settings = _settings()
    if pool == "prefork" and not settings.qdrant_url:
        raise click.ClickException("embedded Qdrant opens in one process only: use --pool threads, or set QDRANT_URL")
    from workers.celery_app import create_celery

    create_celery(settings).worker_main(["worker", "--pool", pool, "--concurrency", str(concurrency), "--loglevel", loglevel,
                            "--without-gossip", "--without-mingle"])


@main.command()
@click.option("--loglevel", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
def beat(loglevel: str) -> None:
    """Run the scheduler (nightly re-index, re-queueing); one or more may run, one sends (a Redis lock)."""
    settings = _settings()
    from workers.celery_app import create_celery

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_celery(settings).start(["beat", "--loglevel", loglevel, "--schedule", str(settings.data_dir / "beat-schedule")])


@main.command()
@click.argument("source", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--from-helpdesk", is_flag=True,
              help="index the helpdesk's published articles (those changed since the last run) instead of a file")
@click.option("--full", is_flag=True, help="with --from-helpdesk: read every article, not only the changed ones")
@click.option("--rebuild", is_flag=True,
              help="with --from-helpdesk: build a new index from every article and swap it in (drops articles "
                   "indexed from files; past tickets are read again by their next run)")
@click.option("--past-tickets", is_flag=True,
              help="index the helpdesk's solved tickets (question and agent answer, redacted) since the last run")
@click.option("--helpdesk", type=click.Choice(["zendesk", "intercom"]), default=None,
              help="with --from-helpdesk: whose articles (default: Intercom if only it is configured, else Zendesk)")
@click.option("--keep-missing", is_flag=True,
              help="don't remove articles indexed from SOURCE before that it no longer has (other sources are never touched)")
@click.option("--sample", is_flag=True, help="index the sample help center shipped with helpdesk-bot (to try `ask`)")
@click.option("--status", is_flag=True, help="show the last index runs and what the index holds")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def index(source: Path | None, from_helpdesk: bool, full: bool, rebuild: bool, past_tickets: bool, helpdesk: str | None,
          keep_missing: bool, sample: bool, status: bool, as_json: bool) -> None:
    """Index articles: a JSONL file, an OpenAPI description, a folder of Markdown/HTML, or the helpdesk."""
    from helpdesk_bot.embedding import make_embedder
    from helpdesk_bot.helpdesk import PastTicketsFeed
    from helpdesk_bot.indexing import index_articles, index_help_center, index_past_tickets
    from helpdesk_bot.knowledge import SAMPLE_HELP_CENTER, load_articles
    from helpdesk_bot.services import build_impact_check, make_helpdesk, open_ledger

    settings = _settings()
    ledger = open_ledger(settings)
    if status:
        _index_status(settings, ledger, as_json)
        return
    if sample and not source:
        source = SAMPLE_HELP_CENTER
    if bool(source) + from_helpdesk + past_tickets != 1:
        raise click.UsageError("give a SOURCE file or folder, --sample, --from-helpdesk or --past-tickets (or --status)")
    if (full or rebuild) and not from_helpdesk:
        raise click.UsageError("--full and --rebuild go with --from-helpdesk")
    progress = None if as_json else _progress("embedding chunks")
    try:
        embedder = make_embedder(settings)
        if past_tickets:
            chosen = make_helpdesk(settings, helpdesk)
            if not isinstance(chosen, PastTicketsFeed):
                raise click.UsageError(f"{chosen.name} has no past tickets to index (Zendesk only)")
            report = index_past_tickets(settings, ledger, embedder, chosen, progress=progress)
        elif from_helpdesk:
            report = index_help_center(settings, ledger, embedder, make_helpdesk(settings, helpdesk), full=full,
                                       rebuild=rebuild, progress=progress)
        else:
            report = index_articles(settings, ledger, embedder, load_articles(source), str(source.resolve()),
                                    remove_missing=not keep_missing, progress=progress)
        impact = build_impact_check(settings, ledger).run()
    except HelpdeskBotError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_report(report, impact, as_json)


def _echo_report(report, impact: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "impact": impact}))
        return
    click.echo(f"{report.mode} run: {report.added} added, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.deleted} removed; {report.chunks} chunks embedded "
               f"in {report.seconds:.1f} s")
    if impact["changes"]:
        click.echo(f"{impact['changes']} article change(s): answers {impact['still_supported']} still supported, "
                   f"{impact['unsupported_now']} contradicted or unsupported now, {impact['source_removed']} with "
                   f"their source removed; {impact['notes_posted']} note(s) posted (helpdesk-bot impact)")


def _index_status(settings: Settings, ledger, as_json: bool) -> None:
    from helpdesk_bot.services import open_store

    store = open_store(settings)
    chunks = store.count()
    store.close()
    runs = ledger.index_runs()
    if as_json:
        click.echo(json.dumps({"chunks": chunks, "runs": runs}))
        return
    click.echo(f"index holds {chunks} chunks")
    if not runs:
        click.echo("no index runs recorded yet")
    for run in runs:
        r = run["report"]
        when = datetime.fromtimestamp(run["finished_at"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"{when}  {run['source']} ({r.get('mode', 'full')}): {r['added']} added, {r['updated']} updated, {r['unchanged']} unchanged, "
                   f"{r['deleted']} removed, {len(r['errors'])} errors, {r.get('seconds', 0):.1f} s")


@main.command()
@click.option("--days", type=click.IntRange(1), default=None, help="checked in the last N days [HELPDESK_IMPACT_DAYS]")
@click.option("--json", "as_json", is_flag=True, help="print the list as JSON")
def impact(days: int | None, as_json: bool) -> None:
    """Answers affected by article changes: the replies and drafted notes checked again after a re-index."""
    from helpdesk_bot.impact import as_json as impact_json
    from helpdesk_bot.ledger.article_changes import VERDICTS
    from helpdesk_bot.services import open_ledger

    settings = _settings()
    days = days or settings.impact_days
    rows = open_ledger(settings).affected_answers(since=time.time() - days * 86400)
    if as_json:
        click.echo(json.dumps([impact_json(row) for row in rows]))
        return
    if not rows:
        click.echo(f"no answers affected by article changes in the last {days} days")
    for row in rows:
        item = impact_json(row)
        click.echo(f"{item['helpdesk']} ticket {item['ticket']} ({row['answer']} {item['answered_at']}): "
                   f"{VERDICTS[row['verdict']]}; article {item['article_id']} \"{row['title']}\" {row['change']}")
        for sentence in row["sentences"]:
            click.echo(f"    told: {sentence['sentence']}")
            click.echo(f"    now:  {sentence['new'] or '(no longer in the article)'}")
            for figure in sentence["figures"]:
                click.echo(f"    changed: {figure['old']} → {figure['new'] or 'no longer stated'}")


@main.command()
@click.argument("question")
@click.option("--tag", "tags", multiple=True, help="ticket tags, for the policy (repeatable)")
@click.option("--locale", help="the requester's locale (es, pt-br): the language to answer in; else detected")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def ask(question: str, tags: tuple[str, ...], locale: str | None, as_json: bool) -> None:
    """Answer a question as a ticket would be answered, without posting anything."""
    from helpdesk_bot.domain import Message, Ticket, locale_language
    from helpdesk_bot.language import language_name
    from helpdesk_bot.services import build_answerer

    if locale and not locale_language(locale):
        raise click.BadParameter(f"{locale!r} is not a locale such as es or pt-br", param_hint="--locale")
    ticket = Ticket(helpdesk="cli", id="ask", subject="", messages=(Message("customer", question),),
                    tags=frozenset(t.lower() for t in tags), locale=locale.lower() if locale else None,
                    language=locale_language(locale))
    answerer = build_answerer(_settings())
    if not answerer.retriever.store.count():
        raise click.ClickException("the knowledge index is empty: index your help center (helpdesk-bot index "
                                   "--from-helpdesk), a folder or file (helpdesk-bot index docs/), or the sample "
                                   "(helpdesk-bot index --sample) first")
    outcome = answerer.answer(ticket)
    summary = outcome.summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"Language: {language_name(outcome.ticket.language)}\n")
    click.echo(summary["draft"] or f"(no draft: {outcome.draft.decline_reason})")
    click.echo("\nSources:")
    for n, source in enumerate(summary["sources"], 1):
        click.echo(f"  {n}. {source['title']}  {source['url']}  (score {source['score']})")
    learned = outcome.confidence.combination == "learned"
    click.echo(f"\nConfidence {summary['confidence']}/100" + (" (the learned combination of these components)" if learned else ""))
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
    from helpdesk_bot.ops.demo import run_demo

    sys.exit(run_demo(once=once, port=port))


@main.group("eval")
def evaluate() -> None:
    """Measure retrieval and answering on a labelled question set (see docs/evaluation.md)."""


def _progress(label: str) -> Progress:
    return Progress(label, sys.stderr)


@evaluate.command("retrieval")
@click.option("--kb", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="articles, JSON Lines (docs/evaluation.md)")
@click.option("--questions", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="labelled questions, JSON Lines (docs/evaluation.md)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def evaluate_retrieval(kb: Path, questions: Path, as_json: bool) -> None:
    """hit@1, hit@5, recall@5 and mrr@10 of the knowledge search, overall and per question type."""
    from helpdesk_bot import evaluation

    report = evaluation.evaluate_retrieval(kb, questions, _settings(), progress=None if as_json else _progress("questions")).as_dict()
    if as_json:
        click.echo(json.dumps(report))
        return
    for name, scores in [("all", report)] + list(report["by_type"].items()):
        click.echo(f"{name:<14} n={scores['n']:<5} " + "  ".join(f"{k} {scores[k]:.3f}" for k in ("hit@1", "hit@5", "recall@5", "mrr@10")))
    for language, scores in report.get("by_language", {}).items():
        same = (f"  same article as the original {scores['same_article_as_original']:.3f} over {scores['n_translated']}"
                if "same_article_as_original" in scores else "")
        click.echo(f"language {language:<5} n={scores['n']:<5} "
                   + "  ".join(f"{k} {scores[k]:.3f}" for k in ("hit@1", "hit@5", "recall@5", "mrr@10")) + same)


@evaluate.command("answering")
@click.option("--kb", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="articles, JSON Lines (docs/evaluation.md)")
@click.option("--questions", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="labelled questions, JSON Lines (docs/evaluation.md); repeat for several sets over the same articles")
@click.option("--target-precision", default=0.95, show_default=True, type=click.FloatRange(0, 1),
              help="share of sent answers that must be right at the recommended threshold")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write an HTML report with the precision/coverage chart")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def evaluate_answering(kb: Path, questions: tuple[Path, ...], target_precision: float, report_path: Path | None,
                       as_json: bool) -> None:
    """Run the whole pipeline per question: AUROC of the confidence, and the threshold to choose."""
    from helpdesk_bot import evaluation

    results = evaluation.run_answering(kb, list(questions), _settings(),
                                       progress=None if as_json else _progress("questions"))
    summary = evaluation.answering_report(results, target_precision)
    if report_path:
        evaluation.write_report(report_path, f"Answering: {', '.join(q.name for q in questions)}", summary)
    if as_json:
        click.echo(json.dumps({k: summary[k] for k in ("n", "answerable", "auroc", "threshold", "precision", "coverage",
                                                       "at_precision", "by_set", "by_type", "sent_by_default_policy",
                                                       "answer_recall", "curve", "by_language") if k in summary}))
        return
    click.echo(f"n={summary['n']} (answerable {summary['answerable']})  auroc {_figure(summary['auroc'])}")
    if summary["threshold"] is None:
        click.echo(f"no threshold reaches precision {target_precision}: keep the bot in shadow mode or raise coverage")
    else:
        click.echo(f"recommended threshold {summary['threshold']}: precision {summary['precision']:.3f}, "
                   f"coverage {summary['coverage']:.3f} (target precision {target_precision})")
    for precision, point in summary["at_precision"].items():
        click.echo(f"coverage at precision {precision}: {point['coverage']:.3f}"
                   + (f" (threshold {point['threshold']})" if point["threshold"] is not None else " (no threshold reaches it)"))
    for heading in ("by_set", "by_type"):
        for name, figures in summary[heading].items():
            click.echo(f"  {name:<20} n={figures['n']:<5} auroc {_figure(figures['auroc'])}  "
                       + "  ".join(f"{k} {v:.3f}" for k, v in figures.items() if k.startswith("coverage@")))
    recall = summary["answer_recall"]
    if recall:
        click.echo(f"answer_recall (share of the reference answer's content words in the draft): "
                   f"sent by the default policy {_figure(recall['sent'])} over {recall['n_sent']}, "
                   f"all answerable {_figure(recall['answerable'])} over {recall['n_answerable']}; "
                   f"median draft {recall['median_words_sent']} words sent, {recall['median_words_drafted']} drafted")
    for point in summary["curve"][::10]:
        click.echo(f"  threshold {point['threshold']:>3}: sent {point['sent']:>5}  precision {point['precision']:.3f}  coverage {point['coverage']:.3f}")
    for language, figures in summary.get("by_language", {}).items():
        click.echo(f"language {language:<5} n={figures['n']:<4} auroc {figures['auroc']:.3f}  sent by the default policy "
                   f"{figures['sent_by_default_policy']}  drafts in another language {figures['drafts_in_another_language']}"
                   f"  sent in another language {figures['sent_in_another_language']}")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@evaluate.command("groundedness")
@click.argument("tsv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def evaluate_groundedness(tsv: Path) -> None:
    """AUROC of the groundedness check on BEGIN-style labelled responses (knowledge, response, begin_label)."""
    from helpdesk_bot import evaluation

    click.echo(json.dumps(evaluation.evaluate_groundedness(tsv)))


@main.command()
@click.option("--days", default=90, show_default=True, type=click.IntRange(1), help="solved in the last N days")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1), help="at most this many tickets per helpdesk")
@click.option("--helpdesk", "helpdesk_names", multiple=True, type=click.Choice(["zendesk", "intercom"]),
              help="where to read solved tickets; repeat for both (default: the helpdesk the knowledge comes from)")
@click.option("--target-precision", default=0.95, show_default=True, type=click.FloatRange(0, 1),
              help="share of sent drafts that must agree with the agent at the recommended threshold")
@click.option("--min-tickets", default=20, show_default=True, type=click.IntRange(1),
              help="tickets a tag needs before it gets a threshold")
@click.option("--min-sent", default=10, show_default=True, type=click.IntRange(1),
              help="drafts a threshold must have sent, per tag, for its precision to count")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write an HTML report with the precision/coverage charts, overall and per tag")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def backtest(days: int, limit: int, helpdesk_names: tuple[str, ...], target_precision: float, min_tickets: int,
             min_sent: int, report_path: Path | None, as_json: bool) -> None:
    """Replay past solved tickets: would the bot's draft have said what the agent said? Thresholds per tag."""
    from helpdesk_bot.backtest import backtest_report, run_backtest, write_backtest_report
    from helpdesk_bot.services import build_answerer, make_helpdesk

    settings = _settings()
    answerer = build_answerer(settings)
    helpdesks = [make_helpdesk(settings, name) for name in helpdesk_names or (settings.knowledge_helpdesk,)]
    rows = run_backtest(helpdesks, answerer, since=int(time.time()) - days * 86400, limit=limit,
                        progress=None if as_json else _progress("tickets"))
    summary = backtest_report(rows, target_precision, min_tickets, min_sent)
    if report_path:
        write_backtest_report(report_path, summary)
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(render_backtest(summary))


def render_backtest(summary: dict) -> str:
    """The backtest's figures as ops read them: overall, then a line per tag with its threshold or why none."""
    def figures(s: dict) -> str:
        if s["threshold"] is None:
            return f"no recommendation: {s['reason']}"
        return (f"threshold {s['threshold']}: precision {s['precision']:.2f} (at least {s['precision_low']:.2f}), "
                f"coverage {s['coverage']:.2f}, {s['sent']} sent")

    lines = [f"{summary['replayed']} solved tickets replayed, {summary['n']} judged "
             f"({summary['not_judged']} agent answers had nothing to compare); {summary['agreeing']} drafts agree "
             f"with the agent; auroc {summary['auroc']}",
             f"  {'all tickets':<22} n={summary['n']:<5} {figures(summary)}"]
    lines += [f"  tag {tag:<18} n={s['n']:<5} {figures(s)}" for tag, s in summary["per_tag"].items()]
    return "\n".join(lines)


@main.command()
@click.option("--kb", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="articles, JSON Lines (docs/evaluation.md); repeat with --questions for several sets")
@click.option("--questions", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="labelled questions over the --kb given in the same place, JSON Lines (docs/evaluation.md)")
@click.option("--combination", default="weights", show_default=True, type=click.Choice(COMBINATIONS),
              help="what workers turn into the chance an answer is right: the hand-weighted score, or the "
                   "learned combination of the components")
@click.option("--target-precision", default=0.95, show_default=True, type=click.FloatRange(0, 1),
              help="the precision the coverage figures are read at")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def calibrate(kb: tuple[Path, ...], questions: tuple[Path, ...], combination: str, target_precision: float,
              as_json: bool) -> None:
    """Fit the chance an answer is right (isotonic on the hand weights, and a learned combination); workers load it."""
    from helpdesk_bot import calibration, evaluation

    if len(kb) != len(questions):
        raise click.UsageError("give one --questions for each --kb, in the same order")
    settings = _settings()
    results = []
    for kb_file, questions_file in zip(kb, questions):
        results += evaluation.run_answering(kb_file, questions_file, settings, calibrated=False,
                                            progress=None if as_json else _progress(f"questions of {questions_file.name}"))
    raw, correct = [r.confidence for r in results], [r.correct for r in results]
    isotonic = calibration.fit(raw, correct)
    learned, compared = evaluation.compare_combinations(results, target_precision)
    if combination == "learned" and learned is None:
        raise click.ClickException(f"no learned combination to use: {compared['learned']['reason']}")
    calibration.Calibration(isotonic.scores, isotonic.probabilities, learned, combination).save(settings.calibration_path)
    report = {"n": len(results), **calibration.cross_validated_error(raw, correct), "combination": combination,
              **compared, "saved": str(settings.calibration_path)}
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"calibrated on {report['n']} questions; expected calibration error {report['ece_raw']:.3f} raw → "
               f"{report['ece_calibrated']:.3f} calibrated (5-fold cross-validated); saved to {report['saved']}")
    for name in COMBINATIONS:
        figures = report[name]
        if figures.get("reason"):
            click.echo(f"  {name:<8} not fitted: {figures['reason']}")
            continue
        click.echo(f"  {name:<8} auroc {figures['auroc']:.3f}, coverage {figures['coverage']:.3f} at precision "
                   f"{target_precision} (threshold {figures['threshold']}){figures.get('note', '')}")
    click.echo(f"Workers use the {combination} combination from their next start: restart them. "
               "Confidence now reads as the chance (%) an answer is right.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def doctor(as_json: bool) -> None:
    """Check the configuration and each configured service; say what is wrong and how to fix it."""
    from helpdesk_bot.ops.doctor import render, run_checks

    checks = run_checks()
    click.echo(json.dumps([c.as_dict() for c in checks]) if as_json else render(checks))
    sys.exit(1 if any(c.status == "fail" for c in checks) else 0)


@main.group()
def deadletter() -> None:
    """Tickets that failed after every retry."""


@deadletter.command("list")
def deadletter_list() -> None:
    """Show each dead letter: ticket, whether a human was told, and the error."""
    from helpdesk_bot.services import open_ledger

    rows = open_ledger(_settings()).dead_letters()
    if not rows:
        click.echo("no dead letters")
    for row in rows:
        notified = "human notified" if row["human_notified"] else "human NOT notified"
        click.echo(f"{row['id']:>5}  {row['helpdesk']} ticket {row['ticket_id']}  ({notified})  {row['error'][:120]}")


@deadletter.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="every dead letter")
def deadletter_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    """Queue dead-lettered tickets again."""
    from helpdesk_bot.services import open_ledger
    from workers.celery_app import create_celery, queue_answer

    settings = _settings()
    celery = create_celery(settings)
    ledger = open_ledger(settings)
    targets = [row["id"] for row in ledger.dead_letters()] if replay_all else list(ids)
    for dead_letter_id in targets:
        event_id = ledger.mark_replayed(dead_letter_id)
        queue_answer(celery, event_id)
        click.echo(f"replayed dead letter {dead_letter_id} (event {event_id})")


@main.group()
def admin() -> None:
    """Dashboard users."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password (10 characters or more)", hide_input=True, confirmation_prompt=True)


@admin.command("create-user")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input (for scripts)")
def admin_create_user(username: str, password_stdin: bool) -> None:
    """Create a dashboard admin user (the first one, or another)."""
    from helpdesk_bot.services import open_ledger

    try:
        open_ledger(_settings()).create_user(username, _read_password(password_stdin))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created dashboard user {username}")


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input (for scripts)")
def admin_set_password(username: str, password_stdin: bool) -> None:
    """Change a dashboard user's password."""
    from helpdesk_bot.services import open_ledger

    try:
        open_ledger(_settings()).set_password(username, _read_password(password_stdin))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password changed for {username}")


@admin.command("list-users")
def admin_list_users() -> None:
    """List the dashboard users."""
    from helpdesk_bot.services import open_ledger

    for user in open_ledger(_settings()).users():
        click.echo(f"{user['id']:>4}  {user['username']}")


@main.command()
def outcomes() -> None:
    """Fetch reopens, agent feedback and CSAT for recent answers now (beat does it every 15 minutes)."""
    from helpdesk_bot.outcomes import check_outcomes
    from helpdesk_bot.services import make_helpdesks, open_ledger

    settings = _settings()
    click.echo(json.dumps(check_outcomes(open_ledger(settings), make_helpdesks(settings))))


@main.command()
def topics() -> None:
    """Recompute the dashboard's topics and knowledge gaps now (beat does it hourly)."""
    from helpdesk_bot.embedding import make_embedder
    from helpdesk_bot.services import open_ledger
    from helpdesk_bot.topics import refresh_topics

    settings = _settings()
    click.echo(f"{refresh_topics(open_ledger(settings), make_embedder(settings))} topics")


@main.group("zendesk-app")
def zendesk_app() -> None:
    """The agents' sidebar app for Zendesk (integrations/zendesk_app)."""


@zendesk_app.command("package")
@click.option("--url", "api_url", required=True, help="the https address of this product's web app")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("dist/helpdesk-bot-zendesk-app.zip"), show_default=True, help="where to write the zip")
def zendesk_app_package(api_url: str, output: Path) -> None:
    """Validate the sidebar app and build the zip to upload to Zendesk."""
    from integrations.zendesk_app.package import AppInvalid, build

    try:
        package = build(output, api_url)
    except AppInvalid as exc:
        raise click.ClickException("the app is not valid:\n  " + "\n  ".join(exc.problems)) from None
    click.echo(f"{package.path}: {package.manifest['name']} {package.manifest['version']}, {len(package.files)} files; "
               f"secure requests allowed to {', '.join(package.manifest['domainWhitelist'])}")
    click.echo("Upload it in Admin Center → Apps and integrations → Zendesk Support apps → Upload private app, "
               "and enter the value of ZENDESK_APP_SECRET as the shared secret.")


@main.group()
def zendesk() -> None:
    """Connect a Zendesk account to this product."""


@zendesk.command("setup")
@click.option("--url", "product_url", required=True, help="the https address of this product's web app")
@click.option("--dry-run", is_flag=True, help="print what would change; change nothing")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def zendesk_setup(product_url: str, dry_run: bool, as_json: bool) -> None:
    """Create or update the webhook and triggers, fetch the signing secret, check agent and group."""
    from helpdesk_bot.services import open_policy
    from integrations.zendesk.setup import SetupError, ZendeskAdmin, check_product_url, format_report, run_setup

    if problem := check_product_url(product_url):
        raise click.BadParameter(problem, param_hint="--url")
    try:
        settings = Settings.from_env(require_webhook_secret=False)  # this command is what fetches it
        admin = ZendeskAdmin.from_settings(settings)
        try:
            report = run_setup(admin, product_url, settings.zendesk_bot_agent_id,
                               open_policy(settings).current().escalation_group_id, dry_run=dry_run)
        finally:
            admin.close()
    except (HelpdeskBotError, SetupError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(reveal_secret=not dry_run)))
    else:
        click.echo("\n".join(format_report(report, admin.base_url, settings.zendesk_webhook_secret)))
    if report.problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
