"""Dashboard sign-in: hashed passwords (in the ledger), CSRF tokens, sessions that expire.

A session ends after `HELPDESK_SESSION_MINUTES` without a request, in any case twelve hours
after sign-in, and at once on sign-out: the session cookie is signed, not stored, so signing out
records the session's id in Redis as ended, and a copy of the cookie is refused from then on.
Every form carries a CSRF token tied to the session.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time

from flask import abort, current_app, g, redirect, request, session, url_for

MAX_SESSION_SECONDS = 12 * 3600


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Refuse a state-changing request whose form lacks this session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "the form has expired or did not come from this dashboard: reload the page and try again")


def sign_in(user: dict) -> None:
    session.clear()  # a new session id for the signed-in user: no fixation
    session.permanent = True
    session.update(user_id=user["id"], username=user["username"], signed_in_at=time.time(), seen_at=time.time(),
                   csrf=secrets.token_urlsafe(32), sid=secrets.token_urlsafe(16))


def sign_out() -> None:
    """End the session here and for every copy of its cookie."""
    sid = session.get("sid")
    if sid:
        _ended_sessions().set(f"{ENDED_SESSION_PREFIX}{sid}", 1, ex=MAX_SESSION_SECONDS)
    session.clear()


ENDED_SESSION_PREFIX = "dashboard:signed-out:"


def _ended_sessions():
    return current_app.extensions["broker_redis"]  # the Redis the web processes share


def load_user() -> None:
    """Before each dashboard request: the signed-in user, unless the session has expired."""
    g.user = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    now = time.time()
    idle = current_app.config["DASHBOARD_IDLE_SECONDS"]
    if now - session.get("seen_at", 0) > idle or now - session.get("signed_in_at", 0) > MAX_SESSION_SECONDS:
        session.clear()
        g.session_expired = True
        return
    sid = session.get("sid")
    if not sid or _ended_sessions().exists(f"{ENDED_SESSION_PREFIX}{sid}"):  # signed out (a cookie of before: no sid)
        session.clear()
        return
    user = current_app.extensions["ledger"].user(user_id)
    if user is None:  # deleted since
        session.clear()
        return
    session["seen_at"] = now
    g.user = user


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            return redirect(url_for("dashboard.login", next=request.full_path if request.method == "GET" else None,
                                    expired=1 if g.get("session_expired") else None))
        return view(*args, **kwargs)

    return wrapped


def safe_next(target: str | None) -> str:
    """Only local paths under the dashboard: never an open redirect."""
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return url_for("dashboard.overview")
