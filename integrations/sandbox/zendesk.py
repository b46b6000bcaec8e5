"""The sandbox Zendesk API: a Flask app over SandboxState.

Paths, query parameters and bodies follow Zendesk's REST API as zenpy 2.0.57 uses it
(recorded bodies in shared/data/zendesk). Answers carry the host the client called,
so links zenpy follows verbatim (next pages) lead back to the sandbox.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import socket
import struct
import time
from http import HTTPStatus

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter

from .admin import register as register_admin
from .constants import BOT_AGENT_ID
from .errors import ApiError, bad_request, not_found
from .formats import epoch
from .helpcenter import DEFAULT_LOCALE, INCREMENTAL_PAGE_SIZE, render_article, render_category, render_section, render_translation
from .pagination import paginate
from .state import Fault, SandboxState

api = Blueprint("zendesk_api", __name__, url_prefix="/api/v2")
pages = Blueprint("help_center_pages", __name__)

# Fixed rate-limit headers: zenpy's proactive_ratelimit reads X-Rate-Limit-Remaining and
# treats a missing header as 0 remaining, which would make it sleep between calls.
RATE_LIMIT_HEADERS = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699",
                      "ratelimit-limit": "700", "ratelimit-remaining": "699", "ratelimit-reset": "60"}

FAULT_ERRORS = {
    429: ("APIRateLimitExceeded", "Number of allowed API requests per minute exceeded"),
    500: ("InternalServerError", "Something went wrong on our side"),
    502: ("BadGateway", "Bad gateway"),
    503: ("ServiceUnavailable", "Maintenance in progress or service overloaded"),
    504: ("GatewayTimeout", "Gateway timeout"),
}


class LocaleConverter(BaseConverter):
    """Help Center locales in paths ("en-us"), so /help_center/incremental/... is not one."""
    regex = r"[a-zA-Z]{2}(?:-[a-zA-Z0-9]{2,4})?"


def create_app(state: SandboxState | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["sandbox_state"] = state or SandboxState()
    app.json.sort_keys = False  # keep Zendesk's field order
    app.url_map.converters["locale"] = LocaleConverter
    app.before_request(_apply_fault)
    app.before_request(_authenticate)
    app.after_request(_finish)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(NotFound, lambda e: _error_response(404, "InvalidEndpoint", "Not found"))
    app.register_error_handler(MethodNotAllowed,
                               lambda e: _error_response(405, "InvalidEndpoint", "Method not allowed"))
    app.register_blueprint(api)
    app.register_blueprint(pages)
    register_admin(app)  # webhooks and triggers (admin.py)
    return app


# Request pipeline

def _state() -> SandboxState:
    return current_app.extensions["sandbox_state"]


def _apply_fault():
    fault = _state().take_fault(request.method, request.path)
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)
    if fault.reset:
        _reset_connection()
    return _fault_response(fault) if fault.status else None


def _reset_connection():
    """Close the client's socket with SO_LINGER 0, so it sees "connection reset by peer"."""
    connection = request.environ["werkzeug.socket"]
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
    raise ConnectionResetError("sandbox fault: connection reset")


def _fault_response(fault: Fault) -> Response:
    error, description = FAULT_ERRORS.get(fault.status, (HTTPStatus(fault.status).phrase, None))
    response = _error_response(fault.status, error, description)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    if fault.status == 429:
        response.headers["X-Rate-Limit-Remaining"] = "0"
    return response


def _authenticate():
    """Every /api/v2 request needs Basic (email/token:TOKEN or email:password) or Bearer auth."""
    if not request.path.startswith("/api/v2/"):
        return
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        g.user = _state().user(BOT_AGENT_ID)
    elif scheme.lower() == "basic":
        g.user = _state().login(_basic_login(credentials))
    else:
        raise ApiError(401, "Couldn't authenticate you")


def _basic_login(credentials: str) -> str:
    try:
        login, _, secret = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "Couldn't authenticate you") from None
    if not login or not secret:
        raise ApiError(401, "Couldn't authenticate you")
    return login.removesuffix("/token")


def _finish(response: Response) -> Response:
    _state().log_request(request.method, request.path, response.status_code)
    if request.path.startswith("/api/v2/"):
        for name, value in RATE_LIMIT_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def _api_error(error: ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _error_response(status: int, error: str, description: str | None) -> Response:
    return _api_error(ApiError(status, error, description))


# Helpers

def _base_url() -> str:
    return request.host_url.rstrip("/")


def _payload(key: str, kind=dict):
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise bad_request("InvalidParameter", f"The request body must be JSON with a '{key}' {kind.__name__}")
    return data


def _ids_param() -> list[int]:
    try:
        return [int(part) for part in request.args.get("ids", "").split(",") if part.strip()]
    except ValueError:
        raise bad_request("InvalidParameter", "ids must be a comma-separated list of integers") from None


def _with_url(record: dict, path: str) -> dict:
    return {"url": f"{_base_url()}/api/v2/{path}", **record}


def _ticket_json(ticket: dict) -> dict:
    return _with_url(ticket, f"tickets/{ticket['id']}.json")


def _user_json(user: dict) -> dict:
    return _with_url(user, f"users/{user['id']}.json")


def _group_json(group: dict) -> dict:
    return _with_url(group, f"groups/{group['id']}.json")


def _show_many(key: str, records: list[dict]) -> dict:
    return {key: records, "next_page": None, "previous_page": None, "count": len(records)}


def _found(lookup, ids: list[int]) -> list[dict]:
    """show_many answers the ids that exist and skips the others, as Zendesk does."""
    found = []
    for record_id in ids:
        try:
            found.append(lookup(record_id))
        except ApiError:
            continue
    return found


# Users and groups

@api.get("/users/me.json")
def users_me():
    return {"user": _user_json(g.user)}


@api.get("/users/<int:user_id>.json")
def show_user(user_id: int):
    return {"user": _user_json(_state().user(user_id))}


@api.get("/users/show_many.json")
def show_many_users():
    return _show_many("users", [_user_json(u) for u in _found(_state().user, _ids_param())])


@api.get("/groups.json")
def list_groups():
    groups = [_group_json(grp) for grp in _state().list_groups()]
    return paginate(groups, "groups", request.args, request.base_url)


@api.get("/groups/<int:group_id>.json")
def show_group(group_id: int):
    return {"group": _group_json(_state().group(group_id))}


# Tickets

@api.post("/tickets.json")
def create_ticket():
    body = _payload("ticket")
    result, replayed = _state().create_ticket(body, g.user, request.headers.get("Idempotency-Key"))
    response = jsonify({"ticket": _ticket_json(result["ticket"]), "audit": result["audit"]})
    response.status_code = 201
    response.headers["Location"] = f"{_base_url()}/api/v2/tickets/{result['ticket']['id']}.json"
    if request.headers.get("Idempotency-Key"):
        response.headers["x-idempotency-lookup"] = "hit" if replayed else "miss"
    return response


@api.get("/tickets/<int:ticket_id>.json")
def show_ticket(ticket_id: int):
    return {"ticket": _ticket_json(_state().ticket(ticket_id))}


@api.put("/tickets/<int:ticket_id>.json")
def update_ticket(ticket_id: int):
    # zenpy sends the ticket id inside the body too; Zendesk ignores it (x-zendesk-api-warn).
    result = _state().update_ticket(ticket_id, _payload("ticket")["ticket"], g.user)
    return {"ticket": _ticket_json(result["ticket"]), "audit": result["audit"]}


@api.get("/tickets/show_many.json")
def show_many_tickets():
    return _show_many("tickets", [_ticket_json(t) for t in _found(_state().ticket, _ids_param())])


@api.get("/incremental/tickets/cursor.json")
def incremental_tickets():
    """Cursor-based incremental export: tickets updated at or after start_time, oldest first.

    The sandbox answers in one page and marks the end of the stream, as Zendesk does for the
    last page (incremental_tickets_cursor_per_page1.json).
    """
    try:
        start_time = int(request.args.get("start_time", "0"))
    except ValueError:
        raise bad_request("start_time must be a Unix epoch time") from None
    with _state().lock:
        tickets = sorted(_state().tickets.values(), key=lambda t: (t["updated_at"], t["id"]))
        tickets = [_ticket_json(t) for t in tickets if epoch(t["updated_at"]) >= start_time]
    cursor = base64.b64encode(f"end:{int(time.time())}".encode()).decode()
    return {"tickets": tickets, "after_url": f"{request.base_url}?cursor={cursor}", "after_cursor": cursor,
            "before_url": None, "before_cursor": None, "end_of_stream": True}


@api.get("/tickets/<int:ticket_id>/comments.json")
def list_comments(ticket_id: int):
    return paginate(_state().ticket_comments(ticket_id), "comments", request.args, request.base_url)


@api.get("/tickets/<int:ticket_id>/audits.json")
def list_audits(ticket_id: int):
    return paginate(_state().ticket_audits(ticket_id), "audits", request.args, request.base_url)


@api.post("/tickets/<int:ticket_id>/satisfaction_rating.json")
def rate_ticket(ticket_id: int):
    rating = _payload("satisfaction_rating")["satisfaction_rating"]
    return {"satisfaction_rating": _state().rate_ticket(ticket_id, rating.get("score"), rating.get("comment"), g.user)}


@api.get("/tickets/<int:ticket_id>/tags.json")
def show_tags(ticket_id: int):
    return {"tags": _state().ticket(ticket_id)["tags"]}


@api.route("/tickets/<int:ticket_id>/tags.json", methods=["POST", "PUT", "DELETE"])
def change_tags(ticket_id: int):
    operation = {"POST": "set", "PUT": "add", "DELETE": "remove"}[request.method]
    tags = _state().change_tags(ticket_id, operation, _payload("tags", list)["tags"], g.user)
    return {"tags": tags}


# Help Center

def _help_center_list(items: list[dict], key: str, sort_by: str, sort_order: str) -> dict:
    body = paginate(items, key, request.args, request.base_url, default_per_page=30, page_fields=True)
    if "meta" not in body:  # offset pages also echo the sort (help_center_categories_list.json)
        body.update(sort_by=sort_by, sort_order=sort_order)
    return body


@api.get("/help_center/articles.json")
@api.get("/help_center/<locale:locale>/articles.json")
@api.get("/help_center/sections/<int:section_id>/articles.json")
@api.get("/help_center/<locale:locale>/sections/<int:section_id>/articles.json")
def list_articles(locale: str | None = None, section_id: int | None = None):
    sort_by = request.args.get("sort_by", "position")
    sort_order = request.args.get("sort_order", "asc")
    state, base = _state(), _base_url()
    with state.lock:
        articles = [render_article(a, base)
                    for a in state.help_center.list_articles(locale, section_id, sort_by, sort_order)]
    return _help_center_list(articles, "articles", sort_by, sort_order)


@api.get("/help_center/articles/<int:article_id>.json")
@api.get("/help_center/<locale:locale>/articles/<int:article_id>.json")
def show_article(article_id: int, locale: str | None = None):
    state = _state()
    with state.lock:
        return {"article": render_article(state.help_center.article(article_id, locale), _base_url())}


@api.get("/help_center/articles/<int:article_id>/translations.json")
def list_article_translations(article_id: int):
    """Every translation of an article, its source locale's included (Help Center Translations API)."""
    state, base = _state(), _base_url()
    with state.lock:
        translations = [render_translation(t, base) for t in state.help_center.article_translations(article_id)]
    return {"translations": translations, "next_page": None, "previous_page": None, "count": len(translations)}


@api.get("/help_center/locales.json")
def list_help_center_locales():
    """The locales the help center publishes in, and its default (Help Center Locales API)."""
    state = _state()
    with state.lock:
        return {"locales": state.help_center.locales(), "default_locale": DEFAULT_LOCALE}


@api.get("/help_center/incremental/articles.json")
def incremental_articles():
    """Articles changed since start_time, oldest first; store end_time as the next start_time."""
    try:
        start_time = int(request.args["start_time"])
    except (KeyError, ValueError):
        raise bad_request("InvalidValue", "start_time is required and must be a Unix epoch in seconds") from None
    state, base = _state(), _base_url()
    with state.lock:
        changed = [render_article(a, base) for a in state.help_center.incremental(start_time)]
    page = changed[:INCREMENTAL_PAGE_SIZE]
    end_time = epoch(page[-1]["updated_at"]) if page else start_time
    more = len(changed) > len(page)
    return {
        "articles": page,
        "next_page": f"{request.base_url}?start_time={end_time}" if more else None,
        "end_time": end_time,
        "count": len(page),
    }


@api.post("/help_center/sections/<int:section_id>/articles.json")
@api.post("/help_center/<locale:locale>/sections/<int:section_id>/articles.json")
def create_article(section_id: int, locale: str | None = None):
    fields = _payload("article")["article"]
    if locale:
        fields = {"locale": locale, **fields}
    state = _state()
    with state.lock:
        article = render_article(state.help_center.create_article(section_id, fields, g.user["id"]), _base_url())
    return {"article": article}, 201


@api.put("/help_center/articles/<int:article_id>.json")
@api.put("/help_center/<locale:locale>/articles/<int:article_id>.json")
def update_article(article_id: int, locale: str | None = None):
    fields = _payload("article")["article"]
    state = _state()
    with state.lock:
        return {"article": render_article(state.help_center.update_article(article_id, fields, locale), _base_url())}


@api.delete("/help_center/articles/<int:article_id>.json")
@api.delete("/help_center/<locale:locale>/articles/<int:article_id>.json")
def archive_article(article_id: int, locale: str | None = None):
    state = _state()
    with state.lock:
        state.help_center.archive_article(article_id)
    return "", 204


@api.get("/help_center/sections.json")
@api.get("/help_center/<locale:locale>/sections.json")
def list_sections(locale: str | None = None):
    state, base = _state(), _base_url()
    with state.lock:
        sections = [render_section(s, base) for s in state.help_center.list_sections(locale)]
    return _help_center_list(sections, "sections", "position", "asc")


@api.get("/help_center/sections/<int:section_id>.json")
def show_section(section_id: int):
    state = _state()
    with state.lock:
        return {"section": render_section(state.help_center.section(section_id), _base_url())}


@api.get("/help_center/categories.json")
@api.get("/help_center/<locale:locale>/categories.json")
def list_categories(locale: str | None = None):
    state, base = _state(), _base_url()
    with state.lock:
        categories = [render_category(c, base) for c in state.help_center.list_categories(locale)]
    return _help_center_list(categories, "categories", "position", "asc")


@api.get("/help_center/categories/<int:category_id>.json")
def show_category(category_id: int):
    state = _state()
    with state.lock:
        return {"category": render_category(state.help_center.category(category_id), _base_url())}


@pages.get("/hc/<locale:locale>/articles/<article_ref>")
def article_page(locale: str, article_ref: str):
    """The public page an article's html_url points at, so links in bot answers open in the demo."""
    match = re.match(r"\d+", article_ref)
    if not match:
        raise not_found()
    state = _state()
    with state.lock:
        article = state.help_center.article(int(match.group()), locale)
        if article["draft"]:
            raise not_found()  # drafts are not published to the public Help Center
        title, body = html.escape(article["title"]), article["body"]
    return (f'<!doctype html><html lang="{html.escape(locale)}"><head><meta charset="utf-8">'
            f"<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>")
