"""When an article changes, the answers that cited it are checked again.

Every re-index keeps what it changed, chunk by chunk (helpdesk_bot/ledger/article_changes.py). After it,
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
from functools import lru_cache

from helpdesk_bot.domain import SOURCE_CHANGED_TAG
from helpdesk_bot.errors import HelpdeskBotError
from helpdesk_bot.groundedness import grounding, sentence_support
from helpdesk_bot.helpdesk import Helpdesk
from helpdesk_bot.ledger.article_changes import SOURCE_REMOVED, STILL_SUPPORTED, UNSUPPORTED_NOW, VERDICTS, ArticleChange
from helpdesk_bot.ledger import Ledger
from helpdesk_bot.policy import Policy, PolicyFile
from helpdesk_bot.text import STOPWORDS, escape, sentences, stem, tokens

log = logging.getLogger(__name__)

CLOSED_STATUSES = frozenset({"solved", "closed"})
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


def figures(text: str) -> tuple[Figure, ...]:
    """The numbers, amounts and durations in a text, in order."""
    return _figures(_CITATION_MARK.sub("", text))


@lru_cache(maxsize=8192)  # a change's passages are read once for all the answers that cited them
def _figures(text: str) -> tuple[Figure, ...]:
    found = []
    for match in _FIGURE.finditer(text):
        currency, unit = (match["currency"] or "").strip(), (match["unit"] or "").lower()
        if currency or unit in STOPWORDS:  # "$12 a seat", "3 of them": the number stands alone
            written, unit = match.group(0)[: match.end("number") - match.start()], ""
        else:
            written = match.group(0)
        key = (currency, match["number"].replace(",", ""), stem(unit) if unit not in ("", "%") else unit)
        found.append(Figure(written.strip(), key))
    return tuple(found)


@lru_cache(maxsize=8192)
def _sentence_words(passage: str) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple((sentence, frozenset(tokens(sentence))) for sentence in sentences(passage))


_WORD = re.compile(r"[^\W_]+")
_NEGATIONS = frozenset("not no never cannot without none nothing nor neither".split())


@dataclass(frozen=True)
class Edit:
    """What a change did to the passages an answer quoted: their text before, the article now."""

    before: tuple[str, ...]  # the cited chunks as the answer quoted them
    after: tuple[str, ...]  # the whole article now (empty: removed)
    gone_words: frozenset[str]  # lower-cased words of `before` that `after` no longer has
    old_figures: frozenset[tuple]
    new_figures: tuple[Figure, ...]
    negation_changed: bool  # a "not", "never", "cannot"… came or went: what a bag of words misses

    @staticmethod
    @lru_cache(maxsize=4096)  # many answers quote the same chunks
    def of(before: tuple[str, ...], after: tuple[str, ...]) -> Edit:
        words_before = {w for text in before for w in _WORD.findall(text.lower())}
        words_after = {w for text in after for w in _WORD.findall(text.lower())}
        return Edit(before, after, frozenset(words_before - words_after),
                    frozenset(f.key for text in before for f in figures(text)),
                    tuple(f for text in after for f in figures(text)),
                    bool((words_before ^ words_after) & _NEGATIONS))

    def may_touch(self, answer: str) -> bool:
        """Whether the answer may use a word the change took out (figures are words too), or the
        change turned something negative or positive.

        When it cannot, no sentence of it lost support: the groundedness check need not run.
        A substring test, so a false alarm only costs that check.
        """
        lowered = answer.lower()
        return self.negation_changed or any(word in lowered for word in self.gone_words)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # a key of VERDICTS
    sentences: list[dict]  # {"sentence", "old", "new", "figures": [{"old", "new"}]}


def judge(answer: str, edit: Edit, others: list[str] = (), removed: bool = False) -> Verdict:
    """Check an answer again against the article as it reads now; `others` are its other sources."""
    answer = _CITATION_MARK.sub("", answer)
    if not removed and not edit.may_touch(answer):
        return Verdict(STILL_SUPPORTED, [])
    now = grounding(answer, [*others, *edit.after])
    then = grounding(answer, [*others, *edit.before]) if now.unsupported else None
    lost = set(now.unsupported) - set(then.unsupported if then else ())
    if edit.negation_changed and not removed:
        # The sentence-level check compares what is negated (ten times the cost: only here).
        aligned_then = {c.sentence: c.supported for c in sentence_support(answer, [("", t) for t in [*others, *edit.before]])}
        lost |= {c.sentence for c in sentence_support(answer, [("", t) for t in [*others, *edit.after]])
                 if not c.supported and aligned_then.get(c.sentence)}
    gone_figures = edit.old_figures - {f.key for f in edit.new_figures}
    affected = []
    for sentence in sentences(answer):
        changed = [{"old": f.text, "new": _replacement(f, edit.new_figures, edit.old_figures)}
                   for f in figures(sentence) if f.key in gone_figures]
        if sentence in lost or changed:
            affected.append({"sentence": sentence, "old": _closest(sentence, edit.before),
                             "new": _closest(sentence, edit.after), "figures": changed})
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
        for candidate, candidate_words in _sentence_words(passage):
            shared = len(words & candidate_words)
            if shared > best_shared:
                best, best_shared = candidate, shared
    return best


@dataclass
class ImpactCheck:
    ledger: Ledger
    helpdesks: dict[str, Helpdesk]  # by name, as the pipeline's
    policy: Policy | PolicyFile
    days: int = 30

    def run(self) -> dict:
        """Check the answers touched by every change not checked yet; post the notes due."""
        counts = {verdict: 0 for verdict in VERDICTS} | {"changes": 0, "notes_posted": 0}
        changes = self.ledger.unchecked_changes()
        if changes:
            impacts = self.check(changes, since=time.time() - self.days * 86400)
            # The verdicts and the changes marked checked in one transaction: a check that dies
            # in between leaves the changes to the next one, which finds the same answers.
            self.ledger.record_impacts(impacts, checked=[c.id for c in changes])
            counts["changes"] = len(changes)
            for impact in impacts:
                counts[impact["verdict"]] += 1
        counts["notes_posted"] = self.post_notes()
        if counts["changes"]:
            log.info("article changes checked: %s", counts)
        return counts

    def check(self, changes: list[ArticleChange], since: float) -> list[dict]:
        """The verdicts on the answers since `since` that cited the old text of these changes."""
        touched = self.ledger.citations_touched([c.id for c in changes], since)
        decisions = self.ledger.decisions_of_events(sorted({event_id for _, event_id in touched}))
        # The whole article now, not only the cited chunks: an edit that moves text from one
        # chunk to the next leaves the answer supported.
        article_now = self.ledger.article_texts([c.article_id for c in changes if c.change == "updated"])
        by_id = {c.id: c for c in changes}
        to_judge = []  # (change, decision, citations, edit)
        for (change_id, event_id), citations in touched.items():
            decision, change = decisions.get(event_id), by_id[change_id]
            if decision is None or not decision["draft"].strip():
                continue
            after = tuple(article_now.get(change.article_id, ())) if change.change == "updated" else ()
            to_judge.append((change, decision, citations, Edit.of(tuple(c.old_text for c in citations), after)))
        # Only answers that may use what the change took out are checked against all their sources.
        suspect = sorted({d["event_id"] for change, d, _, edit in to_judge
                          if change.change == "removed" or edit.may_touch(d["draft"])})
        cited = self.ledger.cited_chunk_ids(suspect)
        current = self.ledger.chunk_texts({c for ids in cited.values() for c in ids})
        notes_on = self.policy.current().article_change_notes
        impacts = []
        for change, decision, citations, edit in to_judge:
            quoted = {c.chunk_id for c in citations}
            # The answer's other sources as they read now (one of an article removed meanwhile is gone).
            others = [current[c] for c in cited.get(decision["event_id"], ()) if c not in quoted and c in current]
            verdict = judge(decision["draft"], edit, others, removed=change.change == "removed")
            impacts.append({
                "article_change_id": change.id, "event_id": decision["event_id"], "decision_id": decision["id"],
                "helpdesk": decision["helpdesk"], "ticket_id": decision["ticket_id"],
                "answer": "reply" if decision["action"] == "auto_send" else "note",
                "answered_at": decision["created_at"], "verdict": verdict.verdict, "sentences": verdict.sentences,
                "passages": sorted(quoted), "ticket_status": None,
                "note": "not_needed" if verdict.verdict == STILL_SUPPORTED else ("due" if notes_on else "off"),
            })
        return impacts

    # --- notes for the agents -------------------------------------------------------------------

    def post_notes(self) -> int:
        """Post the notes due: one per ticket and change, on tickets still open."""
        by_ticket: dict[tuple, list[dict]] = defaultdict(list)
        for impact in self.ledger.impact_notes_due():
            by_ticket[(impact["helpdesk"], impact["ticket_id"], impact["article_change_id"])].append(impact)
        if by_ticket and not self.policy.current().article_change_notes:  # turned off since the check
            self.ledger.set_impact_note([i["id"] for group in by_ticket.values() for i in group], "off")
            return 0
        posted = 0
        for (helpdesk_name, ticket_id, change_id), impacts in by_ticket.items():
            ids = [i["id"] for i in impacts]
            helpdesk = self.helpdesks.get(helpdesk_name)
            if helpdesk is None:
                self.ledger.set_impact_note(ids, "due", f"no helpdesk named {helpdesk_name!r} is configured")
                continue
            key = f"{helpdesk_name}:{ticket_id}:article-change:{change_id}"
            try:
                status = helpdesk.fetch_ticket(ticket_id, requester=False).status
                if status in CLOSED_STATUSES:
                    self.ledger.set_impact_note(ids, "closed", ticket_status=status)
                    continue
                body = impact_note(impacts)
                if self.ledger.claim_action(key, impacts[0]["event_id"], "note", body) is None:
                    claimed = self.ledger.action(key)
                    if claimed["state"] == "done" or helpdesk.has_bot_comment(ticket_id, claimed["body"]):
                        if claimed["state"] != "done":
                            self.ledger.finish_action(key, {"reconciled": True})
                        self.ledger.set_impact_note(ids, "posted", ticket_status=status)
                        continue
                    if not self.ledger.reclaim_stale_action(key, claimed["claimed_at"], NOTE_LEASE_SECONDS):
                        continue  # another check is posting it now
                    body = claimed["body"]  # a check died mid-call: finish what it started
                result = helpdesk.post_note(ticket_id, body, None, (SOURCE_CHANGED_TAG,))
            except HelpdeskBotError as exc:
                log.warning("note on %s ticket %s about article change %s not posted: %s", helpdesk_name,
                            ticket_id, change_id, exc)
                if (self.ledger.action(key) or {}).get("state") == "claimed":
                    self.ledger.release_action(key)
                self.ledger.set_impact_note(ids, "due", f"{type(exc).__name__}: {exc}")  # tried again at the next check
                continue
            self.ledger.finish_action(key, result)
            self.ledger.set_impact_note(ids, "posted", ticket_status=status)
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
        verdict = ("has lost its source" if impact["verdict"] == SOURCE_REMOVED
                   else "is contradicted or no longer supported by the article")
        if impact["answer"] == "reply":
            parts.append(f"<p>The reply sent to the customer on {_day(impact['answered_at'])} <strong>{verdict}"
                         "</strong>. Please check what they were told, and correct it with them if needed.</p>")
        else:
            parts.append(f"<p>The draft in the bot's note of {_day(impact['answered_at'])} <strong>{verdict}"
                         "</strong>. Please do not send it as it is; if it was sent, correct it with the customer.</p>")
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
