"""When an article changes, the answers that cited it are checked again.

Every re-index keeps what it changed, chunk by chunk (helpdesk_bot/impact_store.py). After it,
`ImpactCheck.run` takes each change not checked yet, finds through the decision → cited chunk
index the replies and drafted notes of the last HELPDESK_IMPACT_DAYS that quoted the old text,
and runs the groundedness check of each against the article as it reads now:

- still supported: every sentence is as grounded as it was, and no figure it quoted changed;
- contradicted or unsupported now: the sentences that lost their support, each beside the
  new passage closest to it, with the numbers, amounts and durations that changed;
- source removed: the article is gone.

On a ticket still open, an answer that is no longer supported gets an internal note for the
agent: what changed, and what the customer was told. One note per ticket and change (the
side-effect table's key), unless the policy turns them off (`article_change_notes = false`).
A re-index that changed nothing costs two indexed queries.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass

from helpdesk_bot.errors import HelpdeskBotError
from helpdesk_bot.groundedness import grounding
from helpdesk_bot.impact_store import (SOURCE_REMOVED, STILL_SUPPORTED, UNSUPPORTED_NOW, VERDICTS, ArticleChange,
                                       Citation, ImpactStore)
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.policy import Policy, PolicyFile
from helpdesk_bot.text import STOPWORDS, escape, sentences, stem, tokens

log = logging.getLogger(__name__)

CLOSED_STATUSES = frozenset({"solved", "closed"})
IMPACT_TAG = "ai_source_changed"
# A claim on a note older than this belongs to a check that died mid-call (helpdesk timeouts are shorter).
NOTE_LEASE_SECONDS = 60
_CITATION_MARK = re.compile(r"\[\d+\]")
# A figure: an amount ("$12.50", "€9"), a percentage, or a number with the word after it as its
# unit ("30 days", "14-day", "5 GB", "3 seats"). Numbers spelt out in words are not figures here.
_FIGURE = re.compile(r"(?P<currency>[$€£¥]\s?)?(?P<number>\d+(?:,\d{3})*(?:\.\d+)?)(?:(?:\s|-)?(?P<unit>%|[^\W\d_]+))?")


@dataclass(frozen=True)
class Figure:
    text: str  # as written
    key: tuple[str, str, str]  # (currency, number, unit stem): "14-day" and "14 days" are one figure

    @property
    def unit(self) -> tuple[str, str]:
        return self.key[0], self.key[2]


def figures(text: str) -> list[Figure]:
    """The numbers, amounts and durations in a text, in order."""
    found = []
    for match in _FIGURE.finditer(_CITATION_MARK.sub("", text)):
        currency, unit = (match["currency"] or "").strip(), (match["unit"] or "").lower()
        if currency or unit in STOPWORDS:  # "$12 a seat", "3 of them": the number stands alone
            written, unit = match.group(0)[: match.end("number") - match.start()], ""
        else:
            written = match.group(0)
        key = (currency, match["number"].replace(",", ""), stem(unit) if unit not in ("", "%") else unit)
        found.append(Figure(written.strip(), key))
    return found


@dataclass(frozen=True)
class Verdict:
    verdict: str  # a key of VERDICTS
    sentences: list[dict]  # {"sentence", "old", "new", "figures": [{"old", "new"}]}


def judge(answer: str, before: list[str], after: list[str], touched_before: list[str], touched_after: list[str],
          removed: bool) -> Verdict:
    """Check an answer again: `before` and `after` are all its sources as it quoted them and as they
    read now; `touched_*` the changed article's passages (its cited chunks before, all of it now)."""
    answer = _CITATION_MARK.sub("", answer)
    now = grounding(answer, after)
    then = grounding(answer, before) if now.unsupported else None
    lost = set(now.unsupported) - set(then.unsupported if then else ())
    old_figures = {f.key for text in touched_before for f in figures(text)}
    new_figures = [f for text in touched_after for f in figures(text)]
    new_keys = {f.key for f in new_figures}
    affected = []
    for sentence in sentences(answer):
        changed = [{"old": f.text, "new": _replacement(f, new_figures, old_figures)}
                   for f in figures(sentence) if f.key in old_figures and f.key not in new_keys]
        if sentence in lost or changed:
            affected.append({"sentence": sentence, "old": _closest(sentence, touched_before),
                             "new": _closest(sentence, touched_after), "figures": changed})
    if removed:
        return Verdict(SOURCE_REMOVED, affected)
    return Verdict(UNSUPPORTED_NOW if affected else STILL_SUPPORTED, affected)


def _replacement(figure: Figure, new_figures: list[Figure], old_keys: set) -> str | None:
    """What the new text says in place of a figure: a new figure of the same unit, if there is one."""
    return next((f.text for f in new_figures if f.unit == figure.unit and f.key not in old_keys), None)


def _closest(sentence: str, passages: list[str]) -> str | None:
    """The passage sentence sharing the most words with `sentence`: what to read beside it."""
    words = set(tokens(sentence))
    best, best_shared = None, 0
    for passage in passages:
        for candidate in sentences(passage):
            shared = len(words & set(tokens(candidate)))
            if shared > best_shared:
                best, best_shared = candidate, shared
    return best


@dataclass
class ImpactCheck:
    store: ImpactStore
    ledger: Ledger
    helpdesks: dict  # by name, as the pipeline's
    policy: Policy | PolicyFile
    days: int = 30

    def run(self) -> dict:
        """Check the answers touched by every change not checked yet; post the notes due."""
        counts = {verdict: 0 for verdict in VERDICTS} | {"changes": 0, "notes_posted": 0}
        since = time.time() - self.days * 86400
        for change in self.store.unchecked_changes():
            for verdict, n in self.check_change(change, since).items():
                counts[verdict] += n
            counts["changes"] += 1
            self.store.mark_checked(change.id)
        counts["notes_posted"] = self.post_notes()
        if counts["changes"]:
            log.info("article changes checked: %s", counts)
        return counts

    def check_change(self, change: ArticleChange, since: float) -> dict[str, int]:
        touched = self.store.citations_touched(change.id, since)
        if not touched:
            return {}
        decisions = self.ledger.decisions_of_events(list(touched))
        cited = self.store.cited_chunk_ids(list(touched))
        unchanged_text = self.store.chunk_texts({c for ids in cited.values() for c in ids})
        article_now = self.store.article_chunks(change.article_id) if change.change == "updated" else []
        notes_on = self.policy.current().article_change_notes
        impacts, counts = [], defaultdict(int)
        for event_id, citations in touched.items():
            decision = decisions.get(event_id)
            if decision is None or not decision["draft"].strip():
                continue
            verdict = self._judge(decision["draft"], citations, cited.get(event_id, []), unchanged_text,
                                  article_now, change)
            counts[verdict.verdict] += 1
            note = "not_needed" if verdict.verdict == STILL_SUPPORTED else ("due" if notes_on else "off")
            impacts.append({
                "event_id": event_id, "decision_id": decision["id"], "helpdesk": decision["helpdesk"],
                "ticket_id": decision["ticket_id"], "answer": "reply" if decision["action"] == "auto_send" else "note",
                "answered_at": decision["created_at"], "verdict": verdict.verdict, "sentences": verdict.sentences,
                "passages": [{"chunk_id": c.chunk_id, "old": c.old_text, "new": c.new_text} for c in citations],
                "ticket_status": None, "note": note,
            })
        self.store.record_impacts(change.id, impacts)
        return counts

    @staticmethod
    def _judge(draft: str, citations: list[Citation], cited_ids: list[str], unchanged_text: dict[str, str],
               article_now: list[str], change: ArticleChange) -> Verdict:
        touched_ids = {c.chunk_id for c in citations}
        # The answer's other sources as they read now (a chunk of an article removed meanwhile is gone).
        others = [unchanged_text[c] for c in cited_ids if c not in touched_ids and c in unchanged_text]
        touched_before = [c.old_text for c in citations]
        # The whole article now, not only the cited chunks: an edit that shifts text from one chunk
        # to the next leaves the answer supported.
        return judge(draft, others + touched_before, others + article_now, touched_before, article_now,
                     removed=change.change == "removed")

    # --- notes for the agents -------------------------------------------------------------------

    def post_notes(self) -> int:
        """Post the notes due: one per ticket and change, on tickets still open."""
        by_ticket: dict[tuple, list[dict]] = defaultdict(list)
        for impact in self.store.notes_due():
            by_ticket[(impact["helpdesk"], impact["ticket_id"], impact["article_change_id"])].append(impact)
        if by_ticket and not self.policy.current().article_change_notes:  # turned off since the check
            self.store.set_note([i["id"] for group in by_ticket.values() for i in group], "off")
            return 0
        posted = 0
        for (helpdesk_name, ticket_id, change_id), impacts in by_ticket.items():
            ids = [i["id"] for i in impacts]
            helpdesk = self.helpdesks.get(helpdesk_name)
            if helpdesk is None:
                self.store.set_note(ids, "due", f"no helpdesk named {helpdesk_name!r} is configured")
                continue
            key = f"{helpdesk_name}:{ticket_id}:article-change:{change_id}"
            try:
                status = helpdesk.fetch_ticket(ticket_id, requester=False).status
                if status in CLOSED_STATUSES:
                    self.store.set_note(ids, "closed", ticket_status=status)
                    continue
                body = impact_note(impacts)
                if self.ledger.claim_action(key, impacts[0]["event_id"], "note", body) is None:
                    claimed = self.ledger.action(key)
                    if claimed["state"] == "done" or helpdesk.has_bot_comment(ticket_id, claimed["body"]):
                        if claimed["state"] != "done":
                            self.ledger.finish_action(key, {"reconciled": True})
                        self.store.set_note(ids, "posted", ticket_status=status)
                        continue
                    if not self.ledger.reclaim_stale_action(key, claimed["claimed_at"], NOTE_LEASE_SECONDS):
                        continue  # another check is posting it now
                    body = claimed["body"]  # a check died mid-call: finish what it started
                result = helpdesk.post_note(ticket_id, body, None, (IMPACT_TAG,))
            except HelpdeskBotError as exc:
                log.warning("note on %s ticket %s about article change %s not posted: %s", helpdesk_name,
                            ticket_id, change_id, exc)
                if (self.ledger.action(key) or {}).get("state") == "claimed":
                    self.ledger.release_action(key)
                self.store.set_note(ids, "due", f"{type(exc).__name__}: {exc}")  # tried again at the next check
                continue
            self.ledger.finish_action(key, result)
            self.store.set_note(ids, "posted", ticket_status=status)
            posted += 1
        return posted


def impact_note(impacts: list[dict]) -> str:
    """The internal note: which article changed, what the customer was told, what it says now."""
    first = impacts[0]
    title = escape(first["title"])
    article = f'<a href="{escape(first["url"])}">{title}</a>' if first["url"] else title
    what = "was removed" if first["change"] == "removed" else "has changed"
    parts = [f"<p><strong>An article helpdesk-bot cited on this ticket {what}:</strong> {article}.</p>"]
    for impact in impacts:
        told = "The reply sent to the customer" if impact["answer"] == "reply" else "The draft in the bot's note"
        parts.append(f"<p>{told} ({_day(impact['answered_at'])}) is now <strong>{VERDICTS[impact['verdict']]}"
                     "</strong>. Please check it and correct it with the customer if needed.</p>")
        rows = []
        for s in impact["sentences"]:
            figures_changed = "".join(
                f"<li>{escape(f['old'])} → {escape(f['new'] or 'no longer stated')}</li>" for f in s["figures"])
            new = escape(s["new"]) if s["new"] else "<em>no longer in the article</em>"
            rows.append(f"<tr><td>{escape(s['sentence'])}</td><td>{new}"
                        + (f"<ul>{figures_changed}</ul>" if figures_changed else "") + "</td></tr>")
        if rows:
            parts.append("<table><tr><th>What the customer was told</th><th>What the article says now</th></tr>"
                         + "".join(rows) + "</table>")
    return "".join(parts)


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def as_json(impact: dict) -> dict:
    """One affected answer as `helpdesk-bot impact --json` prints it."""
    return {
        "ticket": impact["ticket_id"], "helpdesk": impact["helpdesk"], "decision_id": impact["decision_id"],
        "article_id": impact["article_id"], "article_title": impact["title"], "article_url": impact["url"],
        "change": impact["change"], "verdict": impact["verdict"],
        "sentences_affected": impact["sentences"], "answer": impact["answer"], "answered_at": _iso(impact["answered_at"]),
        "changed_at": _iso(impact["changed_at"]), "ticket_status": impact["ticket_status"], "note": impact["note"],
    }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
