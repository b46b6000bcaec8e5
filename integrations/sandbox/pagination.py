"""Zendesk's two pagination styles for list endpoints.

The style is chosen by the query, as Zendesk does: any `page[...]` parameter means
cursor pagination (`meta.has_more`, `links.next`, what zenpy 2.0.57 requests for
comments, audits, groups and Help Center lists), otherwise offset pagination
(`page`, `per_page`, `next_page`). Next/previous links are absolute URLs on the host
the client called, because zenpy follows them verbatim (it applies
ZENPY_FORCE_NETLOC only to URLs it builds itself).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict

from .errors import bad_request

CURSOR_PARAMS = ("page[size]", "page[after]", "page[before]")
MAX_PAGE_SIZE = 100


def paginate(items: Sequence[dict], key: str, args: MultiDict, base_url: str, *,
             default_per_page: int = 100, page_fields: bool = False) -> dict:
    """One page of `items` under `key`. `page_fields` adds Help Center's page/per_page/page_count."""
    if any(param in args for param in CURSOR_PARAMS):
        return cursor_page(items, key, args, base_url)
    return offset_page(items, key, args, base_url, default_per_page, page_fields)


def cursor_page(items: Sequence[dict], key: str, args: MultiDict, base_url: str) -> dict:
    size = _int_arg(args, "page[size]", MAX_PAGE_SIZE)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_request("InvalidPaginationParameter", f"page[size] must be between 1 and {MAX_PAGE_SIZE}")
    if "page[before]" in args:
        end = _cursor_index(items, args["page[before]"])
        start = max(0, end - size)
        has_more = start > 0
    else:
        start = _cursor_index(items, args["page[after]"]) + 1 if "page[after]" in args else 0
        end = start + size
        has_more = end < len(items)
    page = list(items[start:end])
    after = _encode_cursor(page[-1]) if page else None
    before = _encode_cursor(page[0]) if page else None
    return {
        key: page,
        "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
        "links": {
            "prev": _link(base_url, args, {"page[before]": before, "page[size]": size}) if before else None,
            "next": _link(base_url, args, {"page[after]": after, "page[size]": size}) if after else None,
        },
    }


def offset_page(items: Sequence[dict], key: str, args: MultiDict, base_url: str,
                default_per_page: int, page_fields: bool) -> dict:
    # Zendesk silently caps per_page at 100 in this style.
    per_page = max(1, min(_int_arg(args, "per_page", default_per_page), MAX_PAGE_SIZE))
    page = max(1, _int_arg(args, "page", 1))
    start = (page - 1) * per_page
    has_next = start + per_page < len(items)
    body = {
        key: list(items[start:start + per_page]),
        "next_page": _link(base_url, args, {"page": page + 1, "per_page": per_page}) if has_next else None,
        "previous_page": _link(base_url, args, {"page": page - 1, "per_page": per_page}) if page > 1 else None,
        "count": len(items),
    }
    if page_fields:
        body.update(page=page, per_page=per_page, page_count=math.ceil(len(items) / per_page))
    return body


def _int_arg(args: MultiDict, name: str, default: int) -> int:
    try:
        return int(args.get(name, default))
    except ValueError:
        raise bad_request("InvalidPaginationParameter", f"{name} must be an integer") from None


def _encode_cursor(item: dict) -> str:
    # Opaque like Zendesk's base64 JSON cursors; it names the item, so it survives inserts.
    return base64.b64encode(json.dumps({"o": "id", "v": item["id"]}).encode()).decode()


def _cursor_index(items: Sequence[dict], cursor: str) -> int:
    try:
        item_id = json.loads(base64.b64decode(cursor))["v"]
        return next(i for i, item in enumerate(items) if item["id"] == item_id)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise bad_request("InvalidPaginationParameter", "page cursor is invalid") from None


def _link(base_url: str, args: MultiDict, overrides: Mapping[str, object]) -> str:
    kept = [(k, v) for k, v in args.items(multi=True)
            if k not in overrides and k not in CURSOR_PARAMS and k not in ("page", "per_page")]
    return f"{base_url}?{urlencode(kept + [(k, v) for k, v in overrides.items()])}"
