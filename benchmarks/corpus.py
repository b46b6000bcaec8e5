"""A synthetic help center for a fictional SaaS, generated deterministically, and its index
built once and cached on disk.

Article `i` depends only on `i` (not on how many are generated), so a smaller corpus is a
prefix of a larger one. Articles read like a real help center: how-tos with numbered steps,
troubleshooting pages with error messages, plan limits, FAQs; each is a few hundred to a
couple of thousand words, so it splits into several chunks.

Embedding 20,000 chunks takes minutes on two cores, so vectors are cached by text and model
(`.bench-cache/vectors-*.npz`), and the built index by corpus, model and store implementation
(`.bench-cache/index-*/`). Benchmarks copy the cached index before using it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE_DIR, clean_env, log
from helpdesk_bot.knowledge import Article, chunk_article, embedding_input

GENERATOR_VERSION = 1
PRODUCT = "Orbitask"
PLANS = ["Free", "Team", "Business", "Enterprise"]
ROLES = ["Owner", "Admin", "Member", "Guest", "Billing admin", "Project lead"]
PLATFORMS = ["the web app", "the iOS app", "the Android app", "the Windows desktop app", "the macOS desktop app"]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
INTEGRATIONS = ["Slack", "Google Drive", "GitHub", "GitLab", "Jira", "Salesforce", "Microsoft Teams", "Zapier",
                "Dropbox", "Outlook", "HubSpot", "Figma", "Zoom", "Okta", "Azure AD", "Google Calendar",
                "Box", "Bitbucket", "Intercom", "Zendesk", "Asana import", "Trello import", "Notion", "Miro"]
AREAS = {
    "Billing": ["invoice", "payment method", "credit card", "subscription", "refund", "VAT number", "billing address",
                "receipt", "annual plan", "seat count", "coupon", "purchase order"],
    "Projects": ["project", "project template", "folder", "archived project", "project owner", "milestone",
                 "project status", "portfolio", "project color", "project permissions"],
    "Tasks": ["task", "subtask", "recurring task", "task dependency", "due date", "assignee", "task priority",
              "checklist", "task comment", "task attachment", "estimate"],
    "Boards": ["board", "column", "swimlane", "card", "WIP limit", "board filter", "board view"],
    "Automations": ["automation rule", "trigger", "action", "scheduled automation", "automation log", "rule condition"],
    "Integrations": ["integration", "connected app", "OAuth connection", "sync", "webhook endpoint", "API token"],
    "Reports": ["report", "workload report", "burndown chart", "CSV export", "scheduled report", "dashboard widget"],
    "Time tracking": ["timer", "timesheet", "billable hours", "time entry", "time report", "hourly rate"],
    "Files": ["file", "file version", "storage quota", "shared link", "file preview", "upload"],
    "Notifications": ["email notification", "push notification", "daily digest", "mention", "notification rule",
                      "do-not-disturb schedule"],
    "Security": ["two-factor authentication", "password", "session", "IP allowlist", "audit log", "recovery code",
                 "security key", "login alert"],
    "Single sign-on": ["SAML connection", "SCIM provisioning", "identity provider", "SSO enforcement",
                       "certificate", "domain verification"],
    "API": ["API key", "rate limit", "pagination cursor", "webhook signature", "API endpoint", "OAuth app",
            "personal access token"],
    "Mobile": ["mobile app", "offline mode", "home screen widget", "push setting", "app passcode"],
    "Import and export": ["CSV import", "Excel import", "data export", "backup", "field mapping", "import log"],
    "Members and roles": ["member", "guest", "role", "invitation", "team", "user group", "deactivated member"],
    "Workspaces": ["workspace", "workspace URL", "data region", "workspace owner", "workspace logo",
                   "workspace deletion"],
    "Calendar": ["calendar view", "calendar sync", "time zone", "working day", "holiday calendar"],
    "Forms": ["intake form", "form field", "form submission", "public form link", "form branding"],
    "Custom fields": ["custom field", "dropdown field", "formula field", "field default", "field permission"],
    "Goals": ["goal", "key result", "goal check-in", "goal owner", "goal progress"],
    "Search": ["search filter", "saved search", "search index", "advanced search query"],
    "Email-in": ["email-in address", "forwarding rule", "email attachment", "reply-by-email"],
}
VERBS = ["create", "edit", "delete", "archive", "restore", "rename", "move", "duplicate", "share", "export",
         "import", "set up", "turn off", "change", "connect", "disconnect", "reset", "assign", "limit", "schedule"]
ERRORS = [
    ("403 Forbidden", "you do not have permission for this action"),
    ("401 Unauthorized", "the token has expired or was revoked"),
    ("404 Not Found", "the item was deleted or moved to another workspace"),
    ("409 Conflict", "someone else changed the item at the same time"),
    ("413 Payload Too Large", "the file is larger than the upload limit"),
    ("429 Too Many Requests", "the rate limit for your plan was reached"),
    ("500 Internal Server Error", "a temporary problem on our side"),
    ("Something went wrong", "the browser blocked a third-party cookie"),
    ("Invalid SAML response", "the identity provider's certificate changed"),
    ("Payment declined", "the bank refused the charge"),
    ("Sync paused", "the connected account lost access"),
    ("Link expired", "the invitation or reset link is older than 7 days"),
]
OPENERS = ["In short,", "Good to know:", "Note that", "Keep in mind that", "As a rule,", "For most teams,",
           "By default,", "If you are unsure,", "On every plan,", "Behind the scenes,"]
REASONS = ["so that nothing is lost", "to keep your data consistent", "because of how permissions are inherited",
           "to protect other members of the workspace", "which keeps reports accurate", "so billing stays correct",
           "to respect your identity provider's settings", "so the change is visible to everyone at once"]
CONSEQUENCES = ["Members see the change right away.", "The change is recorded in the audit log.",
                "Existing items keep their current settings.", "You can undo this for 30 days.",
                "Guests are not notified.", "Integrations pick up the change within 5 minutes.",
                "The next invoice reflects the change.", "Mobile apps update the next time they sync."]


@dataclass(frozen=True)
class Corpus:
    articles: list[Article]
    chunk_count: int
    key: str  # identifies the texts to embed: changes whenever the corpus or the chunker does


def _path(area: str, rng: random.Random) -> str:
    sub = rng.choice(["General", "Advanced", "Permissions", "Defaults", "Notifications", "History"])
    return f"Settings → {area} → {sub}"


def _sentence(rng: random.Random, area: str, thing: str) -> str:
    kind = rng.randrange(9)
    plan = rng.choice(PLANS)
    role = rng.choice(ROLES)
    if kind == 0:
        return f"Only a {role} can {rng.choice(VERBS)} a {thing}, {rng.choice(REASONS)}."
    if kind == 1:
        n = rng.choice([3, 5, 10, 20, 25, 50, 100, 250, 500, 1000])
        return f"On the {plan} plan you can have up to {n} {thing}s per {rng.choice(['project', 'workspace', 'member'])}."
    if kind == 2:
        return f"{rng.choice(OPENERS)} the {thing} settings live under {_path(area, rng)}."
    if kind == 3:
        return f"In {rng.choice(PLATFORMS)}, open the {area.lower()} menu and choose {thing.title()}."
    if kind == 4:
        return rng.choice(CONSEQUENCES)
    if kind == 5:
        tool = rng.choice(INTEGRATIONS)
        return f"When {tool} is connected, each {thing} is kept in sync in both directions every {rng.choice([1, 5, 15, 60])} minutes."
    if kind == 6:
        days = rng.choice([7, 14, 30, 60, 90, 180, 365])
        return f"A deleted {thing} stays in the trash for {days} days before it is removed for good."
    if kind == 7:
        return (f"If {rng.choice(BROWSERS)} shows an outdated {thing}, reload the page or sign out and back in; "
                f"cached data is refreshed at sign-in.")
    return f"{role}s on the {plan} plan and above can also {rng.choice(VERBS)} {thing}s for the whole workspace."


def _paragraph(rng: random.Random, area: str, thing: str, sentences: tuple[int, int] = (3, 6)) -> str:
    return "<p>" + " ".join(_sentence(rng, area, thing) for _ in range(rng.randint(*sentences))) + "</p>"


def _steps(rng: random.Random, area: str, verb: str, thing: str) -> str:
    steps = [f"Open {_path(area, rng)}.", f"Find the {thing} you want to {verb} in the list, or search for it by name."]
    for _ in range(rng.randint(2, 6)):
        steps.append(rng.choice([
            f"Click <strong>{verb.title()}</strong> next to the {thing}.",
            f"Choose who can see the {thing}: everyone, a team, or only you.",
            f"Select a {rng.choice(AREAS[area])} from the dropdown.",
            f"Confirm with <strong>Save</strong>; the change applies to new items only.",
            f"Type the name of the {thing} to confirm, then click <strong>Continue</strong>.",
            f"Pick the {rng.choice(PLANS)} plan option if you are asked to upgrade.",
            f"Wait for the green confirmation banner before closing the page.",
        ]))
    return "<ol>" + "".join(f"<li>{s}</li>" for s in steps) + "</ol>"


def article(i: int) -> Article:
    """Article number `i` of the synthetic help center; the same `i` always gives the same article."""
    rng = random.Random(f"orbitask-help-center:{GENERATOR_VERSION}:{i}")
    area = rng.choice(list(AREAS))
    thing = rng.choice(AREAS[area])
    verb = rng.choice(VERBS)
    kind = rng.randrange(4)
    parts: list[str] = []
    if kind == 0:
        title = f"How to {verb} a {thing}"
        parts.append(_paragraph(rng, area, thing, (2, 4)))
        parts.append("<h2>Before you start</h2>" + _paragraph(rng, area, thing))
        parts.append(f"<h2>{verb.capitalize()} a {thing}</h2>" + _steps(rng, area, verb, thing))
        if rng.random() < 0.6:
            parts.append(f"<h2>In {rng.choice(PLATFORMS)}</h2>" + _steps(rng, area, verb, thing))
        parts.append("<h2>What happens next</h2>" + _paragraph(rng, area, thing))
    elif kind == 1:
        error, cause = rng.choice(ERRORS)
        title = f"\"{error}\" when you {verb} a {thing}"
        parts.append(f"<p>You may see <code>{error}</code> when you try to {verb} a {thing}. "
                     f"Most often this means {cause}.</p>")
        parts.append("<h2>Why it happens</h2>" + _paragraph(rng, area, thing) + _paragraph(rng, area, thing))
        parts.append("<h2>Fix it</h2>" + _steps(rng, area, verb, thing))
        parts.append("<h2>Still not working?</h2>" + _paragraph(rng, area, thing, (2, 4)))
    elif kind == 2:
        title = f"{thing.capitalize()} limits on each plan"
        parts.append(_paragraph(rng, area, thing, (2, 3)))
        for plan in PLANS:
            parts.append(f"<h2>{plan}</h2>" + _paragraph(rng, area, thing, (2, 5)))
        parts.append("<h2>When you reach a limit</h2>" + _paragraph(rng, area, thing))
    else:
        title = f"{area}: frequently asked questions about the {thing}"
        for _ in range(rng.randint(4, 8)):
            question_verb = rng.choice(VERBS)
            other = rng.choice(AREAS[area])
            parts.append(f"<h3>Can I {question_verb} a {other}?</h3>" + _paragraph(rng, area, other, (2, 5)))
    slug = title.lower().replace('"', "").replace(" ", "-")[:60]
    article_id = str(900000000 + i)
    return Article(id=article_id, title=title, body_html="\n".join(parts),
                   url=f"https://orbitask.zendesk.com/hc/en-us/articles/{article_id}-{slug}")


def build_corpus(chunks: int = 20_000) -> Corpus:
    """The first articles whose chunks add up to at least `chunks`, as the current chunker splits them."""
    articles, texts = [], []
    i = 0
    while len(texts) < chunks:
        a = article(i)
        articles.append(a)
        texts += [embedding_input(c) for c in chunk_article(a)]
        i += 1
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    return Corpus(articles=articles, chunk_count=len(texts), key=digest)


def questions(corpus: Corpus, n: int, seed: int = 7) -> list[tuple[str, str, list[str]]]:
    """(subject, body, tags) for `n` tickets; most ask about an article, some about nothing indexed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            out.append(("Question about your office", "Hi, do you have an office in Lisbon where we could meet your "
                        "sales team in person next month? We would like to discuss a partnership.", ["sales"]))
            continue
        a = rng.choice(corpus.articles)
        topic = a.title.replace('"', "")
        body = rng.choice([
            f"Hello, {topic.lower()}? I looked in the settings but could not find it. We are on the "
            f"{rng.choice(PLANS)} plan and I am a {rng.choice(ROLES)}. Thanks!",
            f"Hi team, quick one: {topic.lower()} in {rng.choice(PLATFORMS)}? A colleague said it is possible "
            f"but I can't see the option anywhere.",
            f"We keep running into this: {topic}. What should we do? It started this morning for several members.",
        ])
        out.append((topic[:80], body, [rng.choice(["billing", "how-to", "bug", "account", "api"])]))
    return out


# --- Cached embeddings and index --------------------------------------------------------------


class CachedEmbedder:
    """The real embedder, with vectors remembered by text in a file: same interface, same vectors."""

    def __init__(self, embedder, path: Path):
        self.embedder = embedder
        self.name = embedder.name
        self.dimension = embedder.dimension
        self.similarity_scale = embedder.similarity_scale
        self.path = path
        self.vectors: dict[bytes, np.ndarray] = {}
        if path.exists():
            data = np.load(path)
            # numpy's fixed-width bytes drop trailing NULs; a SHA-1 digest is always 20 bytes.
            self.vectors = {k.ljust(20, b"\0"): v for k, v in zip(data["keys"].tolist(), data["vectors"])}

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.sha1(text.encode()).digest()

    def embed(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        if missing:
            log(f"embedding {len(missing)} texts with {self.name} (cached afterwards)")
            started = time.perf_counter()
            computed = self.embedder.embed([t for _, t in missing])
            log(f"embedded {len(missing)} texts in {time.perf_counter() - started:.0f} s")
            self.vectors.update(zip((k for k, _ in missing), computed))
            self.save()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([self.vectors[k] for k in keys]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]  # the embedders cached here (MiniLM) read questions as passages

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys, dtype="S20"), vectors=np.vstack([self.vectors[k] for k in keys]))
        tmp.replace(self.path)


def product_embedder():
    """The product's default embedder, as `make_embedder` builds it from empty settings."""
    from helpdesk_bot.embedding import make_embedder
    from helpdesk_bot.settings import Settings

    return make_embedder(Settings.from_env(clean_env()))


def store_fingerprint() -> str:
    """Identifies the store implementation and its on-disk format: an index built by another is rebuilt."""
    from helpdesk_bot import vectorstore

    versions = []
    for dist in ("qdrant-client", "qdrant-edge-py"):
        try:
            versions.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    source = inspect.getsource(vectorstore)
    return hashlib.sha256((source + "|".join(versions)).encode()).hexdigest()[:12]


def cached_index(corpus: Corpus, embedder) -> tuple[Path, dict]:
    """A data dir holding the corpus's built index, built on first use; returns (dir, build info).

    The directory is the cache itself: copy it (`copy_index`) before opening it for a run.
    """
    from helpdesk_bot.knowledge import sync_index
    from helpdesk_bot.services import open_store
    from helpdesk_bot.settings import Settings

    folder = CACHE_DIR / f"index-{corpus.key}-{embedder.name}-{store_fingerprint()}"
    info_file = folder / "built.json"
    if info_file.exists():
        return folder / "data", json.loads(info_file.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    log(f"building the {corpus.chunk_count}-chunk index in {folder} (once; cached afterwards)")
    cached = CachedEmbedder(embedder, CACHE_DIR / f"vectors-{embedder.name}.npz")
    settings = Settings.from_env(clean_env(HELPDESK_DATA_DIR=str(data_dir)))
    started = time.perf_counter()
    store = open_store(settings, embedder, writable=True)
    report = sync_index(store, cached, corpus.articles)
    store.close()  # an embedded store publishes its new version here
    reader = open_store(settings, embedder)
    count = reader.count()
    reader.close()
    info = {"articles": len(corpus.articles), "chunks": report.chunks, "points": count,
            "build_seconds": round(time.perf_counter() - started, 1), "store": store_fingerprint()}
    if count != corpus.chunk_count:
        raise RuntimeError(f"the index holds {count} points, expected {corpus.chunk_count}")
    info_file.write_text(json.dumps(info))
    log(f"index built in {info['build_seconds']} s")
    return data_dir, info


def copy_index(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target
