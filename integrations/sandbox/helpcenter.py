"""Help Center (Guide) content: categories, sections, articles, loaded from a JSON file.

The file holds `{"categories": [...], "sections": [...], "articles": [...]}` in Zendesk's
shapes; missing fields get Zendesk's defaults. An article listed again with a `locale` other than
its `source_locale` is that locale's translation: as in Zendesk, translations share the
article's id, the per-locale listings (/api/v2/help_center/{locale}/articles) show each article
in the locales it is translated into, and /articles/{id}/translations lists them all. `url` and `html_url` are always derived
from the sandbox's own address when rendering, so links point at the sandbox.
Not thread-safe on its own: SandboxState calls it under its lock.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

from .constants import FIRST_GENERATED_ID, HUMAN_AGENT_ID, PERMISSION_GROUP_ID
from .errors import bad_request, not_found, record_invalid
from .formats import epoch, iso, normalize_iso, slugify, utc_now

HelpCenterSource = str | Path | dict | None

ARTICLE_SORT_FIELDS = ("position", "title", "created_at", "updated_at", "edited_at")
INCREMENTAL_PAGE_SIZE = 1000  # Zendesk's fixed page size for the incremental article export
DEFAULT_LOCALE = "en-us"


def load_source(source: HelpCenterSource) -> dict:
    if source is None:
        return {}
    if isinstance(source, dict):
        return copy.deepcopy(source)
    return json.loads(Path(source).read_text(encoding="utf-8"))


class HelpCenter:
    def __init__(self, source: HelpCenterSource):
        data = load_source(source)
        now = iso(utc_now())
        self.categories = {c["id"]: _category(c, now) for c in data.get("categories", [])}
        self.sections = {s["id"]: _section(s, now) for s in data.get("sections", [])}
        raw_articles = data.get("articles", [])
        self.articles = {a["id"]: _article(a, now) for a in raw_articles if not is_translation(a)}
        # (article id, locale) → the translation's own fields: title, body, draft, outdated, stamps.
        self.translations = {(a["id"], a["locale"].lower()): _translation(a, now)
                             for a in raw_articles if is_translation(a) and a["id"] in self.articles}
        # New articles get ids above every loaded one, whatever range the file uses.
        self._new_id = itertools.count(max([FIRST_GENERATED_ID, *self.articles]) + 1).__next__

    # Reads

    def article(self, article_id: int, locale: str | None = None) -> dict:
        """The article, or its translation into `locale` (404 when it has none)."""
        if article_id not in self.articles:
            raise not_found()
        article = self.articles[article_id]
        if locale is None or locale.lower() == article["locale"]:
            return article
        if (article_id, locale.lower()) not in self.translations:
            raise not_found()
        return _translated(article, self.translations[(article_id, locale.lower())])

    def locales(self) -> list[str]:
        """Every locale an article is published in, the default first."""
        found = {a["locale"] for a in self.articles.values()} | {locale for _, locale in self.translations}
        return sorted(found, key=lambda locale: (locale != DEFAULT_LOCALE, locale))

    def article_translations(self, article_id: int) -> list[dict]:
        """The article in its source locale and in every locale it is translated into."""
        article = self.article(article_id)
        return [article] + [_translated(article, t) for (aid, _), t in sorted(self.translations.items())
                            if aid == article_id]

    def list_articles(self, locale: str | None = None, section_id: int | None = None,
                      sort_by: str = "position", sort_order: str = "asc") -> list[dict]:
        """Archived articles are gone; drafts are listed, as Zendesk lists them for agents."""
        if sort_by not in ARTICLE_SORT_FIELDS:
            raise bad_request("InvalidValue", f"sort_by must be one of {', '.join(ARTICLE_SORT_FIELDS)}")
        if sort_order not in ("asc", "desc"):
            raise bad_request("InvalidValue", "sort_order must be asc or desc")
        if section_id is not None:
            self.section(section_id)
        chosen = [a if locale is None or a["locale"] == locale.lower()
                  else _translated(a, self.translations[(a["id"], locale.lower())])
                  for a in self.articles.values()
                  if (locale is None or a["locale"] == locale.lower() or (a["id"], locale.lower()) in self.translations)
                  and (section_id is None or a["section_id"] == section_id)]
        key = (lambda a: (a["title"].casefold(), a["id"])) if sort_by == "title" else (lambda a: (a[sort_by], a["id"]))
        return sorted(chosen, key=key, reverse=sort_order == "desc")

    def incremental(self, start_time: int) -> list[dict]:
        """Articles updated at or after start_time (epoch seconds), oldest first."""
        changed = [a for a in self.articles.values() if epoch(a["updated_at"]) >= start_time]
        return sorted(changed, key=lambda a: (a["updated_at"], a["id"]))

    def section(self, section_id: int) -> dict:
        if section_id not in self.sections:
            raise not_found()
        return self.sections[section_id]

    def category(self, category_id: int) -> dict:
        if category_id not in self.categories:
            raise not_found()
        return self.categories[category_id]

    def list_sections(self, locale: str | None = None) -> list[dict]:
        return _by_position(self.sections.values(), locale)

    def list_categories(self, locale: str | None = None) -> list[dict]:
        return _by_position(self.categories.values(), locale)

    # Admin writes

    def create_article(self, section_id: int, fields: dict, author_id: int) -> dict:
        self.section(section_id)
        title = (fields.get("title") or "").strip()
        if not title:
            raise record_invalid("title", "Title cannot be blank", code="BlankValue", status=400)
        raw = {**fields, "id": self._new_id(), "section_id": section_id,
               "author_id": fields.get("author_id", author_id)}
        for stamp in ("created_at", "updated_at", "edited_at"):
            raw.pop(stamp, None)  # Zendesk sets these itself
        article = _article(raw, iso(utc_now()))
        self.articles[article["id"]] = article
        return article

    def update_article(self, article_id: int, fields: dict, locale: str | None = None) -> dict:
        # Real Zendesk changes title/body only through the translations endpoint
        # (PUT /api/v2/help_center/articles/{id}/translations/{locale}); the sandbox
        # accepts them here too so tests can change knowledge in one call, in a translation's
        # locale too.
        article = self.article(article_id)
        key = (article_id, (locale or article["locale"]).lower())
        if key in self.translations:
            translation = self.translations[key]
            for field in ("title", "body", "draft", "outdated"):
                if field in fields:
                    translation[field] = fields[field]
            translation["name"] = translation["title"]
            translation["updated_at"] = translation["edited_at"] = iso(utc_now())
            return _translated(article, translation)
        if "section_id" in fields:
            self.section(fields["section_id"])
        if "title" in fields and not str(fields["title"]).strip():
            raise record_invalid("title", "Title cannot be blank", code="BlankValue", status=400)
        content_changed = any(k in fields and fields[k] != article[k] for k in ("title", "body"))
        for key in ("title", "body", "draft", "promoted", "position", "label_names", "section_id",
                    "outdated", "comments_disabled", "user_segment_id", "permission_group_id"):
            if key in fields:
                article[key] = fields[key]
        article["name"] = article["title"]
        now = iso(utc_now())
        article["updated_at"] = now
        if content_changed:
            # edited_at moves only when the content changes, updated_at on any change.
            article["edited_at"] = now
        return article

    def archive_article(self, article_id: int) -> None:
        """Archived articles vanish from every listing and from the incremental export."""
        self.article(article_id)
        del self.articles[article_id]
        self.translations = {key: t for key, t in self.translations.items() if key[0] != article_id}


def _by_position(items, locale: str | None) -> list[dict]:
    chosen = [i for i in items if locale is None or i["locale"] == locale.lower()]
    return sorted(chosen, key=lambda i: (i["position"], i["id"]))


def _timestamps(raw: dict, now: str) -> dict:
    updated = normalize_iso(raw.get("updated_at"), now)
    return {
        "created_at": normalize_iso(raw.get("created_at"), updated),
        "updated_at": updated,
    }


def _category(raw: dict, now: str) -> dict:
    return {
        "id": raw["id"],
        "position": raw.get("position", 0),
        **_timestamps(raw, now),
        "name": raw["name"],
        "description": raw.get("description", ""),
        "locale": raw.get("locale", DEFAULT_LOCALE).lower(),
        "source_locale": raw.get("source_locale", raw.get("locale", DEFAULT_LOCALE)).lower(),
        "outdated": raw.get("outdated", False),
    }


def _section(raw: dict, now: str) -> dict:
    return {
        "id": raw["id"],
        "category_id": raw.get("category_id"),
        "position": raw.get("position", 0),
        "sorting": raw.get("sorting", "manual"),
        **_timestamps(raw, now),
        "name": raw["name"],
        "description": raw.get("description", ""),
        "locale": raw.get("locale", DEFAULT_LOCALE).lower(),
        "source_locale": raw.get("source_locale", raw.get("locale", DEFAULT_LOCALE)).lower(),
        "outdated": raw.get("outdated", False),
        "parent_section_id": raw.get("parent_section_id"),
        "theme_template": raw.get("theme_template", "section_page"),
    }


def _article(raw: dict, now: str) -> dict:
    """An article in the field order of help_center_article_create.json, defaults filled in."""
    stamps = _timestamps(raw, now)
    title = raw.get("title") or raw.get("name") or ""
    locale = raw.get("locale", DEFAULT_LOCALE).lower()
    user_segment_id = raw.get("user_segment_id")
    return {
        "id": raw["id"],
        "author_id": raw.get("author_id", HUMAN_AGENT_ID),
        "comments_disabled": raw.get("comments_disabled", False),
        "content_tag_ids": list(raw.get("content_tag_ids", [])),
        "label_names": list(raw.get("label_names", [])),
        "draft": raw.get("draft", False),
        "promoted": raw.get("promoted", False),
        "position": raw.get("position", 0),
        "vote_sum": raw.get("vote_sum", 0),
        "vote_count": raw.get("vote_count", 0),
        "section_id": raw.get("section_id"),
        **stamps,
        "edited_at": normalize_iso(raw.get("edited_at"), stamps["updated_at"]),
        "name": title,
        "title": title,
        "body": raw.get("body", ""),
        "source_locale": raw.get("source_locale", locale).lower(),
        "locale": locale,
        "outdated": raw.get("outdated", False),
        "outdated_locales": list(raw.get("outdated_locales", [])),
        "permission_group_id": raw.get("permission_group_id", PERMISSION_GROUP_ID),
        "user_segment_id": user_segment_id,
        "user_segment_ids": list(raw.get("user_segment_ids", [user_segment_id] if user_segment_id else [])),
    }


def is_translation(raw: dict) -> bool:
    locale = raw.get("locale", DEFAULT_LOCALE).lower()
    return locale != raw.get("source_locale", locale).lower()


def _translation(raw: dict, now: str) -> dict:
    """A translation's own fields (Zendesk's Translation object carries no section or labels)."""
    stamps = _timestamps(raw, now)
    title = raw.get("title") or raw.get("name") or ""
    return {"title": title, "name": title, "body": raw.get("body", ""), "locale": raw["locale"].lower(),
            "draft": raw.get("draft", False), "outdated": raw.get("outdated", False), **stamps,
            "edited_at": normalize_iso(raw.get("edited_at"), stamps["updated_at"])}


def _translated(article: dict, translation: dict) -> dict:
    """The article as its per-locale listing shows it: the translation's text, the article's metadata."""
    return {**article, **translation}


def render_translation(article: dict, base_url: str) -> dict:
    """A Translation object (Help Center API) of an article as `article_translations` gives it."""
    slug = f"{article['id']}-{slugify(article['title'])}"
    return {
        "id": int(f"{article['id']}{sum(map(ord, article['locale'])):04d}"),  # stable, one per locale
        "url": f"{base_url}/api/v2/help_center/articles/{article['id']}/translations/{article['locale']}.json",
        "html_url": f"{base_url}/hc/{article['locale']}/articles/{slug}",
        "source_id": article["id"],
        "source_type": "Article",
        "locale": article["locale"],
        "title": article["title"],
        "body": article["body"],
        "outdated": article["outdated"],
        "draft": article["draft"],
        "hidden": False,
        "created_at": article["created_at"],
        "updated_at": article["updated_at"],
        "updated_by_id": article.get("author_id"),
        "created_by_id": article.get("author_id"),
    }


# Rendering: the API adds url/html_url for the host the client called.

def render_article(article: dict, base_url: str) -> dict:
    slug = f"{article['id']}-{slugify(article['title'])}"
    return {
        "id": article["id"],
        "url": f"{base_url}/api/v2/help_center/{article['locale']}/articles/{article['id']}.json",
        "html_url": f"{base_url}/hc/{article['locale']}/articles/{slug}",
        **copy.deepcopy(article),
    }


def render_section(section: dict, base_url: str) -> dict:
    return _render_container(section, base_url, "sections")


def render_category(category: dict, base_url: str) -> dict:
    return _render_container(category, base_url, "categories")


def _render_container(item: dict, base_url: str, kind: str) -> dict:
    return {
        "id": item["id"],
        "url": f"{base_url}/api/v2/help_center/{item['locale']}/{kind}/{item['id']}.json",
        "html_url": f"{base_url}/hc/{item['locale']}/{kind}/{item['id']}-{slugify(item['name'])}",
        **copy.deepcopy(item),
    }
