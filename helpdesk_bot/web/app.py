"""The web app: webhook intake, health checks, and the ops dashboard (helpdesk_bot/web/dashboard).

A webhook is handled in a fixed order: rate limit per IP → signature headers present → size →
body, read within a deadline → signature → rate limit per account → parse → duplicate delivery?
→ record → enqueue → 202. Nothing before the body needs it, so a slow or unsigned sender is
refused before it can hold a connection for long (helpdesk_bot/web/serving.py).
Everything slow happens in a worker; Zendesk gives up after about 10 s and Intercom
deprioritises endpoints slower than 500 ms.

Only signed webhooks and health checks are open: every other endpoint must require a login
(PUBLIC_ENDPOINTS is checked by tests/test_security.py).
"""

from __future__ import annotations

import logging
import socket
from contextlib import contextmanager

import gevent
from flask import Flask, Request, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from gevent import monkey as gevent_monkey
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout

from helpdesk_bot.web.agent_app import agent_app
from helpdesk_bot.web.dashboard import init_dashboard
from helpdesk_bot.errors import BadInput, TransientError
from helpdesk_bot.web.intake import Intake, RateLimited, celery_enqueue_many, one_by_one
from helpdesk_bot.web.limits import RateLimiter, Verdict
from helpdesk_bot.services import init_sentry, open_ledger
from helpdesk_bot.settings import Settings
from integrations.intercom import webhook as intercom_webhook
from integrations.zendesk import webhook as zendesk_webhook
from workers.broker import broker_url, redis_client
from workers.celery_app import create_celery, queue_answer

MAX_BODY_BYTES = 1024 * 1024
# Endpoints anyone may call: webhooks prove who sent them with a signature; health checks say
# nothing; the sign-in page and static files are how a login starts.
PUBLIC_ENDPOINTS = frozenset({"zendesk", "intercom", "intercom_validation", "healthz", "readyz", "static",
                              "dashboard.static", "dashboard.login"})
log = logging.getLogger(__name__)


def create_app(settings: Settings, enqueue=None) -> Flask:
    """Build the app; `enqueue(event_id)` defaults to queueing the Celery task."""
    init_sentry(settings)
    app = Flask(__name__)
    # One byte over the limit is read, so a chunked body (no Content-Length) that is cut there
    # is seen to be too large instead of silently truncated (werkzeug's LimitedStream).
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    app.extensions["settings"] = settings
    app.session_interface = _NoSessionForWebhooks()
    app.extensions["ledger"] = open_ledger(settings)
    app.extensions["webhook_secret"] = settings.webhook_secret()
    app.extensions["intercom_secret"] = settings.intercom_webhook_secret()
    limits_store = redis_client(broker_url(settings))
    ip_limiter = RateLimiter(limits_store, "IP", *settings.webhook_ip_limit)
    account_limiter = RateLimiter(limits_store, "account", *settings.webhook_account_limit)
    if enqueue is None:
        celery = app.extensions["celery"] = create_celery(settings)
        enqueue = lambda event_id: queue_answer(celery, event_id)  # noqa: E731
        enqueue_many = celery_enqueue_many(celery)
    else:
        enqueue_many = one_by_one(enqueue)
    app.extensions["enqueue"] = enqueue
    # Deliveries arriving together are recorded and queued together (helpdesk_bot/web/intake.py).
    app.extensions["intake"] = Intake(app.extensions["ledger"], enqueue_many)
    init_dashboard(app, settings, limits_store)
    app.register_blueprint(agent_app)  # the agents' sidebar app API (helpdesk_bot/web/agent_app.py)

    @app.errorhandler(BadInput)
    def bad_input(exc: BadInput):
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, RequestEntityTooLarge):
            return jsonify(error=f"body is larger than {MAX_BODY_BYTES} bytes"), 413
        if isinstance(exc, RequestTimeout):  # the rest of the body is not waited for
            return jsonify(error=exc.description), 408, {"Connection": "close"}
        return jsonify(error=exc.description), exc.code

    @app.before_request
    def limit_webhooks_per_ip():
        if request.endpoint != "zendesk" and request.path.startswith("/webhooks/"):
            return _refuse_if_limited(ip_limiter, ip_limiter.hit(request.remote_addr or "unknown"))
        return None

    @app.post("/webhooks/zendesk")
    def zendesk():
        # The order is the module docstring's: per IP → … → per account → parse. A delivery that passes
        # them all is counted with the others of its batch in one round trip to Redis
        # (helpdesk_bot/web/intake.py); any other answer counts the limits first, in that order.
        delivery = request._get_current_object()  # each read through the proxy fails a lookup first
        ip = delivery.remote_addr or "unknown"
        known = ip_limiter.refused_already(ip)  # a flood from one address costs no body read or HMAC
        if known is not None:
            return _refuse_if_limited(ip_limiter, known)
        headers = delivery.headers
        # The account header is not signed, but a valid signature proves the sender holds the secret.
        account = headers.get("X-Zendesk-Account-Id", "")[:40] or "default"
        checks = [(ip_limiter, ip)]
        try:
            zendesk_webhook.signature_headers(headers)  # no body is read for a request without them
            body = _raw_body(delivery, settings.body_read_seconds)
            genuine = zendesk_webhook.check_signature(app.extensions["webhook_secret"], headers, body)
            if not genuine:
                return _refuse_first(checks) or (jsonify(status="test delivery received"), 200)
            checks.append((account_limiter, f"zendesk:{account}"))
            event = zendesk_webhook.parse_event(headers, body)
        except (BadInput, HTTPException):
            refused = _refuse_first(checks)
            if refused:
                return refused
            raise
        if event is None:
            return _refuse_first(checks) or (jsonify(status="ignored: event type not handled"), 200)
        return _accept(app, event, checks)

    @app.route("/webhooks/intercom", methods=["HEAD"])
    def intercom_validation():
        # Intercom checks a new endpoint with a HEAD request before it sends notifications.
        return ("", 200) if app.extensions["intercom_secret"] else ("", 404)

    @app.post("/webhooks/intercom")
    def intercom():
        if not app.extensions["intercom_secret"]:
            return jsonify(error="not found"), 404  # no Intercom is configured: nothing may deliver here
        intercom_webhook.signature_header(request.headers)  # no body is read for a request without it
        body = _raw_body(request, settings.body_read_seconds)
        intercom_webhook.check_signature(app.extensions["intercom_secret"], request.headers, body)
        event = intercom_webhook.parse_event(body)
        if event is None:
            return jsonify(status="ignored: topic not handled"), 200
        return _accept(app, event)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app


class _NoSessionForWebhooks(SecureCookieSessionInterface):
    """Webhooks carry no session cookie; opening one (building its signer) costs more than a
    webhook's own checks."""

    def open_session(self, app, request):
        if request.path.startswith("/webhooks/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _refuse_first(checks):
    """Hit the limiters in order; the refusal of the first one over its limit, else None."""
    for limiter, key in checks:
        refused = _refuse_if_limited(limiter, limiter.hit(key))
        if refused:
            return refused
    return None


def _refuse_if_limited(limiter: RateLimiter, verdict: Verdict):
    if verdict.allowed:
        return None
    response = jsonify(error=f"rate limit exceeded: at most {limiter.describe()}; retry after {verdict.retry_after} s")
    response.status_code = 429
    response.headers["Retry-After"] = str(verdict.retry_after)
    return response


def _raw_body(delivery: Request, seconds: float) -> bytes:
    length = delivery.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    with _read_deadline(delivery.environ, seconds):
        if length is not None:
            # One read from the server's input, which stops at Content-Length (PEP 3333);
            # werkzeug's size-limited stream reads in a Python loop, a tenth of the bare endpoint's work.
            return delivery.environ["wsgi.input"].read(length)
        # A chunked body: reading through get_data() applies MAX_CONTENT_LENGTH.
        body = delivery.get_data(cache=True)
    if len(body) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    return body


class _SlowBody(RequestTimeout):
    description = "the request body did not arrive in time"


@contextmanager
def _read_deadline(environ: dict, seconds: float):
    """The body must arrive within `seconds`: a client sending it a byte at a time must not keep
    its connection (one of the process's slots) for longer (helpdesk_bot/web/serving.py)."""
    if gevent_monkey.is_module_patched("socket"):  # gunicorn's gevent worker: one deadline for the whole read
        with gevent.Timeout(seconds, _SlowBody()):
            yield
        return
    connection = environ.get("gunicorn.socket")  # gthread: a deadline for each wait on the client
    if connection is None:  # werkzeug's development server
        yield
        return
    connection.settimeout(seconds)
    try:
        yield
    except (socket.timeout, TimeoutError):
        raise _SlowBody() from None
    finally:
        connection.settimeout(None)


def _accept(app: Flask, event, limits=()):
    # Recorded, then queued, then answered; if the broker is down the event stays recorded
    # and is queued once it answers again (helpdesk_bot/web/intake.py).
    try:
        event_id, new = app.extensions["intake"].accept(event, limits)
    except RateLimited as exc:
        return _refuse_if_limited(exc.limiter, exc.verdict)
    except TransientError as exc:  # overloaded: Zendesk retries a delivery that failed
        return jsonify(error=str(exc)), 503
    status, code = ("accepted", 202) if new else ("duplicate", 200)
    # The body jsonify would write, built directly: its JSON provider costs ~10 µs a request.
    return app.response_class(f'{{"event_id":{int(event_id)},"status":"{status}"}}\n', code, mimetype="application/json")
