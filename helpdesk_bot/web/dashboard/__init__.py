"""The ops dashboard (/dashboard), the feedback API (/api/feedback), /metrics and /readyz.

Support leads see what the bot did, what it saved, where it failed and what to write next;
admins change the policy here, and every change lands in an audit log.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import datetime, timedelta, timezone

import redis
from flask import (Blueprint, Flask, Response, abort, current_app, flash, g, jsonify, redirect, render_template,
                   request, url_for)

from helpdesk_bot import analytics, topics
from helpdesk_bot.web.dashboard import charts
from helpdesk_bot.web.dashboard.auth import (check_csrf, csrf_token, load_user, login_required, safe_next, sign_in,
                                            sign_out)
from helpdesk_bot.errors import ConfigError
from helpdesk_bot.language import LANGUAGE_NAMES
from helpdesk_bot.ledger.article_changes import NOT_LOOKED_UP, VERDICTS
from helpdesk_bot.web.limits import RateLimiter
from helpdesk_bot.policy import (Policy, PolicyFile, describe_changes, parse_policy, parse_policy_text,
                                 policy_to_toml, write_policy)
from helpdesk_bot.text import shorten

log = logging.getLogger(__name__)
blueprint = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
                      static_folder="static")

PERIODS = {"day": "per day", "week": "per week"}
RANGES = (7, 30, 90, 365)


# After this many failed sign-ins within the window, sign-in is refused until the window ends:
# per username, so a guessed account locks, and per address, so one machine cannot try every
# account. Counted in Redis across web processes (another process may let one more attempt
# through before it hears).
SIGN_IN_FAILURES_PER_USER = (5, 15 * 60)
SIGN_IN_FAILURES_PER_ADDRESS = (20, 15 * 60)


def init_dashboard(app: Flask, settings, limits_store) -> None:
    """Mount the dashboard, the feedback API, /metrics and /readyz on the web app."""
    # A limiter refuses the hit after its limit; the last allowed failure must lock, so limit - 1.
    app.extensions["broker_redis"] = limits_store
    app.extensions["sign_in_limits"] = tuple(
        RateLimiter(limits_store, scope, failures - 1, window)
        for scope, (failures, window) in (("sign-in-username", SIGN_IN_FAILURES_PER_USER),
                                          ("sign-in-address", SIGN_IN_FAILURES_PER_ADDRESS)))
    app.secret_key = settings.dashboard_secret_key()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,  # on when HELPDESK_PUBLIC_URL is https
        SESSION_COOKIE_NAME="helpdesk_bot_session",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
        DASHBOARD_IDLE_SECONDS=settings.session_minutes * 60,
    )
    app.extensions["policy_file"] = PolicyFile(settings.policy_file, required=settings.policy_path is not None)
    app.register_blueprint(blueprint)
    app.register_blueprint(api)
    app.add_url_rule("/metrics", "metrics", metrics_endpoint)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.jinja_env.globals.update(csrf_token=csrf_token, fmt_pct=fmt_pct, fmt_ms=fmt_ms, fmt_time=fmt_time,
                                 fmt_usd=fmt_usd, reasons=analytics.ESCALATION_REASONS, language_names=LANGUAGE_NAMES)
    app.jinja_env.filters["shorten"] = shorten  # at a word boundary, with an ellipsis


@blueprint.before_request
def _before():
    load_user()
    check_csrf()


# Every dashboard page: no framing (the policy editor and the kill switch must not be clickjacked),
# no scripts at all (the pages have none), no content-type sniffing. A few lines rather than
# flask-talisman, which would run on every webhook too.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def ledger():
    return current_app.extensions["ledger"]


# --- formatting -----------------------------------------------------------------------------------


def fmt_pct(value) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def fmt_ms(value) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def fmt_usd(value) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def fmt_time(value) -> str:
    if not value:
        return "—"
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- sign-in --------------------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    if any(c in request.values.get("next", "") for c in "\r\n\0"):
        abort(400, "the page to return to is not a valid address")
    error, status, headers = None, 200, {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        failures = list(zip(current_app.extensions["sign_in_limits"], (username.lower(), request.remote_addr or "unknown")))
        locked = [verdict for limiter, key in failures if (verdict := limiter.refused_already(key))]
        if locked:  # the password is not even checked: guessing stops here
            retry_after = max(v.retry_after for v in locked)
            error = f"Too many failed sign-ins. Try again in {(retry_after + 59) // 60} minute(s)."
            status, headers = 429, {"Retry-After": str(retry_after)}
        else:
            user = ledger().check_login(username, request.form.get("password", ""))
            if user:
                sign_in(user)
                log.info("dashboard sign-in: %s", user["username"])
                return redirect(safe_next(request.form.get("next")))
            error, status = "Wrong username or password.", 401
            for limiter, key in failures:
                if not limiter.hit(key).allowed:
                    log.warning("dashboard sign-in: %s failed sign-ins for this %s (%r from %s); refused for %s s",
                                limiter.limit + 1, limiter.scope.removeprefix("sign-in-"), username,
                                request.remote_addr, limiter.window)
            time.sleep(0.2)  # slows down guessing a little more
    return render_template("login.html", error=error, next=request.values.get("next", ""),
                           expired=request.args.get("expired")), status, headers


@blueprint.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("dashboard.login"))


# --- pages ------------------------------------------------------------------------------------------


def _filters():
    days = request.args.get("days", 30, type=int)
    days = days if days in RANGES else 30
    period = request.args.get("period", "day")
    period = period if period in PERIODS else "day"
    helpdesk = request.args.get("helpdesk") or None
    brand = request.args.get("brand") or None
    return {"days": days, "period": period, "helpdesk": helpdesk, "brand": brand}


def _records(f):
    return analytics.load_tickets(ledger(), since=time.time() - f["days"] * 86400, helpdesk=f["helpdesk"],
                                  brand=f["brand"])


@blueprint.get("/")
@login_required
def overview():
    f = _filters()
    records = _records(f)
    summary = analytics.summarize(records)
    periods = analytics.by_period(records, f["period"])
    labels = [p for p, _ in periods]
    deflection_chart = charts.line_chart(labels, [
        ("deflection", [s.deflection_rate for _, s in periods], charts.PALETTE["deflection"]),
        ("auto-send", [s.auto_send_rate for _, s in periods], charts.PALETTE["auto_send"]),
    ], title="Deflection and auto-send rate over time")
    reasons_chart = charts.hbars([(analytics.ESCALATION_REASONS.get(code, code), n)
                                  for code, n in summary.escalation_reasons.items()], title="Escalation reasons")
    months = analytics.by_period(records, "month")
    everything = analytics.load_tickets(ledger(), since=time.time() - 365 * 86400)
    return render_template("overview.html", f=f, s=summary, periods=periods, deflection_chart=deflection_chart,
                           reasons_chart=reasons_chart, months=months, groups=analytics.by_helpdesk_brand(records),
                           helpdesks=sorted({r.helpdesk for r in everything}),
                           brands=sorted({r.brand_id for r in everything if r.brand_id}), periods_names=PERIODS,
                           ranges=RANGES)


@blueprint.get("/tags")
@login_required
def tags():
    f = _filters()
    return render_template("tags.html", f=f, rows=analytics.by_tag(_records(f)), ranges=RANGES)


@blueprint.get("/languages")
@login_required
def languages():
    """Per language customers write in: tickets, deflection, knowledge gaps, and the articles they lack."""
    f = _filters()
    records = _records(f)
    default = current_app.extensions["settings"].default_language
    missing = analytics.missing_translations(records, ledger().indexed_articles(), default)
    return render_template("languages.html", f=f, rows=analytics.by_language(records), missing=missing,
                           default=default, names=LANGUAGE_NAMES, ranges=RANGES)


@blueprint.get("/quality")
@login_required
def quality():
    f = _filters()
    records = _records(f)
    bands = analytics.confidence_vs_outcome(records)
    chart = charts.stacked_bars([b["band"] for b in bands], [
        ("judged good", [b["good"] for b in bands], charts.PALETTE["good"]),
        ("judged bad", [b["bad"] for b in bands], charts.PALETTE["bad"]),
        ("sent, not judged yet", [b["unjudged"] for b in bands], charts.PALETTE["unjudged"]),
        ("escalated", [b["escalated"] for b in bands], charts.PALETTE["escalated"]),
    ], title="Confidence against outcomes")
    bad = [r for r in reversed(records) if r.verdict == "bad"][:20]
    return render_template("quality.html", f=f, chart=chart, bands=bands, bad=bad, s=analytics.summarize(records),
                           ranges=RANGES)


@blueprint.get("/tickets")
@login_required
def tickets():
    f = _filters()
    records = list(reversed(_records(f)))
    all_tags = sorted({tag for r in records for tag in r.tags})
    action, tag = request.args.get("action"), request.args.get("tag") or None
    if action in ("auto_send", "escalate", "held_back"):
        records = [r for r in records if r.action == action]
    if tag:
        records = [r for r in records if tag in r.tags]
    return render_template("tickets.html", f=f, records=records[:300], total=len(records), action=action, tag=tag,
                           all_tags=all_tags, ranges=RANGES)


@blueprint.get("/tickets/<helpdesk>/<ticket_id>")
@login_required
def ticket(helpdesk: str, ticket_id: str):
    rows = ledger().decisions_for(ticket_id, helpdesk)
    events, done = ledger().ticket_history(helpdesk, ticket_id)
    if not rows and not events:
        abort(404, f"no {helpdesk} ticket {ticket_id} in the ledger")
    titles = {a["article_id"]: a["title"] for a in ledger().indexed_articles()}  # decisions of before kept no title
    for row in rows:
        for key in ("tags", "sources", "components", "reasons", "latency_ms"):
            row[key] = json.loads(row[key] or "null")
        for source in row["sources"] or ():
            source.setdefault("title", titles.get(source["id"].split("#")[0]) or source["id"])
    return render_template("ticket.html", helpdesk=helpdesk, ticket_id=ticket_id, decisions=rows, events=events,
                           actions=done, outcome=ledger().outcome(helpdesk, ticket_id),
                           feedback=ledger().feedback_for(helpdesk, ticket_id))


@blueprint.get("/article-changes")
@login_required
def article_changes():
    """Answers affected by article changes: checked again after each re-index, newest first."""
    days = request.args.get("days", current_app.extensions["settings"].impact_days, type=int)
    since = time.time() - max(days, 1) * 86400
    chosen = {key: request.args.get(key) or None for key in ("article", "verdict", "status")}
    rows = ledger().affected_answers(since=since, article_id=chosen["article"], verdict=chosen["verdict"],
                         ticket_status=chosen["status"], limit=300)
    return render_template("article_changes.html", rows=rows, days=days, chosen=chosen, verdicts=VERDICTS,
                           articles=ledger().changed_articles(since), statuses=ledger().ticket_statuses(since),
                           counts=ledger().impact_counts(since), not_looked_up=NOT_LOOKED_UP)


@blueprint.get("/topics")
@login_required
def topics_page():
    now = time.time()
    records = analytics.load_tickets(ledger(), since=now - topics.LOOKBACK_DAYS * 86400)
    topic_list = topics.load_topics(ledger(), records)
    weeks = [analytics.period_of(now - 7 * 86400 * k, "week") for k in range(7, -1, -1)]
    gaps = topics.knowledge_gaps(ledger(), topic_list)
    return render_template("topics.html", topics=topic_list, gaps=gaps, weeks=weeks, now=now, sparkline=charts.sparkline,
                           computed_at=ledger().topics_computed_at())


@blueprint.get("/gaps.csv")
@login_required
def gaps_csv():
    records = analytics.load_tickets(ledger(), since=time.time() - topics.LOOKBACK_DAYS * 86400)
    body = topics.gaps_csv(topics.knowledge_gaps(ledger(), topics.load_topics(ledger(), records)))
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=knowledge-gaps.csv"})


@blueprint.post("/topics/refresh")
@login_required
def refresh_topics():
    celery = current_app.extensions.get("celery")
    if celery is not None:
        # Embedding every recent ticket takes seconds to minutes: a worker's job, not a web
        # process's, whose other requests (webhooks) would wait behind it.
        celery.send_task("workers.tasks.refresh_topics")
        flash("Topics are being recomputed by a worker: reload this page in a minute.")
        return redirect(url_for("dashboard.topics_page"))
    from helpdesk_bot.embedding import make_embedder

    embedder = current_app.extensions.get("embedder") or make_embedder(current_app.extensions["settings"])
    current_app.extensions["embedder"] = embedder
    count = topics.refresh_topics(ledger(), embedder)
    flash(f"Topics recomputed: {count} topics.")
    return redirect(url_for("dashboard.topics_page"))


# --- policy editor -------------------------------------------------------------------------------------


def _policy_file() -> PolicyFile:
    return current_app.extensions["policy_file"]


@blueprint.get("/policy")
@login_required
def policy_page(errors: list[str] | None = None, raw_text: str | None = None, status: int = 200):
    source = _policy_file()
    policy = source.current()
    return render_template("policy.html", policy=policy, path=source.path, file_error=source.error, errors=errors or [],
                           read_only=source.read_only,
                           raw_text=raw_text if raw_text is not None else policy_to_toml(policy),
                           changes=ledger().policy_changes(50)), status


@blueprint.post("/policy")
@login_required
def policy_save():
    source = _policy_file()
    if source.read_only:
        abort(409, f"the policy file {source.path} is read-only here; change it where it comes from")
    old = source.current()
    try:
        if request.form.get("form") == "toml":
            new = parse_policy_text(request.form.get("toml", ""), "policy")
        else:
            new = parse_policy(_policy_from_form(request.form, old), "policy")
    except ConfigError as exc:
        return policy_page(errors=[str(exc)], raw_text=request.form.get("toml"), status=400)
    changes = describe_changes(old, new)
    if not changes:
        flash("No change.")
        return redirect(url_for("dashboard.policy_page"))
    before = policy_to_toml(old)
    after = write_policy(source.path, new)
    ledger().record_policy_change(g.user["username"], changes, before, after)
    log.warning("policy changed by %s: %s", g.user["username"], "; ".join(changes))
    flash("Saved: " + "; ".join(changes))
    return redirect(url_for("dashboard.policy_page"))


def _policy_from_form(form, old: Policy) -> dict:
    """The editor's fields as the raw TOML structure, so the file's own validation applies."""

    def number(name: str, default):
        value = form.get(name, "").strip()
        if value == "":
            return default
        try:
            return int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            return value  # refused by validation, by name

    def words(value: str) -> list[str]:
        return [w.strip() for w in value.replace(";", ",").split(",") if w.strip()]

    raw = {
        "threshold": number("threshold", old.threshold),
        "reply_status": form.get("reply_status", old.reply_status),
        "escalation_group_id": number("escalation_group_id", old.escalation_group_id or 0),
        "always_human_tags": words(form.get("always_human_tags", "")),
        "rollout": number("rollout", old.rollout),
        "shadow": form.get("shadow") == "on",
        "kill_switch": form.get("kill_switch") == "on",
        "article_change_notes": form.get("article_change_notes") == "on",
        "rules": [],
    }
    indexes = sorted({int(k.split("-")[1]) for k in form if k.startswith("rule-") and k.split("-")[1].isdigit()})
    for i in indexes:
        if form.get(f"rule-{i}-delete") == "on":
            continue
        tags, brands, channels = (words(form.get(f"rule-{i}-{k}", "")) for k in ("tags", "brands", "channels"))
        threshold = form.get(f"rule-{i}-threshold", "").strip()
        if not (tags or brands or channels or threshold):
            continue  # the empty "add a rule" row
        rule = {"threshold": number(f"rule-{i}-threshold", None)}
        if tags:
            rule["tags"] = tags
        if brands:
            rule["brands"] = brands
        if channels:
            rule["channels"] = channels
        if form.get(f"rule-{i}-shadow") == "on":
            rule["shadow"] = True
        risks = words(form.get(f"rule-{i}-allow_risks", ""))
        if risks:
            rule["allow_risks"] = risks
        raw["rules"].append(rule)
    return raw


# --- dead letters ------------------------------------------------------------------------------------


@blueprint.get("/dead-letters")
@login_required
def dead_letters():
    return render_template("dead_letters.html", letters=ledger().dead_letters(),
                           replayed=[d for d in ledger().dead_letters(include_replayed=True) if d["replayed_at"]][-20:])


@blueprint.post("/dead-letters/replay")
@login_required
def replay():
    ids = [int(i) for i in request.form.getlist("id") if i.isdigit()]
    if request.form.get("all") == "1":
        ids = [d["id"] for d in ledger().dead_letters()]
    enqueue = current_app.extensions["enqueue"]
    for dead_letter_id in ids:
        event_id = ledger().mark_replayed(dead_letter_id)
        enqueue(event_id)
        log.warning("dead letter %s replayed by %s (event %s)", dead_letter_id, g.user["username"], event_id)
    flash(f"Replayed {len(ids)} dead letter{'s' if len(ids) != 1 else ''}.")
    return redirect(url_for("dashboard.dead_letters"))


# --- the feedback API (called by the helpdesk's sidebar app) ---------------------------------------------

api = Blueprint("api", __name__, url_prefix="/api")


@api.post("/feedback")
def post_feedback():
    """Record an agent's verdict on the bot's draft: {ticket_id, rating: good|bad, reason?, agent?, helpdesk?}."""
    if not current_app.extensions["settings"].api_token:
        return jsonify(error="the feedback API is off: set HELPDESK_API_TOKEN"), 503
    if not _bearer_token_ok():
        return jsonify(error="missing or wrong bearer token"), 401
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="the body must be a JSON object"), 400
    ticket_id = str(body.get("ticket_id", "")).strip()
    rating = body.get("rating")
    helpdesk = str(body.get("helpdesk") or "zendesk")
    if not ticket_id:
        return jsonify(error="ticket_id is required"), 400
    if rating not in ("good", "bad"):
        return jsonify(error="rating must be \"good\" or \"bad\""), 400
    reason, agent = body.get("reason", ""), body.get("agent", "")
    if not isinstance(reason, str) or not isinstance(agent, (str, int)):
        return jsonify(error="reason must be a string and agent a string or an id"), 400
    if ledger().outcome(helpdesk, ticket_id) is None:
        return jsonify(error=f"the bot has not answered {helpdesk} ticket {ticket_id}"), 404
    ledger().add_feedback(helpdesk, ticket_id, rating, reason, source="sidebar", agent=str(agent)[:200])
    return jsonify(status="recorded", helpdesk=helpdesk, ticket_id=ticket_id, rating=rating), 201


# --- /metrics and /readyz -----------------------------------------------------------------------------


def _bearer_token_ok() -> bool:
    """The request carries `Authorization: Bearer <HELPDESK_API_TOKEN>`."""
    token = current_app.extensions["settings"].api_token
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def metrics_endpoint():
    # Counts and policy state are not for everyone: scrapers send the API token.
    if not _bearer_token_ok():
        return jsonify(error="send Authorization: Bearer <HELPDESK_API_TOKEN> to read /metrics"), 401
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = current_app.extensions.get("metrics_registry")
    if registry is None:
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        registry.register(LedgerCollector(current_app.extensions["ledger"], current_app.extensions["policy_file"],
                                          current_app.extensions["broker_redis"]))
        current_app.extensions["metrics_registry"] = registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class LedgerCollector:
    """Prometheus metrics read from the ledger at scrape time: the same numbers from every process."""

    def __init__(self, ledger, policy_file: PolicyFile, broker_redis):
        self.ledger, self.policy_file, self.broker_redis = ledger, policy_file, broker_redis

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        decided = CounterMetricFamily("helpdesk_bot_decisions", "Decisions recorded, by action and reason code",
                                      labels=["action", "code"])
        cost = CounterMetricFamily("helpdesk_bot_llm_cost_usd", "LLM cost of all decisions in USD")
        total_cost = 0.0
        for action, code, count, spent in self.ledger.decision_totals():
            decided.add_metric([action, code], count)
            total_cost += spent
        cost.add_metric([], total_cost)
        yield decided
        yield cost
        events = GaugeMetricFamily("helpdesk_bot_events", "Webhook events by processing status", labels=["status"])
        for status, count in self.ledger.events_by_status().items():
            events.add_metric([status], count)
        yield events
        yield GaugeMetricFamily("helpdesk_bot_dead_letters_open", "Dead letters not replayed",
                                value=self.ledger.count_open_dead_letters())
        verdicts = CounterMetricFamily("helpdesk_bot_feedback", "Agent feedback on drafts", labels=["rating"])
        for rating, count in self.ledger.feedback_counts().items():
            verdicts.add_metric([rating], count)
        yield verdicts
        affected = CounterMetricFamily("helpdesk_bot_article_change_answers",
                                       "Answers checked again after an article they cited changed, by verdict",
                                       labels=["verdict"])
        for verdict, count in self.ledger.impact_counts().items():
            affected.add_metric([verdict], count)
        yield affected
        yield GaugeMetricFamily("helpdesk_bot_article_change_notes_due",
                                "Notes on answers an article change affects, not posted yet (a helpdesk error)",
                                value=self.ledger.impact_notes_due_count())
        day = analytics.summarize(analytics.load_tickets(self.ledger, since=time.time() - 86400))
        yield GaugeMetricFamily("helpdesk_bot_deflection_rate_24h", "Deflection rate over the last 24 hours",
                                value=day.deflection_rate if day.deflection_rate is not None else float("nan"))
        latency = GaugeMetricFamily("helpdesk_bot_latency_seconds_24h", "Webhook-to-posted latency, last 24 hours",
                                    labels=["quantile"])
        for q, v in (("0.5", day.latency_p50_ms), ("0.95", day.latency_p95_ms)):
            latency.add_metric([q], (v / 1000) if v is not None else float("nan"))
        yield latency
        try:  # alert on 0: without beat nothing re-queues lost events or re-indexes at night
            from workers.beat_lock import running_beat

            yield GaugeMetricFamily("helpdesk_bot_beat_running", "1 while a beat holds the beat lock",
                                    value=int(running_beat(self.broker_redis) is not None))
        except redis.RedisError:
            pass
        try:
            policy = self.policy_file.current()
        except ConfigError:
            return
        yield GaugeMetricFamily("helpdesk_bot_policy_kill_switch", "1 when nothing is sent automatically",
                                value=int(policy.kill_switch))
        yield GaugeMetricFamily("helpdesk_bot_policy_shadow", "1 in shadow mode", value=int(policy.shadow))
        yield GaugeMetricFamily("helpdesk_bot_policy_rollout_percent", "Rollout share", value=policy.rollout)


def readyz():
    """Ready to take webhooks: the ledger answers at the newest schema and the broker is reachable."""
    checks, ready = {}, True
    ledger_ = current_app.extensions["ledger"]
    try:
        revision = ledger_.schema_revision()
        checks["database"] = "ok" if revision == ledger_.head_revision() else f"schema at {revision}, not head"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    celery = current_app.extensions.get("celery")
    if celery is not None:
        try:
            with celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["broker"] = f"unreachable: {type(exc).__name__}"
    policy_file = current_app.extensions.get("policy_file")
    if policy_file is not None:
        try:
            policy_file.current()
            checks["policy"] = "ok" if policy_file.error is None else f"invalid, previous kept: {policy_file.error}"
        except ConfigError as exc:
            checks["policy"] = f"invalid: {exc}"
    ready = all(v == "ok" for k, v in checks.items() if k != "policy") and not str(checks.get("policy", "ok")).startswith("invalid:")
    return jsonify(status="ready" if ready else "not ready", checks=checks), (200 if ready else 503)


__all__ = ["init_dashboard", "blueprint", "api"]
