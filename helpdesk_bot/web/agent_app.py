"""The API behind the agents' sidebar app (integrations/zendesk_app): see, regenerate and rate drafts.

    GET  /agent-app/api/tickets/<id>/draft        the latest draft, its confidence and its sources
    POST /agent-app/api/tickets/<id>/regenerate   retrieve → draft → score again; nothing is posted
    POST /agent-app/api/tickets/<id>/feedback     {"verdict": "good"|"bad", "reason": "..."}

The app calls these through Zendesk's app proxy with `client.request({secure: true, jwt: {...}})`:
the proxy signs a JSON Web Token (HS256) with the app's secure setting `shared_secret`, which the
browser never sees, and sends it as `Authorization: Bearer <token>`. Every request is checked here
against ZENDESK_APP_SECRET before anything is read or run: expiry, the ticket it names, the agent.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass

import jwt
from flask import Blueprint, current_app, g, jsonify, request

from helpdesk_bot.confidence import WEIGHTS
from helpdesk_bot.domain import Outcome
from helpdesk_bot.drafting import cited_sources
from helpdesk_bot.errors import PermanentError, TransientError
from helpdesk_bot.guardrails import is_web_link
from helpdesk_bot.ledger import DRAFT_VERDICTS
from helpdesk_bot.services import build_answerer, make_helpdesk
from helpdesk_bot.text import escape

HELPDESK = "zendesk"  # the sidebar app runs in Zendesk; the sandbox speaks Zendesk too
TOKEN_LEEWAY_SECONDS = 30  # clock skew between Zendesk's proxy and this server
MAX_TOKEN_LIFETIME_SECONDS = 3600  # a token whose exp lies further ahead was not made per request
SOURCE_TITLES_TTL_SECONDS = 60
CITATION_MARKER = re.compile(r"\s*\[\d+\]")

agent_app = Blueprint("agent_app", __name__, url_prefix="/agent-app/api")


# --- authentication ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AppCaller:
    agent_id: str
    ticket_id: str


class Unauthorized(Exception):
    pass


def verify_token(token: str, secret: str, ticket_id: str, subdomain: str | None = None,
                 now: float | None = None) -> AppCaller:
    """Check a token signed by Zendesk's app proxy for this ticket; raise Unauthorized if it is not."""
    now = time.time() if now is None else now
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=TOKEN_LEEWAY_SECONDS,
                            options={"require": ["exp"], "verify_exp": False, "verify_iat": False})
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    # exp is checked here rather than by PyJWT so that tests and callers can pass `now`.
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] + TOKEN_LEEWAY_SECONDS < now:
        raise Unauthorized("token has expired")
    if claims["exp"] - now > MAX_TOKEN_LIFETIME_SECONDS + TOKEN_LEEWAY_SECONDS:
        raise Unauthorized(f"token lives longer than {MAX_TOKEN_LIFETIME_SECONDS} s")
    if str(claims.get("ticket_id", "")) != ticket_id:
        raise Unauthorized("token was made for another ticket")
    agent_id = str(claims.get("sub") or "")
    if not agent_id:
        raise Unauthorized("token names no agent (sub)")
    if subdomain and claims.get("iss") != f"https://{subdomain}.zendesk.com":
        raise Unauthorized(f"token was not issued for https://{subdomain}.zendesk.com")
    return AppCaller(agent_id=agent_id, ticket_id=ticket_id)


@agent_app.before_request
def _authenticate():
    settings = current_app.extensions["settings"]
    secret = settings.agent_app_secret()
    if not secret:
        return jsonify(error="the sidebar app's API is off: set ZENDESK_APP_SECRET"), 503
    ticket_id = (request.view_args or {}).get("ticket_id", "")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("missing bearer token")
    try:
        g.app_caller = verify_token(token.strip(), secret, ticket_id, settings.zendesk_subdomain)
    except Unauthorized as exc:
        return _unauthorized(str(exc))
    return None


def _unauthorized(message: str):
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


# --- endpoints ---------------------------------------------------------------------------------


@agent_app.get("/tickets/<ticket_id>/draft")
def latest_draft(ticket_id: str):
    decision = current_app.extensions["ledger"].latest_decision(HELPDESK, ticket_id)
    if decision is None:
        return jsonify(error=f"no draft yet for ticket {ticket_id}"), 404
    return jsonify(stored_draft_view(decision, _parts().source_titles()))


@agent_app.post("/tickets/<ticket_id>/regenerate")
def regenerate(ticket_id: str):
    parts = _parts()
    try:
        ticket = parts.helpdesk().fetch_ticket(ticket_id)
        outcome = parts.answerer().answer(ticket)
    except PermanentError as exc:
        return jsonify(error=str(exc)), 404
    except TransientError as exc:
        response = jsonify(error=f"try again shortly: {exc}")
        response.status_code = 503
        if exc.retry_after:
            response.headers["Retry-After"] = str(int(exc.retry_after))
        return response
    return jsonify(outcome_view(outcome))


@agent_app.post("/tickets/<ticket_id>/feedback")
def feedback(ticket_id: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="the body must be a JSON object"), 400
    verdict, reason, decision_id = body.get("verdict"), body.get("reason", ""), body.get("decision_id")
    if verdict not in DRAFT_VERDICTS:
        return jsonify(error='verdict must be "good" or "bad"'), 400
    if not isinstance(reason, str):
        return jsonify(error="reason must be a string"), 400
    if verdict == "bad" and not reason.strip():
        return jsonify(error="say what was wrong with the draft (reason)"), 400
    if decision_id is not None and (isinstance(decision_id, bool) or not isinstance(decision_id, int)):
        return jsonify(error="decision_id must be a number or null"), 400
    ledger = current_app.extensions["ledger"]
    if decision_id is not None and not any(d["id"] == decision_id and d["helpdesk"] == HELPDESK
                                           for d in ledger.decisions_for(ticket_id)):
        return jsonify(error=f"ticket {ticket_id} has no decision {decision_id}"), 404
    feedback_id = ledger.record_draft_feedback(HELPDESK, ticket_id, verdict, reason.strip(),
                                               g.app_caller.agent_id, decision_id)
    return jsonify(status="recorded", id=feedback_id, ticket_id=ticket_id, verdict=verdict), 201


# --- what the app shows ------------------------------------------------------------------------


def stored_draft_view(decision: dict, titles: dict[str, dict]) -> dict:
    """A ledger decision as the sidebar shows it; source titles and links come from the index."""
    sources = []
    for stored in json.loads(decision["sources"]):
        chunk = titles.get(stored["id"], {})
        sources.append({"id": stored["id"], "title": chunk.get("title") or stored["id"], "url": chunk.get("url", ""),
                        "score": round(stored["score"], 4), "similarity": round(stored.get("dense", 0.0), 3),
                        "cited": int(stored.get("cited", 0))})  # n of the draft's [n] marker; 0: not cited
    components = [{"name": name, "value": value, "weight": WEIGHTS.get(name, 0.0), "detail": ""}
                  for name, value in json.loads(decision["components"]).items()]
    return {
        "ticket_id": decision["ticket_id"], "decision_id": decision["id"], "created_at": decision["created_at"],
        "regenerated": False, "draft": decision["draft"], "declined": not decision["draft"].strip(),
        "draft_html": draft_html(decision["draft"], sorted((s for s in sources if s["cited"]), key=lambda s: s["cited"])),
        "drafter": decision["drafter"], "confidence": decision["confidence"], "threshold": decision["threshold"],
        "action": decision["action"], "rule": decision["rule"], "reasons": json.loads(decision["reasons"]),
        "components": components, "sources": sources,
    }


def outcome_view(outcome: Outcome) -> dict:
    """A fresh outcome (regenerate) in the same shape as a stored draft."""
    cited = {s.chunk.id for s in cited_sources(outcome.draft, list(outcome.sources))}
    sources = [{"id": s.chunk.id, "title": s.chunk.title, "url": s.chunk.url, "score": round(s.score, 4),
                "similarity": round(s.dense, 3), "cited": s.chunk.id in cited} for s in outcome.sources]
    ordered_cited = [next(x for x in sources if x["id"] == c) for c in outcome.draft.cited if c in cited]
    return {
        "ticket_id": outcome.ticket.id, "decision_id": None, "created_at": time.time(), "regenerated": True,
        "draft": outcome.draft.text, "declined": outcome.draft.declined,
        "draft_html": draft_html(outcome.draft.text, ordered_cited),
        "drafter": outcome.draft.drafter, "confidence": outcome.confidence.score,
        "threshold": outcome.decision.threshold, "action": outcome.decision.action, "rule": outcome.decision.rule,
        "reasons": list(outcome.decision.reasons) + list(outcome.confidence.caps),
        "components": [{"name": c.name, "value": round(c.value, 3), "weight": c.weight, "detail": c.detail}
                       for c in outcome.confidence.components],
        "sources": sources,
    }


def draft_html(text: str, cited: list[dict]) -> str:
    """What "Insert into reply" puts in the editor: the draft's paragraphs and the sources it cites.

    No greeting or signature: agents have their own in macros and the editor. When the sources a
    stored draft cites are not known, its [n] markers are left out rather than left dangling.
    """
    if not cited:
        text = CITATION_MARKER.sub("", text)
    paragraphs = "".join(f"<p>{escape(p.strip()).replace(chr(10), '<br>')}</p>"
                         for p in text.split("\n\n") if p.strip())
    links = "".join(
        f'<li>[{n}] <a href="{escape(s["url"])}">{escape(s["title"])}</a></li>' if is_web_link(s["url"])
        else f"<li>[{n}] {escape(s['title'])}</li>"
        for n, s in enumerate(cited, 1)
    )
    return paragraphs + (f"<p>Sources:</p><ul>{links}</ul>" if links else "")


# --- the parts regenerate needs, built once per web process -----------------------------------


class _Parts:
    """The answerer, the helpdesk client and the index's titles, built on first use.

    Loading the model and opening the index takes a moment; a web process that never
    serves the app never pays for it.
    """

    def __init__(self, settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._answerer = self._helpdesk = None
        self._titles: dict[str, dict] = {}
        self._titles_at = 0.0

    def answerer(self):
        with self._lock:
            if self._answerer is None:
                self._answerer = build_answerer(self.settings)
            return self._answerer

    def helpdesk(self):
        with self._lock:
            if self._helpdesk is None:
                self._helpdesk = make_helpdesk(self.settings, "zendesk")  # the sidebar app is Zendesk's
            return self._helpdesk

    def source_titles(self) -> dict[str, dict]:
        """chunk id → title and url, read from the index at most once a minute."""
        store = self.answerer().retriever.store
        with self._lock:
            if time.monotonic() - self._titles_at > SOURCE_TITLES_TTL_SECONDS or not self._titles:
                payloads = store.engine.payloads(["chunk_id", "title", "heading", "url"])
                self._titles = {p["chunk_id"]: {"title": " › ".join(x for x in (p["title"], p.get("heading")) if x),
                                                "url": p.get("url") or ""} for p in payloads}
                self._titles_at = time.monotonic()
            return self._titles


def _parts() -> _Parts:
    extensions = current_app.extensions
    parts = extensions.get("agent_app_parts")
    if parts is None:
        parts = extensions.setdefault("agent_app_parts", _Parts(extensions["settings"]))
    return parts
